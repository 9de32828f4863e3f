"""Evaluate a controller on generated subjects of every spasticity level (the paper's protocol).

For each level and trial index a subject is generated from a seed derived from
(seed, level, trial) (:func:`subject_seed`), one knee-extension episode is run
in :class:`exo.envs.knee_extension.KneeExtensionEnv` with the controller in the
loop, and :mod:`exo.metrics` turns the episode into a
:class:`~exo.metrics.TrialMetrics`. Trials run as independent tasks of a
:class:`~exo.backends.Backend`: worker processes of this machine (``local``, the
default) or Ray tasks on a local instance or a cluster (``ray``); the result does
not depend on the backend or the number of workers.

Signals given to the metrics (ground truth from the env's ``info``, never seen
by the controller): time, the *human* knee angle (the task is the person's
knee extension; the exo angle differs by the strap misalignment), the task
target, the interaction torque on the human knee and the exo motor torque.
Sample 0 is the state after ``reset``; sample k the state after step k.

Protocol: every trial runs its full duration. The env's unsafe-state
termination (human knee outside ``safe_range_rad`` while the interaction
torque exceeds ``termination.interaction_torque_nm``, config/env.yaml) is a
training device: in evaluation the env is built with
``terminate_on_unsafe=False`` (:attr:`EvalConfig.terminate_on_unsafe`) and the
condition is *recorded* per trial instead (:class:`SafetyEvents`, from the
env's ``info["out_of_range"]`` / ``info["unsafe"]`` flags):

- ``unsafe_event``: the unsafe condition held at one sample or more;
- ``unsafe_time_s``: time of its first occurrence, s (NaN if none);
- ``unsafe_duration_s``: total time it held, s (flagged samples x sample period);
- ``out_of_range_s``: total time the human knee spent outside the safe range
  of motion, whatever the torque, s;
- ``max_range_excess_deg``: deepest excursion beyond that range, deg (0 if none).

Per level the summary gives the fraction of trials with an unsafe event (and
with any out-of-range excursion) and mean/median/std of the four numbers
(``unsafe_time_s`` over the trials that had an event). ``terminated`` is then
only set by a diverged simulation (or by the unsafe stop when
``terminate_on_unsafe=True`` reproduces the training env).

Any zero-argument callable returning a :class:`~exo.control.base.Controller`
is a controller factory (it must be picklable when ``workers > 1`` or on Ray);
:class:`exo.control.ControllerSpec` is the usual one.

Outputs (:func:`write_report`): ``summary.json``, ``trials.csv``,
``timeseries.npz`` and PNG plots in one folder.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from exo.backends import Backend, map_tasks
from exo.control.base import Controller
from exo.envs.config import load_env_config
from exo.metrics import METRIC_NAMES, SettlingMethod, TrialMetrics, compute_trial_metrics, summarize
from exo.records import git_info, json_safe, versions

ControllerFactory = Callable[[], Controller]

#: Signals recorded per step (all SI): what the metrics and plots use.
SIGNALS: tuple[str, ...] = (
    "time_s",
    "human_knee_angle_rad",
    "exo_knee_angle_rad",
    "target_rad",
    "exo_torque_nm",
    "interaction_torque_nm",
    "out_of_range",
    "unsafe",
)
"""Signals recorded per step; ``out_of_range`` and ``unsafe`` are the env's flags as 0.0/1.0."""

#: Numeric per-trial safety quantities of :class:`SafetyEvents` (summarised as mean/median/std).
SAFETY_NAMES: tuple[str, ...] = (
    "unsafe_time_s",
    "unsafe_duration_s",
    "out_of_range_s",
    "max_range_excess_deg",
)


