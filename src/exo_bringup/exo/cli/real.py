"""``exo real``: run the node graph on the exoskeleton's hardware drivers, or against emulated devices.

The pip install's equivalent of ``ros2 launch exo_bringup real.launch.py``: the same
nodes, parameters and arguments (from :mod:`exo.graph`, mode ``real``): the actuator,
IMU, EMG and foot-pressure drivers, the controller and the safety monitor, one OS process
each. ``--emulate`` first starts the emulated rig (:mod:`exo.emulation.devices`: an AK
motor on a UDP-multicast CAN bus and serial sensors on pseudo-terminals, the reduced
twin behind them in real time) and points the drivers at it; ``--fault`` injects device
faults into it. It runs ``--duration`` wall seconds (0 = until Ctrl-C), prints a live
line and a summary, and stops everything (drivers first: the actuator driver's last
frames are zero torque and exit motor mode).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import typer

from exo.cli.live import (
    CONSOLE_HOST_OPTION,
    CONSOLE_OPTION,
    CONSOLE_PORT_OPTION,
    LIVE_HOST_OPTION,
    LIVE_OPTION,
    LIVE_PORT_OPTION,
    view_arguments,
)
from exo.graph import LAUNCH_ARGUMENTS
from exo.live.net import AddressError

#: The node whose joint_states start the control loop; started last (see the bring-up order below).
ACTUATOR = "actuator_driver"
#: The control loop (``--realtime``): the actuator driver, every sensor source the safety monitor
#: watches, the controller and the monitor. The EMG and foot-pressure drivers stay at ``--nice``.
REALTIME_NODES = ("actuator_driver", "imu_thigh_driver", "imu_shank_driver", "controller", "safety_monitor")


def real(
    duration: float = typer.Option(10.0, min=0.0, help="Wall seconds to run (0 = until Ctrl-C)."),
    emulate: bool = typer.Option(False, "--emulate", help="Run against emulated devices (no hardware)."),
    fault: list[str] = typer.Option([], help="With --emulate: device:kind[:at_s[:value]], e.g. imu_thigh:silent:5 "
                                    "(kinds: silent, garbage, disconnect, scaling)."),
    controller: str = typer.Option("", help="Controller: " + ", ".join(LAUNCH_ARGUMENTS["controller"].choices)
                                   + " (default: pid; with --user, user: the user's deployed version)."),
    policy: str = typer.Option("", help="Exported policy for --controller sac (empty = the default model)."),
    level: int = typer.Option(1, min=0, max=3, help="With --emulate: spasticity level of the emulated subject."),
    namespace: str = typer.Option("/exo", help="Namespace of the graph."),
    params_file: str = typer.Option("", help="ROS parameter file on top of config/*.yaml (ports, CAN, calibration)."),
    log_level: str = typer.Option("info", help="Log level of the nodes."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    log_dir: Path = typer.Option(Path("runs/real/logs"), help="Folder for each node's log."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    strict_timing: bool = typer.Option(True, "--strict-timing/--relaxed-timing", help="With --emulate: keep the "
                                       "hardware timeouts of config/safety.yaml (default), or widen them with "
                                       "config/emulate.yaml on a machine busy with other work (see docs/drivers.md)."),
    nice: int = typer.Option(-10, min=-20, max=19, help="Nice value of the graph's processes (and of the "
                             "emulated rig): real-time loops must not wait behind other work (see exo/priority.py)."),
    realtime: int = typer.Option(50, min=0, max=89, help="SCHED_FIFO priority of the control loop's processes "
                                 "(the actuator and IMU drivers, controller, safety monitor; the emulated rig gets "
                                 "10 more); 0 = none, --nice only (see exo/priority.py)."),
    timing_report: Path = typer.Option(None, "--timing-report", help="Write a JSON timing report of the run "
                                       "there: worst gap per sensor topic, command sources, safety transitions, "
                                       "CPU per process, the emulated rig's step lateness (docs/drivers.md)."),
    live: bool = LIVE_OPTION,
    live_host: str = LIVE_HOST_OPTION,
    live_port: int = LIVE_PORT_OPTION,
    console_page: bool = CONSOLE_OPTION,
    console_host: str = CONSOLE_HOST_OPTION,
    console_port: int = CONSOLE_PORT_OPTION,
    user: str = typer.Option("", "--user", help="A user of the encrypted store: the graph runs with the user's caps "
                             "and the session is recorded into the user's records (encrypted)."),
    assess: bool = typer.Option(False, "--assess", help="With --user: run the clinical assessment protocol "
                                "(controller 'assessment', about 43 s; the user stays relaxed) and record it."),
    store: Path = typer.Option(None, "--store", help="User store folder (default $EXO_STORE or "
                               "~/.local/share/exo/users)."),
    key_file: Path = typer.Option(None, "--key-file", help="Store key file (default $EXO_KEY_FILE; or "
                                  "$EXO_PASSPHRASE)."),
) -> None:
    """Run the real graph (hardware drivers, controller, safety monitor) as separate processes."""
    from rich.console import Console

    console = Console()
    options = {name: value for name, value in locals().items() if name in RUN_OPTIONS}
    try:
        options["views"] = view_arguments(live, live_host, live_port, console_page, console_host, console_port)
    except AddressError as exc:
        console.print(f"[red]exo real: {exc}[/]")
        raise typer.Exit(2) from None
    options["controller"] = controller or ("user" if user else "pid")
    if assess and not user:
        console.print("[red]exo real: --assess needs --user (the assessment is recorded into the user's records)[/]")
        raise typer.Exit(2)
    if assess:
        options["controller"] = "assessment"
    protocol = None
    if not user:
        exit_code = _run_real(console, **options)
    else:
        from exo.cli.user_session import recording_for

        kind = "assessment" if assess else "real"
        with recording_for(console, "exo real", user, kind, store, key_file,
                           {"emulate": emulate, "controller": options["controller"],
                            **({"emulated_level": level} if emulate else {})}) as recording:
            if assess:  # the user's store is open (and named in the environment) from here on
                from exo.graph import assessment_protocol
                from exo.identify.records import PROTOCOL_ARTEFACT

                protocol = assessment_protocol(user)  # the one the graph runs: inside the user's range of motion
                options["duration"] = protocol.duration_s + 1.0
                recording.artefacts[PROTOCOL_ARTEFACT] = protocol.to_dict()
            exit_code = _run_real(console, **options, user=user, record=recording.bag,
                                  session_info=f"mode=real,controller={options['controller']}")
            if protocol is not None and exit_code == 0:
                from exo.cli.assess import summarise_into

                exit_code = summarise_into(console, "exo real", recording, protocol, json_out=False)
    if exit_code:
        raise typer.Exit(exit_code)


#: The options of ``exo real`` that :func:`_run_real` takes.
RUN_OPTIONS = ("duration", "emulate", "fault", "controller", "policy", "level", "namespace", "params_file",
               "log_level", "domain_id", "log_dir", "startup_timeout", "strict_timing", "nice", "realtime",
               "timing_report")


def _run_real(console, duration: float, emulate: bool, fault: list[str], controller: str, policy: str, level: int,
              namespace: str, params_file: str, log_level: str, domain_id: int, log_dir: Path,
              startup_timeout: float, strict_timing: bool, nice: int, realtime: int, timing_report: Path | None,
              user: str = "", record: Path | None = None, session_info: str = "",
              views: dict[str, str] | None = None) -> int:
    """Run the real graph; the exit code (0 ok, 1 a node died or timed out, 2 bad arguments)."""
    from exo.emulation.devices import EmulatorProcess
    from exo.priority import freeze_startup_heap, raise_priority, set_realtime
    from exo.ros.environment import ros_environment
    from exo.runner import GraphRunner, NodeDied

    if fault and not emulate:
        console.print("[red]exo real: --fault needs --emulate (faults are injected into emulated devices)[/]")
        return 2
    if emulate and params_file:
        console.print("[red]exo real: --emulate writes its own parameter file (the emulated ports); "
                      "drop --params-file[/]")
        return 2
    domain = domain_id if domain_id >= 0 else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    env = ros_environment(domain, Path(os.environ.get("ROS_LOG_DIR", log_dir / "ros")))
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" in os.environ:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    emulator = None
    if emulate:
        try:
            emulator = EmulatorProcess(log_dir, can_port=43200 + domain, faults=tuple(fault), level=level,
                                       **({"timing_file": None} if strict_timing else {}))
        except ValueError as exc:
            console.print(f"[red]exo real: {exc}[/]")
            return 2
    arguments = {"controller": controller, "policy": policy, "namespace": namespace,
                 "params_file": str(emulator.params_file) if emulator else params_file, "log_level": log_level,
                 **(views or {})}
    if user:
        arguments["user"] = user
    if record is not None:
        arguments.update(record="true", record_dir=str(record), user_id=user, session_info=session_info)
    try:
        runner = GraphRunner("real", arguments, env=env, log_dir=log_dir)
    except ValueError as exc:
        console.print(f"[red]exo real: {exc}[/]")
        return 2

    os.environ.update(env)
    from exo.ros.sim_monitor import SimMonitor

    console.print(f"[bold]exo real[/]: {'EMULATED devices' if emulate else 'hardware'} controller={controller} "
                  f"domain={domain} namespace={runner.namespace}" + (f" faults={list(fault)}" if fault else ""))
    exit_code = 0
    monitor = None
    window = None
    sensor_stamps: dict[str, list[float]] = {}
    cpu0 = cpu1 = {}
    wall0 = time.monotonic()
    try:
        def prioritise(pids: list[int], rt: int = 0) -> None:
            for problem in raise_priority(pids, nice):
                console.print(f"  [yellow]priority[/]: {problem}; running at normal priority")
            if rt:
                for problem in set_realtime(pids, rt):
                    console.print(f"  [yellow]priority[/]: {problem}; running at nice {nice}")

        def make_realtime(names: list[str]) -> None:
            # once the node is up (its threads exist; start-up imports must not run ahead of everything)
            prioritise([runner.node(n).process.pid for n in names if n in REALTIME_NODES], realtime)

        if emulator is not None:
            emulator.start()
            prioritise([emulator.process.pid], realtime + 10 if realtime else 0)  # the "hardware" first
            console.print(f"  [green]emulated rig[/] {emulator.ports} CAN udp_multicast port {emulator.can_port}; "
                          f"reset button: exo reset --button {emulator.reset_button}")
        monitor = SimMonitor(domain, runner.namespace, events=True)  # the cheaper executor: it runs next to the graph

        def wait_ready(names: list[str]) -> None:
            monitor.wait_until_up(runner, names, startup_timeout,
                                  on_ready=lambda name, s: console.print(f"  [green]ready[/] {name}  ({s:.1f} s)"))

        # Bring-up order: everything but the actuator first (sensors streaming, controller and safety
        # monitor listening), then the actuator driver, whose joint_states start the control loop. Seven
        # Python processes starting at once load the CPU for seconds; the loop must not start under that.
        first = [n.name for n in runner.nodes if n.name != ACTUATOR]
        runner.start(first)
        prioritise([runner.node(n).process.pid for n in first])
        wait_ready(list(first))
        if record is not None:  # the recorder must see the loop's first sample too
            from exo.cli.bags import wait_for_graph

            wait_for_graph(runner, monitor, ["recorder"], startup_timeout)
        make_realtime(first)
        from exo.cli.live import print_view_addresses

        print_view_addresses(console, runner)
        runner.start([ACTUATOR])
        prioritise([runner.node(ACTUATOR).process.pid])
        wait_ready([ACTUATOR])
        make_realtime([ACTUATOR])
        sensor_stamps = watch_sensor_stamps(monitor) if timing_report else {}
        freeze_startup_heap()  # the watcher too: no 30 ms full collections competing with the graph
        pids = {n.name: n.process.pid for n in runner.nodes if n.process is not None}
        if emulator is not None:
            pids["emulated_rig"] = emulator.process.pid
        pids["exo_real"] = os.getpid()  # this process: the watcher
        cpu0, wall0, system0 = cpu_times(pids), time.monotonic(), time.time()
        with console.status("running") as status:
            while duration <= 0 or time.monotonic() - wall0 < duration:
                runner.check()
                if emulator is not None and not emulator.alive():
                    raise RuntimeError(f"the emulated rig exited:\n{emulator.log()[-2000:]}")
                monitor.spin(0.05)
                status.update(monitor.live_line())
        window = (wall0, time.monotonic(), system0, time.time())
        cpu1 = cpu_times(pids)
        console.print(summary(monitor, time.monotonic() - wall0))
    except NodeDied as exc:  # escaped: the node's log lines ("[fatal] cannot start: ...") are text, not markup
        from rich.markup import escape

        console.print(f"[red]exo real: {escape(str(exc))}[/]")
        exit_code = 1
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]exo real: {exc}; logs in {log_dir}[/]")
        exit_code = 1
    except KeyboardInterrupt:
        if monitor is not None:
            console.print(summary(monitor, time.monotonic() - wall0))
        console.print("[yellow]interrupted: stopping the graph[/]")
    finally:
        if monitor is not None:
            monitor.close()
        codes = runner.stop()
        if emulator is not None:
            emulator.stop()
            last = [line for line in emulator.log().splitlines() if "last motor frames" in line]
            if last:
                console.print(f"  emulated motor: {last[-1].split(';', 1)[-1].strip()}")
        bad = {k: v for k, v in codes.items() if v not in (0, -2, None)}
        console.print(f"stopped {len(codes)} node(s)" + (f"; exit codes {bad}" if bad else ""))
        if timing_report and window is not None:
            import json

            from exo.records import json_safe

            report = run_timing(monitor, sensor_stamps, window, cpu0, cpu1,
                                emulator.timing() if emulator is not None else None)
            report.update(strict_timing=strict_timing, emulate=emulate, controller=controller, exit_code=exit_code)
            timing_report.parent.mkdir(parents=True, exist_ok=True)
            timing_report.write_text(json.dumps(json_safe(report), indent=1))
            console.print(f"timing report: {timing_report}")
    return exit_code


def summary(monitor, wall_s: float):
    """A rich table of a real-graph run: rates, knee, commands, safety states."""
    from rich.table import Table

    tr = monitor.trace
    table = Table(title="exo real summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    span = tr.t[-1] - tr.t[0] if len(tr.t) > 1 else 0.0
    table.add_row("wall time", f"{wall_s:.2f} s")
    table.add_row("joint_states / torque_command", f"{len(tr.t)} / {len(tr.command_nm)} "
                  f"({(len(tr.t) - 1) / span if span > 0 else math.nan:.1f} Hz joint_states)")
    if tr.knee_rad:
        table.add_row("knee angle first / last", f"{math.degrees(tr.knee_rad[0]):.1f} / "
                      f"{math.degrees(tr.knee_rad[-1]):.1f} deg")
    if tr.command_nm:
        table.add_row("peak |torque_command|", f"{max(abs(x) for x in tr.command_nm):.2f} N m")
        table.add_row("command sources", ", ".join(f"{k}: {v}" for k, v in sorted(tr.command_source.items())))
    table.add_row("safety states", " -> ".join(s for _, s, _ in tr.safety_states) or "none received")
    if tr.safety_states:
        table.add_row("last safety reason", tr.safety_states[-1][2] or "-")
    return table


def watch_sensor_stamps(monitor) -> dict[str, list[float]]:
    """Collect the header stamps (s) of the IMU topics in the watcher (joint_states it has already).

    The interaction topics are stamped by the actuator driver in the same callback as joint_states
    (same stamp), so their gaps are joint_states'.
    """
    from exo import contract
    from exo.ros.convert import from_time_msg
    from exo.ros.qos import qos_profile
    from exo.ros.types import interface_class

    stamps: dict[str, list[float]] = {}
    for topic in (contract.IMU_THIGH, contract.IMU_SHANK):
        box = stamps.setdefault(topic.name, [])
        qos = qos_profile(topic)
        qos.depth = 1000
        monitor.probe.node.create_subscription(interface_class(topic.msg_type), topic.resolved(monitor.namespace),
                                               lambda msg, box=box: box.append(from_time_msg(msg.header.stamp)), qos)
    return stamps


def cpu_times(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(CPU s, run-queue wait s) of each process, all its threads, from /proc; missing processes left out.

    The wait is the time its threads were runnable but not running (``schedstat``): how long the
    CPU made them wait.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            wait = 0.0
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    wait += int((task / "schedstat").read_text().split()[1]) / 1e9
                except (OSError, IndexError, ValueError):
                    continue
            out[name] = (cpu, wait)
        except (OSError, IndexError, ValueError):
            continue
    return out


def worst_gap_s(stamps: list[float], start: float, end: float) -> float:
    """The oldest the newest sample got in [start, end] (s, stamps on the same clock): the largest
    interval between consecutive stamps, or from the last stamp to ``end`` (a sensor gone silent);
    NaN if no stamp is inside."""
    inside = sorted(t for t in stamps if start <= t <= end)
    if not inside:
        return math.nan
    return max([b - a for a, b in zip(inside[:-1], inside[1:], strict=True)] + [end - inside[-1]])


def run_timing(monitor, sensor_stamps: dict[str, list[float]], window: tuple[float, float, float, float],
               cpu0: dict, cpu1: dict, rig_timing: dict | None) -> dict:
    """The timing report of a run (``--timing-report``): see docs/drivers.md, "Timing"."""
    from exo import contract
    from exo.emulation.devices import lateness_stats

    mono0, mono1, sys0, sys1 = window
    wall = mono1 - mono0
    tr = monitor.trace
    stamps = {contract.JOINT_STATES.name: tr.t, **{name.replace("/", "_"): v for name, v in sensor_stamps.items()}}
    states = [(t, s, r) for t, s, r in tr.safety_states]
    started = next((i for i, (_, s, _) in enumerate(states) if s != "SAFE_STOP"), len(states))
    after_start = states[started:]
    report = {
        "wall_s": wall,
        "joint_states_hz": sum(sys0 <= t <= sys1 for t in tr.t) / wall if wall > 0 else math.nan,
        "worst_sensor_gap_s": {k: worst_gap_s(v, sys0, sys1) for k, v in stamps.items()},
        "command_sources": dict(sorted(tr.command_source.items())),
        "knee_first_last_deg": [math.degrees(tr.knee_rad[0]), math.degrees(tr.knee_rad[-1])] if tr.knee_rad else [],
        "safety_transitions": [{"t": t, "state": s, "reason": r} for t, s, r in states],
        "safe_stops": sum(s == "SAFE_STOP" for _, s, _ in after_start),
        "fallbacks": sum(s == "FALLBACK" for _, s, _ in after_start),
        "cpu_percent": {k: 100.0 * (cpu1[k][0] - cpu0[k][0]) / wall for k in cpu1 if k in cpu0 and wall > 0},
        "runqueue_wait_percent": {k: 100.0 * (cpu1[k][1] - cpu0[k][1]) / wall for k in cpu1 if k in cpu0 and wall > 0},
    }
    if rig_timing is not None:
        report["rig"] = lateness_stats(rig_timing, mono0, mono1)
    return report


def register(app: typer.Typer) -> None:
    app.command("real")(real)
