"""Identify a person's reflex parameters from an assessment recording by replaying it on a twin.

:func:`identify` fits the seven per-subject parameters of the subject generator
(:data:`exo.twin.reflex.NOISY_PARAMETERS`) by simulating the twin along the recorded motion
(:class:`exo.identify.replay.Replay`) and matching the simulated interaction torque and exo angle
to the recorded ones. Steps:

1. **Screening.** Replay the nominal subject of each MAS level (0-3). The best level, and the
   second best if its misfit is within ``candidate_ratio`` of the best, are the candidates.
2. **Fit per candidate level** (levels 1-3; level 0 has no free parameter: L = 0). Maximum a
   posteriori in standardised coordinates ``z = (theta - nominal) / (rel_sd |nominal|)`` with the
   level's generator as the prior (independent N(0, 1) per parameter): minimise
   ``|features(theta) - recorded| ^ 2 / feature_scale ^ 2 + |z| ^ 2`` by Levenberg-Marquardt with a
   forward-difference Jacobian, every simulation of an iteration in parallel on ``workers``
   processes. A parameter the recording carries no information about stays at its prior mean. A fit
   that ends on a parameter's bound, or does not reproduce the recording, is started again
   (:func:`fit_level`).
3. **Level.** The candidate with the smallest objective (misfit plus prior penalty: the posterior
   mode); every level's generator log-likelihood of the identified parameters is reported too.
4. **Uncertainty.** The Laplace posterior at the optimum, with the data noise estimated from the
   fit itself: the residual's level (at least ``feature_scale``) times its long-run variance factor
   (the compared samples are low-passed, so neighbours are correlated: Bartlett-weighted
   autocorrelation up to ``correlation_lags``), plus the identifier's own model error per level and
   parameter (:data:`MODEL_ERROR_FILE`, measured on generated subjects by
   ``scripts/calibrate_identification.py``): the error a fit makes that no residual shows (at level
   3 the objective is rugged and the fit can stop a generator sd away from the truth). 95 %
   intervals are the estimate +- 1.96 of that standard deviation. The data-only posterior standard
   deviation of each parameter, relative to the generator's, says whether the recording identifies
   it; the protocol analysis of :func:`reasons_not_identifiable` says why not.

Units: angles deg (the table's convention, :mod:`exo.twin.reflex`), velocities rad/s, slopes 1/deg
and s/rad, torques N m, times s.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exo.identify.recording import AssessmentRecording
from exo.identify.replay import Features, Replay, ReplaySettings
from exo.identify.result import IdentificationResult
from exo.twin.reflex import NOISY_PARAMETERS, SpasticityLevel, SpasticReflex, sigmoid

LOG = logging.getLogger(__name__)

#: Physical bounds of each parameter during the fit (table units).
BOUNDS: dict[str, tuple[float, float]] = {
    "a_flex_deg": (-120.0, 60.0),
    "a_ext_deg": (0.0, 150.0),
    "v_lim_rad_s": (0.02, 20.0),
    "l_ang": (0.0, 1.0),
    "l_vel": (0.0, 1.0),
    "k_ang_per_deg": (0.005, 5.0),
    "k_vel_s_per_rad": (0.2, 50.0),
}


@dataclass(frozen=True)
class IdentifySettings:
    """Settings of :func:`identify`.

    Attributes:
        twin: twin the recording is replayed on: "full" (MyoLeg, accurate, about 1 s per replay of the
            40 s protocol) or "reduced" (about 0.2 s; biased on recordings of the full twin or a person
            at levels 2-3, see docs/identification.md).
        workers: processes that run the simulations of one iteration in parallel (1 = in this process).
        replay: replay and feature settings.
        feature_scale_nm: the mismatch of one compared sample that weighs as much as a one-sigma
            deviation of one parameter from its level's nominal, N m.
        fd_step: forward-difference step, in generator standard deviations.
        max_iterations: Levenberg-Marquardt iterations per candidate level.
        tolerance: stop when an iteration lowers the objective by less than this fraction.
        candidate_ratio: levels whose screening misfit is within this factor of the best one are fitted too
            (at most two levels are fitted).
        z_limit: largest deviation from the level's nominal allowed in the fit, generator sds.
        correlation_lags: lags (compared samples) of the residual's long-run variance factor.
        refit_above_nm: a fit whose compared samples still differ by more RMS than this is started again
            (:func:`fit_level`), and a final fit that still does is reported as not reproducing the recording
            (:attr:`IdentificationResult.reproduces_recording`), N m.
        restart_sds: distances of the restart candidates from the nominal, generator sds (each free parameter
            alone, either side, at each distance).
        restarts: at most this many fits started again from the best candidates (they stop at the first that
            reproduces the recording).
        identifiable_ratio: a parameter is identified when its posterior sd is below this fraction of
            the generator's sd (the recording carries at least (1/ratio^2 - 1) times the prior's information).
        model_error: per MAS level, per parameter, the identifier's model error in generator sds, added
            to the posterior's in the intervals (default: :data:`MODEL_ERROR_FILE`).
    """

    twin: str = "full"
    workers: int = 2
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    feature_scale_nm: float = 0.5
    fd_step: float = 0.3
    max_iterations: int = 10
    tolerance: float = 2e-3
    candidate_ratio: float = 2.0
    z_limit: float = 12.0
    correlation_lags: int = 5
    refit_above_nm: float = 2.0
    restart_sds: tuple[float, ...] = (1.0, 2.0)
    restarts: int = 2
    identifiable_ratio: float = 0.5
    model_error: dict[int, dict[str, float]] = field(default_factory=lambda: load_model_error())

    def __post_init__(self) -> None:
        from exo.twin import KINDS

        if self.twin not in KINDS:
            raise ValueError(f"identify: twin must be one of {KINDS}, got {self.twin!r}")
        if self.workers < 1:
            raise ValueError(f"identify: workers must be >= 1, got {self.workers}")
        for name in ("feature_scale_nm", "fd_step", "tolerance", "candidate_ratio", "z_limit", "identifiable_ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"identify: {name} must be > 0, got {value}")
        if self.correlation_lags < 0 or self.restarts < 0:
            raise ValueError(f"identify: correlation_lags and restarts must be >= 0, got {self.correlation_lags} "
                             f"and {self.restarts}")
        if not (math.isfinite(self.refit_above_nm) and self.refit_above_nm > 0.0):
            raise ValueError(f"identify: refit_above_nm must be > 0, got {self.refit_above_nm}")
        if not self.restart_sds or not all(math.isfinite(d) and d > 0.0 for d in self.restart_sds):
            raise ValueError(f"identify: restart_sds must be distances > 0, got {self.restart_sds}")
        for level, per in self.model_error.items():
            for name, value in per.items():
                check_model_error(level, name, value)


def check_model_error(level: int, name: str, value: float) -> None:
    """ValueError naming the entry unless ``name`` is a generator parameter and ``value`` finite and >= 0."""
    if name not in NOISY_PARAMETERS or not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"identify: model_error of level {level}: {name} = {value} (need a parameter "
                         f"of {list(NOISY_PARAMETERS)} and a finite value >= 0, in generator sds)")


#: The identifier's model error per level and parameter (``config/identification.yaml``).
MODEL_ERROR_FILE = "identification.yaml"


def load_model_error(path: Path | None = None) -> dict[int, dict[str, float]]:
    """Per MAS level, per parameter, the identifier's model error in generator sds (``config/identification.yaml``).

    Raises:
        exo.params.ConfigError: the file does not hold ``identification.model_error_sd`` as
            ``level_<L>: {parameter: value}`` with known parameters and finite values >= 0.
    """
    import yaml

    from exo.params import ConfigError
    from exo.paths import config_file

    path = Path(path) if path is not None else config_file(MODEL_ERROR_FILE)
    try:
        doc = yaml.safe_load(path.read_text())
        table = doc["identification"]["model_error_sd"]
        out: dict[int, dict[str, float]] = {}
        for key, per in table.items():
            if not (isinstance(key, str) and key.startswith("level_") and key[6:].isdigit()):
                raise ValueError(f"key {key!r} is not level_<L>")
            values = {str(n): float(v) for n, v in per.items()}
            for n, v in values.items():
                check_model_error(int(key[6:]), n, v)
            out[int(key[6:])] = values
        return out
    except (KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: identification.model_error_sd: {exc}") from None


# ----------------------------------------------------------------------------- parameter space


@dataclass(frozen=True)
class LevelSpace:
    """Standardised coordinates around one level's nominal parameters (the generator's prior).

    Attributes:
        level: MAS level.
        nominal: the level's nominal parameters.
        names: the free parameters (those with a non-zero generator sd).
        mean: their nominal values.
        sd: their generator standard deviations (rel_sd * |nominal|).
        lower, upper: bounds of z.
    """

    level: int
    nominal: SpasticityLevel
    names: tuple[str, ...]
    mean: np.ndarray
    sd: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def of(cls, nominal: SpasticityLevel, rel_sd: float, z_limit: float) -> LevelSpace:
        names = tuple(n for n in NOISY_PARAMETERS if rel_sd * abs(getattr(nominal, n)) > 0.0)
        mean = np.array([getattr(nominal, n) for n in names], dtype=float)
        sd = rel_sd * np.abs(mean)
        lo = np.array([BOUNDS[n][0] for n in names])
        hi = np.array([BOUNDS[n][1] for n in names])
        lower = np.maximum((lo - mean) / sd, -z_limit)
        upper = np.minimum((hi - mean) / sd, z_limit)
        return cls(nominal.level, nominal, names, mean, sd, lower, upper)

    def subject(self, z: np.ndarray) -> SpasticityLevel:
        """The parameters at ``z`` (thresholds kept at least 1 deg apart)."""
        values = dict(zip(self.names, (float(x) for x in self.mean + self.sd * np.clip(z, self.lower, self.upper)),
                          strict=True))
        out = replace(self.nominal, **{k: v for k, v in values.items() if k not in ("a_flex_deg", "a_ext_deg")})
        a_flex = values.get("a_flex_deg", out.a_flex_deg)
        a_ext = values.get("a_ext_deg", out.a_ext_deg)
        if a_flex > a_ext - 1.0:
            mid = 0.5 * (a_flex + a_ext)
            a_flex, a_ext = mid - 0.5, mid + 0.5
        return replace(out, a_flex_deg=a_flex, a_ext_deg=a_ext)


# ----------------------------------------------------------------------------- parallel simulation

_WORKER_REPLAY: Replay | None = None


def _worker_init(recording: AssessmentRecording, twin: str, settings: ReplaySettings) -> None:
    global _WORKER_REPLAY
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER_REPLAY = Replay(recording, twin, settings)


def _worker_eval(subject: SpasticityLevel) -> tuple[Features, float]:
    assert _WORKER_REPLAY is not None
    return _WORKER_REPLAY.evaluate(subject)


class Simulator:
    """Replays of one recording, in this process (``workers`` = 1) or in a pool of processes.

    Use as a context manager (the pool is shut down on exit). :attr:`count` counts the replays run.
    """

    def __init__(self, recording: AssessmentRecording, twin: str, settings: ReplaySettings, workers: int) -> None:
        self.local = Replay(recording, twin, settings)
        self.recorded = self.local.recorded
        self.workers = workers
        self.count = 0
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(recording, twin, settings))

    def map(self, subjects: list[SpasticityLevel]) -> list[tuple[Features, float]]:
        """Evaluate every subject (in parallel when a pool exists; the last one runs in this process)."""
        self.count += len(subjects)
        if self._pool is None or len(subjects) == 1:
            return [self.local.evaluate(s) for s in subjects]
        futures = [self._pool.submit(_worker_eval, s) for s in subjects[:-1]]
        last = self.local.evaluate(subjects[-1])
        return [f.result() for f in futures] + [last]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- one level's fit


@dataclass
class LevelFit:
    """The MAP fit under one level's generator.

    Attributes:
        level: the candidate level.
        subject: identified parameters.
        z: standardised coordinates of the free parameters.
        names: the free parameters.
        objective: data misfit + prior penalty at the optimum (-).
        misfit: data misfit (sum of squared scaled feature differences) (-).
        feature_rms_nm: RMS of the compared samples' difference, N m.
        residual_nm: RMS of the raw interaction-torque difference of the replay, N m.
        iterations: Levenberg-Marquardt iterations.
        jacobian: d(scaled averaged residual)/dz of the last iteration (data rows only).
        residual_settle, residual_reps: scaled residuals at the optimum (settle part; per repetition).
    """

    level: int
    subject: SpasticityLevel
    z: np.ndarray
    names: tuple[str, ...]
    objective: float
    misfit: float
    feature_rms_nm: float
    residual_nm: float
    iterations: int = 0
    jacobian: np.ndarray | None = None
    residual_settle: np.ndarray | None = None
    residual_reps: np.ndarray | None = None

    def reproduces(self, settings: IdentifySettings) -> bool:
        """Whether the compared samples differ by at most ``settings.refit_above_nm`` RMS."""
        return self.feature_rms_nm <= settings.refit_above_nm


def _misfit(features: Features, recorded: Features, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scaled averaged residual, scaled settle residual, scaled per-repetition residuals)."""
    settle = (features.settle - recorded.settle) / scale
    reps = (features.reps - recorded.reps) / scale
    return np.concatenate([settle, reps.mean(axis=0)]), settle, reps


