"""The knee-extension env seen by a residual policy (:mod:`exo.control.residual`): its action is the correction."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from exo.control.residual import ResidualSpec, combine

__all__ = ["ResidualActionWrapper", "ResidualSpec", "combine"]


class ResidualActionWrapper(gym.Wrapper):
    """The knee-extension env seen by a residual policy: its action is the correction.

    ``info`` of every step gains ``base_action`` and ``applied_action`` (env action units);
    the env's reward and observation are unchanged (the observation's ``last_action`` is
    the applied action, as on the robot).
    """

    def __init__(self, env: gym.Env, spec: ResidualSpec) -> None:
        super().__init__(env)
        self.residual = spec
        self.base = spec.make_base()
        self._torque_scale = float(env.unwrapped.twin.max_exo_torque_nm)
        self._obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> Any:
        self.base.reset()
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: np.ndarray) -> Any:
        if self._obs is None:
            raise RuntimeError("step() before reset()")
        correction = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not math.isfinite(correction):
            raise ValueError(f"action must be finite, got {action!r}")
        correction = max(-1.0, min(1.0, correction))
        base = self.base.act(self._obs) / self._torque_scale
        applied = combine(base, correction, self.residual.scale, self.residual.limit)
        obs, reward, terminated, truncated, info = self.env.step(np.array([applied], dtype=np.float32))
        self._obs = obs
        info["base_action"], info["applied_action"] = base, applied
        return obs, reward, terminated, truncated, info
