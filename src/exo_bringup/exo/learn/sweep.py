"""``exo sweep``: a grid of ``exo train`` runs (seeds x variants x hyperparameters), each in its own run folder.

A sweep folder (``--out``) holds::

    sweep.json          the plan: twin, steps, seeds, variants, grid, common overrides, the run names
    <run name>/         an ordinary ``exo train`` run folder (run.json, checkpoints, best/, final/, ...)
                        plus console.log, the run's status lines
    summary.json        one row per run and one per configuration (mean and std over seeds)
    summary.csv         the rows per run

Run names spell what differs: ``<variant>__<key>=<value>...__seed<S>`` (``base`` when there is no
variant). Every run is an independent task of a :class:`~exo.backends.Backend` (local processes or
Ray tasks), so runs of one sweep spread over the machines of a Ray cluster; run folders must then be
on a file system every machine sees (docs/scaling.md).

Restarting: a sweep stopped anywhere (Ctrl-C, a killed process or machine) continues where it stopped
when the same command runs again (or ``exo sweep --out DIR --resume``, which reads the plan from
sweep.json): finished runs are skipped, a run with a checkpoint is resumed from it (``exo train
--resume``), a run cut off before its first checkpoint starts again. A run whose worker dies is also run
again by Ray (``max_retries``), and resumes from its checkpoint the same way.

A run that fails (an exception in training) does not stop the others: its row says ``failed`` with
the error, and the command exits 1 at the end.

Not Ray Tune: the runs are a fixed grid whose folders, cards and ``--resume`` are the project's own
(exo export-policy, select-checkpoint read them); plain Ray tasks keep that layout without a second
experiment format, and the same sweep runs without Ray.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from exo.backends import Backend, map_tasks
from exo.learn.config import SacConfig, load_sac_config
from exo.learn.rundir import RunDir, write_atomic
from exo.params import ConfigError
from exo.records import git_info, json_safe

SWEEP_JSON = "sweep.json"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
CONSOLE_LOG = "console.log"

#: Name of the variant of a sweep that gives none.
BASE_VARIANT = "base"

#: Statuses of a run after the sweep ran it.
STATUSES = ("trained", "resumed", "already finished", "failed")


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs: every combination of seed, variant and grid point.

    Attributes:
        twin: "reduced" or "full".
        steps: transitions per run (summed over envs).
        seeds: master seeds (one run per seed and configuration).
        variants: name -> SAC overrides (``{}`` = config/sac.yaml as it is); none given = one ``base``.
        grid: hyperparameter -> values; every combination is a configuration.
        common: overrides applied to every run (``--set``), before the variant's and the grid's.
        config_path: the SAC hyperparameter file (None = config/sac.yaml).
    """

    twin: str
    steps: int
    seeds: tuple[int, ...]
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {BASE_VARIANT: {}})
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    config_path: str | None = None

    def __post_init__(self) -> None:
        if self.twin not in ("reduced", "full"):
            raise ConfigError(f"twin must be reduced or full, got {self.twin!r}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if not self.variants:
            raise ConfigError("a sweep needs at least one variant")
        for name in self.variants:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ConfigError(f"variant name {name!r}: letters, digits, '.', '_' and '-' only")
        for key, values in self.grid.items():
            if not values or len(set(map(repr, values))) != len(values):
                raise ConfigError(f"--grid {key}: give distinct values, e.g. {key}=1,2")
        shared = sorted(set(self.grid) & (set(self.common) | {k for v in self.variants.values() for k in v}))
        if shared:
            raise ConfigError(f"{', '.join(shared)} is both swept (--grid) and set (--set or a variant)")

    def runs(self) -> list[SweepRun]:
        """Every run, in order: variant, grid point (first key slowest), seed."""
        keys = list(self.grid)
        out = []
        for variant, overrides in self.variants.items():
            for point in itertools.product(*(self.grid[k] for k in keys)):
                hyper = dict(zip(keys, point, strict=True))
                for seed in self.seeds:
                    out.append(SweepRun(run_name(variant, hyper, seed), variant, seed, hyper,
                                        {**self.common, **overrides, **hyper}))
        return out

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["seeds"] = list(self.seeds)
        doc["grid"] = {k: list(v) for k, v in self.grid.items()}
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SweepPlan:
        return cls(twin=doc["twin"], steps=int(doc["steps"]), seeds=tuple(int(s) for s in doc["seeds"]),
                   variants={k: dict(v) for k, v in doc["variants"].items()},
                   grid={k: tuple(v) for k, v in doc["grid"].items()}, common=dict(doc["common"]),
                   config_path=doc.get("config_path"))


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its folder name, what it is, and the overrides of config/sac.yaml it trains with."""

    name: str
    variant: str
    seed: int
    hyperparameters: dict[str, Any]
    overrides: dict[str, Any]

    @property
    def configuration(self) -> str:
        """The run's name without its seed: runs of one configuration differ only by seed."""
        return self.name.rsplit("__seed", 1)[0]


def run_name(variant: str, hyperparameters: Mapping[str, Any], seed: int) -> str:
    """``<variant>__<key>=<value>...__seed<S>``; in a value, each run of characters a folder name should not
    hold becomes one ``_`` (``{'x': 1}`` -> ``x_1``)."""
    values = [f"{k}={re.sub(r'[^A-Za-z0-9.+_-]+', '_', str(v)).strip('_')}" for k, v in hyperparameters.items()]
    return "__".join([variant, *values, f"seed{seed}"])


def run_config(plan: SweepPlan, run: SweepRun) -> tuple[SacConfig, dict[str, str]]:
    """The run's hyperparameters (the plan's file with the run's overrides) and the source of each entry.

    Raises:
        ConfigError: an override the SAC configuration does not have or cannot take, naming the run.
    """
    cfg, sources = load_sac_config(plan.config_path)
    try:
        cfg = cfg.with_overrides(**run.overrides)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"sweep run {run.name}: {exc}") from None
    origin = {**{k: "exo sweep --set" for k in plan.common},
              **{k: f"exo sweep --variant {run.variant}" for k in plan.variants[run.variant]},
              **{k: "exo sweep --grid" for k in run.hyperparameters}}
    return cfg, {**sources, **origin}


