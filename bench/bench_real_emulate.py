"""``exo real --emulate --strict-timing`` as a benchmark: does the real graph hold the hardware timeouts here?

Runs ``exo real --emulate --strict-timing --duration D --timing-report ...`` N times (each in its
own ROS domain and log folder) and collects each run's timing report (exo/cli/real.py): SAFE_STOP
and FALLBACK transitions after start-up, commands by source (controller ``pid`` vs ``fallback_pid`` /
``safe_stop``), the worst gap between consecutive samples per sensor topic (the oldest the newest
sample got; hardware timeout 50 ms), the emulated rig's step lateness (p50 / p99 / max), and CPU and
run-queue wait per process (% of one core over the run). Prints a table and writes JSON (default
``bench/results/real_emulate.json``).

Timing numbers depend on what else runs: on the shared development machine run it with the other
work paused (docs/drivers.md, "Timing").

Usage: ``python bench/bench_real_emulate.py [--runs 3] [--duration 20] [--loose] [--out path]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "real_emulate.json"


def one_run(index: int, duration_s: float, strict: bool, folder: Path, extra: list[str]) -> dict:
    from exo.testing.ros_env import claim_domain

    exo = Path(sys.executable).with_name("exo")
    report_path = folder / f"run{index}.json"
    claim = claim_domain()
    try:
        cmd = [str(exo), "real", "--emulate", "--duration", str(duration_s), "--domain-id", str(claim.domain_id),
               "--log-dir", str(folder / f"run{index}"), "--timing-report", str(report_path), *extra]
        if strict:
            cmd.append("--strict-timing")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 180)
    finally:
        claim.release()
    if proc.returncode != 0 or not report_path.exists():
        raise RuntimeError(f"run {index}: exo real exited with {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    report = json.loads(report_path.read_text())
    report["elapsed_s"] = time.monotonic() - t0
    return report


def summarise(runs: list[dict]) -> dict:
    """Totals and worst cases over the runs."""
    sources: dict[str, int] = {}
    for r in runs:
        for k, v in r["command_sources"].items():
            sources[k] = sources.get(k, 0) + v
    topics = sorted({k for r in runs for k in r["worst_sensor_gap_s"]})
    procs = sorted({k for r in runs for k in r["cpu_percent"]})

    def worst(values):
        values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return max(values) if values else None

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    rig = [r.get("rig", {}) for r in runs]
    return {
        "runs": len(runs),
        "safe_stops": sum(r["safe_stops"] for r in runs),
        "fallbacks": sum(r["fallbacks"] for r in runs),
        "runs_clean": sum(r["safe_stops"] == 0 and r["fallbacks"] == 0 for r in runs),
        "command_sources": sources,
        "worst_sensor_gap_ms": {t: 1e3 * worst(r["worst_sensor_gap_s"].get(t) for r in runs) for t in topics},
        "rig_lateness_ms": {"p50_mean": mean(x.get("lateness_p50_ms") for x in rig),
                            "p99_worst": worst(x.get("lateness_p99_ms") for x in rig),
                            "max": worst(x.get("lateness_max_ms") for x in rig),
                            "steps_late_over_period": sum(x.get("steps_late_over_period", 0) for x in rig)},
        "cpu_percent_mean": {p: mean(r["cpu_percent"].get(p) for r in runs) for p in procs},
        "runqueue_wait_percent_mean": {p: mean(r["runqueue_wait_percent"].get(p) for r in runs) for p in procs},
        "joint_states_hz_mean": mean(r["joint_states_hz"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="Wall seconds of each run.")
    parser.add_argument("--loose", action="store_true", help="Without --strict-timing (config/emulate.yaml).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the runs' logs and reports in this folder.")
    parser.add_argument("extra", nargs="*", help="More exo real arguments (after --).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        runs = []
        for i in range(args.runs):
            r = one_run(i, args.duration, not args.loose, folder, args.extra)
            runs.append(r)
            rig = r.get("rig", {})
            print(f"run {i}: SAFE_STOP {r['safe_stops']}, FALLBACK {r['fallbacks']}, commands {r['command_sources']}, "
                  f"worst gap {', '.join(f'{k} {1e3 * v:.1f} ms' for k, v in r['worst_sensor_gap_s'].items())}, "
                  f"rig lateness p50/p99/max {rig.get('lateness_p50_ms')}/{rig.get('lateness_p99_ms')}/"
                  f"{rig.get('lateness_max_ms')} ms", flush=True)
    summary = summarise(runs)
    print(f"\n{summary['runs']} run(s) of {args.duration:g} s, {'loose' if args.loose else 'strict'} timing: "
          f"{summary['runs_clean']} clean; SAFE_STOP {summary['safe_stops']}, FALLBACK {summary['fallbacks']}; "
          f"commands {summary['command_sources']}")
    print("worst gap per sensor topic (ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in summary["worst_sensor_gap_ms"].items()))
    rl = summary["rig_lateness_ms"]
    print(f"rig step lateness (ms): p50 {rl['p50_mean']:.3f} (mean), p99 {rl['p99_worst']:.3f} (worst run), "
          f"max {rl['max']:.3f}; {rl['steps_late_over_period']} step(s) later than a period")
    print(f"{'process':<22} {'CPU %':>7} {'run-queue wait %':>17}")
    for p, cpu in sorted(summary["cpu_percent_mean"].items(), key=lambda kv: -kv[1]):
        print(f"{p:<22} {cpu:7.1f} {summary['runqueue_wait_percent_mean'][p]:17.1f}")
    print(f"total CPU: {sum(summary['cpu_percent_mean'].values()):.0f} % of one core")
    out = {"host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_1min_after": os.getloadavg()[0]},
           "duration_s": args.duration, "strict_timing": not args.loose, "summary": summary, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