@dataclass(frozen=True)
class SafetyEvents:
    """Unsafe-state and range-of-motion events of one trial (definitions in the module docstring).

    Attributes:
        unsafe_event: the unsafe condition (out of range with the interaction
            torque above the env's threshold) held at least once.
        unsafe_time_s: time of the first unsafe sample since the start, s (NaN if none).
        unsafe_duration_s: time the unsafe condition held, s.
        out_of_range_s: time the human knee spent outside the safe range, s.
        max_range_excess_deg: deepest excursion beyond the safe range, deg (0 if none).
    """

    unsafe_event: bool
    unsafe_time_s: float
    unsafe_duration_s: float
    out_of_range_s: float
    max_range_excess_deg: float

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def safety_events(
    time_s: np.ndarray,
    angle_rad: np.ndarray,
    out_of_range: np.ndarray,
    unsafe: np.ndarray,
    safe_range_rad: tuple[float, float],
) -> SafetyEvents:
    """:class:`SafetyEvents` of one trial from its per-sample signals and flags.

    Durations count flagged samples times the median sample period (each sample
    stands for one control period).
    """
    t = np.asarray(time_s, dtype=float)
    flags_unsafe = np.asarray(unsafe, dtype=bool)
    flags_out = np.asarray(out_of_range, dtype=bool)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    first = np.flatnonzero(flags_unsafe)
    lo, hi = safe_range_rad
    angle = np.asarray(angle_rad, dtype=float)
    excess = np.maximum(np.maximum(lo - angle, angle - hi), 0.0)
    return SafetyEvents(
        unsafe_event=bool(first.size),
        unsafe_time_s=round(float(t[first[0]] - t[0]), 9) if first.size else math.nan,
        unsafe_duration_s=round(float(np.count_nonzero(flags_unsafe)) * dt, 9),
        out_of_range_s=round(float(np.count_nonzero(flags_out)) * dt, 9),
        max_range_excess_deg=math.degrees(float(np.max(excess))) if excess.size else 0.0,
    )


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        twin: "reduced" or "full".
        levels: spasticity levels (MAS 0-3).
        trials: subjects per level.
        seed: master seed; subject seeds derive from (seed, level, trial).
        workers: worker processes (1 = run in this process) of the default local backend
            (:func:`evaluate`'s ``backend`` argument chooses another).
        max_steps: control steps per trial (None = the env's episode length).
        timeseries_per_level: trials per level whose time series are kept.
        settling_method: "band" (2 % band) or "rolling_std" (research code), see :mod:`exo.metrics`.
        env_kwargs: extra keyword arguments of the env (a ``terminate_on_unsafe`` entry
            here wins over the field below).
        terminate_on_unsafe: stop a trial at the env's unsafe state, as in training.
            False (the protocol): full-length trials, unsafe events recorded.
    """

    twin: str = "reduced"
    levels: tuple[int, ...] = (0, 1, 2, 3)
    trials: int = 10
    seed: int = 0
    workers: int = 2
    max_steps: int | None = None
    timeseries_per_level: int = 3
    settling_method: SettlingMethod = "band"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    terminate_on_unsafe: bool = False

    def env_options(self) -> dict[str, Any]:
        """Keyword arguments of the env: ``terminate_on_unsafe`` and then ``env_kwargs``."""
        return {"terminate_on_unsafe": self.terminate_on_unsafe, **self.env_kwargs}


@dataclass
class TrialResult:
    """One trial: where it came from, its metrics, safety events and (optionally) its time series."""

    level: int
    trial: int
    subject_seed: int
    steps: int
    terminated: bool
    metrics: TrialMetrics
    safety: SafetyEvents
    timeseries: dict[str, np.ndarray] | None = None

    def row(self) -> dict[str, Any]:
        """Flat CSV row."""
        return {
            "level": self.level,
            "trial": self.trial,
            "subject_seed": self.subject_seed,
            "steps": self.steps,
            "terminated": self.terminated,
            **self.metrics.to_dict(),
            **self.safety.to_dict(),
        }


@dataclass
class EvalReport:
    """Results of :func:`evaluate`: trials sorted by (level, trial) and per-level summaries."""

    config: EvalConfig
    controller_name: str
    controller_params: dict[str, Any]
    trials: list[TrialResult]
    safety_definition: dict[str, Any] = field(default_factory=dict)

    def levels_summary(self) -> dict[str, dict[str, Any]]:
        """``{level: summarize(trials of that level)}`` plus termination and safety-event summaries.

        Added per level: ``terminated``, ``unsafe`` (trials with an unsafe event) and
        ``out_of_range`` (trials with any excursion beyond the safe range) as
        ``{"fraction", "count"}``, and mean/median/std/count of :data:`SAFETY_NAMES`
        over their finite values (``unsafe_time_s``: trials with an event only).
        """
        out: dict[str, dict[str, Any]] = {}
        for level in self.config.levels:
            trials = [t for t in self.trials if t.level == level]
            summary: dict[str, Any] = summarize([t.metrics for t in trials])
            for name, flags in (
                ("terminated", [t.terminated for t in trials]),
                ("unsafe", [t.safety.unsafe_event for t in trials]),
                ("out_of_range", [t.safety.out_of_range_s > 0.0 for t in trials]),
            ):
                summary[name] = {
                    "fraction": float(np.mean(flags)) if flags else math.nan,
                    "count": len(flags),
                }
            for name in SAFETY_NAMES:
                summary[name] = _stats([getattr(t.safety, name) for t in trials])
            out[str(level)] = summary
        return out


def _stats(values: Sequence[float]) -> dict[str, float | int]:
    """mean / median / std (ddof=1, 0 for one value) / count over the finite values."""
    a = np.asarray(values, dtype=float)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "count": 0}
    return {
        "mean": float(np.mean(finite)),
        "median": float(np.median(finite)),
        "std": float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0,
        "count": int(finite.size),
    }


def subject_seed(seed: int, level: int, trial: int) -> int:
    """Seed of the subject of (master seed, level, trial index): independent streams, 32-bit."""
    return int(np.random.SeedSequence([seed, level, trial]).generate_state(1)[0])


# Envs are reused across trials within a process (building a MuJoCo model is the slow part).
_ENV_CACHE: dict[tuple[str, int, str], Any] = {}


def _make_env(twin: str, level: int, env_kwargs: dict[str, Any]) -> Any:
    key = (twin, level, json.dumps(env_kwargs, sort_keys=True, default=str))
    if key not in _ENV_CACHE:
        from exo.envs.knee_extension import KneeExtensionEnv

        _ENV_CACHE[key] = KneeExtensionEnv(twin=twin, level=level, **env_kwargs)
    return _ENV_CACHE[key]


def _signals(info: dict[str, Any]) -> dict[str, float]:
    """The recorded signals of one env ``info`` dict (the env's ground truth, measurements, flags)."""
    return {
        "time_s": float(info["time_s"]),
        "human_knee_angle_rad": float(info["human_knee_angle_rad"]),
        "exo_knee_angle_rad": float(info["measurements"].exo_knee_angle_rad),
        "target_rad": float(info["target_knee_angle_rad"]),
        "exo_torque_nm": float(info["exo_torque_nm"]),
        "interaction_torque_nm": float(info["interaction_torque_nm"]),
        "out_of_range": float(bool(info["out_of_range"])),
        "unsafe": float(bool(info["unsafe"])),
    }


def run_trial(
    controller_factory: ControllerFactory,
    twin: str,
    level: int,
    trial: int,
    seed: int,
    max_steps: int | None = None,
    keep_timeseries: bool = False,
    settling_method: SettlingMethod = "band",
    env_kwargs: dict[str, Any] | None = None,
) -> TrialResult:
    """Run one episode with a fresh controller on subject ``subject_seed(seed, level, trial)``.

    ``env_kwargs`` go to the env as they are; without a ``terminate_on_unsafe``
    entry the trial runs its full length (the evaluation protocol).
    """
    env = _make_env(twin, level, {"terminate_on_unsafe": False, **(env_kwargs or {})})
    controller = controller_factory()
    controller.reset()
    s_seed = subject_seed(seed, level, trial)
    obs, info = env.reset(seed=s_seed)
    max_torque_nm = float(env.twin.max_exo_torque_nm)
    rows = [_signals(info)]
    steps, terminated = 0, False
    while True:
        torque_nm = controller.act(obs)
        action = np.array([np.clip(torque_nm / max_torque_nm, -1.0, 1.0)], dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        rows.append(_signals(info))
        steps += 1
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            break
    series = {name: np.array([r[name] for r in rows]) for name in SIGNALS}
    metrics = compute_trial_metrics(
        series["time_s"],
        series["human_knee_angle_rad"],
        series["target_rad"],
        series["interaction_torque_nm"],
        series["exo_torque_nm"],
        settling_method=settling_method,
    )
    safety = safety_events(
        series["time_s"],
        series["human_knee_angle_rad"],
        series["out_of_range"],
        series["unsafe"],
        tuple(env.config.safe_range_rad),  # type: ignore[arg-type]
    )
    return TrialResult(
        level=level,
        trial=trial,
        subject_seed=s_seed,
        steps=steps,
        terminated=bool(terminated),
        metrics=metrics,
        safety=safety,
        timeseries=series if keep_timeseries else None,
    )


def _run_task(args: tuple[Any, ...]) -> TrialResult:
    return run_trial(*args)


def evaluate(
    controller_factory: ControllerFactory,
    config: EvalConfig,
    progress: Callable[[int, int], None] | None = None,
    backend: Backend | None = None,
) -> EvalReport:
    """Run ``config.trials`` trials per level as independent tasks of ``backend``.

    Args:
        controller_factory: builds a fresh controller per trial (picklable if workers > 1 or on Ray).
        config: what to run.
        progress: called as ``progress(done, total)`` after every trial.
        backend: where the trials run (default: ``config.workers`` local processes); the
            report is the same on every backend.
    """
    tasks = [
        (
            controller_factory,
            config.twin,
            level,
            trial,
            config.seed,
            config.max_steps,
            trial < config.timeseries_per_level,
            config.settling_method,
            config.env_options(),
        )
        for level in config.levels
        for trial in range(config.trials)
    ]
    done = 0

    def on_result(_: int, __: TrialResult) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(tasks))

    results: list[TrialResult] = map_tasks(_run_task, tasks, backend or Backend(workers=config.workers), on_result)
    results.sort(key=lambda r: (r.level, r.trial))
    probe = controller_factory()
    params_fn = getattr(probe, "params", None)
    return EvalReport(
        config=config,
        controller_name=str(getattr(probe, "name", type(probe).__name__)),
        controller_params=dict(params_fn()) if callable(params_fn) else {},
        trials=results,
        safety_definition=safety_definition(config),
    )


def safety_definition(config: EvalConfig) -> dict[str, Any]:
    """How trials end and what counts as unsafe (recorded in summary.json)."""
    options = config.env_options()
    overrides = {k: v for k, v in options.items() if k not in ("terminate_on_unsafe", "twin_overrides", "config")}
    env_cfg = options.get("config") or load_env_config()
    env_cfg = env_cfg.with_overrides(**overrides) if overrides else env_cfg
    return {
        "terminate_on_unsafe": bool(options["terminate_on_unsafe"]),
        "safe_range_rad": list(env_cfg.safe_range_rad),
        "interaction_threshold_nm": float(env_cfg.termination_interaction_nm),
        "unsafe": "human knee outside safe_range_rad while |interaction torque| > interaction_threshold_nm",
        "trial_length": "full episode (control_steps) unless terminate_on_unsafe or the simulation diverged",
    }


def summary_document(report: EvalReport, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of summary.json."""
    return json_safe(
        {
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "git": git_info(),
            "versions": versions(),
            "twin": report.config.twin,
            "parameters": asdict(report.config),
            "controller": {"name": report.controller_name, "params": report.controller_params},
            "metrics": {
                "definitions": "exo.metrics module docstring",
                "settling_method": report.config.settling_method,
                "angle": "human knee angle (ground truth)",
                "stats": "mean/median/std (ddof=1)/count over finite per-trial values",
            },
            "protocol": report.safety_definition,
            "levels": report.levels_summary(),
            **(extra or {}),
        }
    )


def write_report(report: EvalReport, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write summary.json, trials.csv, timeseries.npz and the plots into ``out_dir``; return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary_document(report, extra), indent=2, allow_nan=False))

    rows = [t.row() for t in report.trials]
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["level", "trial"])
        writer.writeheader()
        writer.writerows(rows)

    np.savez_compressed(out / "timeseries.npz", **_timeseries_arrays(report.trials))
    plot_report(report, out)
    return out


def _timeseries_arrays(trials: Sequence[TrialResult]) -> dict[str, np.ndarray]:
    """``level{L}_{signal}``: (n_trials, n_samples) arrays padded with NaN; ``level{L}_trial``: trial indices."""
    arrays: dict[str, np.ndarray] = {}
    for level in sorted({t.level for t in trials if t.timeseries is not None}):
        kept = [t for t in trials if t.level == level and t.timeseries is not None]
        length = max(len(t.timeseries["time_s"]) for t in kept)  # type: ignore[index]
        arrays[f"level{level}_trial"] = np.array([t.trial for t in kept])
        arrays[f"level{level}_subject_seed"] = np.array([t.subject_seed for t in kept], dtype=np.int64)
        for name in SIGNALS:
            stacked = np.full((len(kept), length), np.nan)
            for i, t in enumerate(kept):
                values = t.timeseries[name]  # type: ignore[index]
                stacked[i, : len(values)] = values
            arrays[f"level{level}_{name}"] = stacked
    return arrays


def plot_report(report: EvalReport, out_dir: Path) -> list[Path]:
    """timeseries.png (angle error, exo torque, interaction torque per level) and boxplots.png.

    timeseries.png: the kept trials of each level; dashed red lines mark the safe
    range of motion (angle error panel) and the interaction threshold (torque
    panel) of the unsafe condition; an ``x`` marks a trial's first unsafe sample.
    boxplots.png: the metrics per level, the time out of range, and the fraction
    of trials with an unsafe event.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    levels = list(report.config.levels)
    title = f"{report.controller_name} on the {report.config.twin} twin"
    safe_range = report.safety_definition.get("safe_range_rad")
    threshold = report.safety_definition.get("interaction_threshold_nm")

    fig, axes = plt.subplots(3, len(levels), figsize=(3.6 * len(levels), 7.5), sharex=True, squeeze=False)
    rows = (
        ("angle error (deg)", lambda s: np.degrees(s["human_knee_angle_rad"] - s["target_rad"])),
        ("exo torque (N m)", lambda s: s["exo_torque_nm"]),
        ("interaction torque (N m)", lambda s: s["interaction_torque_nm"]),
    )
    for col, level in enumerate(levels):
        kept = [t for t in report.trials if t.level == level and t.timeseries is not None]
        for row, (label, signal) in enumerate(rows):
            ax = axes[row][col]
            for t in kept:
                series = t.timeseries
                assert series is not None
                values = signal(series)
                (line,) = ax.plot(series["time_s"], values, lw=1.0, label=f"trial {t.trial}")
                unsafe = np.flatnonzero(series["unsafe"] > 0.5)
                if unsafe.size:
                    k = int(unsafe[0])
                    ax.plot(series["time_s"][k], values[k], "x", color=line.get_color(), ms=7, mew=1.5)
            ax.axhline(0.0, color="0.6", lw=0.6)
            if row == 0 and safe_range and kept:
                target = float(kept[0].timeseries["target_rad"][0])  # type: ignore[index]
                for bound in safe_range:
                    ax.axhline(math.degrees(bound - target), color="tab:red", lw=0.8, ls="--")
            if row == 2 and threshold is not None:
                for sign in (-1.0, 1.0):
                    ax.axhline(sign * threshold, color="tab:red", lw=0.8, ls="--")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"level {level}")
            if row == 2:
                ax.set_xlabel("time (s)")
    fig.suptitle(f"{title}\ndashed red: safe range / interaction threshold; x: first unsafe sample", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "timeseries.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    labels = []
    for level in levels:
        trials = [t for t in report.trials if t.level == level]
        unsafe = sum(t.safety.unsafe_event for t in trials)
        stopped = sum(t.terminated for t in trials)
        label = f"{level}\n({unsafe}/{len(trials)})"
        labels.append(label + f"\n{stopped} stopped" if stopped else label)
    panels: list[tuple[str, str]] = [("metrics", name) for name in METRIC_NAMES]
    panels.append(("safety", "out_of_range_s"))
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5), squeeze=False)
    for ax, (source, name) in zip(axes.flat, panels, strict=False):
        data = []
        for level in levels:
            values = np.array(
                [getattr(getattr(t, source), name) for t in report.trials if t.level == level], dtype=float
            )
            data.append(values[np.isfinite(values)])
        ax.boxplot(data, tick_labels=labels)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    ax = axes.flat[len(panels)]
    fractions = [
        float(np.mean([t.safety.unsafe_event for t in report.trials if t.level == level] or [math.nan]))
        for level in levels
    ]
    ax.bar(range(1, len(levels) + 1), fractions, color="tab:red", alpha=0.7)
    ax.set_xticks(range(1, len(levels) + 1), labels)
    ax.set_ylim(0.0, 1.05)
    ax.set_title("fraction of trials with an unsafe event")
    ax.grid(alpha=0.3)
    fig.suptitle(
        f"{title}: level (trials with an unsafe event / trials); unsafe = knee out of the safe range "
        "while the interaction torque exceeds the threshold",
        fontsize=10,
    )
    fig.tight_layout()
    paths.append(out_dir / "boxplots.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
