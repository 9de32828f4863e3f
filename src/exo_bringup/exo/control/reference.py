"""Reflex-aware reference baseline: a PID tracking a smooth, slow-enough reference to the target.

The PID of :mod:`exo.control.pid` drives the knee to the target as fast as its gains allow; on a
spastic knee that stretch is fast enough to fire the velocity-dependent stretch reflex, and the
reflex torque is what the exo then fights (peak interaction torque). A therapist moves a spastic
limb *slowly*. This controller does the same: at the first observation after :meth:`reset` it takes
the measured knee angle ``q0`` (rad) and the target ``q*`` (= ``q0 + target_error``), and tracks

    r(t) = q0 + (q* - q0) * s(t / T),   s(x) = 10 x^3 - 15 x^4 + 6 x^5   (minimum jerk, 0 <= x <= 1)

with the duration ``T = 1.875 |q* - q0| / peak_velocity_rad_s`` (s), so that the reference's peak
speed is exactly ``peak_velocity_rad_s``: below the subject's reflex velocity threshold when it is
tuned per level or per user (:mod:`exo.personalize`). After ``T`` the reference is the target, and
the controller is the plain PID on the target. ``profile="trapezoid"`` replaces s(x) by a
constant-velocity ramp with minimum-jerk-free blends of ``blend_fraction`` of ``T`` at each end.

``strap_play_rad`` moves the exo's goal that far past the target, in the direction of the move. The PID
tracks the *exo's* angle, and the knee lags the exo by the straps' play under the holding load: on the
full twin at level 0 the exo ends on the target and the knee 1.55 deg short of it, under 42 N m
(docs/results.md, section 0.1.2). A goal past the target by the play puts the knee on it (0 = off).

The torque law is the PID of :class:`~exo.control.pid.PidController` on the tracking error
``r(t) - q`` (derivative on the measured angle), plus a velocity feed-forward ``kd * dr/dt`` (N m)
that cancels the derivative's drag along the reference. Output saturation ``torque_limit_nm``.

Units: angles rad (+ = flexion), velocities rad/s, torques N m, time s (``dt`` per :meth:`act`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from exo.control.base import ObsLayout, default_obs_layout, obs_field
from exo.control.pid import (
    ANGLE_KEY,
    TARGET_ERROR_KEY,
    VELOCITY_KEY,
    AntiWindup,
    DerivativeSource,
    PidController,
)

Profile = Literal["minimum_jerk", "trapezoid"]

#: Peak over mean speed of a minimum-jerk move.
MIN_JERK_PEAK_RATIO = 1.875


class ReferencePidController:
    """PID tracking a minimum-jerk (or trapezoid) reference whose peak speed is bounded.

    Args:
        kp, ki, kd: PID gains, N m/rad, N m/(rad s), N m s/rad.
        peak_velocity_rad_s: peak speed of the reference, rad/s (> 0).
        torque_limit_nm: output saturation, N m.
        dt: control period, s.
        profile: "minimum_jerk" or "trapezoid".
        blend_fraction: trapezoid only: share of the duration spent accelerating (and as much
            decelerating), in (0, 0.5].
        anti_windup, derivative_filter_s, derivative_source: as :class:`PidController`.
        strap_play_rad: how far past the target the exo's goal lies, in the direction of the move, rad
            (>= 0; 0 = the goal is the target).
        obs_layout: observation layout (defaults to the env's).
    """

    name = "reference_pid"

    def __init__(
        self,
        kp: float,
        ki: float = 0.0,
        kd: float = 0.0,
        peak_velocity_rad_s: float = 1.0,
        torque_limit_nm: float = 100.0,
        dt: float = 0.01,
        profile: Profile = "minimum_jerk",
        blend_fraction: float = 0.25,
        anti_windup: AntiWindup = "clamp",
        derivative_filter_s: float = 0.0,
        derivative_source: DerivativeSource = "difference",
        strap_play_rad: float = 0.0,
        obs_layout: ObsLayout | None = None,
    ) -> None:
        if not (math.isfinite(peak_velocity_rad_s) and peak_velocity_rad_s > 0.0):
            raise ValueError(f"peak_velocity_rad_s must be finite and > 0, got {peak_velocity_rad_s}")
        if profile not in ("minimum_jerk", "trapezoid"):
            raise ValueError(f"profile must be 'minimum_jerk' or 'trapezoid', got {profile!r}")
        if not 0.0 < blend_fraction <= 0.5:
            raise ValueError(f"blend_fraction must be in (0, 0.5], got {blend_fraction}")
        if not (math.isfinite(strap_play_rad) and 0.0 <= strap_play_rad <= 0.2):
            raise ValueError(f"strap_play_rad must be in [0, 0.2] rad, got {strap_play_rad}")
        self.pid = PidController(kp, ki, kd, torque_limit_nm=torque_limit_nm, dt=dt, anti_windup=anti_windup,
                                 derivative_filter_s=derivative_filter_s, derivative_source=derivative_source,
                                 obs_layout=obs_layout)
        self.peak_velocity_rad_s = float(peak_velocity_rad_s)
        self.profile: Profile = profile
        self.blend_fraction = float(blend_fraction)
        self.strap_play_rad = float(strap_play_rad)
        self._layout = obs_layout
        self.reset()

    def reset(self) -> None:
        """Forget the reference (the next observation starts a new one) and the PID's state."""
        self.pid.reset()
        self._start_rad: float | None = None
        self._goal_rad = 0.0
        self._duration_s = 0.0
        self._t_s = 0.0

    @property
    def obs_layout(self) -> ObsLayout:
        if self._layout is None:
            self._layout = default_obs_layout()
        return self._layout

    @property
    def duration_s(self) -> float:
        """Duration of the current reference, s (0 before the first observation)."""
        return self._duration_s

    def reference(self, t_s: float) -> tuple[float, float]:
        """Reference angle (rad) and velocity (rad/s) at ``t_s`` s after the start."""
        if self._start_rad is None:
            raise RuntimeError("no reference yet: act() has not seen an observation since reset()")
        span = self._goal_rad - self._start_rad
        if self._duration_s <= 0.0 or t_s >= self._duration_s:
            return self._goal_rad, 0.0
        x = max(0.0, t_s / self._duration_s)
        if self.profile == "minimum_jerk":
            shape = x**3 * (10.0 - 15.0 * x + 6.0 * x**2)
            rate = 30.0 * x**2 * (1.0 - x) ** 2 / self._duration_s
        else:
            b = self.blend_fraction
            v = 1.0 / (1.0 - b)  # normalised cruise speed: the area of the profile is 1
            if x < b:
                shape, rate = 0.5 * v * x**2 / b, v * x / b
            elif x <= 1.0 - b:
                shape, rate = 0.5 * v * b + v * (x - b), v
            else:
                y = 1.0 - x
                shape, rate = 1.0 - 0.5 * v * y**2 / b, v * y / b
            rate /= self._duration_s
        return self._start_rad + span * shape, span * rate

    def act(self, obs: np.ndarray) -> float:
        """Torque (N m) from an observation (reads the angle, the target error and, if asked, the velocity)."""
        layout = self.obs_layout
        angle = obs_field(obs, layout, ANGLE_KEY)
        if self._start_rad is None:
            self._start_rad = angle
            error = obs_field(obs, layout, TARGET_ERROR_KEY)
            self._goal_rad = angle + error + math.copysign(self.strap_play_rad, error)
            span = abs(self._goal_rad - self._start_rad)
            if self.profile == "minimum_jerk":
                self._duration_s = MIN_JERK_PEAK_RATIO * span / self.peak_velocity_rad_s
            else:
                self._duration_s = span / ((1.0 - self.blend_fraction) * self.peak_velocity_rad_s)
            self._t_s = 0.0
        else:
            self._t_s += self.pid.dt
        ref, ref_rate = self.reference(self._t_s)
        velocity = obs_field(obs, layout, VELOCITY_KEY) if self.pid.derivative_source == "velocity" else None
        torque = self.pid.update(ref - angle, angle, velocity) + self.pid.kd * ref_rate
        return float(np.clip(torque, -self.pid.torque_limit_nm, self.pid.torque_limit_nm))

    def params(self) -> dict[str, float | str]:
        """Settings, for run records and ``make_controller("reference_pid", **params)``."""
        return {**self.pid.params(), "peak_velocity_rad_s": self.peak_velocity_rad_s, "profile": self.profile,
                "blend_fraction": self.blend_fraction, "strap_play_rad": self.strap_play_rad}
