"""Ziegler–Nichols tuning of the PID baseline on the level-1 twin (closed-loop ultimate-gain method).

Procedure (what ``exo tune-pid`` runs and records):

1. **Plant.** A fixed level-1 subject: the level's nominal reflex parameters
   with the per-subject noise switched off (``subject_noise=False``), built by
   :func:`exo.twin.make_twin`; ``seed`` only seeds the twin's reset.
2. **P-only experiment** at gain ``kp`` (N m/rad), run as the controller runs
   in the task: ``u = clip(kp * (target - exo angle), +-torque limit)`` once
   per control step for ``duration_s`` (default 3 s), the knee released at
   rest at ``target + offset_rad`` (default 0.2 + 0.05 rad).
3. **Operating region.** The test runs around the task's target, where the PID
   has to hold the knee: without a bias a P loop settles at
   ``target + holding torque / kp`` (0.25-0.3 rad near Ku), on the rising
   slope of the level-1 reflex's extension-side threshold (10 deg flexion),
   which is what destabilises the loop. The reflex makes the plant nonlinear:
   above Ku the oscillation does not grow without bound but settles on a
   reflex limit cycle (clonus-like, 0.01-0.02 rad) until the loop diverges
   outright near 4 Ku (2400 N m/rad on the full twin), so the criterion below
   looks for the *onset* of sustained oscillation. Alternatives measured with
   this module: with the holding torque as a P bias (``hold_bias=True``,
   equilibrium exactly at the target) the limit cycle is present at every
   gain and Ku is undefined; at mid-swing (0.87 rad, reflex silent) the loop
   only goes unstable at the sampling limit (kp ~ 10^4 N m/rad, period of 2
   control steps), which says nothing about the task.
4. **Amplitude ratio.** After ``transient_s`` the exo angle's local extrema are
   found (sign changes of the first difference, plateaus merged); ``A_j`` =
   half the peak-to-peak swing between extrema ``j-1`` and ``j``; swings below
   ``amplitude_floor_rad`` end the record (the oscillation has died out), and
   so does the first saturated torque sample. The per-cycle ratio is
   ``r = exp(2 b)`` with ``b`` the least-squares slope of ``ln A_j`` over ``j``
   (two swings per cycle); fewer than ``min_swings`` swings count as decayed
   (``r = 0``, or ``inf`` if the torque saturated).
5. **Ultimate gain.** Criterion for a sustained oscillation:
   ``r >= sustained_ratio`` (default 0.99: less than 1 % decay per cycle,
   i.e. more than 70 cycles to halve, indistinguishable from constant over a
   test). ``kp`` is doubled from ``kp_start`` until the criterion holds
   (bracket), then bisected geometrically until ``kp_high / kp_low < 1 +
   rel_tol``; Ku is the geometric mean of the final bracket, whose two
   experiments (``r`` just below / at or above the threshold) are recorded
   with all the others.
6. **Ultimate period** Tu: twice the mean time between successive extrema in
   the bracket's upper experiment (the sustained one).
7. **Gains** (parallel PID ``u = Kp e + Ki int e dt + Kd de/dt``): classic ZN
   ``Kp = 0.6 Ku, Ki = 1.2 Ku / Tu, Kd = 0.075 Ku Tu`` and the "no overshoot"
   variant ``Kp = 0.2 Ku, Ki = 0.4 Ku / Tu, Kd = Ku Tu / 15``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from exo.twin.interface import KneeTwin

ZnRule = Literal["classic", "no_overshoot"]

#: (Kp/Ku, Ki*Tu/Ku, Kd/(Ku*Tu)) of each Ziegler–Nichols rule.
ZN_RULES: dict[str, tuple[float, float, float]] = {
    "classic": (0.6, 1.2, 0.075),
    "no_overshoot": (0.2, 0.4, 0.2 / 3.0),
}


@dataclass(frozen=True)
class PTrace:
    """Record of one P-only experiment (exo knee angle and applied torque per control step).

    Attributes:
        time_s: sample times, s.
        angle_rad: exo knee angle, rad.
        torque_nm: torque requested by the P controller, N m.
        torque_limit_nm: saturation of the motor, N m.
    """

    time_s: np.ndarray
    angle_rad: np.ndarray
    torque_nm: np.ndarray
    torque_limit_nm: float


@dataclass(frozen=True)
class OscillationAnalysis:
    """Growth and period of a P-only oscillation.

    Attributes:
        kp: proportional gain of the experiment, N m/rad.
        amplitude_ratio: per-cycle amplitude ratio r (1 = sustained).
        period_s: oscillation period, s (NaN with fewer than 2 extrema).
        n_swings: number of half-cycle swings used.
        saturated: the torque saturated (record cut at the first saturated sample).
        first_amplitude_rad: first swing's half peak-to-peak amplitude, rad.
    """

    kp: float
    amplitude_ratio: float
    period_s: float
    n_swings: int
    saturated: bool
    first_amplitude_rad: float


def analyse_oscillation(
    trace: PTrace,
    kp: float,
    transient_s: float = 0.2,
    amplitude_floor_rad: float = 1e-6,
    min_swings: int = 3,
) -> OscillationAnalysis:
    """Per-cycle amplitude ratio and period of a P-only trace (step 3 and 5 of the procedure)."""
    t, x = trace.time_s, trace.angle_rad
    start = int(np.searchsorted(t, t[0] + transient_s))
    saturated_at = np.flatnonzero(np.abs(trace.torque_nm) >= trace.torque_limit_nm * (1.0 - 1e-9))
    saturated = bool(saturated_at.size and saturated_at[-1] >= start)
    stop = len(t)
    if saturated_at.size:
        after = saturated_at[saturated_at >= start]
        if after.size:
            stop = int(after[0]) + 1
    t, x = t[start:stop], x[start:stop]
    moving = np.flatnonzero(np.diff(x) != 0.0)  # skip flat steps (a plateau is one extremum)
    sign = np.sign(np.diff(x)[moving])
    turning = moving[1:][sign[1:] * sign[:-1] < 0]  # indices of local extrema of x
    extrema_t, extrema_x = t[turning], x[turning]
    swings = np.abs(np.diff(extrema_x)) / 2.0
    significant = np.flatnonzero(swings < amplitude_floor_rad)
    n = int(significant[0]) if significant.size else swings.size
    swings = swings[:n]
    period = float(2.0 * np.mean(np.diff(extrema_t[: n + 1]))) if n >= 1 else math.nan
    if n < min_swings:
        ratio = 0.0 if not saturated else math.inf
    else:
        slope = float(np.polyfit(np.arange(n), np.log(swings), 1)[0])
        ratio = math.exp(2.0 * slope)
    return OscillationAnalysis(
        kp=float(kp),
        amplitude_ratio=ratio,
        period_s=period,
        n_swings=n,
        saturated=saturated,
        first_amplitude_rad=float(swings[0]) if n else 0.0,
    )


@dataclass
class UltimateGainSearch:
    """Outcome of the ultimate-gain search (step 4 and 5).

    Attributes:
        ku: ultimate gain, N m/rad.
        tu_s: ultimate period, s.
        bracket: (kp_low, kp_high) of the final bracket, N m/rad.
        experiments: every P-only experiment, in the order it ran.
    """

    ku: float
    tu_s: float
    bracket: tuple[float, float]
    experiments: list[OscillationAnalysis] = field(default_factory=list)


def find_ultimate_gain(
    experiment: Callable[[float], OscillationAnalysis],
    kp_start: float = 50.0,
    kp_max: float = 1e5,
    rel_tol: float = 0.01,
    sustained_ratio: float = 0.99,
) -> UltimateGainSearch:
    """Bracket and bisect kp (geometrically) for the onset of a sustained oscillation.

    Args:
        experiment: runs a P-only experiment at the given kp and analyses it.
        kp_start: first gain tried, N m/rad (must give a decaying response).
        kp_max: give up above this gain, N m/rad.
        rel_tol: stop when kp_high / kp_low < 1 + rel_tol.
        sustained_ratio: per-cycle amplitude ratio at or above which the
            oscillation counts as sustained.

    Raises:
        RuntimeError: no sustained oscillation up to ``kp_max``, or already at ``kp_start``.
    """
    runs: list[OscillationAnalysis] = []

    def run(kp: float) -> OscillationAnalysis:
        result = experiment(kp)
        runs.append(result)
        return result

    def sustained(result: OscillationAnalysis) -> bool:
        return result.amplitude_ratio >= sustained_ratio

    low = run(kp_start)
    if sustained(low):
        raise RuntimeError(f"kp_start={kp_start} N m/rad already oscillates (r={low.amplitude_ratio:.3f})")
    high = low
    while not sustained(high):
        if high.kp * 2.0 > kp_max:
            raise RuntimeError(f"no sustained oscillation up to kp={kp_max} N m/rad")
        low, high = high, run(high.kp * 2.0)
    while high.kp / low.kp >= 1.0 + rel_tol:
        middle = run(math.sqrt(low.kp * high.kp))
        if sustained(middle):
            high = middle
        else:
            low = middle
    return UltimateGainSearch(
        ku=math.sqrt(low.kp * high.kp), tu_s=high.period_s, bracket=(low.kp, high.kp), experiments=runs
    )


def zn_pid_gains(ku: float, tu_s: float, rule: ZnRule = "classic") -> dict[str, float]:
    """PID gains from the ultimate gain (N m/rad) and period (s): kp N m/rad, ki N m/(rad s), kd N m s/rad."""
    a, b, c = ZN_RULES[rule]
    return {"kp": a * ku, "ki": b * ku / tu_s, "kd": c * ku * tu_s}


def nominal_twin(twin_kind: str) -> KneeTwin:
    """A twin whose subjects are the level's nominal ones (no per-subject noise)."""
    from exo.twin import make_twin
    from exo.twin.config import load_twin_config

    return make_twin(twin_kind, config=load_twin_config().with_overrides(subject_noise=False))


