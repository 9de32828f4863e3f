"""Intent model: held-out accuracy / macro-F1 / velocity RMSE / onset delay, and per-window inference latency.

- **Quality**: the model (default: the committed ``models/intent/lstm-reduced``) runs statefully
  over every held-out twin subject (``exo.intent.train.subject_seeds("test", n)``, never used in
  training or validation), each in a transparent exo and in one driven by the PID (the
  card's controllers), as ``exo eval-intent``; per-level and overall metrics.
- **Latency**: the work of one window in the intent_estimator, ``--windows`` times: a 20 ms
  packet (20 samples x 8 channels) through the streaming band-pass/notch, the features of the
  200 ms window, the input vector and one stateful LSTM step (numpy, one thread). Measured
  per window as wall time (``time.perf_counter``: includes preemption by the machine's other
  load) and as the thread's CPU time (``time.thread_time``: the computation), p50/p99/max.
  The node's ROS overhead (deserialisation, publish) is not included; see bench_graph.py.

Targets: macro-F1 >= 0.9, onset delay <= 150 ms, p99 latency <= 2 ms.

Usage: ``python bench/bench_intent.py [--model DIR] [--subjects 16] [--windows 5000] [--out path]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "intent.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: models/intent/lstm-reduced)")
    ap.add_argument("--subjects", type=int, default=16, help="held-out twin subjects")
    ap.add_argument("--duration", type=float, default=60.0, help="session length per subject, s")
    ap.add_argument("--windows", type=int, default=5000, help="windows timed for the latency")
    ap.add_argument("--cache", type=Path, default=Path("runs/intent/cache"), help="session cache folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from exo.cli.intent import inference_latency
    from exo.intent.dataset import session_frames
    from exo.intent.model import NumpyIntentModel
    from exo.intent.train import evaluate_model, load_sessions, subject_seeds
    from exo.paths import models_dir

    model_dir = a.model or models_dir() / "intent" / "lstm-reduced"
    model = NumpyIntentModel(model_dir)
    t0 = time.perf_counter()
    controllers = model.card["train_config"].get("controllers", ["zero"])
    frames: dict[str, list] = {}
    for controller in controllers:
        sessions = load_sessions(subject_seeds("test", a.subjects), a.duration, model.card["train_config"]["twin"],
                                 a.cache, log=lambda line: print(line, flush=True), controller=controller)
        frames[controller] = [session_frames(s, model.feature_config, model.calibrated, model.kinematics,
                                             model.emg) for s in sessions]
    by_controller = {c: evaluate_model(model_dir, f).to_dict() for c, f in frames.items()}
    metrics = evaluate_model(model_dir, [f for c in controllers for f in frames[c]]).to_dict()
    t_eval = time.perf_counter() - t0
    latency = inference_latency(model, a.windows)

    print(f"model {model_dir} ({model.model_id}); {a.subjects} held-out subjects x {a.duration:g} s, "
          f"each with the exo under {', '.join(controllers)}")
    print("exo    level  accuracy  macro-F1  vel RMSE  onset median  onset p90  misses")
    for ctrl, m in [*by_controller.items(), ("both", metrics)]:
        for name, v in [*m["per_level"].items(), ("all", m)]:
            print(f"{ctrl:>5}  {name:>5}  {v['accuracy']:8.3f}  {v['macro_f1']:8.3f}  {v['velocity_rmse_rad_s']:8.3f}  "
                  f"{v['onset_delay_median_s'] * 1e3:9.0f} ms  {v['onset_delay_p90_s'] * 1e3:6.0f} ms  "
                  f"{v['onset_misses']}/{v['onsets']}")
    print(f"latency per window, wall: p50 {latency['p50'] * 1e3:.3f} ms  p99 {latency['p99'] * 1e3:.3f} ms  "
          f"max {latency['max'] * 1e3:.3f} ms  ({latency['n']} windows, 1-min load average "
          f"{latency['loadavg_1min']:.1f} on {os.cpu_count()} CPUs)")
    print(f"latency per window, thread CPU time: p50 {latency['cpu_p50'] * 1e3:.3f} ms  "
          f"p99 {latency['cpu_p99'] * 1e3:.3f} ms  max {latency['cpu_max'] * 1e3:.3f} ms")
    done = {
        "macro_f1>=0.9": metrics["macro_f1"] >= 0.9,
        "onset_delay_median<=150ms": metrics["onset_delay_median_s"] <= 0.150,
        "onset_delay_p90<=150ms": metrics["onset_delay_p90_s"] <= 0.150,
        "latency_p99<=2ms (wall)": latency["p99"] <= 0.002,
        "latency_p99<=2ms (cpu)": latency["cpu_p99"] <= 0.002,
    }
    print("criteria: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in done.items()))
    result = {
        "model": str(model_dir), "model_id": model.model_id, "subjects": a.subjects, "duration_s": a.duration,
        "metrics": metrics, "metrics_by_controller": by_controller, "latency_s": latency, "criteria": done, "eval_wall_s": t_eval,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
