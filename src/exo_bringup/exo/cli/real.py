"""``exo real``: run the node graph on the exoskeleton's hardware drivers, or against emulated devices.

The pip install's equivalent of ``ros2 launch exo_bringup real.launch.py``: the same
nodes, parameters and arguments (from :mod:`exo.graph`, mode ``real``): the actuator,
IMU, EMG and foot-pressure drivers, the controller and the safety monitor, one OS process
each. ``--emulate`` first starts the emulated rig (:mod:`exo.drivers.emulators`: an AK
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

from exo.graph import LAUNCH_ARGUMENTS

#: The node whose joint_states start the control loop; started last (see the bring-up order below).
ACTUATOR = "actuator_driver"


def real(
    duration: float = typer.Option(10.0, min=0.0, help="Wall seconds to run (0 = until Ctrl-C)."),
    emulate: bool = typer.Option(False, "--emulate", help="Run against emulated devices (no hardware)."),
    fault: list[str] = typer.Option([], help="With --emulate: device:kind[:at_s[:value]], e.g. imu_thigh:silent:5 "
                                    "(kinds: silent, garbage, disconnect, scaling)."),
    controller: str = typer.Option("pid", help="Controller: " + ", ".join(LAUNCH_ARGUMENTS["controller"].choices)),
    policy: str = typer.Option("", help="Exported policy for --controller sac (empty = the default model)."),
    level: int = typer.Option(1, min=0, max=3, help="With --emulate: spasticity level of the emulated subject."),
    namespace: str = typer.Option("/exo", help="Namespace of the graph."),
    params_file: str = typer.Option("", help="ROS parameter file on top of config/*.yaml (ports, CAN, calibration)."),
    log_level: str = typer.Option("info", help="Log level of the nodes."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    log_dir: Path = typer.Option(Path("runs/real/logs"), help="Folder for each node's log."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    strict_timing: bool = typer.Option(False, "--strict-timing", help="With --emulate: keep the hardware "
                                       "timeouts instead of config/emulate.yaml's (see docs/drivers.md)."),
    nice: int = typer.Option(-10, min=-20, max=19, help="Nice value of the graph's processes (and of the "
                             "emulated rig): real-time loops must not wait behind other work (see exo/priority.py)."),
) -> None:
    """Run the real graph (hardware drivers, controller, safety monitor) as separate processes."""
    from rich.console import Console

    from exo.drivers.emulators import EmulatorProcess
    from exo.priority import freeze_startup_heap, raise_priority
    from exo.runner import GraphRunner, NodeDied
    from exo.testing.ros_env import ros_environment

    console = Console()
    if fault and not emulate:
        console.print("[red]exo real: --fault needs --emulate (faults are injected into emulated devices)[/]")
        raise typer.Exit(2)
    if emulate and params_file:
        console.print("[red]exo real: --emulate writes its own parameter file (the emulated ports); "
                      "drop --params-file[/]")
        raise typer.Exit(2)
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
            raise typer.Exit(2) from None
    arguments = {"controller": controller, "policy": policy, "namespace": namespace,
                 "params_file": str(emulator.params_file) if emulator else params_file, "log_level": log_level}
    try:
        runner = GraphRunner("real", arguments, env=env, log_dir=log_dir)
    except ValueError as exc:
        console.print(f"[red]exo real: {exc}[/]")
        raise typer.Exit(2) from None

    os.environ.update(env)
    from exo.ros.sim_monitor import SimMonitor

    console.print(f"[bold]exo real[/]: {'EMULATED devices' if emulate else 'hardware'} controller={controller} "
                  f"domain={domain} namespace={runner.namespace}" + (f" faults={list(fault)}" if fault else ""))
    exit_code = 0
    monitor = None
    wall0 = time.monotonic()
    try:
        def prioritise(pids: list[int]) -> None:
            for problem in raise_priority(pids, nice):
                console.print(f"  [yellow]priority[/]: {problem}; running at normal priority")

        if emulator is not None:
            emulator.start()
            prioritise([emulator.process.pid])
            console.print(f"  [green]emulated rig[/] {emulator.ports} CAN udp_multicast port {emulator.can_port}")
        monitor = SimMonitor(domain, runner.namespace)
        t0 = time.monotonic()

        def wait_ready(pending: list[str]) -> None:
            while pending:
                runner.check()
                present = monitor.present_nodes()
                for name in [p for p in pending if p in present]:
                    console.print(f"  [green]ready[/] {name}  ({time.monotonic() - t0:.1f} s)")
                    pending.remove(name)
                if time.monotonic() - t0 > startup_timeout:
                    raise TimeoutError(f"not up after {startup_timeout:.0f} s: {', '.join(pending)}")
                monitor.spin(0.05)

        # Bring-up order: everything but the actuator first (sensors streaming, controller and safety
        # monitor listening), then the actuator driver, whose joint_states start the control loop. Seven
        # Python processes starting at once load the CPU for seconds; the loop must not start under that.
        first = [n.name for n in runner.nodes if n.name != ACTUATOR]
        runner.start(first)
        prioritise([runner.node(n).process.pid for n in first])
        wait_ready(list(first))
        runner.start([ACTUATOR])
        prioritise([runner.node(ACTUATOR).process.pid])
        wait_ready([ACTUATOR])
        freeze_startup_heap()  # the watcher too: no 30 ms full collections competing with the graph
        wall0 = time.monotonic()
        with console.status("running") as status:
            while duration <= 0 or time.monotonic() - wall0 < duration:
                runner.check()
                if emulator is not None and not emulator.alive():
                    raise RuntimeError(f"the emulated rig exited:\n{emulator.log()[-2000:]}")
                monitor.spin(0.05)
                status.update(monitor.live_line())
        console.print(summary(monitor, time.monotonic() - wall0))
    except NodeDied as exc:
        console.print(f"[red]exo real: {exc}[/]")
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
    if exit_code:
        raise typer.Exit(exit_code)


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


def register(app: typer.Typer) -> None:
    app.command("real")(real)
