"""The hand-tuned frontier a learned controller must beat: Pareto sets, interpolation, bootstrap margins.

A learned controller is worth deploying only where it beats every controller a careful engineer
would tune by hand. The yardstick is, per MAS level, the **frontier** of the hand-tuned
configurations (the PID at a sweep of torque caps, the reflex-aware reference baseline at a sweep of
caps and reference speeds): the Pareto set of their mean (peak interaction torque N m, final error
deg), and likewise of (RMS interaction torque until settling N m, final error deg). Both coordinates
are minimised.

The target test of one learned policy at one level (:func:`frontier_margins`, :func:`judge`):

- **peak margin** (fraction, + = better): at the policy's mean final error ``E``, the frontier's
  peak ``P_f(E)`` (piecewise-linear between the Pareto points, see :func:`frontier_x_at_y`) against
  the policy's mean peak ``P``: ``(P_f(E) - P) / P_f(E)``. The target asks for >= 0.10;
- **error margin** (deg, + = better): at the policy's mean peak ``P``, the frontier's final error
  ``E_f(P)`` against the policy's ``E``: ``E_f(P) - E``. The target asks for >= 1 deg (levels 0-2)
  or 2 deg (level 3).

The policy is "inside" the frontier when one of the two margins meets its target **and** the 95 %
bootstrap interval of that margin lies above 0 (:func:`bootstrap_margins`: subjects resampled with
replacement, the same resample for every configuration and the policy, i.e. paired; the frontier
is recomputed on every resample, so its own uncertainty is in the interval).

Piecewise-linear interpolation between Pareto points asks more of the policy than the staircase of
the points themselves (an engineer cannot actually run a controller between two tuned points, but
a finer sweep would likely find one there). Outside the frontier's range the nearest end is used and
the result says so (``where`` = "below" / "above" the range).

Everything here is pure numpy: no twin, no controller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Where a query fell relative to the frontier's range: inside it, or below / above it (nearest end used).
Where = str


@dataclass(frozen=True)
class Target:
    """What "strictly inside the frontier" asks of a policy at one level.

    Attributes:
        peak_fraction: relative peak-torque margin at the policy's own final error (0.10 = 10 % below).
        error_deg: final-error margin at the policy's own peak, deg.
    """

    peak_fraction: float = 0.10
    error_deg: float = 1.0


def target_for_level(level: int) -> Target:
    """The generic target of MAS ``level``: 10 % peak, or 1 deg final error (2 deg at level 3)."""
    return Target(peak_fraction=0.10, error_deg=2.0 if level >= 3 else 1.0)


def pareto_indices(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points of (x, y), both minimised, sorted by x ascending.

    A point dominates another if it is <= in both coordinates and < in one. Of exactly equal points
    only the first is kept. Points with a non-finite coordinate are ignored. Along the returned
    indices x strictly increases and y strictly decreases.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {xa.shape} and {ya.shape}")
    idx = np.flatnonzero(np.isfinite(xa) & np.isfinite(ya))
    order = idx[np.lexsort((idx, ya[idx], xa[idx]))]  # by x, then y, then original index (stable)
    kept: list[int] = []
    best_y = math.inf
    for i in order:
        if ya[i] < best_y:  # strictly better y than every point with smaller or equal x
            kept.append(int(i))
            best_y = float(ya[i])
    return np.array(kept, dtype=int)


def dominators(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
               px: float, py: float) -> np.ndarray:
    """Indices of the points of (x, y) that dominate (px, py): <= in both, < in one (both minimised)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mask = (xa <= px) & (ya <= py) & ((xa < px) | (ya < py))
    return np.flatnonzero(mask)


def frontier_x_at_y(front_x: np.ndarray, front_y: np.ndarray, y: float) -> tuple[float, Where]:
    """The frontier's x at ordinate ``y`` (e.g. its peak torque N m at a final error deg).

    ``front_x``/``front_y``: a Pareto set as from :func:`pareto_indices` (x ascending, y descending).
    Piecewise-linear between the points; outside ``[min y, max y]`` the nearest end point's x,
    with ``where`` "below" (y under the frontier's smallest y) or "above" (over its largest).
    """
    fx, fy = np.asarray(front_x, dtype=float), np.asarray(front_y, dtype=float)
    if fx.size == 0:
        raise ValueError("empty frontier")
    where = "below" if y < fy.min() else "above" if y > fy.max() else "inside"
    order = np.argsort(fy)  # np.interp needs increasing abscissae
    return float(np.interp(y, fy[order], fx[order])), where


