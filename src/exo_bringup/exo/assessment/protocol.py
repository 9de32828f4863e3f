"""The assessment protocol: the exo moves a relaxed knee through its range at several speeds.

Modelled on the clinical Tardieu and Modified Ashworth tests: the examiner (here the exo) stretches
the spastic muscles slowly, then faster, while the person stays passive; the resistance that grows
with speed is the velocity-dependent reflex, the one at slow speed the passive tissue and the
angle-dependent reflex. Each *trial* is one velocity:

    hold at the flexed angle -> extend at v (stretches the knee flexors) -> hold at the extended angle
    -> flex at v (stretches the knee extensors) -> hold

and the protocol is ``repetitions`` rounds of all velocities (slow, medium, fast), after a settling
hold. Motions follow a trapezoidal velocity profile (acceleration ``accel_rad_s2``), so the reference
torque of a tracking controller has no steps.

Angles in rad (+ = flexion, 0 = straight, as :mod:`exo.twin.interface`), velocities in rad/s (the
``velocities_deg_s`` field is in deg/s, the clinical unit), times in s.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Phase kinds of :class:`Segment`.
HOLD, EXTEND, FLEX = "hold", "extend", "flex"


@dataclass(frozen=True)
class Segment:
    """One phase of the protocol.

    Attributes:
        kind: "hold", "extend" (towards the extended angle) or "flex".
        start_s: start time from the beginning of the protocol, s.
        duration_s: duration, s.
        from_rad: knee angle at the start, rad.
        to_rad: knee angle at the end, rad.
        velocity_rad_s: cruise speed (>= 0) of a motion, rad/s; 0 for a hold.
        trial: index of the trial (velocity round) the segment belongs to, -1 for the settling hold.
        repetition: index of the repetition, -1 for the settling hold.
    """

    kind: str
    start_s: float
    duration_s: float
    from_rad: float
    to_rad: float
    velocity_rad_s: float
    trial: int
    repetition: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class AssessmentProtocol:
    """Parameters of the protocol (defaults: 3 x (30, 90, 180 deg/s) between 83 and 10 deg, 43 s).

    Attributes:
        flexed_angle_rad: start and return angle, rad (default 1.45 rad, 83 deg).
        extended_angle_rad: the extended end of each stretch, rad (default 0.17 rad, 10 deg: as far as the
            knee-extension task goes, so the twin identified from it does not extrapolate the extension-side
            reflex there; docs/identification.md).
        velocities_deg_s: cruise speeds of the trials, deg/s, slow to fast.
        repetitions: rounds of all trials.
        hold_s: hold at each end of a stretch, s.
        settle_s: hold at the flexed angle before the first trial, s.
        accel_rad_s2: acceleration and deceleration of every motion, rad/s^2.
    """

    flexed_angle_rad: float = 1.45
    extended_angle_rad: float = 0.17
    velocities_deg_s: tuple[float, ...] = (30.0, 90.0, 180.0)
    repetitions: int = 3
    hold_s: float = 1.0
    settle_s: float = 2.0
    accel_rad_s2: float = 30.0
    segments: tuple[Segment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.extended_angle_rad < self.flexed_angle_rad <= 2.0):
            raise ValueError("assessment protocol: need 0 <= extended_angle_rad < flexed_angle_rad <= 2.0 rad, got "
                             f"{self.extended_angle_rad} and {self.flexed_angle_rad}")
        if not self.velocities_deg_s or any(not (0.0 < v <= 360.0) for v in self.velocities_deg_s):
            raise ValueError(f"assessment protocol: velocities_deg_s must be in (0, 360], got {self.velocities_deg_s}")
        if not (1 <= self.repetitions <= 10):
            raise ValueError(f"assessment protocol: repetitions must be 1-10, got {self.repetitions}")
        for name in ("hold_s", "settle_s", "accel_rad_s2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"assessment protocol: {name} must be > 0, got {value}")
        object.__setattr__(self, "segments", tuple(self._build()))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AssessmentProtocol:
        """From a dict (a profile's or a config file's ``protocol`` entry); unknown keys are an error."""
        known = {f.name for f in cls.__dataclass_fields__.values() if f.init}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"assessment protocol: unknown field(s) {sorted(unknown)} (known: {sorted(known)})")
        kwargs = dict(values)
        if "velocities_deg_s" in kwargs:
            kwargs["velocities_deg_s"] = tuple(float(v) for v in kwargs["velocities_deg_s"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("segments", None)
        out["velocities_deg_s"] = list(self.velocities_deg_s)
        return out

    def _motion_s(self, distance_rad: float, v_rad_s: float) -> float:
        a = self.accel_rad_s2
        if distance_rad * a <= v_rad_s**2:  # triangular: never reaches v
            return 2.0 * math.sqrt(distance_rad / a)
        return distance_rad / v_rad_s + v_rad_s / a

    def _build(self) -> list[Segment]:
        flexed, extended = self.flexed_angle_rad, self.extended_angle_rad
        span = flexed - extended
        out = [Segment(HOLD, 0.0, self.settle_s, flexed, flexed, 0.0, -1, -1)]
        t = self.settle_s
        for rep in range(self.repetitions):
            for trial, v_deg in enumerate(self.velocities_deg_s):
                v = math.radians(v_deg)
                move = self._motion_s(span, v)
                for kind, a, b, dur in ((EXTEND, flexed, extended, move), (HOLD, extended, extended, self.hold_s),
                                        (FLEX, extended, flexed, move), (HOLD, flexed, flexed, self.hold_s)):
                    out.append(Segment(kind, t, dur, a, b, v if kind != HOLD else 0.0, trial, rep))
                    t += dur
        return out

    @property
    def duration_s(self) -> float:
        """Total duration, s."""
        return self.segments[-1].end_s

    def segment_at(self, t_s: float) -> Segment:
        """The segment running at ``t_s`` (the first one before 0, the last one after the end)."""
        starts = [s.start_s for s in self.segments]
        return self.segments[max(0, min(len(starts) - 1, bisect.bisect_right(starts, t_s) - 1))]

    def reference(self, t_s: float) -> tuple[float, float, float]:
        """The reference knee angle (rad), velocity (rad/s) and acceleration (rad/s^2) at ``t_s``."""
        seg = self.segment_at(t_s)
        if seg.kind == HOLD or t_s <= seg.start_s:
            return seg.from_rad if t_s <= seg.start_s else seg.to_rad, 0.0, 0.0
        tau = min(t_s - seg.start_s, seg.duration_s)
        direction = 1.0 if seg.to_rad > seg.from_rad else -1.0
        distance = abs(seg.to_rad - seg.from_rad)
        a = self.accel_rad_s2
        v_peak = min(seg.velocity_rad_s, math.sqrt(distance * a))
        t_acc = v_peak / a
        if tau < t_acc:
            s, v, acc = 0.5 * a * tau**2, a * tau, a
        elif tau <= seg.duration_s - t_acc:
            s, v, acc = 0.5 * a * t_acc**2 + v_peak * (tau - t_acc), v_peak, 0.0
        else:
            rest = seg.duration_s - tau
            s, v, acc = distance - 0.5 * a * rest**2, a * rest, -a
        return seg.from_rad + direction * s, direction * v, direction * acc
