"""Evaluate a controller on generated subjects of every spasticity level (the paper's protocol).

For each level and trial index a subject is generated from a seed derived from
(seed, level, trial) (:func:`subject_seed`), one knee-extension episode is run
in :class:`exo.envs.knee_extension.KneeExtensionEnv` with the controller in the
loop, and :mod:`exo.metrics` turns the episode into a
:class:`~exo.metrics.TrialMetrics`. Trials run in worker processes; the result
does not depend on the number of workers.

Signals given to the metrics (ground truth from the env's ``info``, never seen
by the controller): time, the *human* knee angle (the task is the person's
knee extension; the exo angle differs by the strap misalignment), the task
target, the interaction torque on the human knee and the exo motor torque.
Sample 0 is the state after ``reset``; sample k the state after step k.

Any zero-argument callable returning a :class:`~exo.control.base.Controller`
is a controller factory (it must be picklable when ``workers > 1``);
:class:`exo.control.ControllerSpec` is the usual one.

Outputs (:func:`write_report`): ``summary.json``, ``trials.csv``,
``timeseries.npz`` and PNG plots in one folder.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from exo.control.base import Controller
from exo.metrics import METRIC_NAMES, SettlingMethod, TrialMetrics, compute_trial_metrics, summarize

ControllerFactory = Callable[[], Controller]

#: Signals recorded per step (all SI): what the metrics and plots use.
SIGNALS: tuple[str, ...] = (
    "time_s",
    "human_knee_angle_rad",
    "exo_knee_angle_rad",
    "target_rad",
    "exo_torque_nm",
    "interaction_torque_nm",
)


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
        twin: "reduced" or "full".
        levels: spasticity levels (MAS 0-3).
        trials: subjects per level.
        seed: master seed; subject seeds derive from (seed, level, trial).
        workers: worker processes (1 = run in this process).
        max_steps: control steps per trial (None = the env's episode length).
        timeseries_per_level: trials per level whose time series are kept.
        settling_method: "band" (2 % band) or "rolling_std" (research code), see :mod:`exo.metrics`.
        env_kwargs: extra keyword arguments of the env.
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


@dataclass
class TrialResult:
    """One trial: where it came from, its metrics and (optionally) its time series."""

    level: int
    trial: int
    subject_seed: int
    steps: int
    terminated: bool
    metrics: TrialMetrics
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
        }


@dataclass
class EvalReport:
    """Results of :func:`evaluate`: trials sorted by (level, trial) and per-level summaries."""

    config: EvalConfig
    controller_name: str
    controller_params: dict[str, Any]
    trials: list[TrialResult]

    def levels_summary(self) -> dict[str, dict[str, Any]]:
        """``{level: summarize(trials of that level)}`` plus the termination fraction."""
        out: dict[str, dict[str, Any]] = {}
        for level in self.config.levels:
            trials = [t for t in self.trials if t.level == level]
            summary: dict[str, Any] = summarize([t.metrics for t in trials])
            summary["terminated"] = {
                "fraction": float(np.mean([t.terminated for t in trials])) if trials else math.nan,
                "count": len(trials),
            }
            out[str(level)] = summary
        return out


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
    """The recorded signals of one env ``info`` dict (the env's ground truth and measurements)."""
    return {
        "time_s": float(info["time_s"]),
        "human_knee_angle_rad": float(info["human_knee_angle_rad"]),
        "exo_knee_angle_rad": float(info["measurements"].exo_knee_angle_rad),
        "target_rad": float(info["target_knee_angle_rad"]),
        "exo_torque_nm": float(info["exo_torque_nm"]),
        "interaction_torque_nm": float(info["interaction_torque_nm"]),
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
    """Run one episode with a fresh controller on subject ``subject_seed(seed, level, trial)``."""
    env = _make_env(twin, level, env_kwargs or {})
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
    return TrialResult(
        level=level,
        trial=trial,
        subject_seed=s_seed,
        steps=steps,
        terminated=bool(terminated),
        metrics=metrics,
        timeseries=series if keep_timeseries else None,
    )


def _run_task(args: tuple[Any, ...]) -> TrialResult:
    return run_trial(*args)


def evaluate(
    controller_factory: ControllerFactory,
    config: EvalConfig,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run ``config.trials`` trials per level with ``config.workers`` processes.

    Args:
        controller_factory: builds a fresh controller per trial (picklable if workers > 1).
        config: what to run.
        progress: called as ``progress(done, total)`` after every trial.
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
            config.env_kwargs,
        )
        for level in config.levels
        for trial in range(config.trials)
    ]
    results: list[TrialResult] = []
    if config.workers <= 1:
        for task in tasks:
            results.append(_run_task(task))
            if progress:
                progress(len(results), len(tasks))
    else:
        # spawn: workers start clean (no inherited MuJoCo/torch/OpenMP state).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=context) as pool:
            futures = [pool.submit(_run_task, task) for task in tasks]
            for future in as_completed(futures):
                results.append(future.result())
                if progress:
                    progress(len(results), len(tasks))
    results.sort(key=lambda r: (r.level, r.trial))
    probe = controller_factory()
    params_fn = getattr(probe, "params", None)
    return EvalReport(
        config=config,
        controller_name=str(getattr(probe, "name", type(probe).__name__)),
        controller_params=dict(params_fn()) if callable(params_fn) else {},
        trials=results,
    )


# ----------------------------------------------------------------------------- run records


def git_info() -> dict[str, Any]:
    """Commit and dirty flag of the checkout exo runs from (None outside a git checkout)."""
    from exo.paths import repo_root

    root = repo_root()
    if root is None:
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def versions() -> dict[str, str]:
    """Versions of python and the libraries a result depends on."""
    import gymnasium
    import mujoco

    import exo

    return {
        "python": platform.python_version(),
        "exo": exo.__version__,
        "numpy": np.__version__,
        "mujoco": mujoco.__version__,
        "gymnasium": gymnasium.__version__,
    }


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), tuples -> lists, numpy scalars -> python."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_document(report: EvalReport, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of summary.json."""
    return _json_safe(
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
    """timeseries.png (angle error, exo torque, interaction torque per level) and boxplots.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    levels = list(report.config.levels)
    title = f"{report.controller_name} on the {report.config.twin} twin"

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
                ax.plot(t.timeseries["time_s"], signal(t.timeseries), lw=1.0, label=f"trial {t.trial}")  # type: ignore[index]
            ax.axhline(0.0, color="0.6", lw=0.6)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"level {level}")
            if row == 2:
                ax.set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    paths.append(out_dir / "timeseries.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    labels = []
    for level in levels:
        stopped = sum(t.terminated for t in report.trials if t.level == level)
        labels.append(f"{level}\n({stopped} stopped)" if stopped else str(level))
    fig, axes = plt.subplots(2, 3, figsize=(12, 7), squeeze=False)
    for ax, name in zip(axes.flat, METRIC_NAMES, strict=True):
        data = []
        for level in levels:
            values = np.array(
                [getattr(t.metrics, name) for t in report.trials if t.level == level], dtype=float
            )
            data.append(values[np.isfinite(values)])
        ax.boxplot(data, tick_labels=labels)
        ax.set_title(name)
        ax.set_xlabel("level")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title} (stopped: trials ended early by the env's unsafe-state termination)")
    fig.tight_layout()
    paths.append(out_dir / "boxplots.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
