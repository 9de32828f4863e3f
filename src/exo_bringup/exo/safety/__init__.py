"""Safety core of the knee exoskeleton (pure Python, no rclpy).

- :mod:`exo.safety.limits`: :class:`SafetyLimits`, every limit as a named parameter with units,
  loaded and validated from ``config/safety.yaml``.
- :mod:`exo.safety.monitor`: :class:`SafetyMonitor`, where every decision about the commanded torque
  is made (input sanity, hard limits, shield, fallback, watchdogs, e-stop), and its outputs.
"""

from exo.safety.limits import NODE_NAME, SafetyConfigError, SafetyLimits, source_name
from exo.safety.monitor import SafetyDecision, SafetyMonitor, SafetyState, SafetyStatus, Transition

__all__ = [
    "NODE_NAME",
    "SafetyConfigError",
    "SafetyDecision",
    "SafetyLimits",
    "SafetyMonitor",
    "SafetyState",
    "SafetyStatus",
    "Transition",
    "source_name",
]
