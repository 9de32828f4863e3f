"""Tuning a hand-tuned baseline to one user: CMA-ES over its gains, cap and reference speed on the user's twin.

The engineer's job, done in the twin: the PID (:mod:`exo.control.pid`) and the reflex-aware
reference baseline (:mod:`exo.control.reference`) each have a few numbers (:data:`SPACES`): gains,
torque cap and, for the reference, the peak speed. :func:`tune` searches them with CMA-ES (the
``cma`` package; bounded, in normalised coordinates) on subjects of the user's twin
(:class:`~exo.personalize.evaluation.UserTwin`), every trial through the safety monitor with the
user's limits. The cap is searched up to the user's own torque cap.

The cost of a candidate (:func:`cost`) is relative to a reference score (the deployed version's, on
the same subjects), so that 1.0 means "as good as what the user has" on each of the three metrics
the acceptance gate judges:

    cost = (peak / peak_ref + rms / rms_ref + (err + 1 deg) / (err_ref + 1 deg)) / 3
           + 2 * max(0, err - err_ref) / (err_ref + 1 deg)                        (do not trade accuracy)
           + max(0, interventions - interventions_ref) / 100                        (nor safety)

Progress and resumption: :class:`SearchState` holds the CMA-ES state, the best candidate, the counts
and the time spent; :func:`tune` calls ``checkpoint(state)`` after every generation (the command
keeps it encrypted in the user's store) and continues from a state it is given.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from exo.personalize.evaluation import ControllerChoice, UserTwin, evaluate_on_user
from exo.twin.reflex import SpasticityLevel

#: Added to the final errors in the cost, deg: keeps the ratio meaningful for errors near 0.
ERROR_FLOOR_DEG = 1.0


@dataclass(frozen=True)
class Dimension:
    """One searched number: its parameter name, bounds and scale ("log": searched as log10)."""

    name: str
    low: float
    high: float
    scale: str = "linear"

    def value(self, u: float) -> float:
        """The parameter value at normalised coordinate ``u`` in [0, 1]."""
        u = min(1.0, max(0.0, float(u)))
        if self.scale == "log":
            return float(10 ** (math.log10(self.low) + u * (math.log10(self.high) - math.log10(self.low))))
        return float(self.low + u * (self.high - self.low))

    def coordinate(self, value: float) -> float:
        """The normalised coordinate of ``value`` (clipped into the bounds)."""
        v = min(self.high, max(self.low, float(value)))
        if self.scale == "log":
            return (math.log10(v) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        return (v - self.low) / (self.high - self.low)


#: Searched numbers of each baseline (N m/rad, N m/(rad s), N m s/rad, rad/s, N m). The torque cap's
#: upper bound is replaced by the user's own cap.
SPACES: dict[str, tuple[Dimension, ...]] = {
    "pid": (Dimension("kp", 30.0, 3000.0, "log"), Dimension("ki", 10.0, 10000.0, "log"),
            Dimension("kd", 0.3, 60.0, "log"), Dimension("torque_limit_nm", 30.0, 100.0)),
    "reference_pid": (Dimension("kp", 30.0, 3000.0, "log"), Dimension("ki", 10.0, 10000.0, "log"),
                      Dimension("kd", 0.3, 60.0, "log"), Dimension("peak_velocity_rad_s", 0.2, 4.0),
                      Dimension("torque_limit_nm", 30.0, 100.0)),
}


def space_for(family: str, torque_cap_nm: float) -> tuple[Dimension, ...]:
    """The searched dimensions of ``family`` with the cap's upper bound at ``torque_cap_nm`` (N m)."""
    if family not in SPACES:
        raise ValueError(f"unknown baseline {family!r}: expected one of {', '.join(SPACES)}")
    out = []
    for d in SPACES[family]:
        if d.name == "torque_limit_nm":
            high = min(d.high, torque_cap_nm)
            d = Dimension(d.name, min(d.low, high), high, d.scale)
        out.append(d)
    return tuple(out)


def choice_at(family: str, base: dict[str, Any], space: Sequence[Dimension], x: Sequence[float]) -> ControllerChoice:
    """The controller at normalised point ``x``: ``base`` parameters with the searched ones replaced."""
    params = dict(base)
    for d, u in zip(space, x, strict=True):
        params[d.name] = round(d.value(u), 6)
    return ControllerChoice(family, params)


