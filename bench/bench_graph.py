"""End-to-end timing, real-time factor and memory of the exo node graph, as real processes over DDS.

Everything runs in its own ROS domain (``exo.testing.ros_env``: localhost discovery, own log
dir) and every process started here is killed at the end (SIGINT, SIGTERM, SIGKILL of its
process group). Phases (``--only`` selects some):

``latency``  The real ``controller`` and ``safety_monitor`` (``GraphRunner("sim", only=...)``,
             use_sim_time false, a params file sets ``control_period_s`` = 1/rate,
             ``request_deadline_s`` = 2/rate and ``pid.dt`` = 1/rate) fed by ``bench/loadgen.py``
             at 100 and 500 Hz: latency = arrival of ``torque_command`` in the generator - the
             sensor sample's stamp. Stamps: ``periodic_mono`` (the nominal sample time on the
             monotonic clock, i.e. a driver's sample clock since boot), because with wall-clock
             stamps the monitor never leaves FALLBACK (see ``stamps``). Per-hop split from the
             ``torque_request`` tap and rclpy's MessageInfo timestamps.
``echo``     The raw rclpy round trip at the same rates: loadgen -> ``exo.testing.echo_node``
             -> loadgen, one JointState per period.
``stamps``   As ``latency`` with other sensor clocks: ``wall`` (``time.time()`` when the sample is
             built, at both rates), ``mono`` (``time.monotonic()``: jitter, small numbers) and
             ``periodic_wall`` (exact period, epoch-sized numbers) at 100 Hz. Shows that the
             safety monitor, once in FALLBACK, stays there when consecutive stamps are more than
             one control period + 1 ns apart (jitter, or float seconds at epoch scale).
``single``   latency and echo again with ``EXO_EXECUTOR=single`` (rclpy's SingleThreadedExecutor
             in the nodes, the echo node and the load generator) instead of the shipped
             EventsExecutor.
``rtf``      Full sim graph (sim_bridge + controller + safety_monitor, PID, level 1), reduced
             and full twin, lockstep and real time: simulated s per wall s from the stamps of
             ``/exo/joint_states`` seen by a probe, and the wall time per step in lockstep.
``memory``   VmRSS / VmHWM / Pss of every node process (sampled at the end of each phase
             above) and whether torch (or other training-side packages) is in the controller.

Usage::

    .venv/bin/python bench/bench_graph.py [--duration 60] [--out bench/results/graph.json]

Prints rich tables and writes JSON. The machine is shared: the load average during every
phase is recorded next to its numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from exo.runner import GraphRunner, stop_process_groups
from exo.testing import ros_env

BENCH = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH / "results" / "graph.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HEAVY_MODULES = ("torch", "stable_baselines3", "gymnasium", "mujoco", "myosuite", "scipy", "matplotlib", "pandas")
console = Console(width=230)


# --- /proc helpers ------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) from /proc/<pid>/status and Pss (kB) from smaps_rollup."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def mapped_libs(pid: int, pattern: str) -> list[str]:
    try:
        paths = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                 if len(line.split()) >= 6}
    except OSError:
        return []
    return sorted(p for p in paths if re.search(pattern, p))


class LoadSampler:
    """/proc/loadavg every 2 s in a thread; ``mark()``/``since(mark)`` give a phase's 1-min loads."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), float(Path("/proc/loadavg").read_text().split()[0])))
            self._stop.wait(2.0)

    def mark(self) -> float:
        return time.monotonic()

    def since(self, t0: float) -> dict[str, float]:
        vals = [v for t, v in self.samples if t >= t0] or [float(Path("/proc/loadavg").read_text().split()[0])]
        return {"min": min(vals), "mean": round(float(np.mean(vals)), 2), "max": max(vals)}

    def stop(self) -> None:
        self._stop.set()