def _jacobian(sim: Simulator, space: LevelSpace, z: np.ndarray, active: np.ndarray, base: tuple[np.ndarray, np.ndarray, np.ndarray],
              step: float, scale: float) -> np.ndarray:
    """Forward-difference Jacobian of the scaled averaged residual in the ``active`` columns."""
    r = base[0]
    n = len(z)
    jac = np.zeros((len(r), n))
    cols = np.flatnonzero(active)
    steps = np.where(z + step <= space.upper, step, -step)
    results = sim.map([space.subject(z + steps[j] * np.eye(n)[j]) for j in cols])
    for j, (f_j, _) in zip(cols, results, strict=True):
        jac[:, j] = (_misfit(f_j, sim.recorded, scale)[0] - r) / steps[j]
    return jac


def fit_level(sim: Simulator, space: LevelSpace, settings: IdentifySettings) -> LevelFit:
    """MAP fit of ``space``'s free parameters (see the module docstring), started again where it runs aground.

    Levenberg-Marquardt from the nominal finds the person in most recordings, but not in all (1 in 10
    generated subjects at levels 1-2 with the 10-deg protocol). Two ways out, each kept only if its
    objective (misfit plus prior penalty) is smaller:

    - **On a bound.** A fit that ends with a parameter on its bound (``z_limit`` generator sds from the
      nominal, or a physical bound of :data:`BOUNDS`) has usually found a degenerate twin: the angle
      reflex's slope ``k_ang`` at its floor and its size ``l_ang`` at the limit make a flat, tonic drive
      the fit cannot leave. It is run again from the nominal with those parameters held there.
    - **Not reproduced.** If the compared samples still differ by more than ``refit_above_nm`` RMS (a good
      fit leaves 0.1 N m at levels 1-2 and at most 1.3 N m at level 3), the objective is evaluated at
      each of ``restart_sds`` generator sds either side of the nominal in each free parameter (one replay
      each, in parallel), and the fit is run again from the best of those points, then the next best, up
      to ``restarts`` fits, until one reproduces the recording. The nearer candidates catch a person a
      generator sd from the nominal in a threshold (``a_ext_deg``) whose effect the Jacobian at the
      nominal does not see.
    """
    n = len(space.names)
    best = _fit_from(sim, space, settings, np.zeros(n), np.zeros(n, dtype=bool))
    stuck = at_bounds(best.z, space)
    if stuck.any():
        again = _fit_from(sim, space, settings, np.zeros(n), stuck)
        LOG.info("level %d: %s ended on a bound (objective %.1f); refit with them at the nominal: objective %.1f",
                 space.level, [space.names[j] for j in np.flatnonzero(stuck)], best.objective, again.objective)
        best = again if again.objective < best.objective else best
    if not best.reproduces(settings) and settings.restarts > 0 and n > 0:
        starts = [sign * d * np.eye(n)[j] for d in settings.restart_sds for j in range(n) for sign in (1.0, -1.0)]
        starts = [np.clip(z0, space.lower, space.upper) for z0 in starts]
        scores = []
        for z0, (feat, _) in zip(starts, sim.map([space.subject(z0) for z0 in starts]), strict=True):
            r = _misfit(feat, sim.recorded, settings.feature_scale_nm)[0]
            scores.append(float(r @ r + z0 @ z0))
        for k in np.argsort(scores)[: settings.restarts]:
            again = _fit_from(sim, space, settings, starts[k], np.zeros(n, dtype=bool))
            LOG.info("level %d: residual %.2f N m after the fit; restart from %s: objective %.1f -> %.1f",
                     space.level, best.feature_rms_nm, np.round(starts[k], 1), best.objective, again.objective)
            best = again if again.objective < best.objective else best
            if best.reproduces(settings):
                break
    return best


