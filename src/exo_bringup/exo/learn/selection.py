"""Pick a training run's checkpoint by the paper's torque margins and the final error, not by its return.

The return of the env's reward is what SAC optimises, but it is not what the
study reports: peak interaction torque and RMS torque until settling relative to
the PID, and the final angle error. :func:`select_checkpoint` evaluates every
saved model of a run (``checkpoints/model_*.zip``) and the PID baseline on the
same generated subjects, and ranks the models by their **shortfall** from the
targets (:class:`SelectionTargets`; defaults: the paper's peak and RMS margins
vs the PID, and a final error of at most 2 deg at every level):

    shortfall = sum_levels max(0, dpeak_L - peak_target_L) / peak_unit_pct
              + sum_levels max(0, drms_L - rms_target_L) / rms_unit_pct      (levels with an RMS target)
              + sum_levels max(0, final_error_L - final_error_target_deg) / error_unit_deg

``dpeak_L`` and ``drms_L`` are the SAC's change vs the PID in % of the PID's
level mean (negative = lower); ``final_error_L`` is the SAC's level mean, deg.
A model that meets every target scores 0; ties (e.g. several at 0) go to the
higher mean return. One unit of shortfall is 10 percentage points of torque or
2 deg of error: coarse on purpose, so that no single level dominates.

The subjects are drawn with ``seed`` (default 2000), disjoint from the training
run's evaluation subjects (``eval_seed``, 1000) and from ``exo eval``'s final
evaluation (seed 0), so the selection never sees the subjects it is judged on.

Outputs in the run folder: ``selection.csv`` (one row per model) and
``selection.json`` (targets, PID reference, every score, the chosen model);
``exo export-policy RUN --which selected`` exports the chosen one
(:func:`exo.learn.rundir.selected_model` reads it back).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exo.control import load_controller_params, make_controller
from exo.control.sac import SacController
from exo.learn.actor import numpy_actor
from exo.learn.config import SacConfig
from exo.learn.evaluation import PolicyEvaluation, evaluate_controller
from exo.learn.learners import load_model, run_learner
from exo.learn.rundir import SELECTION_CSV, SELECTION_JSON, RunDir
from exo.records import json_safe


@dataclass(frozen=True)
class SelectionTargets:
    """Targets of the checkpoint ranking (defaults: the paper's margins, 2 deg everywhere).

    Attributes:
        peak_change_pct: per level, the SAC-vs-PID change of mean peak interaction torque
            to reach, % (the paper's reductions: -23.6 / -12.5 / -8.8 / -11.3).
        rms_change_pct: per level, the change of mean RMS torque until settling to reach, %
            (paper: -35.3 / -9.7 / -8.1 at levels 0-2; level 3 has none).
        final_error_deg: mean final angle error to stay below at every level, deg.
        peak_unit_pct, rms_unit_pct: percentage points counted as one unit of shortfall.
        error_unit_deg: degrees of error counted as one unit of shortfall.
    """

    peak_change_pct: Mapping[int, float] = field(default_factory=lambda: {0: -23.6, 1: -12.5, 2: -8.8, 3: -11.3})
    rms_change_pct: Mapping[int, float] = field(default_factory=lambda: {0: -35.3, 1: -9.7, 2: -8.1})
    final_error_deg: float = 2.0
    peak_unit_pct: float = 10.0
    rms_unit_pct: float = 10.0
    error_unit_deg: float = 2.0


def _change_pct(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference if reference else math.nan


def shortfall(
    policy: Mapping[int, Mapping[str, float]],
    pid: Mapping[int, Mapping[str, float]],
    targets: SelectionTargets = SelectionTargets(),
) -> tuple[float, dict[str, float]]:
    """Shortfall of one model (module docstring) and its parts.

    Args:
        policy, pid: ``{level: {"peak_torque_nm", "rms_torque_nm", "final_error_deg"}}``
            (level means, as :meth:`PolicyEvaluation.per_level` gives them).

    Returns:
        ``(score, details)``; details hold ``L<level>/peak_change_pct``,
        ``L<level>/rms_change_pct`` and ``L<level>/final_error_deg``. A NaN metric
        (diverged trial) counts as a shortfall of 10 units for that entry.
    """
    score = 0.0
    details: dict[str, float] = {}

    def add(value: float, target: float, unit: float) -> None:
        nonlocal score
        score += 10.0 if not math.isfinite(value) else max(0.0, value - target) / unit

    for level, values in sorted(policy.items()):
        ref = pid[level]
        peak = _change_pct(values["peak_torque_nm"], ref["peak_torque_nm"])
        details[f"L{level}/peak_change_pct"] = peak
        if level in targets.peak_change_pct:
            add(peak, targets.peak_change_pct[level], targets.peak_unit_pct)
        rms = _change_pct(values["rms_torque_nm"], ref["rms_torque_nm"])
        details[f"L{level}/rms_change_pct"] = rms
        if level in targets.rms_change_pct:
            add(rms, targets.rms_change_pct[level], targets.rms_unit_pct)
        error = float(values["final_error_deg"])
        details[f"L{level}/final_error_deg"] = error
        add(error, targets.final_error_deg, targets.error_unit_deg)
    return score, details


@dataclass
class SelectionResult:
    """Ranking of a run's models (see :func:`select_checkpoint`)."""

    rows: list[dict[str, Any]]
    selected: dict[str, Any]
    pid: dict[int, dict[str, float]]
    document: dict[str, Any]


def run_models(run_dir: Path) -> list[tuple[int, Path]]:
    """``(steps, path)`` of every checkpoint model of a run, oldest first."""
    models = []
    for path in sorted((run_dir / "checkpoints").glob("model_*.zip")):
        try:
            models.append((int(path.stem.split("_")[1]), path))
        except (IndexError, ValueError):
            continue
    return models


def select_checkpoint(
    run_dir: str | Path,
    trials: int = 10,
    seed: int = 2000,
    targets: SelectionTargets = SelectionTargets(),
    pid_params: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> SelectionResult:
    """Evaluate every checkpoint of ``run_dir`` and the PID on ``trials`` subjects per level; rank; write files.

    Raises:
        FileNotFoundError: no run record or no checkpoint in ``run_dir``.
    """
    run = RunDir(Path(run_dir))
    record = run.read_record()
    cfg = record["config"]
    twin, levels, overrides = record["twin"], tuple(cfg["levels"]), dict(cfg["env_overrides"])
    residual = SacConfig().with_overrides(**cfg).residual()
    models = run_models(run.root)
    if not models:
        raise FileNotFoundError(f"{run.checkpoints}: no model_*.zip checkpoints to select from")
    started = time.perf_counter()
    params = dict(pid_params) if pid_params is not None else load_controller_params("pid")
    pid_eval = evaluate_controller(make_controller("pid", **params), twin, levels, trials, seed, overrides)
    pid = pid_eval.per_level()
    echo(f"PID on {trials} subjects/level (seed {seed}): "
         + " ".join(f"L{k} peak {v['peak_torque_nm']:.1f} err {v['final_error_deg']:.2f}" for k, v in pid.items()))
    rows: list[dict[str, Any]] = []
    for steps, path in models:
        model = load_model(path, run_learner(cfg))
        result: PolicyEvaluation = evaluate_controller(SacController.from_actor(numpy_actor(model), residual=residual), twin, levels,
                                                       trials, seed, overrides)
        score, details = shortfall(result.per_level(), pid, targets)
        row = {"steps": steps, "model": str(path.relative_to(run.root)), "shortfall": round(score, 4), "mean_return": result.mean_return,
               **{k: round(v, 3) for k, v in details.items()}}
        rows.append(row)
        echo(f"{steps:>9,}  shortfall {score:7.2f}  " + "  ".join(
            f"L{lv} peak {details[f'L{lv}/peak_change_pct']:+6.1f}% err {details[f'L{lv}/final_error_deg']:5.2f}"
            for lv in levels))
    best = min(rows, key=lambda r: (r["shortfall"], -r["mean_return"]))
    document = {
        "run_dir": str(run.root),
        "twin": twin,
        "trials_per_level": trials,
        "seed": seed,
        "rule": "lowest shortfall from the targets, ties to the higher mean return (exo.learn.selection)",
        "targets": {**asdict(targets), "peak_change_pct": {str(k): v for k, v in targets.peak_change_pct.items()},
                    "rms_change_pct": {str(k): v for k, v in targets.rms_change_pct.items()}},
        "pid": {"params": params, "per_level": {str(k): v for k, v in pid.items()}},
        "models": rows,
        "selected": best,
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    (run.root / SELECTION_JSON).write_text(json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
    with open(run.root / SELECTION_CSV, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return SelectionResult(rows=rows, selected=best, pid=pid, document=document)
