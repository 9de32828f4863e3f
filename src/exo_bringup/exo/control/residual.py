"""Residual control: a learned correction added to a base controller's torque (no gymnasium, no torch).

The policy does not command the torque alone; it adds a bounded correction to a
base controller (the PID baseline)::

    action = clip(base_nm / action_scale_nm + scale * correction, -limit, limit)   (action = torque / 100 N m)

with ``correction`` in [-1, 1] the policy's tanh output, ``scale`` the
correction's authority as a fraction of the action range (0.5 = +-50 N m on a
100 N m motor) and ``limit`` the combined torque's authority (1.0 = the motor's
range; 0.85 = +-85 N m, a hard cap the policy cannot trade away for tracking). At initialisation (correction ~ 0) the closed loop is the base
controller, so learning starts from a working controller instead of from random
torques ("residual policy learning", Silver et al. 2018; Johannink et al. 2019).

:class:`ResidualSpec` is what a trained policy's card records; the same
:func:`combine` runs in :class:`exo.envs.residual.ResidualActionWrapper` (training)
and in :class:`exo.control.sac.SacController` (deployment: the controller node and
the evaluator), so what was trained is what runs. The base controller keeps state
(the PID integral): it is reset at every episode / trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exo.control.base import Controller


@dataclass(frozen=True)
class ResidualSpec:
    """The base controller of a residual policy.

    Attributes:
        controller: registered controller name (:func:`exo.control.make_controller`), e.g. "pid".
        params: its keyword parameters (recorded, so a policy never depends on a config file that changed).
        scale: authority of the correction, fraction of the action range (0 < scale <= 2).
        limit: authority of base + correction, fraction of the action range (0 < limit <= 1).
    """

    controller: str
    params: Mapping[str, Any] = field(default_factory=dict)
    scale: float = 0.5
    limit: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.controller, str) or not self.controller or self.controller == "none":
            raise ValueError(f"residual controller must name a registered controller, got {self.controller!r}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and 0.0 < self.scale <= 2.0):
            raise ValueError(f"residual scale must be in (0, 2], got {self.scale!r}")
        if not (isinstance(self.limit, (int, float)) and math.isfinite(self.limit) and 0.0 < self.limit <= 1.0):
            raise ValueError(f"residual limit must be in (0, 1], got {self.limit!r}")

    def make_base(self) -> Controller:
        """A fresh base controller."""
        from exo.control import make_controller

        return make_controller(self.controller, **dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        """The card entry ``residual``."""
        return {"controller": self.controller, "params": dict(self.params), "scale": float(self.scale),
                "limit": float(self.limit),
                "combine": "action = clip(base_nm / action_scale_nm + scale * policy_action, -limit, limit)"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResidualSpec:
        """Inverse of :meth:`to_dict` (ValueError naming the problem on a malformed entry)."""
        if not isinstance(data, Mapping) or "controller" not in data:
            raise ValueError(f"residual entry must be a mapping with 'controller', got {data!r}")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"residual params must be a mapping, got {params!r}")
        return cls(controller=str(data["controller"]), params=dict(params), scale=float(data.get("scale", 0.5)),
                   limit=float(data.get("limit", 1.0)))  # cards from before the limit: the full range


def combine(base_action: float, correction: float, scale: float, limit: float = 1.0) -> float:
    """Applied env action (torque / action scale) of a base action and a policy correction, both in [-1, 1],
    clipped to +-``limit``."""
    a = base_action + scale * correction
    return limit if a > limit else -limit if a < -limit else a
