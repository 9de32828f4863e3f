#!/usr/bin/env python3
"""How much room the hand-tuned frontier leaves: the torque that holds the knee at the end of the trial.

A controller that ends the knee-extension trial at some final angle must, over the final 0.5 s (the
window of the final-error metric), hold the knee there against the person's passive tissue, gravity
and angle-dependent reflex: its interaction torque then is the *holding torque*, and its peak
interaction torque can be no lower. So at the final error of a hand-tuned configuration, no
controller's mean peak can lie more than

    room = 1 - mean(holding torque) / mean(peak)

below that configuration's (the holding torque of the same subjects at the same final angles). Where
``room`` is under the frontier target's 10 %, no controller (learned or not) can meet the peak
criterion at that final error. The holding torque also rises with extension, so a final error 1 deg
smaller needs about ``slope x 1 deg`` more holding torque (``slope`` between neighbouring caps), which
bounds the final-error criterion the same way.

For each level this runs the reflex-aware reference PID at the level's speed (``scripts/frontier.py``'s
choice) and the plain PID at the given caps, on ``exo eval``'s held-out subjects (master seed 0, the
frontier's), on the full twin, and reports mean peak, mean holding torque, final error, and ``room``
with a 95 % bootstrap interval over subjects.

Usage: ``python scripts/holding_bound.py --subjects 50 --caps-nm 60 70 80 --out runs/holding-bound.json``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Reference-PID peak speed per level, rad/s (scripts/frontier.py's choice, docs/results.md section 0.1).
LEVEL_SPEED_RAD_S = {0: 0.8, 1: 0.5, 2: 0.5, 3: 1.2}
#: The final-error window of the trial metrics, s.
FINAL_WINDOW_S = 0.5


def run(kind: str, cap_nm: float, level: int, trial: int, seed: int) -> dict[str, float]:
    """One trial: peak |interaction torque|, its mean over the final window (the holding torque), final error."""
    from exo.control import load_controller_params, make_controller
    from exo.evaluate import run_trial

    params = load_controller_params(kind)
    params["torque_limit_nm"] = float(cap_nm)
    if kind == "reference_pid":
        params["peak_velocity_rad_s"] = LEVEL_SPEED_RAD_S[level]
    result = run_trial(lambda: make_controller(kind, **params), "full", level, trial, seed, keep_timeseries=True)
    ts = result.timeseries
    assert ts is not None
    tau = np.abs(ts["interaction_torque_nm"])
    dt = float(np.median(np.diff(ts["time_s"])))
    n = max(1, int(round(FINAL_WINDOW_S / dt)))
    return {"peak_nm": float(tau.max()), "holding_nm": float(tau[-n:].mean()),
            "final_error_deg": float(result.metrics.final_error_deg), "peak_time_s": float(ts["time_s"][tau.argmax()])}


def room(peak: np.ndarray, holding: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    """1 - mean(holding) / mean(peak), and its 95 % percentile bootstrap interval over subjects."""
    value = 1.0 - holding.mean() / peak.mean()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(peak), (resamples, len(peak)))
    boot = 1.0 - holding[idx].mean(axis=1) / peak[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(value), float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--subjects", type=int, default=50, help="held-out subjects per level")
    ap.add_argument("--caps-nm", type=float, nargs="+", default=[60.0, 70.0, 80.0])
    ap.add_argument("--controllers", nargs="+", default=["reference_pid", "pid"], choices=["reference_pid", "pid"])
    ap.add_argument("--seed", type=int, default=0, help="master seed of the subjects (the frontier's: 0)")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("runs/holding-bound.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table: list[dict[str, Any]] = []
    print("| level | controller | cap (N m) | mean peak (N m) | mean holding (N m) | final error (deg) | "
          "peak at (s, median) | room for a lower peak [95 % CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for level in args.levels:
        for kind in args.controllers:
            for cap in args.caps_nm:
                rows = [run(kind, cap, level, t, args.seed) for t in range(args.subjects)]
                peak = np.array([r["peak_nm"] for r in rows])
                hold = np.array([r["holding_nm"] for r in rows])
                value, lo, hi = room(peak, hold, args.resamples, args.seed)
                entry = {"level": level, "controller": kind, "cap_nm": cap, "subjects": len(rows),
                         "speed_rad_s": LEVEL_SPEED_RAD_S[level] if kind == "reference_pid" else None,
                         "peak_nm": float(peak.mean()), "holding_nm": float(hold.mean()),
                         "final_error_deg": float(np.mean([r["final_error_deg"] for r in rows])),
                         "peak_time_s_median": float(np.median([r["peak_time_s"] for r in rows])),
                         "room": value, "room_ci": [lo, hi]}
                table.append(entry)
                label = f"reference PID ({LEVEL_SPEED_RAD_S[level]} rad/s)" if kind == "reference_pid" else "PID"
                print(f"| {level} | {label} | {cap:.0f} | {entry['peak_nm']:.1f} | {entry['holding_nm']:.1f} | "
                      f"{entry['final_error_deg']:.2f} | {entry['peak_time_s_median']:.2f} | "
                      f"{100 * value:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] |", flush=True)
    out = {"command": "python scripts/holding_bound.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "rows": table, "wall_s": time.perf_counter() - t0, "load_average": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} ({out['wall_s']:.0f} s, load {out['load_average']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
