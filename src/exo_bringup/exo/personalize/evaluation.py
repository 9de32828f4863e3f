"""A controller on one user's twin, with the safety monitor in the loop: the yardstick of personalisation.

:class:`UserTwin` is what the system knows of a person: the reflex parameters identified from their
assessment (:mod:`exo.identify`), the 95 % intervals of those parameters, and the safety limits their
profile sets (the therapist's caps narrowing ``config/safety.yaml``). :func:`run_user_trial` runs one
knee-extension trial (:class:`~exo.envs.knee_extension.KneeExtensionEnv`, the evaluation protocol:
full length, 1.544 -> 0.2 rad) on the twin with a subject drawn from that knowledge, **through the
safety monitor's core** (:class:`~exo.safety.monitor.SafetyMonitor` with the user's limits), exactly
as the graph would: every control step the monitor gets the measurements and the controller's
request, and the knee gets the monitor's command. :func:`evaluate_on_user` runs a set of subjects.

The metrics are those of :mod:`exo.metrics` (peak and RMS interaction torque, N m; final error, deg),
plus how often the monitor took the knee from the controller (``intervention_steps``: steps in
FALLBACK or worse) or altered its request (``limited_steps``: LIMITING).

Subjects (:meth:`UserTwin.subjects`): the identified point estimate first, then subjects drawn
uniformly inside the 95 % intervals of the parameters (for a parameter the recording cannot
identify, the identification reports the generator's interval at the level): a controller tuned on
them is tuned for what the identification allows the person to be, not only for its best guess.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from exo.metrics import TrialMetrics, compute_trial_metrics
from exo.safety import SafetyLimits
from exo.safety.monitor import SafetyMonitor, SafetyState
from exo.twin.reflex import NOISY_PARAMETERS, SpasticityLevel

if TYPE_CHECKING:
    from exo.control import Controller
    from exo.users import UserStore

#: Parameters that must stay >= 0 when drawn inside an interval.
_NON_NEGATIVE = ("v_lim_rad_s", "l_ang", "l_vel", "k_ang_per_deg", "k_vel_s_per_rad")


@dataclass(frozen=True)
class ControllerChoice:
    """A controller to run: its registry name (:data:`exo.control.CONTROLLERS`) and keyword parameters.

    The parameters are plain JSON values (numbers, strings), as stored in a user's profile.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def factory(self) -> Callable[[], Controller]:
        """A picklable factory of fresh controllers."""
        from exo.control import make_controller

        return functools.partial(make_controller, self.name, **dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class UserTwin:
    """What is known of one person, as a twin to evaluate controllers on.

    Attributes:
        subject: the identified reflex parameters and MAS level.
        ci: 95 % interval (low, high) of each parameter (table units, see
            :class:`~exo.twin.reflex.SpasticityLevel`); parameters without one (or with a zero-width
            one) are not varied.
        limits: the safety monitor's limits with the user's caps.
        twin: "full" (MyoLeg) or "reduced".
    """

    subject: SpasticityLevel
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    twin: str = "full"

    @classmethod
    def from_store(cls, store: UserStore, user: str, twin: str = "full") -> UserTwin:
        """``user``'s identified twin and caps from the store.

        Raises:
            exo.users.StoreError: no such user, or no identified twin yet (the message says how to get one).
        """
        from exo.identify.records import identified_subject

        subject = identified_subject(store, user)
        stored = store.profile(user).identified_twin or {}
        ci = {k: (float(v[0]), float(v[1])) for k, v in (stored.get("ci") or {}).items()
              if isinstance(v, (list, tuple)) and len(v) == 2 and None not in v}
        return cls(subject=subject, ci=ci, limits=user_limits(store, user), twin=twin)

    def subjects(self, n: int, seed: int) -> list[SpasticityLevel]:
        """``n`` subjects: the point estimate, then ``n - 1`` drawn uniformly inside the intervals."""
        if n < 1:
            raise ValueError(f"need at least one subject, got {n}")
        rng = np.random.default_rng(seed)
        out = [self.subject]
        for _ in range(n - 1):
            values = {}
            for name in NOISY_PARAMETERS:
                if name not in self.ci:
                    continue
                lo, hi = sorted(self.ci[name])
                value = float(rng.uniform(lo, hi)) if hi > lo else lo
                values[name] = max(0.0, value) if name in _NON_NEGATIVE else value
            out.append(replace(self.subject, **values))
        return out


def user_limits(store: UserStore | None = None, user: str = "") -> SafetyLimits:
    """``config/safety.yaml``'s limits, narrowed by ``user``'s caps (the safety monitor's own mapping)."""
    from exo.paths import config_file

    limits = SafetyLimits.from_yaml(config_file("safety.yaml"))
    if not user or store is None:
        return limits
    from exo.users import caps_for

    return replace(limits, **{k: float(v) for k, v in caps_for(user, store=store).items()})


@dataclass(frozen=True)
class UserTrialResult:
    """One trial on a user's twin.

    Attributes:
        metrics: :class:`~exo.metrics.TrialMetrics` of the trial (interaction torque N m, error deg).
        intervention_steps: control steps the safety monitor commanded instead of the controller
            (FALLBACK, SAFE_STOP, ESTOP, FAULT).
        limited_steps: steps on which a hard limit altered the controller's request (LIMITING).
        steps: control steps of the trial.
        peak_motor_torque_nm: largest |torque| the exo motor applied, N m (what the monitor let through).
        peak_request_nm: largest |torque| the controller requested, N m (before the assistance scaling).
        mean_voluntary_extensor: mean voluntary knee-extensor drive the user put in over the trial (-, 0-1;
            the normalised agonist EMG a session measures as the user's own contribution); 0 without a
            voluntary user.
    """

    metrics: TrialMetrics
    intervention_steps: int
    limited_steps: int
    steps: int
    peak_motor_torque_nm: float = 0.0
    peak_request_nm: float = 0.0
    mean_voluntary_extensor: float = 0.0


#: A simulated user's voluntary drive: ``(time since the trial started s, knee angle rad) -> (flexor, extensor)``
#: drive (-, 0-1), applied for the next control step.
VoluntaryDrive = Callable[[float, float], tuple[float, float]]


def _env(twin: str, level: int) -> Any:
    """The evaluator's cached env of (twin, level), full-length trials (building a MuJoCo model is the slow part)."""
    from exo.evaluate import _make_env

    return _make_env(twin, level, {"terminate_on_unsafe": False})


def run_user_trial(choice: ControllerChoice, subject: SpasticityLevel, limits: SafetyLimits, twin: str = "full",
                   seed: int = 0, *, assistance: float = 1.0,
                   voluntary: VoluntaryDrive | None = None) -> UserTrialResult:
    """One trial of ``choice`` on ``subject`` through a safety monitor with ``limits`` (module docstring).

    ``seed`` seeds the env's start-angle perturbation; the subject is ``subject`` itself.
    ``assistance`` (-, 0-1) scales the controller's request before the monitor, as the controller node's
    ``assistance`` parameter does (assist-as-needed); ``voluntary`` adds a simulated user's own drive.
    """
    if not 0.0 <= assistance <= 1.0:
        raise ValueError(f"assistance must be within 0..1, got {assistance}")
    env = _env(twin, subject.level)
    controller = choice.factory()()
    controller.reset()
    monitor = SafetyMonitor(limits)
    obs, info = env.reset(seed=seed, options={"subject": subject})
    scale = float(env.twin.max_exo_torque_nm)
    rows: list[tuple[float, float, float, float, float]] = []
    interventions = limited = steps = 0
    peak_request = extensor_sum = 0.0
    t0 = float(info["measurements"].time_s)
    while True:
        m = info["measurements"]
        t = float(m.time_s)
        rows.append((t, float(info["human_knee_angle_rad"]), float(info["target_knee_angle_rad"]),
                     float(info["interaction_torque_nm"]), float(info["exo_torque_nm"])))
        monitor.on_measurements(m)
        request = float(controller.act(obs))
        peak_request = max(peak_request, abs(request)) if math.isfinite(request) else peak_request
        monitor.on_request(t, assistance * request, choice.name)
        decision = monitor.update(t)
        if voluntary is not None:
            flexor, extensor = voluntary(t - t0, float(info["human_knee_angle_rad"]))
            env.twin.set_voluntary_drive(flexor, extensor)
            extensor_sum += extensor
        if decision.state >= SafetyState.FALLBACK:
            interventions += 1
        elif decision.state == SafetyState.LIMITING:
            limited += 1
        obs, _, terminated, truncated, info = env.step(np.array([decision.torque_nm / scale], dtype=np.float32))
        steps += 1
        if terminated or truncated:
            break
    if voluntary is not None:
        env.twin.set_voluntary_drive(0.0, 0.0)  # the env is shared (cached): leave it relaxed
    m = info["measurements"]
    rows.append((float(m.time_s), float(info["human_knee_angle_rad"]), float(info["target_knee_angle_rad"]),
                 float(info["interaction_torque_nm"]), float(info["exo_torque_nm"])))
    a = np.array(rows)
    metrics = compute_trial_metrics(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])
    return UserTrialResult(metrics=metrics, intervention_steps=interventions, limited_steps=limited, steps=steps,
                           peak_motor_torque_nm=float(np.max(np.abs(a[:, 4]))), peak_request_nm=peak_request,
                           mean_voluntary_extensor=extensor_sum / max(steps, 1))


