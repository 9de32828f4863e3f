"""PID torque controller on the knee angle error (the paper's baseline).

Sign convention (see :mod:`exo.twin.interface`): angles and torques are
positive in flexion. The error is ``e = target - angle`` (rad), so the
proportional torque ``kp * e`` is negative (extending) when the knee is more
flexed than the target: extending from 1.544 rad to 0.2 rad starts with
``e = -1.344 rad`` and an extension torque.

Discrete law at period ``dt`` (s), applied once per control step::

    P = kp * e
    I = I + ki * e * dt                      (skipped while saturated, see anti_windup)
    D = -kd * filter(d angle / dt)           (derivative on measurement: no kick at a target step)
    u = clip(P + I + D, -torque_limit_nm, +torque_limit_nm)

- ``derivative_source="difference"`` differentiates the measured angle by
  backward difference (0 on the first step after :meth:`reset`);
  ``"velocity"`` uses the measured joint velocity instead.
- The derivative goes through a first-order low-pass of time constant
  ``derivative_filter_s`` (0 = unfiltered), discretised as
  ``y += dt / (tau + dt) * (x - y)``.
- ``anti_windup="clamp"`` (conditional integration): the integrator does not
  move when the output is saturated and the error would push it further into
  saturation, and it is bounded by +-torque_limit_nm; ``"none"`` integrates
  always (for comparison only).

Units: kp in N m/rad, ki in N m/(rad s), kd in N m s/rad, torques in N m.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from exo.control.base import ObsLayout, default_obs_layout, obs_field

AntiWindup = Literal["clamp", "none"]
DerivativeSource = Literal["difference", "velocity"]

#: Observation entries the PID reads.
ANGLE_KEY = "exo_knee_angle"
VELOCITY_KEY = "exo_knee_velocity"
TARGET_ERROR_KEY = "target_error"


class PidController:
    """PID on the exo knee angle toward the task target, torque output in N m.

    Args:
        kp: proportional gain, N m/rad.
        ki: integral gain, N m/(rad s).
        kd: derivative gain, N m s/rad.
        torque_limit_nm: output saturation, N m (the exo motor's 100 N m by default).
        dt: control period, s.
        anti_windup: "clamp" (conditional integration) or "none".
        derivative_filter_s: time constant of the derivative low-pass, s (0 = none).
        derivative_source: "difference" (backward difference of the angle) or
            "velocity" (the measured joint velocity).
        obs_layout: observation layout (defaults to the env's ``OBS_LAYOUT``).
    """

    name = "pid"

    def __init__(
        self,
        kp: float,
        ki: float = 0.0,
        kd: float = 0.0,
        torque_limit_nm: float = 100.0,
        dt: float = 0.01,
        anti_windup: AntiWindup = "clamp",
        derivative_filter_s: float = 0.0,
        derivative_source: DerivativeSource = "difference",
        obs_layout: ObsLayout | None = None,
    ) -> None:
        for label, value in (
            ("kp", kp),
            ("ki", ki),
            ("kd", kd),
            ("derivative_filter_s", derivative_filter_s),
        ):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{label} must be finite and >= 0, got {value}")
        if not (torque_limit_nm > 0.0 and dt > 0.0):
            raise ValueError(f"torque_limit_nm and dt must be > 0, got {torque_limit_nm}, {dt}")
        if anti_windup not in ("clamp", "none"):
            raise ValueError(f"anti_windup must be 'clamp' or 'none', got {anti_windup!r}")
        if derivative_source not in ("difference", "velocity"):
            raise ValueError(
                f"derivative_source must be 'difference' or 'velocity', got {derivative_source!r}"
            )
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.torque_limit_nm = float(torque_limit_nm)
        self.dt = float(dt)
        self.anti_windup: AntiWindup = anti_windup
        self.derivative_filter_s = float(derivative_filter_s)
        self.derivative_source: DerivativeSource = derivative_source
        self._layout = obs_layout
        self.reset()

    def reset(self) -> None:
        """Zero the integrator and the derivative filter."""
        self.integral_nm = 0.0  #: integral term, N m
        self._rate_rad_s = 0.0  # filtered angle rate, rad/s
        self._previous_angle_rad: float | None = None

    @property
    def obs_layout(self) -> ObsLayout:
        if self._layout is None:
            self._layout = default_obs_layout()
        return self._layout

    def act(self, obs: np.ndarray) -> float:
        """Torque in N m from an observation vector (reads angle, target error, velocity)."""
        layout = self.obs_layout
        angle_rad = obs_field(obs, layout, ANGLE_KEY)
        error_rad = obs_field(obs, layout, TARGET_ERROR_KEY)
        velocity = obs_field(obs, layout, VELOCITY_KEY) if self.derivative_source == "velocity" else None
        return self.update(error_rad, angle_rad, velocity)

    def update(self, error_rad: float, angle_rad: float, velocity_rad_s: float | None = None) -> float:
        """One control step from plain signals; returns the saturated torque, N m.

        Args:
            error_rad: target minus measured knee angle, rad.
            angle_rad: measured knee angle, rad (for the derivative on measurement).
            velocity_rad_s: measured knee velocity, rad/s (used when
                ``derivative_source == "velocity"``).
        """
        if self.derivative_source == "velocity":
            if velocity_rad_s is None:
                raise ValueError("derivative_source='velocity' needs velocity_rad_s")
            raw_rate = velocity_rad_s
        else:
            previous = self._previous_angle_rad
            raw_rate = 0.0 if previous is None else (angle_rad - previous) / self.dt
            self._previous_angle_rad = angle_rad
        alpha = self.dt / (self.derivative_filter_s + self.dt)
        self._rate_rad_s += alpha * (raw_rate - self._rate_rad_s)

        proportional = self.kp * error_rad
        derivative = -self.kd * self._rate_rad_s
        candidate = self.integral_nm + self.ki * error_rad * self.dt
        if self.anti_windup == "clamp":
            candidate = float(np.clip(candidate, -self.torque_limit_nm, self.torque_limit_nm))
            unsaturated = proportional + candidate + derivative
            pushes_further = abs(unsaturated) > self.torque_limit_nm and unsaturated * error_rad > 0.0
            if not pushes_further:
                self.integral_nm = candidate
        else:
            self.integral_nm = candidate
        torque = proportional + self.integral_nm + derivative
        return float(np.clip(torque, -self.torque_limit_nm, self.torque_limit_nm))

    def params(self) -> dict[str, float | str]:
        """Gains and settings, for run records and ``make_controller("pid", **params)``."""
        return {
            "kp": self.kp,
            "ki": self.ki,
            "kd": self.kd,
            "torque_limit_nm": self.torque_limit_nm,
            "dt": self.dt,
            "anti_windup": self.anti_windup,
            "derivative_filter_s": self.derivative_filter_s,
            "derivative_source": self.derivative_source,
        }