def holding_torque_nm(
    twin: KneeTwin,
    level: int = 1,
    seed: int = 0,
    target_rad: float = 0.2,
    duration_s: float = 8.0,
    tolerance_rad: float = 2e-3,
) -> float:
    """Static torque that holds the exo knee at ``target_rad``, N m (the P experiment's bias).

    Found the way an operator does it before a ZN test: a conservative PID
    (kp 200 N m/rad, ki 400 N m/(rad s), kd 10 N m s/rad) holds the knee at the
    target for ``duration_s``; the mean torque of the last 0.5 s is returned.

    Raises:
        RuntimeError: the knee was not held within ``tolerance_rad`` of the target.
    """
    from exo.control.pid import PidController

    pid = PidController(
        kp=200.0, ki=400.0, kd=10.0, torque_limit_nm=twin.max_exo_torque_nm, dt=twin.control_timestep_s
    )
    state = twin.reset(level=level, seed=seed, initial_knee_angle_rad=target_rad)
    n = round(duration_s / twin.control_timestep_s)
    tail = max(1, round(0.5 / twin.control_timestep_s))
    torques, errors = np.empty(n), np.empty(n)
    for k in range(n):
        angle = state.measurements.exo_knee_angle_rad
        errors[k] = target_rad - angle
        torques[k] = pid.update(errors[k], angle)
        state = twin.step(torques[k])
    if np.max(np.abs(errors[-tail:])) > tolerance_rad:
        raise RuntimeError(
            f"could not hold the knee at {target_rad} rad (error {np.max(np.abs(errors[-tail:])):.4f} rad)"
        )
    return float(np.mean(torques[-tail:]))