class CpuMeter:
    """CPU % of processes between two samples (``start()`` then ``stop()``)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in pids.items()}

    def result(self) -> dict[str, float]:
        dt = time.monotonic() - self.t0
        out = {}
        for k, p in self.pids.items():
            c1 = cpu_seconds(p)
            if c1 is not None and self.c0[k] is not None and dt > 0:
                out[k] = round(100.0 * (c1 - self.c0[k]) / dt, 1)
        return out


# --- process management ------------------------------------------------------------------------
class Children:
    """Processes started by the bench (own session each); ``kill_all`` at the end, always."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.runners: list[GraphRunner] = []

    def start(self, argv: list[str], name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(extra_env or {})},
                                start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout_s: float = 3.0) -> int | None:
        return stop_process_groups([proc], timeout_s)[0]

    def runner(self, *args: Any, **kwargs: Any) -> GraphRunner:
        r = GraphRunner(*args, **kwargs)
        self.runners.append(r)
        return r

    def kill_all(self) -> None:
        for r in self.runners:
            with contextlib.suppress(Exception):
                r.stop(timeout_s=3.0)
        for p in self.procs:
            with contextlib.suppress(Exception):
                self.stop(p, timeout_s=2.0)


def params_file(path: Path, rate_hz: float) -> Path:
    period = 1.0 / rate_hz
    path.write_text(
        "/**/safety_monitor:\n  ros__parameters:\n"
        f"    control_period_s: {period}\n    request_deadline_s: {2 * period}\n"
        # the 2 ms default tolerance is a 100 Hz figure; it must stay under one period
        f"    stamp_jitter_tolerance_s: {min(0.002, 0.2 * period)}\n"
        "/**/controller:\n  ros__parameters:\n"
        f"    pid.dt: {period}\n"
    )
    return path


def log_excerpt(path: Path, pattern: str = r"WARN|ERROR|FATAL|Traceback|fatal", limit: int = 6) -> dict[str, Any]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"count": 0, "lines": []}
    hits = [ln for ln in lines if re.search(pattern, ln)]
    return {"count": len(hits), "lines": hits[:limit] + (hits[-2:] if len(hits) > limit + 2 else [])}


# --- latency statistics ----------------------------------------------------------------------------
def pct(a: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(a, q)), 3) if a.size else None


