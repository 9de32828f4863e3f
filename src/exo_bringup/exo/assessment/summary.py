"""What an assessment showed, trial by trial: the numbers a therapist reads after ``exo assess``.

Pure functions of the recorded time series (SI units: s, rad, rad/s, N m) and the protocol; the
recording's time axis starts at the protocol's t = 0 (the first control step of the run).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from exo.assessment.protocol import EXTEND, FLEX, AssessmentProtocol


@dataclass(frozen=True)
class StretchSummary:
    """One stretch (a motion of one trial, one repetition).

    Attributes:
        direction: "extend" (stretches the knee flexors) or "flex" (stretches the extensors).
        velocity_deg_s: the protocol's cruise speed, deg/s.
        repetition: round of the protocol (0-based).
        peak_velocity_deg_s: fastest knee speed reached during the stretch, deg/s.
        range_deg: knee range covered, deg.
        lag_deg: largest shortfall of the knee behind the reference, deg (a catch the cap could not overcome).
        peak_resistance_nm: largest interaction torque against the motion, N m.
        peak_motor_torque_nm: largest |applied motor torque|, N m.
    """

    direction: str
    velocity_deg_s: float
    repetition: int
    peak_velocity_deg_s: float
    range_deg: float
    lag_deg: float
    peak_resistance_nm: float
    peak_motor_torque_nm: float


@dataclass(frozen=True)
class AssessmentSummary:
    """The whole assessment: every stretch, and the run's extremes (for the therapist and the records)."""

    stretches: tuple[StretchSummary, ...]
    duration_s: float
    peak_motor_torque_nm: float
    knee_range_deg: tuple[float, float]
    complete: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        out["stretches"] = [asdict(s) for s in self.stretches]
        return out

    def by_velocity(self) -> dict[tuple[str, float], dict[str, float]]:
        """Mean over repetitions per (direction, velocity): peak resistance, N m, and lag, deg."""
        out: dict[tuple[str, float], dict[str, float]] = {}
        for key in sorted({(s.direction, s.velocity_deg_s) for s in self.stretches}):
            group = [s for s in self.stretches if (s.direction, s.velocity_deg_s) == key]
            out[key] = {"peak_resistance_nm": float(np.mean([s.peak_resistance_nm for s in group])),
                        "lag_deg": float(np.mean([s.lag_deg for s in group])),
                        "peak_velocity_deg_s": float(np.mean([s.peak_velocity_deg_s for s in group]))}
        return out


def summarise(protocol: AssessmentProtocol, time_s: np.ndarray, angle_rad: np.ndarray, velocity_rad_s: np.ndarray,
              motor_torque_nm: np.ndarray, interaction_torque_nm: np.ndarray) -> AssessmentSummary:
    """Per-stretch numbers of an assessment recording (arrays of one length, time from the protocol's start, s).

    Raises:
        ValueError: arrays of different lengths, empty, or not finite (names the array).
    """
    arrays = {"time_s": time_s, "angle_rad": angle_rad, "velocity_rad_s": velocity_rad_s,
              "motor_torque_nm": motor_torque_nm, "interaction_torque_nm": interaction_torque_nm}
    arrays = {k: np.asarray(v, dtype=float) for k, v in arrays.items()}
    n = len(arrays["time_s"])
    for name, a in arrays.items():
        if a.shape != (n,) or n == 0:
            raise ValueError(f"assessment summary: {name} has shape {a.shape}, expected ({n},) with n > 0")
        if not np.isfinite(a).all():
            raise ValueError(f"assessment summary: {name} holds NaN or inf")
    t, q, qd = arrays["time_s"], arrays["angle_rad"], arrays["velocity_rad_s"]
    u, tau = arrays["motor_torque_nm"], arrays["interaction_torque_nm"]
    stretches = []
    for seg in protocol.segments:
        if seg.kind not in (EXTEND, FLEX):
            continue
        # the stretch and the hold after it: a lagging knee finishes its motion in the hold
        mask = (t >= seg.start_s) & (t < seg.end_s + protocol.hold_s)
        if not mask.any():
            continue
        sign = -1.0 if seg.kind == EXTEND else 1.0  # extension = decreasing flexion angle
        ref = np.array([protocol.reference(x)[0] for x in t[mask]])
        lag = np.max(sign * (ref - q[mask]))  # > 0: the knee is behind the reference
        stretches.append(StretchSummary(
            direction=seg.kind, velocity_deg_s=round(math.degrees(seg.velocity_rad_s), 3), repetition=seg.repetition,
            peak_velocity_deg_s=float(math.degrees(np.max(sign * qd[mask]))),
            range_deg=float(math.degrees(np.ptp(q[mask]))), lag_deg=float(math.degrees(max(0.0, lag))),
            # the straps drive the leg in the direction of the motion: that torque is what the leg resists with
            peak_resistance_nm=float(max(0.0, np.max(sign * tau[mask]))),
            peak_motor_torque_nm=float(np.max(np.abs(u[mask])))))
    return AssessmentSummary(stretches=tuple(stretches), duration_s=float(t[-1] - t[0]),
                             peak_motor_torque_nm=float(np.max(np.abs(u))),
                             knee_range_deg=(float(math.degrees(q.min())), float(math.degrees(q.max()))),
                             complete=bool(t[-1] >= protocol.duration_s - 0.05))