def frontier_y_at_x(front_x: np.ndarray, front_y: np.ndarray, x: float) -> tuple[float, Where]:
    """The frontier's y at abscissa ``x`` (e.g. its final error deg at a peak torque N m); as :func:`frontier_x_at_y`."""
    return frontier_x_at_y(front_y, front_x, x)


@dataclass(frozen=True)
class Margins:
    """A policy against one frontier (point estimates).

    Attributes:
        frontier_x_at_policy_y: the frontier's x (peak or RMS torque, N m) at the policy's final error.
        x_where: where the policy's final error fell relative to the frontier's error range.
        x_margin: ``(frontier x - policy x) / frontier x`` (fraction; + = the policy uses less torque).
        frontier_y_at_policy_x: the frontier's final error (deg) at the policy's torque.
        y_where: where the policy's torque fell relative to the frontier's torque range.
        y_margin_deg: ``frontier final error - policy final error`` (deg; + = the policy is more accurate).
    """

    frontier_x_at_policy_y: float
    x_where: Where
    x_margin: float
    frontier_y_at_policy_x: float
    y_where: Where
    y_margin_deg: float


def frontier_margins(config_x: np.ndarray, config_y: np.ndarray, policy_x: float, policy_y: float) -> Margins:
    """Margins of the point (``policy_x`` N m, ``policy_y`` deg) against the Pareto set of the configurations.

    ``config_x``/``config_y``: mean torque (N m) and mean final error (deg) of each hand-tuned configuration.
    """
    idx = pareto_indices(config_x, config_y)
    fx, fy = np.asarray(config_x, dtype=float)[idx], np.asarray(config_y, dtype=float)[idx]
    x_f, x_where = frontier_x_at_y(fx, fy, policy_y)
    y_f, y_where = frontier_y_at_x(fx, fy, policy_x)
    x_margin = (x_f - policy_x) / x_f if x_f != 0.0 else math.nan
    return Margins(x_f, x_where, float(x_margin), y_f, y_where, float(y_f - policy_y))


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def excludes_zero_above(self) -> bool:
        """The whole interval is > 0 (the margin is positive with the interval's confidence)."""
        return self.low > 0.0

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class BootstrapMargins:
    """:class:`Margins` with bootstrap intervals.

    Attributes:
        point: margins on all subjects.
        x_margin: relative torque margin (fraction) with its interval.
        y_margin_deg: final-error margin (deg) with its interval.
        resamples: bootstrap resamples used.
        x_outside_fraction / y_outside_fraction: share of resamples whose query fell outside the
            frontier's range (nearest end used).
    """

    point: Margins
    x_margin: Interval
    y_margin_deg: Interval
    resamples: int
    x_outside_fraction: float
    y_outside_fraction: float


