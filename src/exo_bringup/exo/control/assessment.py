"""The assessment controller: tracks the protocol's knee trajectory on a passive user.

A PID law on the reference of :class:`exo.assessment.AssessmentProtocol`, with inertia feedforward,
saturated and rate limited (the integral holds the limb against gravity at the ends of the range)::

    e = q_ref - q
    I = clip(I + ki * e * dt, +-torque_limit_nm)        (not while the output is saturated in e's direction)
    u = kp * e + kd * (qd_ref - qd) + inertia * qdd_ref + I
    u = clip(u, +-torque_limit_nm), then at most slew_limit_nm_s * dt from the previous output

Time is counted in control steps (``dt`` per :meth:`act` call, from :meth:`reset`), so a lockstep
simulation, a bag replay and the hardware loop all run the same schedule. After the protocol the
knee is held at the flexed angle. It is deliberately stiff but bounded: the safety monitor's cap and
slew rate still apply to every request, and a spastic catch that the torque limit cannot overcome
shows as a lag in the recorded motion (identification uses the recorded motion, not the reference).

Units: kp in N m/rad, ki in N m/(rad s), kd in N m s/rad, inertia in kg m^2, torques in N m, angles in rad (+ = flexion).
"""

from __future__ import annotations

import numpy as np

from exo.assessment.protocol import AssessmentProtocol
from exo.control.base import ObsLayout, default_obs_layout, obs_field

#: The protocol's defaults are the controller's (one source: :class:`AssessmentProtocol`).
_DEFAULT = AssessmentProtocol()


def parse_velocities(text: str) -> tuple[float, ...]:
    """``"30,90,180"`` -> ``(30.0, 90.0, 180.0)`` (deg/s)."""
    try:
        values = tuple(float(x) for x in str(text).replace(" ", "").split(",") if x)
    except ValueError:
        raise ValueError(f"velocities_deg_s must be comma-separated numbers in deg/s, got {text!r}") from None
    if not values:
        raise ValueError("velocities_deg_s is empty")
    return values


class AssessmentController:
    """PD tracking of the assessment protocol (see the module docstring).

    Args:
        kp: position gain, N m/rad.
        ki: integral gain, N m/(rad s).
        kd: velocity gain, N m s/rad.
        inertia_kg_m2: feedforward inertia of shank, foot and exo about the knee, kg m^2.
        torque_limit_nm: output saturation, N m (the user's cap is applied again by the safety monitor).
        slew_limit_nm_s: output rate limit, N m/s (the safety monitor's ``max_slew_rate_nm_per_s`` by default:
            the requests stay feasible, so the monitor passes them unchanged).
        dt: control period, s.
        flexed_angle_rad, extended_angle_rad, velocities_deg_s ("30,90,180"), repetitions, hold_s,
            settle_s, accel_rad_s2: the protocol (:class:`AssessmentProtocol`).
    """

    name = "assessment"

    def __init__(self, kp: float = 300.0, ki: float = 400.0, kd: float = 10.0, inertia_kg_m2: float = 0.3,
                 torque_limit_nm: float = 70.0, slew_limit_nm_s: float = 400.0, dt: float = 0.01,
                 flexed_angle_rad: float = _DEFAULT.flexed_angle_rad, extended_angle_rad: float = _DEFAULT.extended_angle_rad,
                 velocities_deg_s: str = ",".join(f"{v:g}" for v in _DEFAULT.velocities_deg_s),
                 repetitions: int = _DEFAULT.repetitions, hold_s: float = _DEFAULT.hold_s,
                 settle_s: float = _DEFAULT.settle_s, accel_rad_s2: float = _DEFAULT.accel_rad_s2,
                 obs_layout: ObsLayout | None = None) -> None:
        for label, value in (("kp", kp), ("ki", ki), ("kd", kd), ("inertia_kg_m2", inertia_kg_m2),
                             ("slew_limit_nm_s", slew_limit_nm_s)):
            if not (np.isfinite(value) and value >= 0.0):
                raise ValueError(f"assessment controller: {label} must be finite and >= 0, got {value}")
        if not (np.isfinite(torque_limit_nm) and torque_limit_nm > 0.0):
            raise ValueError(f"assessment controller: torque_limit_nm must be > 0, got {torque_limit_nm}")
        if not (np.isfinite(dt) and dt > 0.0):
            raise ValueError(f"assessment controller: dt must be > 0, got {dt}")
        self.kp, self.ki, self.kd, self.inertia = float(kp), float(ki), float(kd), float(inertia_kg_m2)
        self.torque_limit_nm, self.slew_limit_nm_s, self.dt = float(torque_limit_nm), float(slew_limit_nm_s), float(dt)
        self.protocol = AssessmentProtocol(flexed_angle_rad=flexed_angle_rad, extended_angle_rad=extended_angle_rad,
                                           velocities_deg_s=parse_velocities(velocities_deg_s),
                                           repetitions=int(repetitions), hold_s=hold_s, settle_s=settle_s,
                                           accel_rad_s2=accel_rad_s2)
        self.layout = obs_layout if obs_layout is not None else default_obs_layout()
        self.steps = 0
        self.integral = 0.0
        self.last_u = 0.0

    @property
    def time_s(self) -> float:
        """Protocol time of the next :meth:`act`, s."""
        return self.steps * self.dt

    @property
    def done(self) -> bool:
        """True once the protocol's last segment has ended."""
        return self.time_s >= self.protocol.duration_s

    def reset(self) -> None:
        self.steps = 0
        self.integral = 0.0
        self.last_u = 0.0

    def act(self, obs: np.ndarray) -> float:
        q_ref, qd_ref, qdd_ref = self.protocol.reference(self.time_s)
        self.steps += 1
        q = obs_field(obs, self.layout, "exo_knee_angle")
        qd = obs_field(obs, self.layout, "exo_knee_velocity")
        e = q_ref - q
        limit = self.torque_limit_nm
        pd = self.kp * e + self.kd * (qd_ref - qd) + self.inertia * qdd_ref
        saturated = abs(pd + self.integral) >= limit and (pd + self.integral) * e > 0.0
        if not saturated:
            self.integral = min(limit, max(-limit, self.integral + self.ki * e * self.dt))
        u = min(limit, max(-limit, pd + self.integral))
        step = self.slew_limit_nm_s * self.dt
        u = min(self.last_u + step, max(self.last_u - step, u))
        self.last_u = u
        return float(u)