def run_p_experiment(
    twin: KneeTwin,
    kp: float,
    level: int = 1,
    seed: int = 0,
    target_rad: float = 0.2,
    offset_rad: float = 0.05,
    duration_s: float = 3.0,
    bias_nm: float = 0.0,
) -> PTrace:
    """P-only control of the twin's exo knee around ``target_rad`` (step 1-2 of the procedure).

    The knee starts at rest at ``target_rad + offset_rad``; the torque is
    ``clip(bias_nm + kp * (target - exo angle))`` once per control step.
    """
    state = twin.reset(level=level, seed=seed, initial_knee_angle_rad=target_rad + offset_rad)
    limit = float(twin.max_exo_torque_nm)
    n = round(duration_s / twin.control_timestep_s)
    time_s, angle, torque = np.empty(n), np.empty(n), np.empty(n)
    for k in range(n):
        m = state.measurements
        u = float(np.clip(bias_nm + kp * (target_rad - m.exo_knee_angle_rad), -limit, limit))
        time_s[k], angle[k], torque[k] = m.time_s, m.exo_knee_angle_rad, u
        state = twin.step(u)
    return PTrace(time_s=time_s, angle_rad=angle, torque_nm=torque, torque_limit_nm=limit)


@dataclass
class ZieglerNicholsResult:
    """Everything ``exo tune-pid`` writes (JSON via :meth:`to_dict`); units in :meth:`to_dict`."""

    twin: str
    level: int
    seed: int
    target_rad: float
    offset_rad: float
    duration_s: float
    transient_s: float
    rel_tol: float
    sustained_ratio: float
    bias_nm: float
    ku: float
    tu_s: float
    bracket: tuple[float, float]
    experiments: list[OscillationAnalysis]
    gains: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["units"] = {
            "ku": "N m/rad",
            "tu_s": "s",
            "bias_nm": "N m",
            "kp": "N m/rad",
            "ki": "N m/(rad s)",
            "kd": "N m s/rad",
            "amplitude_ratio": "per cycle",
        }
        out["criterion"] = (
            "r = exp(2 * least-squares slope of ln(half peak-to-peak swing) per swing); sustained if "
            f"r >= {self.sustained_ratio}; Ku = geometric mean of the final bracket [kp_low (not sustained), "
            "kp_high (sustained)]; Tu = period at kp_high"
        )
        return out


