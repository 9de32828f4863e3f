"""Zero-torque ("transparent") controller: the exo follows the leg and applies no torque.

The lower bound of every comparison (what the subject does alone, with the
exo's mass) and the safety monitor's transparent fallback.
"""

from __future__ import annotations

import numpy as np


class ZeroTorqueController:
    """Always requests 0 N m."""

    name = "zero"

    def reset(self) -> None:
        """Nothing to reset."""

    def act(self, obs: np.ndarray) -> float:
        """0.0 N m whatever the observation."""
        return 0.0

    def params(self) -> dict[str, float | str]:
        """Parameters for run records (none)."""
        return {}
