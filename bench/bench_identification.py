"""Identification benchmark: generated subjects with hidden parameters, the assessment, the fit, a new trial.

For each level and trial index a subject is generated exactly as the evaluator does
(:func:`exo.evaluate.subject_seed`: seed, level, trial), the assessment is simulated on the
``--data-twin`` (default full) with sensor noise (:class:`exo.identify.simulate.SensorNoise`), and
:func:`exo.identify.fit.identify` fits the recording on ``--twin`` without seeing the true
parameters. Per subject it records:

- the estimated level, the identified parameters, intervals and the identified/not-identified split;
- relative errors |identified - true| / |true| per parameter, and those of the level's nominal
  parameters (what one knows from the level alone: the baseline a fit must beat);
- the prediction of another trial: the PID knee-extension episode of the evaluator on the true
  subject (full twin) vs on the identified one (full twin, and the reduced twin), and vs the nominal
  subject of the estimated level; interaction-torque RMS error (raw and 5 Hz low-passed), N m;
- the identification wall time (s) and the 1-minute load average next to it.

Subjects run in ``--workers`` processes (each identification then uses ``--id-workers`` processes);
``--timing N`` first identifies N subjects one at a time with 2 processes each, the per-user wall
time on 2 cores. Results are checkpointed per subject (``<out>.jsonl``; ``--resume`` skips the done
ones) and summarised per level into ``--out`` (JSON) and a printed table.

Usage: ``python bench/bench_identification.py --per-level 50 --twin full --workers 2 --seed 0
--out bench/results/identification.json``
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "identification.json"

_TWINS: dict[str, Any] = {}


def _twin(kind: str) -> Any:
    if kind not in _TWINS:
        from exo.twin import make_twin

        _TWINS[kind] = make_twin(kind)
    return _TWINS[kind]


def load_average() -> float:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return math.nan


def run_subject(level: int, trial: int, seed: int, data_twin: str, fit_twin: str, id_workers: int,
                protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """One subject: simulate, identify, validate (see the module docstring)."""
    from exo.assessment.protocol import AssessmentProtocol
    from exo.evaluate import subject_seed
    from exo.identify.fit import identify
    from exo.identify.simulate import SensorNoise, simulate_assessment
    from exo.identify.validate import prediction_error
    from exo.twin.config import load_twin_config
    from exo.twin.reflex import NOISY_PARAMETERS

    s_seed = subject_seed(seed, level, trial)
    proto = AssessmentProtocol.from_mapping(protocol) if protocol else AssessmentProtocol()
    t0 = time.perf_counter()
    recording, truth = simulate_assessment(_twin(data_twin), level, s_seed, proto, SensorNoise())
    sim_s = time.perf_counter() - t0
    result = identify(recording, twin=fit_twin, workers=id_workers)
    nominal = load_twin_config().spasticity.levels
    est_nominal = nominal[result.mas_level]

    def rel(a: float, b: float) -> float:
        return abs(a - b) / abs(b) if b != 0.0 else (0.0 if a == b else math.inf)

    err = {n: rel(result.params[n], getattr(truth, n)) for n in NOISY_PARAMETERS}
    nominal_err = {n: rel(getattr(nominal[level], n), getattr(truth, n)) for n in NOISY_PARAMETERS}
    inside = {n: bool(result.ci[n][0] <= getattr(truth, n) <= result.ci[n][1]) for n in NOISY_PARAMETERS}
    full = _twin("full")
    pred = prediction_error(truth, result.subject(), full)
    pred_nominal = prediction_error(truth, est_nominal, full)
    pred_reduced = prediction_error(truth, result.subject(), full, _twin("reduced"))
    return {
        "level": level, "trial": trial, "subject_seed": s_seed, "truth": asdict(truth),
        "estimated_level": result.mas_level, "params": result.params, "ci": result.ci,
        "identified": result.identified, "not_identifiable": result.not_identifiable,
        "posterior_sd_ratio": result.posterior_sd_ratio, "relative_error": err, "nominal_relative_error": nominal_err,
        "ci_covers": inside, "residual_nm": result.residual_nm, "residual_lowpass_nm": result.residual_lowpass_nm,
        "pid_prediction": asdict(pred), "pid_prediction_nominal": asdict(pred_nominal),
        "pid_prediction_reduced_twin": asdict(pred_reduced),
        "identify_wall_s": result.wall_time_s, "simulations": result.simulations, "simulate_wall_s": sim_s,
        "id_workers": id_workers, "load_average": load_average(), "level_scores": result.level_scores,
    }


def _median(values: list[float]) -> float:
    a = np.array([v for v in values if math.isfinite(v)], dtype=float)
    return float(np.median(a)) if a.size else math.nan


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-level numbers of the targets (see the module docstring)."""
    from exo.twin.reflex import NOISY_PARAMETERS

    out: dict[str, Any] = {}
    for level in sorted({r["level"] for r in rows}):
        group = [r for r in rows if r["level"] == level]
        ident_err = [r["relative_error"][n] for r in group for n in r["identified"] if n in r["relative_error"]]
        ident_nominal = [r["nominal_relative_error"][n] for r in group for n in r["identified"]]
        per_param = {}
        for n in NOISY_PARAMETERS:
            ids = [r for r in group if n in r["identified"]]
            per_param[n] = {
                "identified_fraction": len(ids) / len(group),
                "median_error_when_identified": _median([r["relative_error"][n] for r in ids]),
                "median_nominal_error_when_identified": _median([r["nominal_relative_error"][n] for r in ids]),
                "median_error_all": _median([r["relative_error"][n] for r in group]),
                "ci_coverage_when_identified": float(np.mean([r["ci_covers"][n] for r in ids])) if ids else math.nan,
            }
        pid = [r["pid_prediction"]["rms_nm"] for r in group]
        pid_lp = [r["pid_prediction"]["rms_lowpass_nm"] for r in group]
        out[str(level)] = {
            "subjects": len(group),
            "level_correct": float(np.mean([r["estimated_level"] == level for r in group])),
            "confusion": {str(k): sum(r["estimated_level"] == k for r in group) for k in range(4)},
            "median_relative_error_identified": _median(ident_err),
            "median_nominal_error_identified": _median(ident_nominal),
            "parameters": per_param,
            "pid_rms_error_nm": {"median": _median(pid), "p90": float(np.percentile(pid, 90)),
                                 "fraction_le_5": float(np.mean(np.array(pid) <= 5.0))},
            "pid_rms_error_lowpass_nm": {"median": _median(pid_lp), "p90": float(np.percentile(pid_lp, 90)),
                                         "fraction_le_5": float(np.mean(np.array(pid_lp) <= 5.0))},
            "pid_rms_error_nominal_nm": {"median": _median([r["pid_prediction_nominal"]["rms_nm"] for r in group])},
            "pid_rms_error_reduced_twin_nm": {"median": _median([r["pid_prediction_reduced_twin"]["rms_nm"]
                                                                 for r in group])},
            "residual_nm": {"median": _median([r["residual_nm"] for r in group])},
            "identify_wall_s": {"median": _median([r["identify_wall_s"] for r in group]),
                                "max": float(max(r["identify_wall_s"] for r in group))},
            "load_average": {"median": _median([r["load_average"] for r in group])},
        }
    return out


