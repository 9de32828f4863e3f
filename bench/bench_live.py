"""Benchmark of the live view (Foxglove) and the therapist's console at the 100 Hz control rate.

A real-time sim graph (100 Hz) runs with live:=true and console:=true; beside it, a baseline process that
does the least any viewer must do: a raw rclpy subscriber of the same topics (the live view's forwarded
topics and ``emg``, same QoS, bytes not deserialized). A Foxglove protocol client subscribes to every
channel of the live view, and Debian's headless Chromium opens the console's page. Over ``--duration`` s:

- CPU of the live_view, console and baseline processes (% of one core, /proc/<pid>/stat), the live view's
  cost over the baseline, and the target (<= 10 % of a core for the live view);
- messages per second the Foxglove client received per channel (capped streams at ``max_rate_hz``);
- the page's frames per second (requestAnimationFrame) and plot redraws per second;
- the 1-minute load average before and after (the machine is shared; read the numbers next to it).

    python bench/bench_live.py --duration 20 --out bench/results/live.json
    python bench/bench_live.py --baseline-node   (internal: the baseline subscriber process)

Numbers are printed and written as JSON; nothing is asserted (speed is not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_node() -> None:
    """The baseline: a raw subscriber of the live view's topics (+ emg), counting messages, EventsExecutor."""
    import rclpy
    from rclpy.experimental import EventsExecutor
    from rclpy.node import Node

    from exo import contract
    from exo.live.forward import FORWARDED
    from exo.ros.qos import qos_profile
    from exo.ros.types import interface_class

    rclpy.init()
    node = Node("bench_live_baseline", namespace=contract.DEFAULT_NAMESPACE)
    counts = {t.name: 0 for t in [f.topic for f in FORWARDED] + [contract.EMG]}

    def counter(name: str):
        def on_raw(data: bytes) -> None:
            counts[name] += 1
        return on_raw

    for topic in [f.topic for f in FORWARDED] + [contract.EMG]:
        node.create_subscription(interface_class(topic.msg_type), topic.name, counter(topic.name),
                                 qos_profile(topic), raw=True)
    executor = EventsExecutor()
    executor.add_node(node)
    end = time.monotonic() + float(os.environ.get("BENCH_LIVE_BASELINE_S", "600"))
    try:
        while rclpy.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    print(json.dumps(counts), flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from exo import contract
    from exo.live import forward
    from exo.runner import GraphRunner, stop_process_groups
    from exo.testing.foxglove_client import FoxgloveClient
    from exo.testing.probe import RosProbe
    from exo.testing.ros_env import claim_domain, ros_environment

    claim = claim_domain()
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    env = ros_environment(claim.domain_id, tmp / "ros_log")
    os.environ.update(env)
    live_port, console_port = free_port(), free_port()
    result: dict[str, Any] = {"duration_s": args.duration, "control_rate_hz": contract.DEFAULT_CONTROL_RATE_HZ,
                              "loadavg_before": loadavg(), "nproc": os.cpu_count()}
    graph = GraphRunner("sim", {"controller": "pid", "level": "1", "lockstep": "false", "live": "true",
                                "live_port": str(live_port), "console": "true", "console_port": str(console_port)},
                        env=env, log_dir=tmp / "logs")
    probe = RosProbe(claim.domain_id)
    baseline = None
    client = None
    driver = None
    try:
        graph.start([n.name for n in graph.nodes if n.name != "sim_bridge"])
        probe.wait_for_nodes([n.name for n in graph.nodes if n.name != "sim_bridge"], 120.0, graph=graph)
        baseline = subprocess.Popen([sys.executable, __file__, "--baseline-node"], env={**os.environ, **env},
                                    stdout=subprocess.PIPE, text=True, start_new_session=True)
        probe.wait_for_nodes(["bench_live_baseline"], 60.0)
        graph.start(["sim_bridge"])
        joint = probe.subscribe(contract.JOINT_STATES)
        probe.wait_for(lambda: len(joint) > 200, 60.0, "the graph running")
        client = FoxgloveClient(f"ws://127.0.0.1:{live_port}")
        client.wait_for_channels([f.topic.resolved() for f in forward.FORWARDED if f.topic is not contract.SIM_TRUTH])
        client.subscribe(sorted(client.channels))
        from exo.testing.browser import CHROMEDRIVER, CHROMIUM, chromium_driver

        if CHROMIUM and CHROMEDRIVER:
            driver = chromium_driver(tmp / "chromium")
            driver.get(f"http://127.0.0.1:{console_port}/")
            probe.wait_for(lambda: (driver.execute_script("return window.exoConsole && window.exoConsole.redraws")
                                    or 0) > 3, 30.0, "the console page")
        else:
            result["page"] = "chromium/chromedriver not installed: no page measured"
        probe.spin_for(2.0)  # settle
        pids = {"live_view": graph.node("live_view").process.pid, "console": graph.node("console").process.pid,
                "baseline_raw_subscriber": baseline.pid,
                **{n.name: n.process.pid for n in graph.nodes if n.name in ("sim_bridge", "controller",
                                                                           "safety_monitor")}}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        n_frames0 = len(client.frames)
        n_joint0 = len(joint)
        t0 = time.monotonic()
        page0 = driver.execute_script("return [window.exoConsole.frames, window.exoConsole.redraws];") \
            if driver is not None else None
        while time.monotonic() - t0 < args.duration:
            probe.spin_for(0.2)
        wall = time.monotonic() - t0
        if driver is not None:
            f1, r1 = driver.execute_script("return [window.exoConsole.frames, window.exoConsole.redraws];")
            result["page"] = {"fps": (f1 - page0[0]) / wall, "plot_redraws_per_s": (r1 - page0[1]) / wall}
        cpu = {k: 100.0 * (cpu_seconds(p) - cpu0[k]) / wall for k, p in pids.items()}
        graph.check()
        frames = client.frames[n_frames0:]
        per_topic: dict[str, float] = {}
        for f in frames:
            per_topic[f.topic] = per_topic.get(f.topic, 0) + 1.0 / wall
        result.update({
            "wall_s": wall,
            "cpu_percent_of_one_core": cpu,
            "live_view_minus_baseline_percent": cpu["live_view"] - cpu["baseline_raw_subscriber"],
            "live_view_target_percent": 10.0,
            "joint_states_rate_hz": (len(joint) - n_joint0) / wall,
            "foxglove_client_messages_per_s": per_topic,
            "foxglove_client_total_per_s": len(frames) / wall,
        })
    finally:
        if driver is not None:
            driver.quit()
        if client is not None:
            client.close()
        probe.close()
        graph.stop()
        if baseline is not None:
            stop_process_groups([baseline], timeout_s=3.0)
        result["loadavg_after"] = loadavg()
        claim.release()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Measured wall seconds.")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (e.g. bench/results/live.json).")
    parser.add_argument("--baseline-node", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_node:
        baseline_node()
        return
    res = run(args)
    print(json.dumps(res, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
