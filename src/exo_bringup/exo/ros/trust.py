"""The ROS side of who may move the knee: key-file parameters, signing and checking torque messages.

Glue between the message type (``exo_msgs/TorqueCommand``) and the pure cores of
:mod:`exo.security` (keys, HMAC, sequence) and :mod:`exo.safety.actuator_guard` (the actuator
side's own limits). The nodes that publish or act on torque messages use it:

- controller: signs ``torque_request`` with the request key,
- safety monitor: checks requests with the request key, signs ``torque_command`` with the command key,
- sim bridge and actuator driver: apply ``torque_command`` through an :class:`ActuatorGuard`.
"""

from __future__ import annotations

from typing import Any

from exo.ros.convert import stamp_ns
from exo.ros.parameters import Param, ParameterError
from exo.safety.actuator_guard import ActuatorGuard, ActuatorLimits
from exo.security import MessageSigner, MessageVerifier, Verdict
from exo.security.keys import SecretError, load_secret

#: Descriptions of the secret-file parameters (the runner or launch file sets them: exo.graph NodeSpec.secrets).
_SECRET_DOCS = {
    "command_key_file": "File (mode 0600) with the run's torque_command key: the safety monitor signs with it, "
                        "the actuator side verifies. Set by the exo runner / launch file.",
    "request_key_file": "File (mode 0600) with the run's torque_request key: the controller signs with it, the "
                        "safety monitor verifies. Set by the exo runner / launch file.",
    "reset_token_file": "File (mode 0600) with the operator's reset credential (exo reset). Set by the exo "
                        "runner / launch file.",
    "console_token_file": "File (mode 0600) with the token a browser must present to the console when it listens "
                          "beyond this machine. Set by the exo runner / launch file; empty = a fresh token, "
                          "printed at start.",
}


def secret_param(name: str) -> Param:
    """The string parameter naming one of the run's secret files."""
    return Param(name, "", _SECRET_DOCS[name])


def load_key(params: dict[str, Any], name: str) -> bytes:
    """The secret of file parameter ``name``; :class:`ParameterError` saying what to do if unusable."""
    path = params[name]
    if not path:
        raise ParameterError(
            f"parameter '{name}' is not set: this node only works with the run's keys, which the launch files "
            "and the exo runner create (ros2 launch exo_bringup sim.launch.py, exo sim, exo real)")
    try:
        return load_secret(path)
    except SecretError as exc:
        raise ParameterError(f"parameter '{name}': {exc}") from None


def guard_params() -> list[Param]:
    """``guard.*`` parameters of an actuator-side node (config/actuator_guard.yaml)."""
    return [Param(f"guard.{name}", float(default), f"[{unit}] {doc}", 0.0 if name != "joint_min_angle_rad" else None)
            for name, (default, unit, doc) in ActuatorLimits.parameter_docs().items()]


def make_guard(params: dict[str, Any], joint: str) -> ActuatorGuard:
    """The actuator side's guard from the node's ``guard.*`` and ``command_key_file`` parameters."""
    try:
        limits = ActuatorLimits(**{name: params[f"guard.{name}"] for name in ActuatorLimits.parameter_docs()})
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    return ActuatorGuard(limits, load_key(params, "command_key_file"), joint)


def mac_of(msg) -> bytes:
    """The ``mac`` field of a TorqueCommand as bytes."""
    return bytes(msg.mac)


def sign_message(signer: MessageSigner, msg) -> None:
    """Number and sign a TorqueCommand in place (fills ``seq`` and ``mac``)."""
    seq, mac = signer.next(stamp_ns(msg.header.stamp), msg.joint, float(msg.torque), msg.source)
    msg.seq = seq
    msg.mac = mac


def check_message(verifier: MessageVerifier, msg) -> Verdict:
    """Verify a received TorqueCommand's MAC and sequence."""
    return verifier.check(stamp_ns(msg.header.stamp), int(msg.seq), msg.joint, float(msg.torque), msg.source,
                          mac_of(msg))


def apply_command(guard: ActuatorGuard, now_s: float, msg) -> str | None:
    """Hand a received torque_command to the guard; None if accepted, else the refusal reason."""
    return guard.on_command(now_s, stamp_ns(msg.header.stamp), int(msg.seq), msg.joint, float(msg.torque),
                            msg.source, mac_of(msg))


class LogThrottle:
    """At most one log line per ``period_s`` (wall clock), decided without rclpy's throttled logging, which
    inspects the caller's stack on every call: too slow for a message flood."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._last = -float("inf")

    def due(self, now_s: float) -> bool:
        """True (and restart the period) if a line may be logged at ``now_s``."""
        if now_s - self._last < self.period_s:
            return False
        self._last = now_s
        return True