#: The metrics a :class:`UserScore` reports (means over the subjects), with their units.
SCORE_METRICS = {"peak_torque_nm": "N m", "rms_torque_nm": "N m", "final_error_deg": "deg",
                 "intervention_steps": "steps", "limited_steps": "steps"}


@dataclass(frozen=True)
class UserScore:
    """A controller's trials on a set of subjects of one user's twin; means in :attr:`means`."""

    choice: ControllerChoice
    trials: tuple[UserTrialResult, ...]

    def values(self, metric: str) -> np.ndarray:
        """Per-trial values of ``metric`` (one of :data:`SCORE_METRICS`)."""
        if metric in ("intervention_steps", "limited_steps"):
            return np.array([getattr(t, metric) for t in self.trials], dtype=float)
        return np.array([getattr(t.metrics, metric) for t in self.trials], dtype=float)

    @property
    def means(self) -> dict[str, float]:
        return {k: float(np.mean(self.values(k))) for k in SCORE_METRICS}

    def to_dict(self) -> dict[str, Any]:
        """Means and the number of trials (plain JSON; NaN -> None)."""
        return {"controller": self.choice.to_dict(), "trials": len(self.trials),
                "means": {k: (v if math.isfinite(v) else None) for k, v in self.means.items()}}


def evaluate_on_user(choice: ControllerChoice, user_twin: UserTwin, subjects: Sequence[SpasticityLevel],
                     seed: int = 0) -> UserScore:
    """``choice`` on every subject (trial ``i`` uses start-angle seed ``seed + i``), in this process."""
    trials = tuple(run_user_trial(choice, s, user_twin.limits, user_twin.twin, seed + i)
                   for i, s in enumerate(subjects))
    return UserScore(choice=choice, trials=trials)