def cost(score: dict[str, float], reference: dict[str, float]) -> float:
    """The cost of a candidate's mean metrics relative to a reference's (module docstring); lower is better."""
    peak, rms, err = score["peak_torque_nm"], score["rms_torque_nm"], score["final_error_deg"]
    if not all(math.isfinite(v) for v in (peak, rms, err)):
        return math.inf
    e_ref = reference["final_error_deg"] + ERROR_FLOOR_DEG
    c = (peak / reference["peak_torque_nm"] + rms / reference["rms_torque_nm"] + (err + ERROR_FLOOR_DEG) / e_ref) / 3
    c += 2.0 * max(0.0, err - reference["final_error_deg"]) / e_ref
    c += max(0.0, score["intervention_steps"] - reference["intervention_steps"]) / 100.0
    return float(c)


@dataclass
class SearchState:
    """Where a search is (picklable; see the module docstring).

    Attributes:
        family: the baseline searched ("pid" or "reference_pid").
        es: the CMA-ES object (``cma.CMAEvolutionStrategy``).
        best: the best candidate so far and its cost and mean metrics (None before the first generation).
        evaluations: candidates evaluated.
        generations: CMA-ES generations done.
        elapsed_s: wall time spent, s (over every resumption).
        history: best cost after each generation.
    """

    family: str
    es: Any
    best: tuple[ControllerChoice, float, dict[str, float]] | None = None
    evaluations: int = 0
    generations: int = 0
    elapsed_s: float = 0.0
    history: list[float] = field(default_factory=list)

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def loads(data: bytes) -> SearchState:
        """A state saved by :meth:`dumps` (read only from the user's authenticated, encrypted store)."""
        state = pickle.loads(data)  # noqa: S301 - written by this code into the encrypted, authenticated store
        if not isinstance(state, SearchState):
            raise ValueError("not a personalisation search state")
        return state


def new_state(family: str, space: Sequence[Dimension], start: dict[str, Any], *, popsize: int, sigma0: float,
              seed: int) -> SearchState:
    """A fresh search of ``family`` starting at the parameters ``start`` (clipped into the bounds)."""
    import cma

    x0 = [d.coordinate(float(start.get(d.name, (d.low + d.high) / 2))) for d in space]
    options = {"bounds": [0.0, 1.0], "popsize": popsize, "seed": seed, "verbose": -9, "verb_log": 0,
               "verb_disp": 0}
    return SearchState(family=family, es=cma.CMAEvolutionStrategy(x0, sigma0, options))


def _score(args: tuple[ControllerChoice, UserTwin, list[SpasticityLevel], int]) -> dict[str, float]:
    choice, user_twin, subjects, seed = args
    return evaluate_on_user(choice, user_twin, subjects, seed).means


def tune(state: SearchState, space: Sequence[Dimension], base: dict[str, Any], user_twin: UserTwin,
         subjects: Sequence[SpasticityLevel], reference: dict[str, float], *, budget_s: float,
         max_evaluations: int | None = None, seed: int = 0, workers: int = 1,
         checkpoint: Callable[[SearchState], None] | None = None,
         progress: Callable[[SearchState], None] | None = None) -> SearchState:
    """Run CMA-ES generations until ``budget_s`` of wall time (counting earlier runs of this state) or
    ``max_evaluations`` candidates are spent, or CMA-ES stops; returns the state (its ``best``)."""
    pool = None
    if workers > 1:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        while not state.es.stop():
            if state.elapsed_s >= budget_s or (max_evaluations is not None and state.evaluations >= max_evaluations):
                break
            t0 = time.monotonic()
            xs = state.es.ask()
            choices = [choice_at(state.family, base, space, x) for x in xs]
            tasks = [(c, user_twin, list(subjects), seed) for c in choices]
            scores = list(pool.map(_score, tasks)) if pool is not None else [_score(t) for t in tasks]
            costs = [cost(s, reference) for s in scores]
            state.es.tell(xs, [c if math.isfinite(c) else 1e6 for c in costs])
            for c, k, s in zip(choices, costs, scores, strict=True):
                if state.best is None or k < state.best[1]:
                    state.best = (c, k, s)
            state.evaluations += len(xs)
            state.generations += 1
            state.elapsed_s += time.monotonic() - t0
            state.history.append(state.best[1] if state.best else math.inf)
            if checkpoint is not None:
                checkpoint(state)
            if progress is not None:
                progress(state)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return state
