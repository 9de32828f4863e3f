"""Who may move the knee: per-run secrets and authenticated torque messages (pure Python, no rclpy).

The pip install's Fast DDS is built without DDS-Security, so the graph protects itself in the
application (docs/safety.md has the threat model):

- :mod:`exo.security.keys`: :class:`RunSecrets`, the per-run folder (mode 0700) holding the
  command key (safety monitor and actuator side only), the request key (controller and safety
  monitor) and the operator's reset token, each a 0600 file; :func:`load_secret` refuses a file
  other users could read.
- :mod:`exo.security.auth`: HMAC-SHA256 over a torque message's stamp, sequence number, joint,
  torque and source (:func:`sign`), and :class:`MessageVerifier`, which also refuses a sequence
  number that does not increase (a replayed or recorded message).
"""

from exo.security.auth import COMMAND_PURPOSE, REQUEST_PURPOSE, MessageSigner, MessageVerifier, Verdict, sign
from exo.security.keys import RunSecrets, SecretError, load_secret

__all__ = [
    "COMMAND_PURPOSE",
    "REQUEST_PURPOSE",
    "MessageSigner",
    "MessageVerifier",
    "RunSecrets",
    "SecretError",
    "Verdict",
    "load_secret",
    "sign",
]
