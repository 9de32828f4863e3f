"""The actuator side's own guard: only the safety monitor's commands move the knee, within limits.

Pure (no rclpy). The sim bridge's actuator model and the ``actuator_driver`` both apply torque
through one :class:`ActuatorGuard`. It trusts nothing upstream:

1. **Who.** A command is applied only if it is authentic (HMAC with the run's command key, which
   only the safety monitor and the actuator side hold: :mod:`exo.security.auth`), newer in sequence
   than every command applied before, for this joint, finite, stamped no more than
   ``max_future_stamp_s`` ahead of the actuator's own clock and no older than
   ``max_command_age_s``. Anything else is refused and counted by reason; it changes nothing.
2. **Freshness.** The torque applied is that of the newest accepted command while its stamp is
   younger than ``max_command_age_s`` on the actuator's clock; otherwise **zero**.
3. **Limits, from its own copy** (``config/actuator_guard.yaml``, not the monitor's parameters):
   ``|torque| <= torque_cap_nm``; the rise or reversal of the applied torque at most
   ``max_slew_rate_nm_per_s`` times the time since the previous application (at most one
   ``control_period_s``; removing torque, towards zero, is never delayed: the monitor's slew rule);
   no torque pushing the knee further once its angle (the actuator's own encoder or the twin's
   knee) is at or beyond ``joint_min_angle_rad`` / ``joint_max_angle_rad``, and zero torque while
   that angle is unknown or older than ``max_angle_age_s``.

Time: ``now_s`` is the actuator side's clock, the one the sensor stamps it publishes are taken from
(sim time in the sim bridge; the host's system clock in the actuator driver). Units: N m, rad, s;
+ torque flexes the knee, + angle is flexion.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from exo.security.auth import COMMAND_PURPOSE, MessageVerifier, Verdict


def _limit(default: float, unit: str, doc: str) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class ActuatorLimits:
    """The actuator side's copy of the limits (``config/actuator_guard.yaml``, parameters ``guard.*``).

    Keep them equal to or wider than the safety monitor's (``config/safety.yaml``): the monitor
    limits first; the guard catches what reaches the actuator without passing the monitor, or a
    monitor that misbehaves.
    """

    torque_cap_nm: float = _limit(70.0, "N m", "Largest |torque| applied (the user's cap; the monitor's "
                                  "user_torque_cap_nm or more).")
    max_slew_rate_nm_per_s: float = _limit(400.0, "N m/s", "Fastest rise or reversal of the applied torque; "
                                           "removing torque is never delayed.")
    joint_min_angle_rad: float = _limit(-0.05, "rad", "Hard extension limit: no extending torque at or below it.")
    joint_max_angle_rad: float = _limit(1.85, "rad", "Hard flexion limit: no flexing torque at or above it.")
    control_period_s: float = _limit(0.01, "s", "Nominal period between applications: the slew step is "
                                     "at most max_slew_rate_nm_per_s times this.")
    max_command_age_s: float = _limit(0.03, "s", "A command older than this on the actuator's clock is not "
                                      "applied (zero torque until a fresh one).")
    max_future_stamp_s: float = _limit(0.01, "s", "A command stamped further than this ahead of the actuator's "
                                       "clock is refused (one control period).")
    max_angle_age_s: float = _limit(0.05, "s", "Zero torque while the knee angle the actuator knows is older "
                                    "than this (or unknown).")

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"guard.{f.name}: expected a finite number, got {value!r}")
            else:
                object.__setattr__(self, f.name, float(value))
        if not problems:
            for name in ("torque_cap_nm", "max_slew_rate_nm_per_s", "control_period_s", "max_command_age_s",
                         "max_angle_age_s"):
                if getattr(self, name) <= 0:
                    problems.append(f"guard.{name}: must be > 0, got {getattr(self, name)!r}")
            if self.max_future_stamp_s < 0:
                problems.append(f"guard.max_future_stamp_s: must be >= 0, got {self.max_future_stamp_s!r}")
            if self.joint_min_angle_rad >= self.joint_max_angle_rad:
                problems.append(f"guard.joint_min_angle_rad ({self.joint_min_angle_rad}) must be < "
                                f"guard.joint_max_angle_rad ({self.joint_max_angle_rad})")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def parameter_docs(cls) -> dict[str, tuple[float, str, str]]:
        """``{field: (default, unit, description)}`` (the nodes declare ``guard.<field>`` from it)."""
        return {f.name: (f.default, f.metadata["unit"], f.metadata["doc"]) for f in dataclasses.fields(cls)}


#: Reasons a command is refused (counters of :attr:`ActuatorGuard.refused`).
REFUSE_UNAUTHENTICATED = "unauthenticated"
REFUSE_BAD_MAC = "bad_mac"
REFUSE_REPLAYED = "out_of_sequence"
REFUSE_FUTURE = "future_stamp"
REFUSE_LATE = "late"
REFUSE_JOINT = "other_joint"
REFUSE_NOT_FINITE = "not_finite"

#: Names in :attr:`Application.limits` of the limits that acted.
LIMIT_STALE = "no_fresh_command"
LIMIT_CAP = "torque_cap"
LIMIT_SLEW = "slew_rate"
LIMIT_RANGE = "range_of_motion"
LIMIT_ANGLE_UNKNOWN = "angle_unknown"

_TOL = 1e-9


@dataclass(frozen=True)
class Application:
    """The torque applied at one instant and why it differs from the command, if it does.

    Attributes:
        torque_nm: torque applied, N m.
        commanded_nm: torque of the fresh command in force, N m (None: no fresh command).
        limits: names of the limits that acted (``LIMIT_*``).
    """

    torque_nm: float
    commanded_nm: float | None
    limits: tuple[str, ...]


class ActuatorGuard:
    """Accepts the safety monitor's commands and limits the torque applied (see the module docstring).

    Args:
        limits: the actuator side's own limits.
        key: the run's command key (:func:`exo.security.keys.load_secret`).
        joint: the joint this actuator drives (commands for another joint are refused).
    """

    def __init__(self, limits: ActuatorLimits, key: bytes, joint: str) -> None:
        self.limits = limits
        self.joint = joint
        self._verifier = MessageVerifier(key, COMMAND_PURPOSE)
        self._command_nm = 0.0
        self._command_stamp_s = -math.inf
        self._applied_nm = 0.0
        self._applied_at_s: float | None = None
        self._angle_rad: float | None = None
        self._angle_at_s = -math.inf
        self.accepted = 0
        self.refused: dict[str, int] = {}
        self.last_refusal = ""

    @property
    def applied_torque_nm(self) -> float:
        """The torque applied last, N m."""
        return self._applied_nm

    def refused_total(self) -> int:
        return sum(self.refused.values())

    # -- inputs ----------------------------------------------------------------------------------
    def on_command(self, now_s: float, stamp_ns: int, seq: int, joint: str, torque_nm: float, source: str,
                   mac: bytes) -> str | None:
        """A ``torque_command`` arrived at ``now_s``; returns None if accepted, else the refusal reason."""
        lim = self.limits
        stamp_s = stamp_ns * 1e-9
        why = None
        verdict = self._verifier.check(stamp_ns, seq, joint, torque_nm, source, mac)
        if verdict is Verdict.UNAUTHENTICATED:
            why = REFUSE_UNAUTHENTICATED
        elif verdict is Verdict.BAD_MAC:
            why = REFUSE_BAD_MAC
        elif verdict is Verdict.REPLAYED:
            why = REFUSE_REPLAYED
        elif verdict is Verdict.DUPLICATE:
            return None  # the command in force, delivered again: nothing to change
        elif joint != self.joint:
            why = REFUSE_JOINT
        elif not (isinstance(torque_nm, float | int) and math.isfinite(torque_nm)):
            why = REFUSE_NOT_FINITE
        elif stamp_s > now_s + lim.max_future_stamp_s + _TOL:
            why = REFUSE_FUTURE
        elif now_s - stamp_s > lim.max_command_age_s + _TOL:
            why = REFUSE_LATE
        if why is not None:
            self.refused[why] = self.refused.get(why, 0) + 1
            self.last_refusal = (f"{why}: seq {seq}, stamp {stamp_s:.6f} s at {now_s:.6f} s, "
                                 f"torque {torque_nm!r} N m, source {source!r}")
            return why
        if stamp_s >= self._command_stamp_s:
            self._command_nm, self._command_stamp_s = float(torque_nm), stamp_s
        self.accepted += 1
        return None

    def on_angle(self, now_s: float, angle_rad: float) -> None:
        """The knee angle the actuator itself measured (its encoder, or the twin's exo knee) at ``now_s``."""
        if math.isfinite(angle_rad):
            self._angle_rad, self._angle_at_s = float(angle_rad), now_s

    # -- output ----------------------------------------------------------------------------------
    def fresh_command_nm(self, now_s: float) -> float | None:
        """Torque of the command in force at ``now_s``, or None when there is no fresh one."""
        if now_s - self._command_stamp_s <= self.limits.max_command_age_s + _TOL:
            return self._command_nm
        return None

    def apply(self, now_s: float) -> Application:
        """The torque to apply now (call once per actuator cycle; it is the slew rule's reference)."""
        lim = self.limits
        acted: list[str] = []
        commanded = self.fresh_command_nm(now_s)
        u = 0.0
        if commanded is None:
            acted.append(LIMIT_STALE)
        else:
            u = commanded
        if abs(u) > lim.torque_cap_nm:
            u = math.copysign(lim.torque_cap_nm, u)
            acted.append(LIMIT_CAP)
        previous = self._applied_nm
        removing_only = min(0.0, previous) <= u <= max(0.0, previous)
        if not removing_only:
            # the monitor's rule: a stalled loop that resumes gets no larger step than one period's
            dt = lim.control_period_s if self._applied_at_s is None else min(max(now_s - self._applied_at_s, 0.0),
                                                                             lim.control_period_s)
            step = lim.max_slew_rate_nm_per_s * dt
            if abs(u - previous) > step * (1 + 1e-9) + _TOL:
                u = previous + math.copysign(step, u - previous)
                acted.append(LIMIT_SLEW)
        if u != 0.0:
            if self._angle_rad is None or now_s - self._angle_at_s > lim.max_angle_age_s + _TOL:
                u = 0.0
                acted.append(LIMIT_ANGLE_UNKNOWN)
            elif (u > 0.0 and self._angle_rad >= lim.joint_max_angle_rad) or (
                    u < 0.0 and self._angle_rad <= lim.joint_min_angle_rad):
                u = 0.0
                acted.append(LIMIT_RANGE)
        self._applied_nm, self._applied_at_s = u, now_s
        return Application(u, commanded, tuple(acted))
