"""Wall time (and env steps) until a SAC run first beats the PID baseline on peak torque at every level.

Reads a training run folder (``exo train --out DIR``): its ``run.json`` (twin, evaluation
protocol) and ``progress.csv`` (the periodic evaluations, each on the same fixed subjects).
Evaluates the PID baseline (config/controllers.yaml gains) on exactly those subjects with the
same evaluator, then reports, for every periodic evaluation, the per-level peak and RMS
interaction torque of the policy next to the PID's, and the first evaluation at which the policy's
peak torque is below the PID's at every level (and the first at which RMS torque is too).
Wall time is the training's own, summed over resumed sessions (``time/time_elapsed`` restarts
at each resume).

Prints a table, writes JSON (default ``bench/results/time_to_beat_pid.json``).

Usage: ``python bench/bench_time_to_beat_pid.py runs/train/sac-reduced-s0``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "time_to_beat_pid.json"


def _num(x: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="training run folder (exo train --out)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from exo.control import ControllerSpec, load_controller_params
    from exo.learn.evaluation import evaluate_controller

    console = Console()
    run = json.loads((a.run / "run.json").read_text())
    cfg = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in run["config"].items()}
    levels = tuple(int(x) for x in cfg.get("levels", [0, 1, 2, 3]))
    trials = int(cfg["eval_trials_per_level"])
    seed = int(cfg["eval_seed"])
    overrides = dict(cfg.get("env_overrides") or {})
    pid = ControllerSpec("pid", load_controller_params("pid"))()
    baseline = evaluate_controller(pid, run["twin"], levels, trials, seed, overrides).per_level()

    rows = []
    # time/time_elapsed restarts at 0 when a run is resumed: the wall time of training is cumulative
    offset_s = last_s = 0.0
    with (a.run / "progress.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            elapsed = _num(r["time/time_elapsed"])
            if elapsed < last_s:
                offset_s += last_s
            last_s = elapsed if not math.isnan(elapsed) else last_s
            if not r.get("eval/L0/peak_torque_nm"):
                continue
            rows.append({
                "steps": int(float(r["time/total_timesteps"])),
                "wall_s": offset_s + elapsed,
                **{f"L{lv}_{m}": _num(r[f"eval/L{lv}/{m}"]) for lv in levels
                   for m in ("peak_torque_nm", "rms_torque_nm", "final_error_deg")},
            })
    first_peak = first_both = None
    for row in rows:
        peak_ok = all(row[f"L{lv}_peak_torque_nm"] < baseline[lv]["peak_torque_nm"] for lv in levels)
        rms_ok = all(row[f"L{lv}_rms_torque_nm"] < baseline[lv]["rms_torque_nm"] for lv in levels)
        row["beats_pid_peak_all_levels"], row["beats_pid_peak_and_rms_all_levels"] = peak_ok, peak_ok and rms_ok
        if peak_ok and first_peak is None:
            first_peak = row
        if peak_ok and rms_ok and first_both is None:
            first_both = row

    table = Table(title=f"{a.run}: policy vs PID on the run's evaluation subjects ({trials}/level)")
    table.add_column("steps", justify="right")
    table.add_column("wall", justify="right")
    for lv in levels:
        table.add_column(f"L{lv} peak (PID {baseline[lv]['peak_torque_nm']:.0f})", justify="right")
        table.add_column(f"L{lv} err deg (PID {baseline[lv]['final_error_deg']:.1f})", justify="right")
    for row in rows:
        table.add_row(f"{row['steps']:,}", f"{row['wall_s'] / 60:.0f} min",
                      *[x for lv in levels for x in (f"{row[f'L{lv}_peak_torque_nm']:.0f}",
                                                     f"{row[f'L{lv}_final_error_deg']:.1f}")])
    console.print(table)
    for label, row in (("peak torque at every level", first_peak), ("peak and RMS torque at every level", first_both)):
        console.print(f"first beats PID on {label}: " + (
            f"{row['steps']:,} steps, {row['wall_s'] / 60:.1f} min of training" if row else "not yet"))
    doc = {"run": str(a.run), "twin": run["twin"], "eval_trials_per_level": trials, "eval_seed": seed,
           "pid": {str(lv): baseline[lv] for lv in levels}, "evaluations": rows,
           "first_beats_pid_peak": first_peak, "first_beats_pid_peak_and_rms": first_both}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1, default=lambda x: None))
    console.print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
