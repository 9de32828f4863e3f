"""Gymnasium environments of the knee exoskeleton (pure core, no rclpy).

Registering (:func:`register_envs`; done on import of :mod:`exo.envs.knee_extension`, and on
import of this package when gymnasium is already loaded) adds:

- ``exo/KneeExtension-Full-v0``: :class:`~exo.envs.knee_extension.KneeExtensionEnv` on the full MyoLeg twin;
- ``exo/KneeExtension-Reduced-v0``: the same task on the reduced twin.

Both accept the env's keyword arguments in ``gymnasium.make`` (``level=``, overrides, ...).
The observation is built by :func:`exo.envs.observation.build_observation` (also used live by the
controller node); the task's configuration (``config/env.yaml``: episode, termination, reward
terms and weights) is :mod:`exo.envs.config`.
"""

from __future__ import annotations

import sys

ENV_IDS = {"full": "exo/KneeExtension-Full-v0", "reduced": "exo/KneeExtension-Reduced-v0"}


def register_envs() -> None:
    """Register the env ids with gymnasium (idempotent)."""
    import gymnasium as gym

    for kind, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="exo.envs.knee_extension:KneeExtensionEnv", kwargs={"twin": kind})


# The controller node imports exo.envs.observation on live data: it must not pull in gymnasium.
if "gymnasium" in sys.modules:
    register_envs()
