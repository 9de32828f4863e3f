"""Assist-as-needed: a user's assistance level, the therapist's schedule, and the rule between sessions.

The **assistance level** (-, in ``[floor, 1]``) scales the help the exo gives: the controller's torque
request is multiplied by it before the safety monitor (parameter ``assistance`` of the controller node;
``exo sim/real --user ID`` sets it from the profile). 1 is full assistance; the **floor** is the least
help the therapist allows for this user.

After each session the level moves by the rule of :func:`next_assistance`, from what the session
measured (:class:`SessionOutcome`):

- **task not achieved** (final knee error above the therapist's ``error_tolerance_deg``): the level
  rises, by ``raise_step`` x the relative shortfall (``error / tolerance``, at most 3), at least
  ``raise_step``;
- **task achieved with the user's own contribution at or above** ``contribution_target`` (the
  normalised EMG of the agonists during the movement, as a fraction of the calibration's maximal
  contraction, or an estimate of the user's share of the work): the level falls by ``lower_step``,
  scaled down if the contribution only just reaches the target... and not at all if the user left the
  work to the exo (achieved, contribution below target: the level holds);
- every change is bounded by ``max_change_per_session`` and the result kept in ``[floor, 1]``;
- **a session in which the safety monitor intervened never raises the level** (more assistance after
  a safety event is a decision for the therapist, not for the rule): a rise becomes a hold.

This is the session-to-session form of the classic error-based assist-as-needed rule (assistance
rises with the performance error and decays when the user succeeds, as in Emken/Reinkensmeyer's
"forgetting" controllers), with the user's effort as a second condition so that a passive user does not
have the help taken away for a success the exo achieved alone.

Everything here is plain data and pure functions (stored in the profile, JSON): no ROS, no twin.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from exo.users.errors import ProfileError

#: What the rule decided after a session.
DECISIONS = ("raise", "lower", "hold", "set")
#: Most sessions kept in the profile's history (older ones drop out; the sessions themselves stay).
MAX_HISTORY = 500


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ProfileError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class AssistanceSchedule:
    """The therapist's parameters of assist-as-needed for one user (profile ``assistance.schedule``).

    Attributes:
        floor: least assistance level allowed, - (0 <= floor <= 1).
        error_tolerance_deg: the task counts as achieved when the final knee error is at most this, deg (> 0).
        contribution_target: the user's own contribution (normalised agonist EMG, fraction of the
            calibration's maximal contraction, 0-1) at which a success lowers the level, - (0 < target <= 1).
        raise_step: rise of the level after a failed session, per unit of relative shortfall, - (> 0).
        lower_step: fall of the level after a successful session with the user's contribution reached, - (> 0).
        max_change_per_session: largest change of the level between two sessions, - (0 < change <= 1).
    """

    floor: float = 0.2
    error_tolerance_deg: float = 8.0
    contribution_target: float = 0.15
    raise_step: float = 0.1
    lower_step: float = 0.1
    max_change_per_session: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _finite(getattr(self, f.name), f"assistance schedule {f.name}"))
        if not 0.0 <= self.floor <= 1.0:
            raise ProfileError(f"assistance schedule floor must be within 0..1, got {self.floor:g}")
        if self.error_tolerance_deg <= 0.0:
            raise ProfileError(f"assistance schedule error_tolerance_deg must be > 0 deg, got "
                               f"{self.error_tolerance_deg:g}")
        if not 0.0 < self.contribution_target <= 1.0:
            raise ProfileError(f"assistance schedule contribution_target must be within (0, 1], got "
                               f"{self.contribution_target:g}")
        for name in ("raise_step", "lower_step"):
            if getattr(self, name) <= 0.0:
                raise ProfileError(f"assistance schedule {name} must be > 0, got {getattr(self, name):g}")
        if not 0.0 < self.max_change_per_session <= 1.0:
            raise ProfileError(f"assistance schedule max_change_per_session must be within (0, 1], got "
                               f"{self.max_change_per_session:g}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AssistanceSchedule:
        """A schedule from ``{name: value}`` (unknown names refused, missing ones at their defaults)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ProfileError(f"assistance schedule must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ProfileError(f"unknown assistance schedule parameter(s) {', '.join(unknown)}; known: "
                               f"{', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SessionOutcome:
    """What one session measured, for the rule.

    Attributes:
        final_error_deg: mean final knee error over the session's trials, deg (>= 0).
        contribution: the user's own contribution (see :class:`AssistanceSchedule`), - (0-1), or None
            when the session had no measurement of it (no EMG): then only the error decides a fall.
        interventions: control steps on which the safety monitor took the knee from the controller.
        trials: trials (movements) the session had.
    """

    final_error_deg: float
    contribution: float | None = None
    interventions: int = 0
    trials: int = 1

    def __post_init__(self) -> None:
        error = _finite(self.final_error_deg, "session final_error_deg")
        if error < 0.0:
            raise ProfileError(f"session final_error_deg must be >= 0 deg, got {error:g}")
        object.__setattr__(self, "final_error_deg", error)
        if self.contribution is not None:
            c = _finite(self.contribution, "session contribution")
            if not 0.0 <= c <= 1.0 + 1e-9:
                raise ProfileError(f"session contribution must be within 0..1, got {c:g}")
            object.__setattr__(self, "contribution", min(c, 1.0))
        if isinstance(self.interventions, bool) or not isinstance(self.interventions, numbers.Integral) \
                or self.interventions < 0:
            raise ProfileError(f"session interventions must be an integer >= 0, got {self.interventions!r}")


@dataclass(frozen=True)
class AssistanceStep:
    """One entry of the level's history: the rule's decision after a session (or a therapist's setting).

    Attributes:
        session: the user's session number it was decided on (None for a therapist's setting).
        date: day, ``YYYY-MM-DD``.
        level_before, level_after: the level, -.
        decision: "raise", "lower", "hold" (the rule) or "set" (the therapist).
        final_error_deg, contribution, interventions: the session's outcome (None for "set").
    """

    session: int | None
    date: str
    level_before: float
    level_after: float
    decision: str
    final_error_deg: float | None = None
    contribution: float | None = None
    interventions: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssistanceStep:
        from exo.users.profile import validate_day

        decision = data.get("decision")
        if decision not in DECISIONS:
            raise ProfileError(f"assistance history decision must be one of {', '.join(DECISIONS)}, got "
                               f"{decision!r}")
        session = data.get("session")
        if session is not None and (isinstance(session, bool) or not isinstance(session, numbers.Integral)
                                    or session < 1):
            raise ProfileError(f"assistance history session must be a session number, got {session!r}")
        optional = {k: (None if data.get(k) is None else _finite(data[k], f"assistance history {k}"))
                    for k in ("final_error_deg", "contribution")}
        interventions = data.get("interventions")
        return cls(session=session, date=validate_day(data.get("date"), "assistance history date"),
                   level_before=_level(data.get("level_before"), "assistance history level_before"),
                   level_after=_level(data.get("level_after"), "assistance history level_after"),
                   decision=decision, **optional,
                   interventions=None if interventions is None else int(_finite(interventions, "interventions")))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _level(value: object, what: str) -> float:
    level = _finite(value, what)
    if not 0.0 <= level <= 1.0:
        raise ProfileError(f"{what} must be within 0..1, got {level:g}")
    return level


@dataclass(frozen=True)
class Assistance:
    """A user's assistance: the current level, the therapist's schedule and the history of changes.

    Attributes:
        level: the level the next session runs at, - (``schedule.floor`` .. 1).
        schedule: the therapist's parameters.
        history: the decisions so far, oldest first (at most :data:`MAX_HISTORY`).
    """

    level: float = 1.0
    schedule: AssistanceSchedule = field(default_factory=AssistanceSchedule)
    history: tuple[AssistanceStep, ...] = ()

    def __post_init__(self) -> None:
        level = _level(self.level, "assistance level")
        if level < self.schedule.floor - 1e-12:
            raise ProfileError(f"assistance level {level:g} is below the schedule's floor "
                               f"{self.schedule.floor:g}")
        object.__setattr__(self, "level", level)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Assistance:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ProfileError(f"assistance must be a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in ("level", "schedule", "history"))
        if unknown:
            raise ProfileError(f"unknown assistance field(s) {', '.join(unknown)}; known: history, level, schedule")
        return cls(level=data.get("level", 1.0), schedule=AssistanceSchedule.from_dict(data.get("schedule")),
                   history=tuple(AssistanceStep.from_dict(h) for h in data.get("history", ())))

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "schedule": self.schedule.to_dict(),
                "history": [h.to_dict() for h in self.history]}

    def recorded(self, step: AssistanceStep) -> Assistance:
        """A copy at ``step.level_after`` with ``step`` appended to the history."""
        return replace(self, level=step.level_after, history=(*self.history, step)[-MAX_HISTORY:])


@dataclass(frozen=True)
class AssistanceDecision:
    """What :func:`next_assistance` decided: the new level, the decision and why (one line)."""

    level: float
    decision: str
    reason: str


def next_assistance(level: float, outcome: SessionOutcome, schedule: AssistanceSchedule) -> AssistanceDecision:
    """The assistance level for the next session after a session at ``level`` with ``outcome``.

    The rule of the module docstring. Pure: same inputs, same answer.
    """
    level = _level(level, "assistance level")
    tol = schedule.error_tolerance_deg
    achieved = outcome.final_error_deg <= tol
    if not achieved:
        shortfall = min(3.0, outcome.final_error_deg / tol)
        delta = schedule.raise_step * max(1.0, shortfall)
        why = f"task not achieved (final error {outcome.final_error_deg:.1f} deg > {tol:g} deg)"
    elif outcome.contribution is None or outcome.contribution >= schedule.contribution_target:
        delta = -schedule.lower_step
        why = (f"task achieved (final error {outcome.final_error_deg:.1f} deg <= {tol:g} deg)"
               + ("" if outcome.contribution is None
                  else f" with the user's contribution {outcome.contribution:.2f} >= {schedule.contribution_target:g}"))
    else:
        delta = 0.0
        why = (f"task achieved but the user's contribution {outcome.contribution:.2f} < "
               f"{schedule.contribution_target:g}: the exo did the work, the level holds")
    if delta > 0.0 and outcome.interventions > 0:
        delta = 0.0
        why += f"; the safety monitor intervened on {outcome.interventions} step(s): not raised"
    delta = max(-schedule.max_change_per_session, min(schedule.max_change_per_session, delta))
    new = min(1.0, max(schedule.floor, level + delta))
    if new > level + 1e-12:
        decision = "raise"
    elif new < level - 1e-12:
        decision = "lower"
    else:
        decision = "hold"
        if delta != 0.0:
            why += f"; already at {'full assistance' if delta > 0 else 'the floor'}"
    return AssistanceDecision(level=new, decision=decision, reason=why)