def at_bounds(z: np.ndarray, space: LevelSpace, tolerance: float = 1e-6) -> np.ndarray:
    """Which standardised coordinates sit on their lower or upper bound (a bool mask)."""
    if len(z) == 0:
        return np.zeros(0, dtype=bool)
    return (z <= space.lower + tolerance) | (z >= space.upper - tolerance)


def _fit_from(sim: Simulator, space: LevelSpace, settings: IdentifySettings, z0: np.ndarray,
              frozen: np.ndarray) -> LevelFit:
    """Levenberg-Marquardt from ``z0`` with ``frozen`` parameters held where ``z0`` has them.

    A forward-difference Jacobian at the start, Broyden (secant) updates after each accepted step, a new
    forward-difference Jacobian when a step fails, and a last one at the optimum (for the uncertainty).
    Parameters whose data information is below 5 % of the prior's at the start are held too (they are
    reported as not identified).
    """
    scale = settings.feature_scale_nm
    z = np.array(z0, dtype=float)
    (feat, raw_rms), = sim.map([space.subject(z)])
    base = _misfit(feat, sim.recorded, scale)
    cost = float(base[0] @ base[0] + z @ z)
    active = ~frozen
    jac = _jacobian(sim, space, z, active, base, settings.fd_step, scale)
    active = (np.sum(jac**2, axis=0) >= 0.05) & ~frozen
    fresh = True
    lam = 1e-2
    iterations = 0
    while iterations < settings.max_iterations and active.any():
        iterations += 1
        r = base[0]
        ja = jac[:, active]
        a = ja.T @ ja + np.eye(int(active.sum()))
        g = ja.T @ r + z[active]
        lams = (lam, lam * 10.0)
        trials = []
        for lm in lams:
            zt = z.copy()
            zt[active] = np.clip(z[active] + np.linalg.solve(a + lm * np.diag(np.diag(a)), -g),
                                 space.lower[active], space.upper[active])
            trials.append(zt)
        outs = sim.map([space.subject(t) for t in trials])
        best = None
        for lm, zt, (ft, rms_t) in zip(lams, trials, outs, strict=True):
            mt = _misfit(ft, sim.recorded, scale)
            ct = float(mt[0] @ mt[0] + zt @ zt)
            if best is None or ct < best[0]:
                best = (ct, lm, zt, ft, rms_t, mt)
        assert best is not None
        ct, lm, zt, ft, rms_t, mt = best
        LOG.debug("level %d iteration %d: objective %.1f -> %.1f (damping %.3g, fresh Jacobian %s), z %s",
                  space.level, iterations, cost, ct, lm, fresh, np.round(zt, 2))
        if ct < cost:
            delta = zt - z
            dd = float(delta @ delta)
            if dd > 0.0:  # Broyden update of the Jacobian along the step
                jac += np.outer(mt[0] - base[0] - jac @ delta, delta) / dd
            decrease = (cost - ct) / cost
            cost, z, feat, raw_rms, base = ct, zt, ft, rms_t, mt
            lam = max(lm / 10.0, 1e-4)
            fresh = False
            if decrease < settings.tolerance or float(np.max(np.abs(delta))) < 0.01:
                break
        elif not fresh:
            jac = _jacobian(sim, space, z, active, base, settings.fd_step, scale)
            fresh = True
        else:
            lam *= 100.0
            if lam > 1e6:
                break
    if not fresh and active.any():
        jac = _jacobian(sim, space, z, active, base, settings.fd_step, scale)
    r, r_settle, r_reps = base
    return LevelFit(
        level=space.level, subject=space.subject(z), z=z, names=space.names, objective=cost, misfit=float(r @ r),
        feature_rms_nm=float(np.sqrt(np.mean(r**2))) * scale, residual_nm=raw_rms, iterations=iterations,
        jacobian=jac, residual_settle=r_settle,
        residual_reps=r_reps,
    )


