"""What every exoskeleton controller looks like, and how it reads the observation.

A controller maps the observation vector of :mod:`exo.envs.observation` (the
same vector the SAC policy sees, built from sensor data only) to an exo motor
torque in N m (+ = flexion). It is a plain Python object with no ROS or
simulator dependency, so the gymnasium evaluator and the ROS controller node
run the same code on simulated and live data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

ObsLayout = Mapping[str, slice]


@runtime_checkable
class Controller(Protocol):
    """An exoskeleton torque controller.

    Attributes:
        name: registry name ("pid", "zero", "sac", ...).
    """

    name: str

    def reset(self) -> None:
        """Forget internal state (integrators, filters) before a new trial."""
        ...

    def act(self, obs: np.ndarray) -> float:
        """Exo motor torque request in N m (+ = flexion) for one observation vector."""
        ...


def default_obs_layout() -> ObsLayout:
    """The observation layout of the gymnasium env (imported lazily: controllers stay light)."""
    from exo.envs.observation import OBS_LAYOUT

    return OBS_LAYOUT


def obs_field(obs: np.ndarray, layout: ObsLayout, key: str) -> float:
    """The scalar entry ``key`` of ``obs`` (first element of its slice).

    Raises:
        KeyError: the layout has no such entry.
    """
    try:
        index = layout[key]
    except KeyError:
        raise KeyError(f"observation layout has no {key!r} (has: {', '.join(layout)})") from None
    return float(np.asarray(obs, dtype=float)[index].reshape(-1)[0])
