"""The security review's attacks as numbers: the real-time sim graph (PID) with and without a foreign flood.

For each scenario the sim graph runs in real time (``lockstep:=false``, the ``exo sim --realtime`` of the
review) for ``--duration`` seconds of wall time while a probe records every ``torque_command``:

- ``baseline``: no foreign participant;
- ``flood``: a foreign participant (``exo.testing.foreign_node flood``, no keys) publishes invalid
  ``torque_request`` messages at ``--rate-hz`` (NaN, inf, 1e9 N m, stale, future, forged MAC);
- ``command``: a foreign participant publishes 100 N m on ``torque_command`` for every sample.

Reported per scenario: commands per second, the share passed from the PID, the share decided on the
controller's own request for that very step (a crowded-out request shows here), the peak |torque| the
motor applied (``joint_states`` effort), the monitor's CPU share, and the security events counted. The
machine's load average is recorded next to the numbers; run it on a quiet machine.

Usage: ``python bench/bench_security.py [--duration 20] [--rate-hz 1000] [--out bench/results/security.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exo import contract
from exo.ros.convert import from_time_msg, stamp_ns
from exo.runner import GraphRunner
from exo.security import COMMAND_PURPOSE, REQUEST_PURPOSE, MessageVerifier, Verdict, sign
from exo.security.keys import load_secret
from exo.testing import ros_env
from exo.testing.probe import RosProbe

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "security.json"
NODES = ["sim_bridge", "controller", "safety_monitor"]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(scenario: str, duration_s: float, rate_hz: float, domain: int, logs: Path) -> dict:
    env = ros_env.ros_environment(domain, logs / "ros_log")
    previous = ros_env.apply(env)
    graph = GraphRunner("sim", {"controller": "pid", "level": "1", "lockstep": "false"}, env=env,
                        log_dir=logs / scenario)
    probe = RosProbe(domain, events=True)
    attacker = None
    try:
        commands, requests = probe.subscribe(contract.TORQUE_COMMAND), probe.subscribe(contract.TORQUE_REQUEST)
        joint, status = probe.subscribe(contract.JOINT_STATES), probe.subscribe(contract.SAFETY_STATUS)
        graph.start()
        probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
        probe.wait_for(lambda: any(c.source == "pid" for c in commands), 60.0, "the controller in charge")
        probe.spin_for(2.0)  # past the start-up and the monitor's stall warm-up
        if scenario != "baseline":
            args = ["--rate-hz", str(rate_hz)] if scenario == "flood" else []
            attacker = subprocess.Popen([sys.executable, "-m", "exo.testing.foreign_node", scenario, "--duration",
                                         str(duration_s + 5.0), *args], env={**os.environ, **env},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            probe.spin_for(1.0)
        monitor_pid = graph.node("safety_monitor").process.pid
        c0, j0, cpu0, t0 = len(commands), len(joint), cpu_s(monitor_pid), time.monotonic()
        probe.spin_for(duration_s)
        window, joints = commands[c0:], joint[j0:]
        cpu = (cpu_s(monitor_pid) - cpu0) / (time.monotonic() - t0)
        graph.check()
        verifier = MessageVerifier(load_secret(graph.secrets.file("request_key_file")), REQUEST_PURPOSE)
        answered = {}
        for r in requests:
            if verifier.check(stamp_ns(r.header.stamp), r.seq, r.joint, r.torque, r.source, bytes(r.mac)) in (
                    Verdict.OK, Verdict.DUPLICATE):
                answered[r.seq] = from_time_msg(r.header.stamp)
        command_key = load_secret(graph.secrets.file("command_key_file"))
        monitor_cmds = [c for c in window if bytes(c.mac) == sign(command_key, COMMAND_PURPOSE, stamp_ns(c.header.stamp),
                                                                  c.seq, c.joint, c.torque, c.source)]
        n = max(1, len(monitor_cmds))
        return {
            "scenario": scenario,
            "commands_per_s": len(monitor_cmds) / duration_s,
            "foreign_commands_seen": len(window) - len(monitor_cmds),
            "pid_share": sum(c.source == "pid" for c in monitor_cmds) / n,
            "own_answer_share": sum(c.source == "pid" and answered.get(c.request_seq) == from_time_msg(c.header.stamp)
                                    for c in monitor_cmds) / n,
            "sources": {s: sum(c.source == s for c in monitor_cmds) for s in {c.source for c in monitor_cmds}},
            "peak_applied_torque_nm": max((abs(m.effort[0]) for m in joints), default=0.0),
            "peak_knee_angle_rad": max((m.position[0] for m in joints), default=0.0),
            "monitor_cpu_share": cpu,
            "security_events": status[-1].security_events if status else 0,
        }
    finally:
        if attacker is not None and attacker.poll() is None:
            os.killpg(attacker.pid, signal.SIGKILL)
        probe.close()
        graph.stop()
        ros_env.restore(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="measured window per scenario, s (wall)")
    parser.add_argument("--rate-hz", type=float, default=1000.0, help="flood rate of the foreign participant, Hz")
    parser.add_argument("--scenarios", default="baseline,flood,command")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    claim = ros_env.claim_domain()
    results = {"load_average_before": os.getloadavg(), "machine": platform.platform(), "cpus": os.cpu_count(),
               "duration_s": args.duration, "rate_hz": args.rate_hz, "scenarios": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in args.scenarios.split(","):
                r = run(scenario, args.duration, args.rate_hz, claim.domain_id, Path(tmp))
                results["scenarios"].append(r)
                print(f"{scenario:9s} {r['commands_per_s']:6.1f} cmd/s  pid {100 * r['pid_share']:6.2f} %  own answer "
                      f"{100 * r['own_answer_share']:6.2f} %  peak applied {r['peak_applied_torque_nm']:5.1f} N m  "
                      f"peak knee {r['peak_knee_angle_rad']:.3f} rad  monitor CPU {100 * r['monitor_cpu_share']:5.1f} %  "
                      f"security events {r['security_events']}", flush=True)
    finally:
        claim.release()
    results["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average before {results['load_average_before']}, after {results['load_average_after']}; {args.out}")


if __name__ == "__main__":
    main()
