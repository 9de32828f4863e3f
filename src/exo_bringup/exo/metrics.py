"""Per-trial metrics of a knee-extension trial, computed from plain arrays.

Used by the evaluator (:mod:`exo.evaluate`) on simulated trials and by the bag
analysis on recorded ones, so the inputs are plain, uniformly sampled arrays in
SI units and nothing here knows about MuJoCo, gymnasium or ROS.

Inputs (all 1-D, same length ``N >= 2``, finite; a NaN or inf raises ``ValueError``):

- ``time_s``: sample times, s, strictly increasing. Samples are treated as
  uniformly spaced (means are sample means); resample irregular recordings first.
  ``dt`` below is the median sample spacing.
- ``angle_rad``: knee angle, rad (+ = flexion).
- ``target_rad``: commanded knee angle, rad (scalar or per-sample array).
- ``interaction_torque_nm``: torque the straps transmit to the human knee, N m.
- ``exo_torque_nm``: torque applied by the exo motor, N m.

Definitions (``theta`` = angle, ``theta_0`` = angle[0], ``theta*`` = target[-1]):

- Final window: the last ``n_f = max(1, round(final_window_s / dt))`` samples
  (default ``final_window_s`` = 0.5 s, i.e. 50 samples at 100 Hz).
- Step size ``S = |theta* - theta_0|`` (must be > 0) and step direction
  ``s = sign(theta* - theta_0)`` (-1 for the extension task: 1.544 -> 0.2 rad).
- ``settling_time_s`` (default method ``"band"``, the 2 % band of classical
  control): the final value ``theta_f`` is the mean angle over the final window;
  the band half-width is ``band_fraction * S`` (default 0.02); the settling index
  ``k`` is the first sample after which every sample satisfies
  ``|theta - theta_f| <= band``; settling time = ``time[k] - time[0]``. The
  trial counts as *settled* only if ``k`` lies at or before the first sample of
  the final window (the response stayed in the band for the whole window that
  defines the final value); otherwise ``settled = False`` and
  ``settling_time_s = NaN``. Note the band is around the *final value*, not the
  target: a response that stops 10 deg short of the target can settle (the
  final error reports the miss).
- ``settling_time_s`` with method ``"rolling_std"`` (the research code's
  variant): ``W = max(2, round(rolling_window_s / dt))`` samples (default 0.5 s);
  ``sigma[i]`` = population standard deviation of ``theta - target`` over the
  forward window ``i .. i+W-1`` (defined for ``i <= N-W``); ``k`` is the first
  index after which ``sigma[i] <= rolling_std_threshold_rad`` (default 0.02 rad)
  for every ``i >= k``; settled iff such ``k`` exists, settling time
  ``time[k] - time[0]``. (The research code used 500 samples; a window in
  seconds keeps the definition independent of the sampling rate.)
- ``rms_torque_nm``: ``sqrt(mean(tau_int[0..k]**2))`` over samples 0 to the
  settling index ``k`` inclusive; if the trial never settled, over the whole
  trial and ``rms_to_end = True``.
- ``peak_torque_nm``: ``max |tau_int|`` over the whole trial.
- ``final_error_deg``: ``mean |theta - target|`` over the final window, in degrees.
- ``overshoot_deg``: ``max(0, max_t s * (theta - target))`` in degrees: the
  largest excursion past the target in the step direction (extension for the
  task), 0 if the response never passes the target.
- ``torque_rate_rms_nm_s`` (smoothness): RMS of the exo-torque first difference
  per second, ``sqrt(mean((diff(tau_exo) / diff(time))**2))``, N m/s. Lower is
  smoother; a constant torque gives 0.

:func:`summarize` reduces many trials to mean / median / std / count per metric
over the finite values (std is the sample standard deviation, ``ddof=1``, and 0
for a single value); boolean flags are reported as fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

SettlingMethod = Literal["band", "rolling_std"]

#: Numeric metrics of :class:`TrialMetrics`, in the order they are reported.
METRIC_NAMES: tuple[str, ...] = (
    "settling_time_s",
    "rms_torque_nm",
    "peak_torque_nm",
    "final_error_deg",
    "overshoot_deg",
    "torque_rate_rms_nm_s",
)

#: Boolean flags of :class:`TrialMetrics` (summarised as fractions).
FLAG_NAMES: tuple[str, ...] = ("settled", "rms_to_end")


@dataclass(frozen=True)
class TrialMetrics:
    """Metrics of one trial (definitions in the module docstring).

    Attributes:
        settling_time_s: settling time, s (NaN if the trial never settled).
        rms_torque_nm: RMS interaction torque from start to settling (to the end if
            never settled), N m.
        peak_torque_nm: peak absolute interaction torque, N m.
        final_error_deg: mean absolute angle error over the final window, deg.
        overshoot_deg: largest excursion past the target in the step direction, deg.
        torque_rate_rms_nm_s: RMS rate of change of the exo torque, N m/s.
        settled: whether the response settled.
        rms_to_end: True when ``rms_torque_nm`` covers the whole trial because it
            never settled.
    """

    settling_time_s: float
    rms_torque_nm: float
    peak_torque_nm: float
    final_error_deg: float
    overshoot_deg: float
    torque_rate_rms_nm_s: float
    settled: bool
    rms_to_end: bool

    def to_dict(self) -> dict[str, float | bool]:
        """Plain dict (JSON/CSV friendly; NaN stays NaN)."""
        return asdict(self)


def _as_1d(name: str, x: np.ndarray | Sequence[float], n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} samples, expected {n}")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN/inf)")
    return a


def _validate_time(time_s: np.ndarray | Sequence[float]) -> np.ndarray:
    t = _as_1d("time_s", time_s)
    if t.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {t.shape[0]}")
    if np.any(np.diff(t) <= 0.0):
        raise ValueError("time_s must be strictly increasing")
    return t


def _target_array(target_rad: float | np.ndarray | Sequence[float], n: int) -> np.ndarray:
    if np.ndim(target_rad) == 0:
        value = float(target_rad)  # type: ignore[arg-type]
        if not math.isfinite(value):
            raise ValueError("target_rad is not finite")
        return np.full(n, value)
    return _as_1d("target_rad", target_rad, n)


def sample_period_s(time_s: np.ndarray) -> float:
    """Median sample spacing of ``time_s``, s."""
    return float(np.median(np.diff(time_s)))


def window_samples(time_s: np.ndarray, window_s: float, minimum: int = 1) -> int:
    """Number of samples spanning ``window_s`` seconds (at least ``minimum``, at most all)."""
    if window_s <= 0.0:
        raise ValueError(f"window must be positive, got {window_s} s")
    n = max(minimum, round(window_s / sample_period_s(time_s)))
    return min(n, time_s.shape[0])


def settling_index_band(angle_rad: np.ndarray, band_rad: float, final_window_samples: int) -> int | None:
    """First index after which ``|angle - final value| <= band_rad`` holds to the end.

    The final value is the mean over the last ``final_window_samples`` samples.
    Returns None when the response left the band inside the final window.
    """
    n = angle_rad.shape[0]
    final_value = float(np.mean(angle_rad[n - final_window_samples :]))
    outside = np.flatnonzero(np.abs(angle_rad - final_value) > band_rad)
    k = 0 if outside.size == 0 else int(outside[-1]) + 1
    return k if k <= n - final_window_samples else None


def settling_index_rolling_std(error_rad: np.ndarray, window: int, threshold_rad: float) -> int | None:
    """First index after which the forward rolling std of the error stays <= threshold.

    ``sigma[i] = std(error[i : i + window])`` (population std) for
    ``i = 0 .. N - window``. Returns None if ``sigma`` of the last window exceeds
    the threshold.
    """
    if window < 2 or window > error_rad.shape[0]:
        raise ValueError(f"rolling window of {window} samples does not fit {error_rad.shape[0]} samples")
    views = np.lib.stride_tricks.sliding_window_view(error_rad, window)
    sigma = views.std(axis=1)
    above = np.flatnonzero(sigma > threshold_rad)
    k = 0 if above.size == 0 else int(above[-1]) + 1
    return k if k < sigma.shape[0] else None


def settling_time_s(
    time_s: np.ndarray | Sequence[float],
    angle_rad: np.ndarray | Sequence[float],
    target_rad: float | np.ndarray | Sequence[float],
    method: SettlingMethod = "band",
    band_fraction: float = 0.02,
    final_window_s: float = 0.5,
    rolling_window_s: float = 0.5,
    rolling_std_threshold_rad: float = 0.02,
) -> float:
    """Settling time in s (NaN if never settled); definitions in the module docstring."""
    t = _validate_time(time_s)
    theta = _as_1d("angle_rad", angle_rad, t.shape[0])
    target = _target_array(target_rad, t.shape[0])
    k = _settling_index(
        t, theta, target, method, band_fraction, final_window_s, rolling_window_s, rolling_std_threshold_rad
    )
    return math.nan if k is None else float(t[k] - t[0])


def _settling_index(
    t: np.ndarray,
    theta: np.ndarray,
    target: np.ndarray,
    method: SettlingMethod,
    band_fraction: float,
    final_window_s: float,
    rolling_window_s: float,
    rolling_std_threshold_rad: float,
) -> int | None:
    if method == "band":
        step_rad = abs(float(target[-1] - theta[0]))
        if step_rad <= 0.0:
            raise ValueError("commanded step |target - start| is zero: the 2 % band is undefined")
        return settling_index_band(theta, band_fraction * step_rad, window_samples(t, final_window_s))
    if method == "rolling_std":
        window = window_samples(t, rolling_window_s, minimum=2)
        return settling_index_rolling_std(theta - target, window, rolling_std_threshold_rad)
    raise ValueError(f"unknown settling method {method!r} (use 'band' or 'rolling_std')")


def rms(x: np.ndarray) -> float:
    """Root mean square of the samples of ``x`` (same unit as ``x``)."""
    return float(np.sqrt(np.mean(np.square(x))))


def compute_trial_metrics(
    time_s: np.ndarray | Sequence[float],
    angle_rad: np.ndarray | Sequence[float],
    target_rad: float | np.ndarray | Sequence[float],
    interaction_torque_nm: np.ndarray | Sequence[float],
    exo_torque_nm: np.ndarray | Sequence[float],
    *,
    settling_method: SettlingMethod = "band",
    band_fraction: float = 0.02,
    final_window_s: float = 0.5,
    rolling_window_s: float = 0.5,
    rolling_std_threshold_rad: float = 0.02,
) -> TrialMetrics:
    """All metrics of one trial (definitions and units in the module docstring).

    Raises:
        ValueError: non-finite input, mismatched lengths, fewer than 2 samples,
            non-increasing time, or a zero commanded step (band method).
    """
    t = _validate_time(time_s)
    n = t.shape[0]
    theta = _as_1d("angle_rad", angle_rad, n)
    target = _target_array(target_rad, n)
    tau_int = _as_1d("interaction_torque_nm", interaction_torque_nm, n)
    tau_exo = _as_1d("exo_torque_nm", exo_torque_nm, n)

    k = _settling_index(
        t,
        theta,
        target,
        settling_method,
        band_fraction,
        final_window_s,
        rolling_window_s,
        rolling_std_threshold_rad,
    )
    settled = k is not None
    n_final = window_samples(t, final_window_s)
    error = theta - target
    direction = math.copysign(1.0, float(target[-1] - theta[0]))

    return TrialMetrics(
        settling_time_s=float(t[k] - t[0]) if settled else math.nan,
        rms_torque_nm=rms(tau_int[: k + 1] if settled else tau_int),
        peak_torque_nm=float(np.max(np.abs(tau_int))),
        final_error_deg=math.degrees(float(np.mean(np.abs(error[n - n_final :])))),
        overshoot_deg=math.degrees(max(0.0, float(np.max(direction * error)))),
        torque_rate_rms_nm_s=rms(np.diff(tau_exo) / np.diff(t)),
        settled=settled,
        rms_to_end=not settled,
    )


def _stats(values: np.ndarray) -> dict[str, float | int]:
    finite = values[np.isfinite(values)]
    count = int(finite.size)
    if count == 0:
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "count": 0}
    return {
        "mean": float(np.mean(finite)),
        "median": float(np.median(finite)),
        "std": float(np.std(finite, ddof=1)) if count > 1 else 0.0,
        "count": count,
    }


def summarize(trials: Sequence[TrialMetrics]) -> dict[str, dict[str, float | int]]:
    """Mean / median / std / count of every metric over ``trials``.

    Numeric metrics use only their finite values (``count`` says how many; e.g.
    ``settling_time_s`` counts settled trials); flags become
    ``{"fraction": ..., "count": n_trials}``. Keys are :data:`METRIC_NAMES` and
    :data:`FLAG_NAMES`, plus ``"trials": {"count": n_trials}``.
    """
    summary: dict[str, dict[str, float | int]] = {"trials": {"count": len(trials)}}
    for name in METRIC_NAMES:
        summary[name] = _stats(np.array([getattr(m, name) for m in trials], dtype=float))
    for name in FLAG_NAMES:
        flags = [bool(getattr(m, name)) for m in trials]
        summary[name] = {"fraction": float(np.mean(flags)) if flags else math.nan, "count": len(flags)}
    return summary
