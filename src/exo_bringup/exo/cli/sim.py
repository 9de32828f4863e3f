"""``exo sim``: run the node graph against the digital twin, as separate processes.

The pip install's equivalent of ``ros2 launch exo_bringup sim.launch.py``: the
same nodes, parameters and arguments (from :mod:`exo.graph`), one OS process
each (:class:`exo.runner.GraphRunner`). It waits until every node is in the
ROS graph, streams a one-line live summary (knee angle, torque, safety state),
stops after ``--duration`` seconds of simulated time, prints a trial summary
and shuts every process down. Ctrl-C stops cleanly; a node that dies stops the
run with a non-zero exit and a message naming it.
"""

from __future__ import annotations

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


def sim(
    duration: float = typer.Option(10.0, min=0.1, help="Simulated seconds to run (sim time from /clock)."),
    controller: str = typer.Option("", help="Controller: " + ", ".join(LAUNCH_ARGUMENTS["controller"].choices)
                                   + " (default: pid; with --user, user: the user's deployed version)."),
    twin: str = typer.Option("reduced", help="Digital twin: reduced (fast) or full (MyoLeg, 40 muscles)."),
    level: int = typer.Option(1, min=0, max=3, help="Modified Ashworth spasticity level of the subject."),
    subject_seed: int = typer.Option(0, help="Seed of the simulated subject."),
    lockstep: bool = typer.Option(True, "--lockstep/--realtime", help="Lockstep (fast, deterministic) or real-time."),
    policy: str = typer.Option("", help="Exported policy for --controller sac (empty = the default model)."),
    intent: bool = typer.Option(False, "--intent", help="Also run the intent_estimator (EMG -> intent topic)."),
    live: bool = LIVE_OPTION,
    live_host: str = LIVE_HOST_OPTION,
    live_port: int = LIVE_PORT_OPTION,
    console_page: bool = CONSOLE_OPTION,
    console_host: str = CONSOLE_HOST_OPTION,
    console_port: int = CONSOLE_PORT_OPTION,
    namespace: str = typer.Option("/exo", help="Namespace of the graph."),
    params_file: str = typer.Option("", help="Extra ROS parameter file on top of config/*.yaml."),
    log_level: str = typer.Option("info", help="Log level of the nodes."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    log_dir: Path = typer.Option(Path("runs/sim/logs"), help="Folder for each node's log."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    record: Path = typer.Option(None, "--record", help="Record every contract topic into this new bag session."),
    user_id: str = typer.Option("", help="Pseudonymous user id for the bag's metadata (with --record)."),
    user: str = typer.Option("", "--user", help="A user of the encrypted store: the graph runs with the user's "
                             "caps, and the session is recorded into the user's records (encrypted)."),
    store: Path = typer.Option(None, "--store", help="User store folder (default $EXO_STORE or "
                               "~/.local/share/exo/users)."),
    key_file: Path = typer.Option(None, "--key-file", help="Store key file (default $EXO_KEY_FILE; or "
                                  "$EXO_PASSPHRASE)."),
) -> None:
    """Run the sim graph (sim bridge, controller, safety monitor) as separate processes."""
    from rich.console import Console

    console = Console()
    controller = controller or ("user" if user else "pid")
    try:
        views = view_arguments(live, live_host, live_port, console_page, console_host, console_port)
    except AddressError as exc:
        console.print(f"[red]exo sim: {exc}[/]")
        raise typer.Exit(2) from None
    if user and (record is not None or user_id):
        console.print("[red]exo sim: --user records into the user's encrypted records; drop --record/--user-id[/]")
        raise typer.Exit(2)
    arguments = {
        "controller": controller, "twin": twin, "level": str(level), "subject_seed": str(subject_seed),
        "lockstep": str(lockstep).lower(), "policy": policy, "namespace": namespace,
        "params_file": params_file, "log_level": log_level, "intent": str(intent).lower(), **views,
    }
    info = f"mode=sim,twin={twin},level={level},subject_seed={subject_seed},lockstep={str(lockstep).lower()}"
    if user:
        from exo.cli.user_session import recording_for

        with recording_for(console, "exo sim", user, "sim", store, key_file,
                           {"twin": twin, "level": level, "subject_seed": subject_seed, "controller": controller,
                            "lockstep": lockstep}) as recording:
            arguments.update(user=user)
            exit_code = run_sim_graph(console, "exo sim", arguments, duration, domain_id, log_dir, startup_timeout,
                                      record=recording.bag, user_id=user, session_info=info)
    else:
        exit_code = run_sim_graph(console, "exo sim", arguments, duration, domain_id, log_dir, startup_timeout,
                                  record=record, user_id=user_id, session_info=info)
    if exit_code:
        raise typer.Exit(exit_code)


def run_sim_graph(console, command: str, arguments: dict[str, str], duration: float, domain_id: int, log_dir: Path,
                  startup_timeout: float, *, record: Path | None = None, user_id: str = "", session_info: str = "",
                  on_summary=None) -> int:
    """Run the sim graph for ``duration`` s of sim time; the exit code (0 ok, 1 a node died or timed out, 2 bad
    arguments, 130 interrupted). ``on_summary(monitor)`` is called with the live watcher before the graph stops."""
    from rich.markup import escape

    from exo.cli.live import print_view_addresses
    from exo.ros.environment import ros_environment
    from exo.runner import GraphRunner, NodeDied

    domain = domain_id if domain_id >= 0 else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    env = ros_environment(domain, Path(os.environ.get("ROS_LOG_DIR", log_dir / "ros")))
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" in os.environ:  # the user's choice wins
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    arguments = dict(arguments)
    arguments.setdefault("paused", "true")  # the watcher starts the bridge once it has matched its publishers
    if record is not None:
        arguments.update(record="true", record_dir=str(record), user_id=user_id, session_info=session_info)
    try:
        runner = GraphRunner("sim", arguments, env=env, log_dir=log_dir)
    except ValueError as exc:
        console.print(f"[red]{command}: {escape(str(exc))}[/]")
        return 2

    os.environ.update(env)
    from exo.ros.sim_monitor import SimMonitor

    console.print(
        f"[bold]{command}[/]: twin={arguments.get('twin', 'reduced')} level={arguments.get('level', '1')} "
        f"controller={arguments.get('controller', 'pid')} "
        f"{'lockstep' if arguments.get('lockstep', 'true') == 'true' else 'real-time'} domain={domain} "
        f"namespace={runner.namespace}" + (" user=" + arguments["user"] if arguments.get("user") else "")
    )
    exit_code = 0
    monitor = None
    try:
        monitor = SimMonitor(domain, runner.namespace)  # first, so that it sees the trial from its start
        # The sim bridge (the source of every sample) starts last and paused: the trial begins with its
        # first sample once this watcher has matched the bridge's, controller's and monitor's publishers.
        source = "sim_bridge"
        runner.start([n.name for n in runner.nodes if n.name != source])
        pending = [n.name for n in runner.nodes if n.name != source]

        def ready(name: str, seconds: float) -> None:
            console.print(f"  [green]ready[/] {name}  ({seconds:.1f} s)")

        monitor.wait_until_up(runner, pending, startup_timeout, outputs=True, on_ready=ready)
        if record is not None:  # the recorder must see the first sample too
            from exo.cli.bags import wait_for_graph

            wait_for_graph(runner, monitor, ["recorder"], startup_timeout)
        print_view_addresses(console, runner)
        runner.start([source])
        monitor.wait_until_up(runner, [source], startup_timeout, on_ready=ready)
        if arguments["paused"] == "true":
            monitor.start_source(startup_timeout)
        wall0 = time.monotonic()
        with console.status("waiting for the first sensor sample") as status:
            while monitor.sim_time_s is None or monitor.sim_time_s < duration:
                runner.check()
                monitor.spin(0.05)
                if monitor.sim_time_s is None and time.monotonic() - wall0 > startup_timeout:
                    raise TimeoutError("no joint_states from the sim bridge")
                status.update(monitor.live_line())
        summary = monitor.summary(wall_s=time.monotonic() - wall0)
        console.print(summary)
        if on_summary is not None:
            on_summary(monitor)
    except NodeDied as exc:  # escaped: the node's log lines ("[fatal] cannot start: ...") are text, not markup
        console.print(f"[red]{command}: {escape(str(exc))}[/]")
        exit_code = 1
    except TimeoutError as exc:
        console.print(f"[red]{command}: {exc}; logs in {log_dir}[/]")
        exit_code = 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the graph[/]")
        exit_code = 130
    finally:
        if monitor is not None:
            monitor.close()
        codes = runner.stop()
        bad = {k: v for k, v in codes.items() if v not in (0, -2, None)}
        console.print(f"stopped {len(codes)} node(s)" + (f"; exit codes {bad}" if bad else ""))
        if record is not None and not arguments.get("user"):
            console.print(f"bag: {record}")
    return exit_code


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)