# ----------------------------------------------------------------------------- uncertainty


def correlation_factor(blocks: list[np.ndarray], max_lag: int) -> float:
    """Long-run variance factor of a residual made of contiguous ``blocks`` of compared samples (>= 1).

    ``1 + 2 sum_{l=1}^{L} (1 - l / (L + 1)) rho_l`` (Bartlett weights, L = ``max_lag``), with the lag-l
    autocorrelation ``rho_l`` pooled over the blocks (never across a block's end): how many times
    fewer independent samples the residual holds than its length says.
    """
    if max_lag <= 0:
        return 1.0
    lagged = np.zeros(max_lag + 1)
    for b in blocks:
        b = np.asarray(b, dtype=float)
        for lag in range(min(max_lag, len(b) - 1) + 1):
            lagged[lag] += float(b[: len(b) - lag] @ b[lag:])
    if lagged[0] <= 0.0:
        return 1.0
    rho = lagged[1:] / lagged[0]
    weights = 1.0 - np.arange(1, max_lag + 1) / (max_lag + 1.0)
    return max(1.0, 1.0 + 2.0 * float(weights @ rho))


def residual_blocks(fit: LevelFit, trial_of_column: np.ndarray) -> list[np.ndarray]:
    """The fit's averaged residual cut where the samples stop being neighbours in time.

    The settling hold's torque and angle samples, and per signal (torque, angle) each trial's window.
    """
    if fit.residual_settle is None or fit.residual_reps is None:
        return []
    settle = fit.residual_settle
    half = len(settle) // 2
    blocks = [settle[:half], settle[half:]]
    reps = fit.residual_reps.mean(axis=0)
    cuts = np.flatnonzero(np.diff(trial_of_column) != 0) + 1
    cuts = np.union1d(cuts, [len(reps) // 2])
    blocks.extend(np.split(reps, cuts))
    return [b for b in blocks if len(b)]


def noise_inflation(fit: LevelFit, trial_of_column: np.ndarray, max_lag: int) -> float:
    """The data noise variance, in units of ``feature_scale ^ 2``, per compared sample (>= 1).

    The residual's mean square at the optimum (at least 1: the feature scale is the noise floor; a
    recording the twin cannot reproduce carries less information), times the long-run variance factor
    of its correlated samples (:func:`correlation_factor`).
    """
    blocks = residual_blocks(fit, trial_of_column)
    if not blocks:
        return 1.0
    level = max(1.0, float(np.mean(np.concatenate(blocks) ** 2)))
    return level * correlation_factor(blocks, max_lag)


def interval(name: str, value: float, generator_sd: float, ratio: float, model_error: float) -> tuple[float, float]:
    """The 95 % interval of parameter ``name`` at ``value``: +- 1.96 x ``generator_sd`` x hypot(``ratio``,
    ``model_error``) (posterior and model error in generator sds), within the parameter's :data:`BOUNDS`."""
    half = 1.96 * generator_sd * math.hypot(ratio, model_error)
    return max(value - half, BOUNDS[name][0]), min(value + half, BOUNDS[name][1])


def posterior_sd_ratio(fit: LevelFit, inflation: float = 1.0) -> np.ndarray:
    """Linearised posterior sd of each free parameter relative to the generator's (1 = data add nothing).

    ``inflation`` is the data noise variance in units of ``feature_scale ^ 2`` (:func:`noise_inflation`).
    """
    if fit.jacobian is None or len(fit.names) == 0:
        return np.ones(len(fit.names))
    info = fit.jacobian.T @ fit.jacobian / max(1.0, inflation) + np.eye(len(fit.names))
    return np.sqrt(np.clip(np.diag(np.linalg.inv(info)), 0.0, None))


# ----------------------------------------------------------------------------- identifiability


def reasons_not_identifiable(recording: AssessmentRecording, subject: SpasticityLevel, ratio: dict[str, float],
                             threshold: float) -> dict[str, str]:
    """Why each parameter the recording does not identify is not (protocol analysis at the identified values).

    ``ratio`` is the posterior-to-prior sd of each free parameter; a parameter is listed when it is at
    least ``threshold`` (or not free, as at level 0).
    """
    from exo.twin.config import load_twin_config

    if subject.level == 0 or (subject.l_ang == 0.0 and subject.l_vel == 0.0):
        return {n: "no effect at level 0: L_ang = L_vel = 0, the thresholds and slopes act on nothing"
                for n in NOISY_PARAMETERS if n not in ("l_ang", "l_vel")}
    cfg = load_twin_config()
    reflex = SpasticReflex(subject, cfg.spasticity.mapping, cfg.spasticity.routing)  # type: ignore[arg-type]
    theta = np.array([reflex.table_angle_deg(q) for q in recording.angle_rad])
    v = cfg.spasticity.mapping.sign * recording.velocity_rad_s
    lo_deg, hi_deg = float(theta.min()), float(theta.max())
    p = subject
    to_knee = cfg.spasticity.mapping
    def knee_deg(table_deg: float) -> float:
        return (table_deg - to_knee.offset_deg) / to_knee.sign
    flex_reach = p.l_ang * sigmoid(-p.k_ang_per_deg * (lo_deg - p.a_flex_deg))
    ext_reach = p.l_ang * sigmoid(p.k_ang_per_deg * (hi_deg - p.a_ext_deg))
    speeds = np.abs(v)
    vel_drive = p.l_vel * np.array([sigmoid(p.k_vel_s_per_rad * (s - p.v_lim_rad_s)) for s in speeds])
    transition = np.mean(np.abs(speeds - p.v_lim_rad_s) < 2.0 / max(p.k_vel_s_per_rad, 1e-6))
    out: dict[str, str] = {}
    for name in NOISY_PARAMETERS:
        if ratio.get(name, 1.0) < threshold:
            continue
        if name == "a_flex_deg":
            out[name] = (f"flexion-side threshold at {knee_deg(p.a_flex_deg):.0f} deg knee flexion; the recording "
                         f"reaches {knee_deg(lo_deg):.0f} deg, where its term adds at most {flex_reach:.3f} drive")
        elif name == "a_ext_deg":
            out[name] = (f"extension-side threshold at {knee_deg(p.a_ext_deg):.0f} deg knee flexion; the recording "
                         f"extends to {knee_deg(hi_deg):.0f} deg, where its term adds at most {ext_reach:.3f} drive")
        elif name in ("l_ang", "k_ang_per_deg"):
            out[name] = (f"the angle terms stay below {max(flex_reach, ext_reach):.3f} drive over the recorded range "
                         f"({knee_deg(hi_deg):.0f}-{knee_deg(lo_deg):.0f} deg): too little angle-dependent reflex to "
                         "separate its size from its slope")
        elif name == "k_vel_s_per_rad":
            out[name] = (f"only {100 * transition:.0f} % of the samples lie within the velocity sigmoid's transition "
                         f"(v_lim +- 2/k_vel = {p.v_lim_rad_s:.2f} +- {2.0 / max(p.k_vel_s_per_rad, 1e-6):.2f} rad/s)")
        elif name in ("l_vel", "v_lim_rad_s"):
            out[name] = (f"the velocity reflex reaches {float(vel_drive.max()):.3f} drive at the recorded speeds "
                         f"(up to {float(speeds.max()):.2f} rad/s): too little to measure")
    return out


# ----------------------------------------------------------------------------- entry point


@dataclass
class Identification:
    """Everything :func:`identify` found (:class:`exo.identify.report.IdentificationResult` is its summary).

    Attributes:
        level: the estimated MAS level.
        subject: identified parameters (a :class:`SpasticityLevel` of that level).
        fits: the fit of every candidate level, by level.
        screening: data misfit of each level's nominal subject.
        ci: 95 % interval per parameter (table units).
        posterior_ratio: posterior / generator sd per parameter (1 = not informed by the recording).
        not_identifiable: parameter -> why the protocol does not identify it.
        log_likelihood: per level, the generator's log-density of the identified parameters (those
            the recording identifies; the fit's covariance added to the generator's).
        simulations: replays run.
        wall_time_s: elapsed time, s.
        settings: the settings used.
    """

    level: int
    subject: SpasticityLevel
    fits: dict[int, LevelFit]
    screening: dict[int, float]
    ci: dict[str, tuple[float, float]]
    posterior_ratio: dict[str, float]
    not_identifiable: dict[str, str]
    log_likelihood: dict[int, float]
    simulations: int
    wall_time_s: float
    settings: IdentifySettings

    @property
    def best(self) -> LevelFit:
        return self.fits[self.level]


def identify_recording(recording: AssessmentRecording, settings: IdentifySettings | None = None) -> Identification:
    """Fit the person's reflex parameters to ``recording`` (see the module docstring)."""
    from exo.twin.config import load_twin_config

    settings = settings if settings is not None else IdentifySettings()
    t_start = time.perf_counter()
    cfg = load_twin_config()
    rel_sd = cfg.spasticity.subject_noise_rel_sd
    nominal = cfg.spasticity.levels
    with Simulator(recording, settings.twin, settings.replay, settings.workers) as sim:
        screens = sim.map(list(nominal))
        screening = {}
        for lv, (feat, _rms) in enumerate(screens):
            r, _, _ = _misfit(feat, sim.recorded, settings.feature_scale_nm)
            screening[lv] = float(r @ r)
        order = sorted(screening, key=screening.get)  # type: ignore[arg-type]
        candidates = [order[0]] + [lv for lv in order[1:2] if screening[lv] <= settings.candidate_ratio * screening[order[0]]]
        fits: dict[int, LevelFit] = {}
        for lv in candidates:
            space = LevelSpace.of(nominal[lv], rel_sd, settings.z_limit)
            if lv == 0 or not space.names:
                feat, rms = screens[lv]
                r, s_, reps = _misfit(feat, sim.recorded, settings.feature_scale_nm)
                fits[lv] = LevelFit(lv, nominal[lv], np.zeros(0), (), float(r @ r), float(r @ r),
                                    float(np.sqrt(np.mean(r**2))) * settings.feature_scale_nm, rms,
                                    residual_settle=s_, residual_reps=reps)
            else:
                fits[lv] = fit_level(sim, space, settings)
        level = min(fits, key=lambda lv: fits[lv].objective)
        simulations = sim.count
        trial_cols = sim.local.layout.trial_of_column()
    best = fits[level]
    space = LevelSpace.of(nominal[level], rel_sd, settings.z_limit)
    ratios_free = posterior_sd_ratio(best, noise_inflation(best, trial_cols, settings.correlation_lags))
    ratio = {n: 1.0 for n in NOISY_PARAMETERS}
    ratio.update({n: float(x) for n, x in zip(best.names, ratios_free, strict=True)})
    model_error = settings.model_error.get(level, {})
    ci: dict[str, tuple[float, float]] = {}
    subject = best.subject
    for n in NOISY_PARAMETERS:
        value = float(getattr(subject, n))
        if n in best.names:
            ci[n] = interval(n, value, space.sd[best.names.index(n)], ratio[n], model_error.get(n, 0.0))
        else:
            ci[n] = (value, value)
    if level == 0:
        # no free parameter: the generator fixes L_ang = L_vel = k_ang = 0; its other values act on nothing
        ratio = {n: 1.0 for n in NOISY_PARAMETERS}
    not_ident = reasons_not_identifiable(recording, subject, ratio, settings.identifiable_ratio)
    for n in not_ident:  # the recording does not inform it: the generator's interval at the level
        j = space.names.index(n) if n in space.names else -1
        if j >= 0:
            ci[n] = (float(space.mean[j] - 1.96 * space.sd[j]), float(space.mean[j] + 1.96 * space.sd[j]))
    loglik = level_log_likelihood(subject, best, ratio, settings, rel_sd, nominal, not_ident)
    return Identification(level=level, subject=subject, fits=fits, screening=screening, ci=ci, posterior_ratio=ratio,
                          not_identifiable=not_ident, log_likelihood=loglik, simulations=simulations,
                          wall_time_s=time.perf_counter() - t_start, settings=settings)


def level_log_likelihood(subject: SpasticityLevel, fit: LevelFit, ratio: dict[str, float], settings: IdentifySettings,
                         rel_sd: float, nominal: tuple[SpasticityLevel, ...],
                         not_identifiable: dict[str, str]) -> dict[int, float]:
    """Per level, log N(identified values; nominal, generator variance + fit variance) over the identified parameters.

    Level 0's generator fixes L_ang, L_vel and k_ang at 0 (variance 0): only the fit's variance spreads it.
    At level 0 (nothing identified but the absence of the reflex) the L parameters are compared.
    """
    names = [n for n in NOISY_PARAMETERS if n not in not_identifiable]
    if not names:
        return {}
    space = LevelSpace.of(nominal[fit.level], rel_sd, settings.z_limit) if fit.names else None
    out: dict[int, float] = {}
    for lv, nom in enumerate(nominal):
        total = 0.0
        for n in names:
            x = float(getattr(subject, n))
            mu = float(getattr(nom, n))
            gen_var = (rel_sd * abs(mu)) ** 2
            if space is not None and n in space.names:
                fit_sd = space.sd[space.names.index(n)] * ratio[n]
            else:
                fit_sd = 0.05 * max(abs(float(getattr(nominal[1], n))), 1e-3)
            var = gen_var + fit_sd**2
            total += -0.5 * ((x - mu) ** 2 / var + math.log(2.0 * math.pi * var))
        out[lv] = total
    return out


def settings_dict(settings: IdentifySettings) -> dict[str, Any]:
    """Plain-data view of the settings (for reports)."""
    return asdict(settings)


def summarise(found: Identification, recording: AssessmentRecording) -> IdentificationResult:
    """The plain-data :class:`~exo.identify.result.IdentificationResult` of an :class:`Identification`."""
    best = found.best
    scores: dict[int, dict[str, float]] = {}
    for lv, misfit in found.screening.items():
        entry = {"screening_misfit": float(misfit)}
        if lv in found.fits:
            entry["objective"] = float(found.fits[lv].objective)
        if lv in found.log_likelihood:
            entry["log_likelihood"] = float(found.log_likelihood[lv])
        scores[lv] = entry
    try:
        load = float(os.getloadavg()[0])
    except OSError:
        load = math.nan
    return IdentificationResult(
        mas_level=found.level,
        params={n: float(getattr(found.subject, n)) for n in NOISY_PARAMETERS},
        ci={n: (float(lo), float(hi)) for n, (lo, hi) in found.ci.items()},
        residual_nm=float(best.residual_nm),
        residual_lowpass_nm=float(best.feature_rms_nm),
        reproduces_recording=best.reproduces(found.settings),
        reproduce_limit_nm=float(found.settings.refit_above_nm),
        not_identifiable=dict(found.not_identifiable),
        posterior_sd_ratio={n: float(x) for n, x in found.posterior_ratio.items()},
        level_scores=scores,
        twin=found.settings.twin,
        simulations=found.simulations,
        wall_time_s=float(found.wall_time_s),
        load_average=load,
        recording={"source": recording.source, "samples": recording.n, "duration_s": recording.duration_s,
                   "protocol": recording.protocol.to_dict(), "metadata": dict(recording.metadata)},
    )


def identify(recording: AssessmentRecording, *, twin: str | None = None, workers: int | None = None,
             settings: IdentifySettings | None = None) -> IdentificationResult:
    """Identify the person's reflex parameters and MAS level from an assessment recording.

    Args:
        recording: the assessment (:class:`~exo.identify.recording.AssessmentRecording`).
        twin: "full" (default) or "reduced"; overrides ``settings.twin``.
        workers: processes for the simulations (default 2); overrides ``settings.workers``.
        settings: everything else (:class:`IdentifySettings`).

    Returns:
        The :class:`~exo.identify.result.IdentificationResult` (``to_json()`` for the CLI's ``--json``).

    Raises:
        exo.identify.recording.RecordingError: the recording cannot be used (too short, NaN data).
    """
    settings = settings if settings is not None else IdentifySettings()
    overrides: dict[str, Any] = {}
    if twin is not None:
        overrides["twin"] = twin
    if workers is not None:
        overrides["workers"] = int(workers)
    if overrides:
        settings = replace(settings, **overrides)
    recording.validate()
    return summarise(identify_recording(recording, settings), recording)