def check_plan(plan: SweepPlan) -> list[SweepRun]:
    """The plan's runs, each configuration built once so that a bad override fails before any training."""
    runs = plan.runs()
    for run in runs:
        run_config(plan, run)
    return runs


def open_sweep(out: Path, plan: SweepPlan | None) -> SweepPlan:
    """The plan of the sweep in ``out``: written on the first call, checked against the stored one after.

    ``plan`` None (``--resume``) reads it from sweep.json.

    Raises:
        ConfigError: ``out`` holds a different sweep, or nothing to resume.
    """
    path = out / SWEEP_JSON
    stored = SweepPlan.from_dict(json.loads(path.read_text())["plan"]) if path.is_file() else None
    if plan is None:
        if stored is None:
            raise ConfigError(f"{out} holds no sweep to resume (no {SWEEP_JSON})")
        return stored
    if stored is not None:
        if stored.to_dict() != plan.to_dict():
            diff = sorted(k for k, v in plan.to_dict().items() if stored.to_dict().get(k) != v)
            raise ConfigError(f"{out} holds another sweep (it differs in {', '.join(diff)}); run the same "
                              f"command, `exo sweep --out {out} --resume`, or choose another --out")
        return stored
    out.mkdir(parents=True, exist_ok=True)
    doc = {"created_utc": _now(), "command": " ".join(sys.argv), "git": git_info(), "plan": plan.to_dict(),
           "runs": [r.name for r in plan.runs()]}
    write_atomic(path, json.dumps(json_safe(doc), indent=2) + "\n")
    return plan


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to train (or resume) one run: picklable, paths as strings."""

    plan: SweepPlan
    run: SweepRun
    out: str


def train_run(task: RunTask) -> dict[str, Any]:
    """Train, resume or skip one run of a sweep (in a worker); its row of the summary.

    A failure inside training is caught and returned as a ``failed`` row (the other runs go on).
    """
    from exo.learn.sac import train  # torch and SB3: loaded in the worker that trains

    run_dir = RunDir(Path(task.out) / task.run.name)
    started = time.perf_counter()
    status = "trained"
    try:
        cfg, sources = run_config(task.plan, task.run)
        record = run_dir.read_record() if run_dir.record_path.is_file() else None
        if record is not None and record.get("finished") and int(record.get("num_timesteps", 0)) >= task.plan.steps:
            return summary_row(task.run, run_dir, "already finished", 0.0)
        resume = record is not None and run_dir.latest() is not None
        if record is not None and not resume:  # cut off before its first checkpoint: nothing to resume
            shutil.rmtree(run_dir.root)
        status = "resumed" if resume else "trained"
        run_dir.root.mkdir(parents=True, exist_ok=True)
        with open(run_dir.root / CONSOLE_LOG, "a", encoding="utf-8") as log:
            def echo(line: str) -> None:
                log.write(line + "\n")
                log.flush()

            echo(f"[{_now()}] exo sweep: {status} {task.run.name}")
            train(run_dir.root, twin=task.plan.twin, steps=task.plan.steps, seed=task.run.seed,
                  config=None if resume else cfg, config_sources=sources,
                  config_path=task.plan.config_path or "config/sac.yaml", resume=resume,
                  progress_bar=False, echo=echo)
    except Exception as exc:  # noqa: BLE001 - one run's failure is recorded; the sweep goes on
        return {**summary_row(task.run, run_dir, "failed", time.perf_counter() - started),
                "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    return summary_row(task.run, run_dir, status, time.perf_counter() - started)


def summary_row(run: SweepRun, run_dir: RunDir, status: str, this_call_s: float) -> dict[str, Any]:
    """A run's row: what it is, its status, steps, wall time (s) and returns (final and best evaluation)."""
    record = run_dir.read_record() if run_dir.record_path.is_file() else {}
    final_path = run_dir.root / "final" / "eval.json"
    final = json.loads(final_path.read_text()) if final_path.is_file() else {}
    best = record.get("best") or {}
    per_level = final.get("per_level") or {}

    def level_mean(name: str) -> float:
        values = [v[name] for v in per_level.values() if v.get(name) is not None and math.isfinite(v[name])]
        return sum(values) / len(values) if values else math.nan

    return {
        "run": run.name,
        "configuration": run.configuration,
        "variant": run.variant,
        "seed": run.seed,
        **{f"hp.{k}": v for k, v in run.hyperparameters.items()},
        "status": status,
        "steps": int(record.get("num_timesteps", 0)),
        "wall_time_s": float(record.get("wall_time_s", math.nan)),
        "this_call_s": round(this_call_s, 2),
        "final_mean_return": float(final.get("mean_return", math.nan)),
        "best_mean_return": float(best.get("mean_return", math.nan)),
        "best_steps": int(best.get("steps", 0)),
        "final_error_deg": level_mean("final_error_deg"),
        "peak_torque_nm": level_mean("peak_torque_nm"),
        "error": "",
    }