def resample_weights(n_subjects: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap counts, shape (resamples, n_subjects): row b counts how often each subject is drawn."""
    if n_subjects < 1 or resamples < 1:
        raise ValueError(f"need >= 1 subject and >= 1 resample, got {n_subjects} and {resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(resamples, n_subjects))
    weights = np.zeros((resamples, n_subjects))
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    return weights


def weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Means of ``values`` (..., n_subjects) under each row of ``weights`` (B, n_subjects), non-finite values skipped.

    Returns shape (..., B).
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(finite, v, 0.0) @ weights.T) / (finite.astype(float) @ weights.T)


def bootstrap_margins(config_x: np.ndarray, config_y: np.ndarray, policy_x: np.ndarray, policy_y: np.ndarray,
                      resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> BootstrapMargins:
    """Margins of a policy against the frontier, with paired bootstrap intervals over subjects.

    Args:
        config_x: torque (N m; peak or RMS) per hand-tuned configuration and subject, shape (n_configs, n_subjects).
        config_y: final error (deg), same shape.
        policy_x, policy_y: the policy's torque (N m) and final error (deg) per subject, shape (n_subjects,);
            subject ``i`` is the same subject (and start) for every configuration and the policy.
        resamples: bootstrap resamples (subjects drawn with replacement, the same draw for all).
        seed: seed of the resampling.
        confidence: interval coverage (percentile interval).
    """
    cx, cy = np.atleast_2d(np.asarray(config_x, dtype=float)), np.atleast_2d(np.asarray(config_y, dtype=float))
    px, py = np.asarray(policy_x, dtype=float), np.asarray(policy_y, dtype=float)
    n = px.shape[0]
    if cx.shape != cy.shape or cx.shape[1] != n or py.shape != (n,):
        raise ValueError(f"shapes disagree: configs {cx.shape} / {cy.shape}, policy {px.shape} / {py.shape}")
    point = frontier_margins(np.nanmean(cx, axis=1), np.nanmean(cy, axis=1), float(np.nanmean(px)),
                             float(np.nanmean(py)))
    w = resample_weights(n, resamples, seed)
    mcx, mcy = weighted_means(cx, w), weighted_means(cy, w)  # (n_configs, B)
    mpx, mpy = weighted_means(px, w), weighted_means(py, w)  # (B,)
    xm, ym = np.empty(resamples), np.empty(resamples)
    x_out = y_out = 0
    for b in range(resamples):
        m = frontier_margins(mcx[:, b], mcy[:, b], float(mpx[b]), float(mpy[b]))
        xm[b], ym[b] = m.x_margin, m.y_margin_deg
        x_out += m.x_where != "inside"
        y_out += m.y_where != "inside"
    tail = 100.0 * (1.0 - confidence) / 2.0

    def interval(value: float, samples: np.ndarray) -> Interval:
        lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail])
        return Interval(float(value), float(lo), float(hi))

    return BootstrapMargins(point=point, x_margin=interval(point.x_margin, xm),
                            y_margin_deg=interval(point.y_margin_deg, ym), resamples=resamples,
                            x_outside_fraction=x_out / resamples, y_outside_fraction=y_out / resamples)


@dataclass(frozen=True)
class Verdict:
    """Whether a policy is strictly inside the frontier at one level, and why."""

    inside: bool
    peak_test: bool
    error_test: bool
    reason: str


def judge(margins: BootstrapMargins, target: Target) -> Verdict:
    """The target test on the (peak, final error) frontier's margins (module docstring)."""
    pm, em = margins.x_margin, margins.y_margin_deg
    peak_ok = pm.value >= target.peak_fraction and pm.excludes_zero_above()
    error_ok = em.value >= target.error_deg and em.excludes_zero_above()
    parts = [
        f"peak {100 * pm.value:+.1f} % [{100 * pm.low:+.1f}, {100 * pm.high:+.1f}] "
        f"({'meets' if peak_ok else 'misses'} >= {100 * target.peak_fraction:.0f} % with CI > 0)",
        f"error {em.value:+.2f} deg [{em.low:+.2f}, {em.high:+.2f}] "
        f"({'meets' if error_ok else 'misses'} >= {target.error_deg:g} deg with CI > 0)",
    ]
    return Verdict(inside=peak_ok or error_ok, peak_test=peak_ok, error_test=error_ok, reason="; ".join(parts))


def hypervolume(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, ref_x: float, ref_y: float) -> float:
    """Area (x units x y units) dominated by the points of (x, y) and bounded by the reference point (both minimised).

    The larger, the better the set trades x against y; points not below the reference in both add nothing.
    """
    idx = pareto_indices(x, y)
    xa, ya = np.asarray(x, dtype=float)[idx], np.asarray(y, dtype=float)[idx]
    keep = (xa < ref_x) & (ya < ref_y)
    xa, ya = xa[keep], ya[keep]
    if xa.size == 0:
        return 0.0
    right = np.append(xa[1:], ref_x)
    return float(np.sum((right - xa) * (ref_y - ya)))