def latency_stats(raw: dict[str, Any], rate_hz: float, expect_source: str) -> dict[str, Any]:
    stamp = np.asarray(raw["stamp_ns"], dtype=np.int64)
    recv = np.asarray(raw["cmd_recv_ns"], dtype=np.int64)
    n = stamp.size
    got = recv >= 0
    lat_ms = (recv[got] - stamp[got]) / 1e6
    period_ms = 1000.0 / rate_hz
    late = int(np.sum(lat_ms > period_ms))
    missed = int(n - got.sum())
    sources: dict[str, int] = {}
    for s in raw["cmd_source"]:
        if s:
            sources[s] = sources.get(s, 0) + 1
    other = sum(v for k, v in sources.items() if k != expect_source)
    out: dict[str, Any] = {
        "samples": n, "window_s": round(raw["window_wall_s"], 2),
        "achieved_hz": round(n / raw["window_wall_s"], 1) if raw["window_wall_s"] else None,
        "skipped_slots": raw["skipped_slots"],
        "p50_ms": pct(lat_ms, 50), "p90_ms": pct(lat_ms, 90), "p99_ms": pct(lat_ms, 99), "p999_ms": pct(lat_ms, 99.9),
        "max_ms": round(float(lat_ms.max()), 3) if lat_ms.size else None,
        "missed_frac": missed / n if n else None,
        "late_frac": late / n if n else None,
        "deadline_miss_frac": (late + missed) / n if n else None,
        "not_controller_frac": other / n if n else None,
        "sources": sources, "unmatched": raw["unmatched"], "duplicates": raw["duplicates"],
        "discovery_s": round(raw["discovery_s"], 2), "settled_before_window": raw.get("settled"),
    }
    # per-hop split (ms): generator publish, -> controller's request, -> safety's command, DDS back, dispatch
    pub = np.asarray(raw["pub_done_ns"], dtype=np.int64)
    src = np.asarray(raw["cmd_src_ns"], dtype=np.int64)
    rx = np.asarray(raw["cmd_rx_ns"], dtype=np.int64)
    req = np.asarray(raw["req_src_ns"], dtype=np.int64)
    hops: dict[str, np.ndarray] = {"gen_publish (stamp->last msg written)": (pub - stamp) / 1e6}
    both = got & (req > 0) & (src > 0)
    if both.any():
        hops["controller (stamp->request written)"] = (req[both] - stamp[both]) / 1e6
        hops["safety (request->command written)"] = (src[both] - req[both]) / 1e6
    if raw["mode"] == "echo":
        ok = got & (src > 0)
        hops["echo (stamp->echo written)"] = (src[ok] - stamp[ok]) / 1e6
    ok = got & (src > 0) & (rx > 0)
    hops["dds back (written->received)"] = (rx[ok] - src[ok]) / 1e6
    hops["gen dispatch (received->callback)"] = (recv[ok] - rx[ok]) / 1e6
    out["hops_ms"] = {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in hops.items() if v.size}
    # where the worst samples spend their time
    if both.any():
        idx = np.where(both)[0]
        total = recv[idx] - stamp[idx]
        worst = idx[np.argsort(total)[-max(1, len(idx) // 100):]]  # slowest 1 %
        out["slowest_1pct_hops_ms_mean"] = {
            "controller": round(float(np.mean(req[worst] - stamp[worst]) / 1e6), 3),
            "safety": round(float(np.mean(src[worst] - req[worst]) / 1e6), 3),
            "dds_back+dispatch": round(float(np.mean(recv[worst] - src[worst]) / 1e6), 3),
        }
    return out


# --- phases ------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_graph_"))
        self.domain = a.domain if a.domain is not None else 1 + (os.getpid() * 11 + 37) % 100
        self.env = ros_env.ros_environment(self.domain, self.tmp / "ros_log")
        ros_env.apply(self.env)  # the RTF probe runs in this process
        self.children = Children(self.env, self.tmp)
        self.load = LoadSampler()
        self.results: dict[str, Any] = {"latency": [], "rtf": [], "memory": {}}

    def _loadgen(self, name: str, extra: list[str]) -> subprocess.Popen:
        out = self.tmp / f"{name}.json"
        return self.children.start([sys.executable, str(BENCH / "loadgen.py"), "--out", str(out), *extra], name)

    def _wait_loadgen(self, proc: subprocess.Popen, out: Path, watch: dict[str, int], runner: GraphRunner | None,
                      timeout_s: float) -> tuple[dict[str, Any], dict[str, float], dict[str, dict[str, int]]]:
        """Wait for the generator; CPU % of ``watch`` over the middle of the run; memory at the end."""
        deadline = time.monotonic() + timeout_s
        pids = {**watch, "loadgen": proc.pid}
        meter: CpuMeter | None = None
        t_start = time.monotonic()
        cpu: dict[str, float] = {}
        mem: dict[str, dict[str, int]] = {}
        while proc.poll() is None:
            if runner is not None:
                runner.check()
            now = time.monotonic()
            if meter is None and now - t_start > min(8.0, self.a.duration / 2):
                meter = CpuMeter(pids)
            if meter is not None:
                cpu = meter.result()
                mem = {k: proc_status(p) for k, p in watch.items()}
            if now > deadline:
                self.children.stop(proc)
                raise TimeoutError(f"loadgen did not finish within {timeout_s:.0f} s")
            time.sleep(0.5)
        raw = json.loads(out.read_text()) if out.exists() else {"ok": False, "error": f"no output, rc={proc.returncode}"}
        return raw, cpu, mem

    # 1, 2, 3, 5b: latency through the real nodes, or through the echo node
    def latency(self, rate: float, executor: str, stamp: str = "periodic_mono", duration: float | None = None) -> None:
        duration = duration if duration is not None else self.a.duration
        label = f"graph {rate:g} Hz {executor} {stamp}"
        console.print(f"[bold]>> {label}[/] ({duration:g} s)")
        t_mark = self.load.mark()
        name = f"lat{rate:g}_{executor}_{stamp}"
        log_dir = self.tmp / name
        log_dir.mkdir()
        pfile = params_file(log_dir / "params.yaml", rate)
        runner = self.children.runner("sim", {"use_sim_time": "false", "params_file": str(pfile), "controller": "pid"},
                                      env={**self.env, "EXO_EXECUTOR": executor}, log_dir=log_dir,
                                      only=("controller", "safety_monitor"))
        entry: dict[str, Any] = {"label": label, "kind": "graph", "rate_hz": rate, "executor": executor, "stamp": stamp}
        try:
            runner.start()
            watch = {n.name: n.process.pid for n in runner.nodes}
            proc = self._loadgen(name, ["--mode", "graph", "--rate", str(rate), "--duration", str(duration),
                                        "--stamp", stamp, "--warmup", str(self.a.warmup)])
            raw, cpu, mem = self._wait_loadgen(proc, self.tmp / f"{name}.json", watch, runner, duration + 120)
            if executor == "events" and stamp == "periodic_mono":  # the live controller: what it has mapped
                self.results["controller_maps"] = {
                    "torch_libs": mapped_libs(watch["controller"], r"torch"),
                    "heavy_libs": mapped_libs(watch["controller"], r"torch|mujoco|gymnasium|sb3|stable_baselines"),
                }
            entry.update(cpu_pct=cpu, memory_kb=mem)
            if raw.get("ok"):
                entry.update(latency_stats(raw, rate, "pid"))
            else:
                entry["error"] = raw.get("error")
        except Exception as exc:  # noqa: BLE001 - recorded, the bench goes on
            entry["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            codes = runner.stop()
            entry["exit_codes"] = codes
            entry["node_logs"] = {n.name: log_excerpt(n.log_path) for n in runner.nodes}
            entry["load"] = self.load.since(t_mark)
        self.results["latency"].append(entry)
        self._brief(entry)

    def echo(self, rate: float, executor: str, duration: float | None = None) -> None:
        duration = duration if duration is not None else self.a.duration
        label = f"echo {rate:g} Hz {executor}"
        console.print(f"[bold]>> {label}[/] ({duration:g} s)")
        t_mark = self.load.mark()
        name = f"echo{rate:g}_{executor}"
        topic = "/bench/js"
        spec = f"{topic}:sensor_msgs/msg/JointState"
        argv = [sys.executable, "-m", "exo.testing.echo_node", spec]
        echo = self.children.start(argv, name + "_node", extra_env={"EXO_EXECUTOR": executor})
        entry: dict[str, Any] = {"label": label, "kind": "echo", "rate_hz": rate, "executor": executor, "stamp": "wall"}
        try:
            proc = self._loadgen(name, ["--mode", "echo", "--rate", str(rate), "--duration", str(duration),
                                              "--echo-topic", topic, "--warmup", "1.0"])
            raw, cpu, mem = self._wait_loadgen(proc, self.tmp / f"{name}.json", {"echo": echo.pid}, None, duration + 90)
            entry.update(cpu_pct=cpu, memory_kb=mem)
            if raw.get("ok"):
                entry.update(latency_stats(raw, rate, "echo"))
            else:
                entry["error"] = raw.get("error")
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            entry["exit_codes"] = {"echo": self.children.stop(echo)}
            entry["load"] = self.load.since(t_mark)
        self.results["latency"].append(entry)
        self._brief(entry)

    def _brief(self, e: dict[str, Any]) -> None:
        if "error" in e:
            console.print(f"   [red]error[/]: {e['error']}")
            for name, log in e.get("node_logs", {}).items():
                for line in log["lines"]:
                    console.print(f"   {name}: {line}")
        else:
            console.print(f"   p50 {e['p50_ms']} ms  p99 {e['p99_ms']} ms  max {e['max_ms']} ms  "
                          f"missed {e['missed_frac']:.4%}  deadline-miss {e['deadline_miss_frac']:.4%}  "
                          f"cpu {e.get('cpu_pct')}  load {e['load']}")

    # 4: real-time factor of the full sim graph
    def rtf(self, twin: str, lockstep: bool) -> None:
        label = f"sim {twin} {'lockstep' if lockstep else 'real-time'}"
        console.print(f"[bold]>> RTF {label}[/] ({self.a.rtf_window:g} s window)")
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import JointState

        from exo import contract
        from exo.ros import convert
        from exo.ros.qos import qos_profile
        from exo.testing.probe import RosProbe

        t_mark = self.load.mark()
        log_dir = self.tmp / f"rtf_{twin}_{lockstep}"
        runner = self.children.runner("sim", {"twin": twin, "level": "1", "controller": "pid",
                                              "lockstep": "true" if lockstep else "false"},
                                      env=self.env, log_dir=log_dir)
        probe = RosProbe(self.domain, name="bench_probe_rtf")
        seen: list[tuple[float, float]] = []

        def on_joint(msg: JointState) -> None:
            seen.append((convert.from_time_msg(msg.header.stamp), time.monotonic()))

        qos: QoSProfile = qos_profile(contract.JOINT_STATES)
        qos.depth = 50  # the probe may lag a little behind lockstep; keep the samples
        probe.node.create_subscription(JointState, contract.JOINT_STATES.resolved(), on_joint, qos)
        entry: dict[str, Any] = {"label": label, "twin": twin, "lockstep": lockstep}
        try:
            runner.start()
            t0 = time.monotonic()
            probe.wait_for(lambda: len(seen) > 0, 120.0, "first joint_states")
            entry["first_sample_after_s"] = round(time.monotonic() - t0, 1)
            first = seen[0][0]
            probe.wait_for(lambda: seen[-1][0] - first > 0.5, 60.0, "simulated time advancing")
            entry["advancing_after_s"] = round(time.monotonic() - t0, 1)
            probe.spin_for(2.0)  # warm-up
            runner.check()
            watch = {n.name: n.process.pid for n in runner.nodes}
            meter = CpuMeter(watch)
            i0 = len(seen)
            probe.spin_for(self.a.rtf_window)
            runner.check()
            entry["cpu_pct"] = meter.result()
            entry["memory_kb"] = {k: proc_status(p) for k, p in watch.items()}
            w = np.array(seen[i0:], dtype=np.float64)
            sim, wall = w[:, 0], w[:, 1]
            d_sim = np.diff(sim)
            dt = float(np.median(d_sim))
            rtf = (sim[-1] - sim[0]) / (wall[-1] - wall[0])
            steps = (sim[-1] - sim[0]) / dt
            consecutive = np.abs(d_sim - dt) < 1e-6
            step_wall_ms = np.diff(wall)[consecutive] * 1e3
            entry.update(
                control_dt_s=round(dt, 6), rtf=round(float(rtf), 3), steps_per_wall_s=round(float(rtf / dt), 1),
                mean_step_wall_ms=round(float((wall[-1] - wall[0]) / steps * 1e3), 3),
                step_wall_p50_ms=pct(step_wall_ms, 50), step_wall_p99_ms=pct(step_wall_ms, 99),
                step_wall_max_ms=round(float(step_wall_ms.max()), 3) if step_wall_ms.size else None,
                samples_seen=int(w.shape[0]), steps_in_window=int(round(steps)),
            )
            bridge_log = runner.node("sim_bridge").log_path.read_text(errors="replace")
            timeouts = [int(m) for m in re.findall(r"advancing with the actuator model \((\d+) time", bridge_log)]
            entry["lockstep_timeouts_logged_max"] = max(timeouts) if timeouts else 0
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            probe.close()
            entry["exit_codes"] = runner.stop()
            entry["node_logs"] = {n.name: log_excerpt(n.log_path) for n in runner.nodes}
            entry["load"] = self.load.since(t_mark)
        self.results["rtf"].append(entry)
        console.print(f"   {({k: entry.get(k) for k in ('rtf', 'mean_step_wall_ms', 'cpu_pct', 'load', 'error')})}")

    # 4: imports of the controller (no ROS needed)
    def imports(self) -> None:
        code = ("import sys, json; import exo.nodes.{m}; "
                "print(json.dumps([k for k in {heavy!r} if k in sys.modules]))")
        out = {}
        for m in ("controller", "safety_monitor", "sim_bridge"):
            r = subprocess.run([sys.executable, "-c", code.format(m=m, heavy=HEAVY_MODULES)], capture_output=True,
                               text=True, timeout=120, env={**os.environ, **self.env})
            out[m] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else f"error: {r.stderr[-300:]}"
        # why the controller has gymnasium: the import chain
        r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import exo.nodes.controller"],
                           capture_output=True, text=True, timeout=120)
        chain = [ln.split("|")[-1].rstrip() for ln in r.stderr.splitlines()
                 if re.search(r"\| +(exo\.envs|gymnasium)$", ln)]
        self.results["imports"] = {"heavy_modules_after_import": out, "controller_chain": chain}

    def close(self) -> None:
        self.children.kill_all()
        self.load.stop()


# --- report -----------------------------------------------------------------------------------------
def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def report(res: dict[str, Any]) -> None:
    t = Table(title="End-to-end latency (stamp -> torque_command / echo in the generator)", show_lines=False)
    for col in ("run", "n", "Hz", "p50 ms", "p99 ms", "p99.9", "max ms", "missed", "late>T", "dl-miss",
                "not ctrl", "CPU % (nodes / gen)", "load 1m"):
        t.add_column(col, justify="right" if col not in ("run", "CPU % (nodes / gen)") else "left")
    for e in res["latency"]:
        if "error" in e:
            t.add_row(e["label"], "-", "-", f"[red]{e['error'][:60]}[/]", *["-"] * 9)
            continue
        cpu = e.get("cpu_pct", {})
        t.add_row(e["label"], str(e["samples"]), _f(e["achieved_hz"], "{:.1f}"), _f(e["p50_ms"]), _f(e["p99_ms"]),
                  _f(e["p999_ms"], "{:.2f}"), _f(e["max_ms"], "{:.2f}"), _f(e["missed_frac"], "{:.3%}"),
                  _f(e["late_frac"], "{:.3%}"), _f(e["deadline_miss_frac"], "{:.3%}"),
                  _f(e["not_controller_frac"], "{:.2%}") if e["kind"] == "graph" else "",
                  " ".join(f"{k[:4]}={v:g}" for k, v in cpu.items()),
                  f"{e['load']['mean']:.2f} ({e['load']['min']:.2f}-{e['load']['max']:.2f})")
    console.print(t)
    h = Table(title="Per-hop split, ms: p50 / p99 (MessageInfo source/received timestamps)")
    hop_names: list[str] = []
    for e in res["latency"]:
        for k in e.get("hops_ms", {}):
            if k not in hop_names:
                hop_names.append(k)
    h.add_column("run")
    for k in hop_names:
        h.add_column(k, justify="right")
    for e in res["latency"]:
        hops = e.get("hops_ms", {})
        h.add_row(e["label"], *[f"{hops[k]['p50']:.3f} / {hops[k]['p99']:.3f}" if k in hops else "" for k in hop_names])
    console.print(h)
    if res["rtf"]:
        r = Table(title="Real-time factor of the sim graph (sim s / wall s from /exo/joint_states stamps)")
        for col in ("run", "RTF", "steps/s", "step ms mean", "step p50", "step p99", "step max", "lockstep t/o",
                    "CPU %", "load 1m"):
            r.add_column(col, justify="left" if col in ("run", "CPU %") else "right")
        for e in res["rtf"]:
            if "error" in e:
                r.add_row(e["label"], f"[red]{e['error'][:80]}[/]", *["-"] * 8)
                continue
            r.add_row(e["label"], _f(e["rtf"]), _f(e["steps_per_wall_s"], "{:.0f}"), _f(e["mean_step_wall_ms"]),
                      _f(e["step_wall_p50_ms"]), _f(e["step_wall_p99_ms"]), _f(e["step_wall_max_ms"], "{:.1f}"),
                      str(e.get("lockstep_timeouts_logged_max", "")),
                      " ".join(f"{k[:4]}={v:g}" for k, v in e.get("cpu_pct", {}).items()),
                      f"{e['load']['mean']:.2f}")
        console.print(r)
    m = Table(title="Memory per node process, MB (VmRSS / VmHWM / Pss)")
    for col in ("run", "process", "RSS", "HWM", "Pss"):
        m.add_column(col, justify="left" if col in ("run", "process") else "right")
    for e in res["latency"] + res["rtf"]:
        mem = e.get("memory_kb") or {}
        total = {k: sum(v.get(k, 0) for v in mem.values()) for k in ("VmRSS", "VmHWM", "Pss")}
        for name, v in list(mem.items()) + ([("TOTAL", total)] if len(mem) > 1 else []):
            m.add_row(e["label"], name, *[_f(v.get(k, 0) / 1024, "{:.1f}") for k in ("VmRSS", "VmHWM", "Pss")])
    console.print(m)
    if "imports" in res:
        console.print(f"controller imports: {res['imports']}")
    if "controller_maps" in res:
        console.print(f"controller /proc/maps torch libs: {res['controller_maps']['torch_libs'] or 'none'}")
    if res.get("targets"):
        console.print(f"targets: {res['targets']}")


def targets(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in res["latency"]:
        if e["kind"] != "graph" or "error" in e or e.get("p50_ms") is None:
            continue
        key = f"{e['rate_hz']:g}Hz_{e['executor']}_{e['stamp']}"
        if e["rate_hz"] == 100:
            out[key] = {"p50<=1.5ms": e["p50_ms"] <= 1.5, "p99<=5ms": e["p99_ms"] <= 5.0,
                        "deadline_miss<0.1%": e["deadline_miss_frac"] < 0.001}
        else:  # sustained: the generator kept the rate, every sample got the controller's command in time
            out[key] = {"rate_kept(>=99%)": e["achieved_hz"] >= 0.99 * e["rate_hz"],
                        "commands_from_controller>=99.9%": e["not_controller_frac"] + e["missed_frac"] < 0.001,
                        "deadline_miss<0.1%": e["deadline_miss_frac"] < 0.001}
    return out


def source_state() -> dict[str, str]:
    """Git HEAD and the sha1 of the node sources as run (the working tree may differ from HEAD)."""
    import hashlib

    import exo

    root = Path(exo.__file__).resolve().parent
    out = {}
    with contextlib.suppress(Exception):
        out["head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=root, timeout=10).stdout.strip()
    for rel in ("nodes/controller.py", "nodes/safety_monitor.py", "nodes/sim_bridge.py", "ros/node_main.py",
                "safety/monitor.py"):
        with contextlib.suppress(OSError):
            out[rel] = hashlib.sha1((root / rel).read_bytes()).hexdigest()[:10]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="measured window of every latency/echo run, s")
    p.add_argument("--single-duration", type=float, default=30.0,
                   help="window of the SingleThreadedExecutor comparison runs, s")
    p.add_argument("--aux-duration", type=float, default=30.0,
                   help="window of the runs with other stamp clocks (wall at each rate, 20 s for mono / periodic_wall)")
    p.add_argument("--rtf-window", type=float, default=15.0, help="window of every RTF run, s")
    p.add_argument("--warmup", type=float, default=3.0, help="s of commands before a window starts")
    p.add_argument("--rates", default="100,500")
    p.add_argument("--only", default="latency,echo,stamps,single,rtf,memory",
                   help="comma list of: latency, echo, stamps, single, rtf, memory")
    p.add_argument("--twins", default="reduced,full")
    p.add_argument("--domain", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from the pid)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary log folder")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args()
    phases = set(a.only.split(","))
    rates = [float(r) for r in a.rates.split(",")]

    b = Bench(a)
    console.print(f"domain {b.domain}, logs in {b.tmp}, load {Path('/proc/loadavg').read_text().strip()}")
    res = b.results
    res["meta"] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpus": os.cpu_count(),
                   "python": platform.python_version(), "duration_s": a.duration, "domain": b.domain,
                   "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "sources": source_state()}
    ok = False
    try:
        for rate in rates:
            if "latency" in phases:
                b.latency(rate, "events")
            if "echo" in phases:
                b.echo(rate, "events")
        if "stamps" in phases:  # the brief's wall-clock stamps, and which property of them matters
            for rate in rates:
                b.latency(rate, "events", stamp="wall", duration=a.aux_duration)
            b.latency(100.0, "events", stamp="mono", duration=min(20.0, a.aux_duration))
            b.latency(100.0, "events", stamp="periodic_wall", duration=min(20.0, a.aux_duration))
        if "single" in phases:
            for rate in rates:
                b.latency(rate, "single", duration=a.single_duration)
                b.echo(rate, "single", duration=a.single_duration)
        if "rtf" in phases:
            for twin in a.twins.split(","):
                for lockstep in (True, False):
                    b.rtf(twin, lockstep)
        if "memory" in phases:
            b.imports()
        ok = True
    finally:
        b.close()
        res["meta"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        res["meta"]["log_dir"] = str(b.tmp) if (a.keep_logs or not ok) else None
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1, default=str))
        res["targets"] = targets(res)
        a.out.write_text(json.dumps(res, indent=1, default=str))
        report(res)
        console.print(f"wrote {a.out}")
        if ok and not a.keep_logs:
            shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