def configuration_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration (variant and grid point): runs, finished runs, mean and std (ddof=1) over seeds."""
    out = []
    for name in dict.fromkeys(r["configuration"] for r in rows):
        group = [r for r in rows if r["configuration"] == name]
        doc: dict[str, Any] = {"configuration": name, "runs": len(group),
                               "finished": sum(r["status"] != "failed" and r["steps"] > 0 for r in group)}
        for key in ("final_mean_return", "best_mean_return", "final_error_deg", "peak_torque_nm"):
            values = [r[key] for r in group if r["status"] != "failed" and math.isfinite(r[key])]
            mean = sum(values) / len(values) if values else math.nan
            std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                   if len(values) > 1 else (0.0 if values else math.nan))
            doc[key] = {"mean": mean, "std": std, "count": len(values)}
        out.append(doc)
    return out


def write_summary(out: Path, plan: SweepPlan, rows: Sequence[dict[str, Any]], backend: Backend,
                  wall_time_s: float) -> dict[str, Any]:
    """summary.json (runs and configurations) and summary.csv (runs) in the sweep folder; the document."""
    doc = json_safe({"created_utc": _now(), "command": " ".join(sys.argv), "git": git_info(),
                     "backend": backend.describe(), "wall_time_s": round(wall_time_s, 2), "plan": plan.to_dict(),
                     "configurations": configuration_rows(rows), "runs": list(rows)})
    write_atomic(out / SUMMARY_JSON, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / SUMMARY_CSV, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return doc


def run_sweep(out: str | Path, plan: SweepPlan | None, backend: Backend | None = None,
              on_run: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the sweep in ``out`` on ``backend`` and write its summary; the summary document.

    Args:
        out: sweep folder.
        plan: what to run; None continues the sweep stored in ``out`` (module docstring).
        backend: where the runs train (default: one local process at a time).
        on_run: called with each run's row as it finishes.
    """
    out = Path(out).resolve()  # workers may run elsewhere: the run folders' absolute paths travel with the tasks
    backend = backend or Backend(workers=1)
    plan = open_sweep(out, plan)
    runs = check_plan(plan)
    started = time.perf_counter()
    rows = map_tasks(train_run, [RunTask(plan, run, str(out)) for run in runs], backend,
                     on_result=(lambda _, row: on_run(row)) if on_run else None)
    return write_summary(out, plan, rows, backend, time.perf_counter() - started)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
