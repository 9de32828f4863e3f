"""Cost of the drivers' pure cores: frame decoding per protocol, on this machine.

For each protocol: microseconds per frame to frame + validate + convert a stream (the work a
driver's reader thread does per frame, without ROS), and the share of one CPU core that
costs at the device's nominal rate. Prints a table and writes JSON (default
``bench/results/drivers.json``).

Usage: ``python bench/bench_drivers.py [--frames 20000] [--out path]``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

from exo.drivers import ak_mit, foot_pressure, openbci_cyton, witmotion
from exo.drivers.actuator import ActuatorConfig, ActuatorCore

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "drivers.json"


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    n = args.frames

    model = ak_mit.MOTOR_MODELS["AK80-64"]
    replies = [ak_mit.encode_feedback(ak_mit.MitFeedback(1, 1.0 + 1e-4 * i, 0.1, 5.0), model) for i in range(n)]
    core = ActuatorCore(ActuatorConfig(model="AK80-64", max_jump_rad=10.0))

    def ak():
        for r in replies:
            core.on_reply(r)
            core.command_frame(0.0)

    g = witmotion.GRAVITY_M_S2
    imu_stream = b"".join(witmotion.sample_frames(witmotion.ImuSample(
        (-g * math.sin(0.01 * i), 0.0, g * math.cos(0.01 * i)), (0.0, 0.5, 0.0),
        (math.cos(0.005 * i), 0.0, math.sin(0.005 * i), 0.0), 30.0)) for i in range(n // 3))

    def imu():
        framer, asm = witmotion.framer(), witmotion.ImuAssembler()
        for k in range(0, len(imu_stream), 33):  # one output period per read, as the driver sees it
            for f in framer.feed(imu_stream[k:k + 33]):
                asm.add(*f)

    emg_stream = b"".join(openbci_cyton.encode_packet(i % 256, tuple(range(i, i + 8))) for i in range(n))

    def emg():
        framer, pk = openbci_cyton.framer(), openbci_cyton.EmgPacketizer(5)
        for k in range(0, len(emg_stream), 99):
            for f in framer.feed(emg_stream[k:k + 99]):
                pk.add(f, 0.0)

    cal = foot_pressure.Calibration((100.0,) * 4, (50.0,) * 4, (0.001,) * 4)
    foot_stream = b"".join(foot_pressure.encode_frame(i % 256, (100 + i % 3000, 200, 300, 400)) for i in range(n))

    def foot():
        framer = foot_pressure.framer(4)
        size = len(foot_stream) // n
        for k in range(0, len(foot_stream), size):
            for f in framer.feed(foot_stream[k:k + size]):
                cal.total_force_n(cal.pressure_pa(f.counts))

    rows = {
        "ak_mit_reply_and_command": (_time(ak, n), 100.0, "reply decoded + command encoded, per control step"),
        "witmotion_frame": (_time(imu, (n // 3) * 3), 300.0, "per 11-byte frame (3 per sample, 100 Hz)"),
        "openbci_cyton_packet": (_time(emg, n), 250.0, "per 33-byte packet (250 Hz)"),
        "foot_pressure_frame": (_time(foot, n), 100.0, "per frame of 4 cells (100 Hz)"),
    }
    print(f"{'protocol':28s} {'us/frame':>9s} {'rate Hz':>8s} {'% of a core':>11s}")
    results = {}
    for name, (us, rate, what) in rows.items():
        share = us * rate / 1e4
        print(f"{name:28s} {us:9.2f} {rate:8.0f} {share:11.3f}   {what}")
        results[name] = {"us_per_frame": round(us, 3), "rate_hz": rate, "cpu_percent": round(share, 4), "what": what}
    out = {"benchmark": "drivers", "frames": n, "python": platform.python_version(),
           "machine": platform.machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
