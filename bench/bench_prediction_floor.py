"""The floor of the identification's prediction target: the same person's PID trial, twice.

``bench/bench_identification.py`` asks whether the identified twin predicts another trial of the
person (the evaluator's PID knee-extension episode) within 5 N m RMS of interaction torque. No model
can predict better than the person repeats: the PID acts on noisy sensors, and at level 3 the twin's
17-19 Hz clonus ripple takes a phase that follows every difference. This benchmark runs each generated
subject's PID trial twice on the full twin with the *true* parameters, the sensor noise the PID sees
(:class:`exo.identify.simulate.SensorNoise` defaults) drawn anew, and reports the difference
(:func:`exo.identify.validate.repeat_error`): raw, and after the 5 Hz low-pass, per level.

Subjects are the identification benchmark's (``exo.evaluate.subject_seed(seed, level, trial)``).

Usage: ``python bench/bench_prediction_floor.py --per-level 20 --seed 0 --out bench/results/prediction-floor.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "prediction-floor.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-level", type=int, default=20, help="subjects per level")
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--seed", type=int, default=0, help="master seed of the subjects (as bench_identification)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    from exo.evaluate import subject_seed
    from exo.identify.simulate import SensorNoise
    from exo.identify.validate import repeat_error
    from exo.twin import make_twin

    twin = make_twin("full")
    t0 = time.perf_counter()
    rows, summary = [], {}
    for level in args.levels:
        errors = []
        for trial in range(args.per_level):
            twin.reset(level, seed=subject_seed(args.seed, level, trial))
            e = repeat_error(twin.subject, twin, SensorNoise())
            rows.append({"level": level, "trial": trial, **asdict(e)})
            errors.append(e)
        raw = np.array([e.rms_nm for e in errors])
        low = np.array([e.rms_lowpass_nm for e in errors])
        summary[str(level)] = {"subjects": len(errors), "rms_nm_median": float(np.median(raw)),
                               "rms_nm_p90": float(np.percentile(raw, 90)), "share_within_5_nm": float(np.mean(raw <= 5.0)),
                               "rms_lowpass_nm_median": float(np.median(low)),
                               "share_lowpass_within_5_nm": float(np.mean(low <= 5.0))}
        s = summary[str(level)]
        print(f"level {level}: {len(errors)} subjects, repeat RMS median {s['rms_nm_median']:.2f} N m, "
              f"p90 {s['rms_nm_p90']:.2f}, within 5 N m {s['share_within_5_nm']:.0%}; 5 Hz low-passed median "
              f"{s['rms_lowpass_nm_median']:.2f} N m", flush=True)
    out = {"command": "python bench/bench_prediction_floor.py " + " ".join(argv or []), "summary": summary,
           "rows": rows, "sensor_noise": asdict(SensorNoise()), "wall_s": time.perf_counter() - t0,
           "load_average": os.getloadavg()[0], "machine": platform.machine(), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} ({out['wall_s']:.0f} s, load {out['load_average']:.1f})")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