def tune_on_twin(
    twin_kind: str = "reduced",
    level: int = 1,
    seed: int = 0,
    target_rad: float = 0.2,
    offset_rad: float = 0.05,
    duration_s: float = 3.0,
    transient_s: float = 0.2,
    kp_start: float = 50.0,
    rel_tol: float = 0.01,
    sustained_ratio: float = 0.99,
    hold_bias: bool = False,
    progress: Callable[[OscillationAnalysis], None] | None = None,
) -> ZieglerNicholsResult:
    """Run the whole procedure on a twin and return Ku, Tu, every experiment and both gain sets.

    ``hold_bias=True`` adds the holding torque at the target (:func:`holding_torque_nm`)
    to the P law, for the comparison described in the module docstring.
    """
    twin = nominal_twin(twin_kind)
    bias_nm = holding_torque_nm(twin, level, seed, target_rad) if hold_bias else 0.0

    def experiment(kp: float) -> OscillationAnalysis:
        trace = run_p_experiment(twin, kp, level, seed, target_rad, offset_rad, duration_s, bias_nm)
        result = analyse_oscillation(trace, kp, transient_s=transient_s)
        if progress is not None:
            progress(result)
        return result

    search = find_ultimate_gain(
        experiment, kp_start=kp_start, rel_tol=rel_tol, sustained_ratio=sustained_ratio
    )
    return ZieglerNicholsResult(
        twin=twin_kind,
        level=level,
        seed=seed,
        target_rad=target_rad,
        offset_rad=offset_rad,
        duration_s=duration_s,
        transient_s=transient_s,
        rel_tol=rel_tol,
        sustained_ratio=sustained_ratio,
        bias_nm=bias_nm,
        ku=search.ku,
        tu_s=search.tu_s,
        bracket=search.bracket,
        experiments=search.experiments,
        gains={rule: zn_pid_gains(search.ku, search.tu_s, rule) for rule in ZN_RULES},  # type: ignore[arg-type]
    )