def print_table(summary: dict[str, Any], timing: dict[str, Any] | None) -> None:
    print(f"{'level':>5} {'n':>4} {'level ok':>9} {'med err ident':>14} {'(nominal)':>10} {'PID rms med':>12} "
          f"{'<=5 N m':>8} {'lp med':>7} {'t med s':>8}")
    for level, s in summary.items():
        print(f"{level:>5} {s['subjects']:>4} {100 * s['level_correct']:>8.0f}% "
              f"{100 * s['median_relative_error_identified']:>13.1f}% {100 * s['median_nominal_error_identified']:>9.1f}% "
              f"{s['pid_rms_error_nm']['median']:>12.2f} {100 * s['pid_rms_error_nm']['fraction_le_5']:>7.0f}% "
              f"{s['pid_rms_error_lowpass_nm']['median']:>7.2f} {s['identify_wall_s']['median']:>8.1f}")
    if timing:
        print(f"per-user wall time on 2 processes: median {timing['median_s']:.1f} s, max {timing['max_s']:.1f} s "
              f"(load average {timing['load_average_median']:.1f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-level", type=int, default=5, help="subjects per level")
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--twin", default="full", choices=["full", "reduced"], help="twin the identification replays on")
    ap.add_argument("--data-twin", default="full", choices=["full", "reduced"], help="twin the subjects live in")
    ap.add_argument("--workers", type=int, default=2, help="subjects identified in parallel")
    ap.add_argument("--id-workers", type=int, default=1, help="processes per identification in the parallel run")
    ap.add_argument("--timing", type=int, default=0, help="first identify this many subjects one at a time on 2 "
                    "processes each (the per-user wall time)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extended-angle-rad", type=float, default=None,
                    help="protocol variant: the extended end of the stretches, rad (default: the protocol's own)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--resume", action="store_true", help="skip subjects already in <out>.jsonl")
    args = ap.parse_args(argv)

    protocol = None
    if args.extended_angle_rad is not None:
        from exo.assessment.protocol import AssessmentProtocol

        protocol = AssessmentProtocol(extended_angle_rad=args.extended_angle_rad).to_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".jsonl")
    rows: list[dict[str, Any]] = []
    if args.resume and log.exists():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    elif log.exists():
        log.unlink()
    done = {(r["level"], r["trial"]) for r in rows}
    jobs = [(lv, i) for i in range(args.per_level) for lv in args.levels if (lv, i) not in done]
    started = time.time()
    timing_rows: list[dict[str, Any]] = []
    timing_jobs = [j for j in jobs if j[0] != 0][: args.timing]
    for lv, i in timing_jobs:  # one at a time, 2 processes: the per-user wall time on 2 cores
        row = run_subject(lv, i, args.seed, args.data_twin, args.twin, 2, protocol)
        row["timing_run"] = True
        timing_rows.append(row)
        rows.append(row)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[timing] level {lv} trial {i}: {row['identify_wall_s']:.1f} s (load {row['load_average']:.1f})",
              flush=True)
    jobs = [j for j in jobs if j not in timing_jobs]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_subject, lv, i, args.seed, args.data_twin, args.twin, args.id_workers, protocol):
                   (lv, i) for lv, i in jobs}
        for fut in as_completed(futures):
            row = fut.result()
            rows.append(row)
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"level {row['level']} trial {row['trial']}: level {row['estimated_level']}, "
                  f"PID rms {row['pid_prediction']['rms_nm']:.2f} N m, {row['identify_wall_s']:.1f} s "
                  f"(load {row['load_average']:.1f}) [{len(rows)}/{len(rows) + sum(not f.done() for f in futures)}]",
                  flush=True)
    timing = None
    if timing_rows or any(r.get("timing_run") for r in rows):
        t = [r["identify_wall_s"] for r in rows if r.get("timing_run")]
        timing = {"subjects": len(t), "median_s": _median(t), "max_s": float(max(t)),
                  "load_average_median": _median([r["load_average"] for r in rows if r.get("timing_run")])}
    summary = summarise(rows)
    doc = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "protocol": protocol, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "python": platform.python_version()},
        "wall_s": time.time() - started, "load_average_end": load_average(), "timing": timing, "levels": summary,
    }
    from exo.records import git_info, json_safe

    doc["git"] = git_info()
    args.out.write_text(json.dumps(json_safe(doc), indent=1) + "\n")
    print_table(summary, timing)
    print(f"wrote {args.out} and {log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
