#!/usr/bin/env python3
"""How accurate must an identified twin be to predict the PID trial? Errors along the line to the truth.

For each subject of an identification benchmark (``bench/bench_identification.py``'s ``.jsonl``: the
true and the identified parameters), the parameters are moved from the truth towards the identified
ones, ``theta(f) = truth + f (identified - truth)`` for each fraction ``f``, and the PID
knee-extension trial (:func:`exo.identify.validate.pid_episode`) run with ``theta(f)`` is compared
with the one run with the truth (interaction-torque RMS error raw and 5 Hz low-passed, N m; as the
benchmark's "PID prediction"). ``f = 1`` is the benchmark's own prediction, ``f = 0`` is exact.
The output says which parameter accuracy a prediction within the target needs at each level.

``--replay`` also regenerates each subject's assessment recording (same seed and sensor noise as the
benchmark) and reports the identification's criterion along the same line: the RMS difference of the
compared samples of :class:`exo.identify.replay.Replay` (N m). Where it is smaller at ``f = 1`` than at
``f = 0``, the replay explains the recording better with the fitted parameters than with the true ones:
the fit's error is then a bias of the replay, not an optimiser that stopped early.

Usage: ``python scripts/prediction_sensitivity.py bench/results/identification.jsonl --levels 3
--out runs/prediction-sensitivity.json [--replay]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
TARGET_NM = 5.0


def along_line(row: dict[str, Any], fractions: tuple[float, ...], replay: bool,
               extended_angle_rad: float | None) -> dict[str, Any]:
    """One subject: the errors at each fraction of the way from the truth to the identified parameters."""
    from dataclasses import replace

    from exo.identify.validate import compare_episodes, pid_episode
    from exo.twin import make_twin
    from exo.twin.reflex import NOISY_PARAMETERS, SpasticityLevel

    twin = make_twin("full")
    truth = SpasticityLevel(**row["truth"])
    dt = float(twin.control_timestep_s)

    def at(f: float) -> SpasticityLevel:
        return replace(truth, **{n: row["truth"][n] + f * (row["params"][n] - row["truth"][n]) for n in NOISY_PARAMETERS})

    true_run = pid_episode(twin, truth)
    out: dict[str, Any] = {"level": row["level"], "trial": row["trial"], "rms_nm": [], "rms_lowpass_nm": [],
                           "median_relative_error": []}
    for f in fractions:
        e = compare_episodes(pid_episode(twin, at(f)), true_run, dt)
        out["rms_nm"].append(e.rms_nm)
        out["rms_lowpass_nm"].append(e.rms_lowpass_nm)
        out["median_relative_error"].append(float(np.median([abs(f * (row["params"][n] - row["truth"][n]) / row["truth"][n])
                                                             for n in NOISY_PARAMETERS])))
    if replay:
        from exo.assessment.protocol import AssessmentProtocol
        from exo.identify.replay import Replay
        from exo.identify.simulate import SensorNoise, simulate_assessment

        protocol = AssessmentProtocol() if extended_angle_rad is None else AssessmentProtocol(extended_angle_rad=extended_angle_rad)
        recording, regenerated = simulate_assessment(twin, row["level"], row["subject_seed"], protocol, SensorNoise())
        if any(abs(getattr(regenerated, n) - row["truth"][n]) > 1e-9 * max(1.0, abs(row["truth"][n])) for n in NOISY_PARAMETERS):
            raise ValueError(f"level {row['level']} trial {row['trial']}: the regenerated subject differs from the row's truth "
                             "(another generator or subject seed)")
        rp = Replay(recording, twin)
        recorded = rp.recorded.averaged()
        out["replay_feature_rms_nm"] = [
            float(np.sqrt(np.mean((rp.evaluate(at(f))[0].averaged() - recorded) ** 2))) for f in fractions]
    return out


def summarise(results: list[dict[str, Any]], fractions: tuple[float, ...]) -> dict[str, Any]:
    """Per level and fraction: median parameter error, median / p90 RMS error, share within the target."""
    levels: dict[str, Any] = {}
    for level in sorted({r["level"] for r in results}):
        rows = [r for r in results if r["level"] == level]
        rms = np.array([r["rms_nm"] for r in rows])
        lp = np.array([r["rms_lowpass_nm"] for r in rows])
        rel = np.array([r["median_relative_error"] for r in rows])
        entry = {"subjects": len(rows), "fractions": list(fractions),
                 "median_relative_error": np.median(rel, axis=0).tolist(),
                 "rms_median_nm": np.median(rms, axis=0).tolist(), "rms_p90_nm": np.percentile(rms, 90, axis=0).tolist(),
                 "share_within_target": (rms <= TARGET_NM).mean(axis=0).tolist(),
                 "rms_lowpass_median_nm": np.median(lp, axis=0).tolist()}
        if all("replay_feature_rms_nm" in r for r in rows):
            feat = np.array([r["replay_feature_rms_nm"] for r in rows])
            entry["replay_feature_rms_median_nm"] = np.median(feat, axis=0).tolist()
            entry["replay_fit_beats_truth"] = float(np.mean(feat[:, -1] < feat[:, 0]))
        levels[str(level)] = entry
    return {"target_nm": TARGET_NM, "levels": levels}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=Path, help="the identification benchmark's .jsonl")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    p.add_argument("--replay", action="store_true", help="also the replay's criterion along the line (slower)")
    p.add_argument("--extended-angle-rad", type=float, default=None,
                   help="the protocol variant the benchmark ran (default: the protocol's own)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=None, help="write the per-subject results and the summary as JSON")
    args = p.parse_args(argv)
    if not args.rows.is_file():
        p.error(f"{args.rows}: no such file")
    fractions = tuple(args.fractions)
    if not all(0.0 <= f <= 1.0 for f in fractions):
        p.error("--fractions must lie in [0, 1]")
    rows = []
    for i, line in enumerate(args.rows.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            p.error(f"{args.rows}:{i}: not JSON ({exc})")
        if row.get("level") in args.levels:
            rows.append(row)
    if not rows:
        p.error(f"{args.rows}: no subject at levels {args.levels}")
    rows.sort(key=lambda r: (r["level"], r["trial"]))
    jobs = (rows, [fractions] * len(rows), [args.replay] * len(rows), [args.extended_angle_rad] * len(rows))
    if args.workers <= 1:
        results = list(map(along_line, *jobs))
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(along_line, *jobs))
    summary = summarise(results, fractions)
    for level, s in summary["levels"].items():
        print(f"level {level} ({s['subjects']} subjects): fraction of the way from the truth to the identified parameters")
        print("  fraction        " + "".join(f"{f:>8.2f}" for f in fractions))
        print("  param err med   " + "".join(f"{100 * x:>7.1f}%" for x in s["median_relative_error"]))
        print("  PID RMS med N m " + "".join(f"{x:>8.2f}" for x in s["rms_median_nm"]))
        print(f"  share <= {TARGET_NM:g} N m " + "".join(f"{100 * x:>7.0f}%" for x in s["share_within_target"]))
        print("  low-passed med  " + "".join(f"{x:>8.2f}" for x in s["rms_lowpass_median_nm"]))
        if "replay_feature_rms_median_nm" in s:
            print("  replay crit med " + "".join(f"{x:>8.2f}" for x in s["replay_feature_rms_median_nm"]))
            print(f"  the identified parameters fit the recording better than the truth in "
                  f"{100 * s['replay_fit_beats_truth']:.0f} % of the subjects")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"source": str(args.rows), "summary": summary, "subjects": results}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
