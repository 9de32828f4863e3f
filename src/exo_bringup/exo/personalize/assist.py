"""Assist-as-needed across sessions, simulated in the twin: a user who gets stronger, a user who fatigues.

A :class:`SimulatedTrainee` is a twin subject (its spastic reflex) with a **voluntary knee-extension
strength** that changes from session to session: during each knee-extension trial it tries to extend,
with a voluntary extensor drive of its session's strength (-, fraction of a maximal contraction) after
a reaction delay, ramped over ``ramp_s`` and fluctuating by about 10 % (slow noise, as the drive model
of :mod:`exo.intent.drive`). The controller's request is scaled by the session's assistance level
(the controller node's ``assistance``), the safety monitor's core stays in the loop
(:func:`~exo.personalize.evaluation.run_user_trial`).

:func:`simulate_sessions` runs the sessions: each measures a :class:`~exo.users.assistance.SessionOutcome`
(mean final error, mean voluntary extensor drive = the normalised agonist EMG a real session measures,
safety interventions) and :func:`~exo.users.assistance.next_assistance` sets the next session's level:
exactly the rule ``exo progress``/the store apply to a real user's sessions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from exo.personalize.evaluation import ControllerChoice, run_user_trial
from exo.safety import SafetyLimits
from exo.twin.reflex import SpasticityLevel
from exo.users.assistance import AssistanceSchedule, SessionOutcome, next_assistance


@dataclass
class TrialDrive:
    """The voluntary drive of one trial: ``strength`` after ``delay_s``, ramped over ``ramp_s``, with a
    slow multiplicative fluctuation (first order, ``fluctuation_tau_s``, SD ``fluctuation_sd``).

    Called as ``drive(t_s, knee_angle_rad) -> (flexor, extensor)`` (see
    :data:`~exo.personalize.evaluation.VoluntaryDrive`); ``dt_s`` is the control period.
    """

    strength: float
    seed: int
    dt_s: float = 0.01
    delay_s: float = 0.2
    ramp_s: float = 0.15
    fluctuation_sd: float = 0.1
    fluctuation_tau_s: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"voluntary strength must be within 0..1, got {self.strength}")
        self._rng = np.random.default_rng([self.seed, 11])
        self._fluct = 0.0

    def __call__(self, t_s: float, knee_angle_rad: float) -> tuple[float, float]:
        k = self.dt_s / self.fluctuation_tau_s
        self._fluct += -k * self._fluct + self.fluctuation_sd * math.sqrt(2 * k) * float(self._rng.standard_normal())
        ramp = min(1.0, max(0.0, (t_s - self.delay_s) / self.ramp_s))
        return 0.0, float(np.clip(self.strength * ramp * (1.0 + self._fluct), 0.0, 1.0))


@dataclass(frozen=True)
class SimulatedSession:
    """One simulated session: its level, the trainee's strength, what it measured and the rule's decision.

    Attributes:
        session: 1, 2, ...
        strength: the trainee's voluntary strength this session, - (0-1).
        level: the assistance level it ran at, -.
        final_error_deg: mean final knee error over its trials, deg.
        achieved_share: share of its trials within the schedule's error tolerance, -.
        contribution: mean voluntary extensor drive over its trials (the user's own contribution), -.
        interventions: control steps the safety monitor took over, summed over its trials.
        peak_motor_torque_nm: mean over trials of the largest |torque| the motor applied, N m.
        next_level: the level the rule set for the next session, -.
        decision: "raise", "lower" or "hold".
        reason: why.
    """

    session: int
    strength: float
    level: float
    final_error_deg: float
    achieved_share: float
    contribution: float
    interventions: int
    peak_motor_torque_nm: float
    next_level: float
    decision: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def simulate_sessions(choice: ControllerChoice, subject: SpasticityLevel, strengths: Sequence[float], *,
                      schedule: AssistanceSchedule, limits: SafetyLimits, initial_level: float = 1.0,
                      twin: str = "full", trials_per_session: int = 3, seed: int = 0) -> list[SimulatedSession]:
    """Sessions of a trainee whose strength in session ``k`` is ``strengths[k]``, with the rule in the loop.

    Every trial of a session uses its own start-angle seed and drive noise (``seed``, session, trial).
    """
    if trials_per_session < 1:
        raise ValueError(f"trials_per_session must be >= 1, got {trials_per_session}")
    level = float(initial_level)
    out: list[SimulatedSession] = []
    for k, strength in enumerate(strengths, start=1):
        results = []
        for i in range(trials_per_session):
            trial_seed = seed + 1000 * k + i
            drive = TrialDrive(float(strength), trial_seed)
            results.append(run_user_trial(choice, subject, limits, twin, trial_seed, assistance=level,
                                          voluntary=drive))
        errors = np.array([r.metrics.final_error_deg for r in results], dtype=float)
        outcome = SessionOutcome(final_error_deg=float(np.mean(errors)),
                                 contribution=float(np.mean([r.mean_voluntary_extensor for r in results])),
                                 interventions=int(sum(r.intervention_steps for r in results)),
                                 trials=len(results))
        decision = next_assistance(level, outcome, schedule)
        out.append(SimulatedSession(
            session=k, strength=float(strength), level=level, final_error_deg=outcome.final_error_deg,
            achieved_share=float(np.mean(errors <= schedule.error_tolerance_deg)),
            contribution=float(outcome.contribution or 0.0), interventions=outcome.interventions,
            peak_motor_torque_nm=float(np.mean([r.peak_motor_torque_nm for r in results])),
            next_level=decision.level, decision=decision.decision, reason=decision.reason))
        level = decision.level
    return out


def generated_subject(twin: str, level: int, seed: int) -> SpasticityLevel:
    """The generated subject ``seed`` of MAS ``level`` of ``twin`` (as ``exo sim --level L --subject-seed S``)."""
    from exo.personalize.evaluation import _env

    env = _env(twin, level)
    env.twin.reset(level, seed=seed)
    return env.twin.subject


def growing(sessions: int = 10, start: float = 0.02, end: float = 0.35) -> list[float]:
    """Strengths of a trainee who gets stronger linearly over ``sessions``."""
    return [float(v) for v in np.linspace(start, end, sessions)]


def fatiguing(sessions: int = 10, start: float = 0.35, end: float = 0.02) -> list[float]:
    """Strengths of a trainee who weakens (fatigue, a relapse) linearly over ``sessions``."""
    return [float(v) for v in np.linspace(start, end, sessions)]
