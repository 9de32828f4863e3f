"""Tests that play a trusted node of the graph (the controller) sign with the run's own key.

Production code never imports this; it is for tests and benchmarks whose probe replaces the
controller towards a real safety monitor (the runner created the key: ``GraphRunner.secrets``).
"""

from __future__ import annotations

from exo.ros import trust
from exo.runner import GraphRunner
from exo.security import REQUEST_PURPOSE, MessageSigner
from exo.security.keys import load_secret


class TrustedController:
    """Numbers and signs torque requests as the graph's controller would."""

    def __init__(self, graph: GraphRunner) -> None:
        self.signer = MessageSigner(load_secret(graph.secrets.file("request_key_file")), REQUEST_PURPOSE)

    def sign(self, msg):
        """Sign ``msg`` (an exo_msgs/TorqueCommand) in place and return it."""
        trust.sign_message(self.signer, msg)
        return msg
