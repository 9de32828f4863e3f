"""``exo record``, ``exo replay``, ``exo analyze`` and ``exo export``: bags of the graph.

- ``exo record --out DIR``: the recorder node alone, attached to a graph that runs
  already (same domain and namespace), until Ctrl-C or ``--duration``.
- ``exo replay BAG``: the replay graph (bag player, controller, safety monitor,
  recorder) on the recorded sensors, then the recorded vs new ``torque_command``
  comparison (max and RMS difference, first divergence); ``--max-diff`` turns it
  into a regression check (exit 1 above it). A truncated or damaged bag is refused
  (exit 2, naming how many recorded commands cannot be compared and why) unless
  ``--allow-partial``, which compares the readable part under a WARNING line.
- ``exo analyze BAG... --out DIR``: metrics.json, CSV, PNG and report.html.
- ``exo export BAG --format csv|parquet --out DIR``: one table per topic.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import typer


def _console():
    from rich.console import Console

    return Console()


def _escape(text: object) -> str:
    """``text`` with rich markup escaped (a log line's ``[fatal]`` must be printed, not parsed)."""
    from rich.markup import escape

    return escape(str(text))


def _ros_env(domain_id: int, log_dir: Path) -> tuple[int, dict[str, str]]:
    from exo.ros.environment import ros_environment

    domain = domain_id if domain_id >= 0 else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    env = ros_environment(domain, Path(os.environ.get("ROS_LOG_DIR", log_dir / "ros")))
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" in os.environ:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    return domain, env


def _stamp() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


def record(
    out: Path = typer.Option(None, "--out", help="Session folder to create (default runs/bags/<UTC time>)."),
    duration: float = typer.Option(0.0, min=0.0, help="Wall seconds to record (0 = until Ctrl-C)."),
    namespace: str = typer.Option("/exo", help="Namespace of the graph to record."),
    user_id: str = typer.Option("", help="Pseudonymous user id (session metadata)."),
    session_info: str = typer.Option("", help="Metadata: 'key=value,...' (mode=real,device=exo-02,controller=sac)."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID of the graph (default: $ROS_DOMAIN_ID or 0)."),
    log_dir: Path = typer.Option(Path("runs/record/logs"), help="Folder for the recorder's log."),
) -> None:
    """Record every contract topic of a running graph into a rosbag2 MCAP session."""
    from exo.runner import GraphRunner

    console = _console()
    out = out or Path("runs/bags") / _stamp()
    _, env = _ros_env(domain_id, log_dir)
    # the recorder alone does not know the graph's controller: unknown unless --session-info names it
    info = ",".join(filter(None, ["controller=", session_info]))
    args = {"record": "true", "record_dir": str(out), "namespace": namespace, "user_id": user_id,
            "session_info": info}
    try:
        runner = GraphRunner("sim", args, env=env, log_dir=log_dir, only=("recorder",))
    except ValueError as exc:
        console.print(f"[red]exo record: {exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"[bold]exo record[/]: {namespace} -> {out} (Ctrl-C to stop)")
    os.environ.update(env)  # the watcher must discover like the graph (domain, discovery range)
    runner.start()
    code = 0
    try:
        wait_for_recorder(runner, env, timeout_s=60.0)
        console.print("  recording")
        t0 = time.monotonic()
        while duration <= 0 or time.monotonic() - t0 < duration:
            proc = runner.node("recorder")
            if proc.poll() is not None:
                console.print(f"[red]exo record: the recorder exited ({proc.poll()}):\n{_escape(proc.log_tail())}[/]")
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except TimeoutError as exc:
        console.print(f"[red]exo record: {exc}; log in {log_dir}[/]")
        code = 1
    finally:
        runner.stop()
    console.print(f"bag: {out}")
    if code:
        raise typer.Exit(code)


def wait_for_recorder(runner, env: dict[str, str], timeout_s: float) -> None:
    """Wait until the recorder node is in the ROS graph (``--duration`` counts from then)."""
    from exo.ros.probe import RosProbe

    probe = RosProbe(int(env["ROS_DOMAIN_ID"]), runner.namespace, name="exo_record_watch")
    ns = "/" + runner.namespace.strip("/") if runner.namespace.strip("/") else "/"
    try:
        t0 = time.monotonic()
        while ("recorder", ns) not in probe.node.get_node_names_and_namespaces():
            proc = runner.node("recorder")
            if proc.poll() is not None:
                return  # the caller reports the exit
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"the recorder is not up after {timeout_s:.0f} s")
            probe.spin_for(0.1)
    finally:
        probe.close()


def replay(
    bag: Path = typer.Argument(..., help="Bag to replay (exo session folder, rosbag2 folder or .mcap file)."),
    rate: float = typer.Option(0.0, min=0.0, help="Sim s per wall s; 0 = lockstep, as fast as the graph answers."),
    controller: str = typer.Option("", help="Controller to re-run (default: the bag's, else pid)."),
    policy: str = typer.Option("", help="Exported policy for --controller sac."),
    out: Path = typer.Option(None, "--out", help="Session folder of the replay's own bag "
                             "(default runs/replay/<bag>-<UTC time>)."),
    compare: bool = typer.Option(True, help="Compare the new torque_command stream with the recorded one."),
    max_diff: float = typer.Option(math.inf, help="Exit 1 if the max |torque difference| exceeds this, N m."),
    allow_partial: bool = typer.Option(False, "--allow-partial",
                                       help="Compare what a truncated or damaged bag still holds (with a WARNING) "
                                       "instead of refusing it (exit 2)."),
    namespace: str = typer.Option("/exo", help="Namespace of the replay graph."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    timeout: float = typer.Option(600.0, help="Wall seconds the whole replay may take."),
) -> None:
    """Re-run controller and safety monitor on a bag's sensors; compare the torque commands."""
    from exo.bags.reader import BagError, open_session
    from exo.bags.replay import recorded_completeness

    console = _console()
    try:
        source = open_session(bag)
    except BagError as exc:
        console.print(f"[red]exo replay: {exc}[/]")
        raise typer.Exit(2) from None
    # a truncated/damaged bag: the commands it lost would silently drop out of the comparison
    completeness = recorded_completeness(source) if compare else None
    if completeness is not None and completeness.damaged:
        if not allow_partial:
            console.print(f"[red]exo replay: {_escape(completeness.describe())}. Not replayed; --allow-partial "
                          "compares the readable part.[/]", soft_wrap=True)
            raise typer.Exit(2)
        console.print(f"[bold yellow]WARNING: {_escape(completeness.describe())}. Comparing the readable part "
                      "(--allow-partial).[/]", soft_wrap=True)
    controller = controller or source.metadata.controller or "pid"
    out = out or Path("runs/replay") / f"{source.name}-{_stamp()}"
    log_dir = out.parent / f"{out.name}-logs"
    try:
        new_bag, elapsed = run_replay(bag, out, log_dir, controller=controller, policy=policy, rate=rate,
                                      namespace=namespace, domain_id=domain_id, startup_timeout=startup_timeout,
                                      timeout=timeout, progress=console.print)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        console.print(f"[red]exo replay: {_escape(exc)}[/]")
        raise typer.Exit(1) from None
    console.print(f"replayed in {elapsed:.1f} s wall; new bag: {new_bag}")
    if not compare:
        return
    result = compare_bags(bag, new_bag)
    document = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.to_dict().items()}
    if completeness is not None and completeness.damaged:
        document.update({"partial": True, **completeness.to_dict()})
    (out / "comparison.json").write_text(json.dumps(document, indent=2) + "\n")
    first = "none" if math.isnan(result.first_divergence_s) else f"{result.first_divergence_s:.3f} s"
    console.print(
        f"torque_command recorded vs replayed: {result.matched} matched, max |diff| {result.max_abs_diff_nm:.3g} N m, "
        f"RMS {result.rms_diff_nm:.3g} N m, first divergence {first}, "
        f"{result.only_recorded} only recorded, {result.only_replayed} only replayed, "
        f"{result.source_changes} source changes -> {out / 'comparison.json'}")
    if completeness is not None and completeness.damaged:
        listed = "an unknown number of" if completeness.listed is None else f"{completeness.listed}"
        not_compared = "an unknown number" if completeness.unreadable is None else f"{completeness.unreadable}"
        console.print(f"[bold yellow]WARNING: PARTIAL COMPARISON: {result.matched} commands compared of {listed} "
                      f"recorded; {not_compared} recorded commands could not be read from the damaged bag and were "
                      f"not compared; {result.only_recorded} readable ones had no replayed answer.[/]", soft_wrap=True)
    if result.matched == 0 or result.max_abs_diff_nm > max_diff:
        console.print(f"[red]exo replay: commands differ by more than {max_diff} N m[/]")
        raise typer.Exit(1)


def run_replay(bag: Path, out: Path, log_dir: Path, *, controller: str = "pid", policy: str = "", rate: float = 0.0,
               namespace: str = "/exo", domain_id: int = -1, env: dict[str, str] | None = None,
               startup_timeout: float = 60.0, timeout: float = 600.0, progress=None) -> tuple[Path, float]:
    """Run the replay graph on ``bag`` with a recorder writing ``out``; returns (out, wall seconds).

    Staged start: recorder, controller and safety monitor first; the bag player once they are all in the
    graph and the recorder's subscriptions are visible, so the first replayed sample reaches everyone.
    """
    from exo.runner import GraphRunner

    if env is None:
        domain, env = _ros_env(domain_id, log_dir)
    else:
        domain = int(env["ROS_DOMAIN_ID"])
    args = {"bag": str(Path(bag).resolve()), "rate": str(rate), "controller": controller, "policy": policy,
            "namespace": namespace, "record": "true", "record_dir": str(out),
            "session_info": f"mode=replay,source_bag={Path(bag).resolve()}"}
    runner = GraphRunner("replay", args, env=env, log_dir=log_dir)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from exo.ros.sim_monitor import SimMonitor

    monitor = SimMonitor(domain, runner.namespace)
    try:
        runner.start([n.name for n in runner.nodes if n.name != "bag_player"])
        wait_for_graph(runner, monitor, [n.name for n in runner.nodes if n.name != "bag_player"], startup_timeout)
        t0 = time.monotonic()
        runner.start(["bag_player"])
        player = runner.node("bag_player")
        while player.poll() is None:
            runner.check()
            monitor.spin(0.05)
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"replay not finished after {timeout:.0f} s")
        if player.poll() != 0:
            raise RuntimeError(f"bag_player exited with code {player.poll()}:\n{player.log_tail()}")
        elapsed = time.monotonic() - t0
        if progress:
            progress(f"  bag_player done ({elapsed:.1f} s)")
    finally:
        monitor.close()
        runner.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out, elapsed


def wait_for_graph(runner, monitor, names: list[str], timeout_s: float) -> None:
    """Wait until ``names`` are in the ROS graph, the monitor matched the graph's outputs and (with a
    recorder) the recorder's subscriptions of the command and sensor topics are visible."""
    from exo import contract

    recorder = "recorder" in names
    node = monitor.probe.node

    def recorder_ready() -> bool:
        if not recorder:
            return True
        for topic in (contract.TORQUE_COMMAND, contract.TORQUE_REQUEST, contract.JOINT_STATES,
                      contract.SAFETY_STATUS):
            infos = node.get_subscriptions_info_by_topic(topic.resolved(runner.namespace))
            if not any(i.node_name == "recorder" for i in infos):
                return False
        return True

    monitor.wait_until_up(runner, names, timeout_s, outputs=True, ready=recorder_ready)


def compare_bags(recorded: Path, replayed: Path):
    """:class:`~exo.bags.replay.CommandComparison` of two bags' torque_command streams."""
    from exo import contract
    from exo.bags.reader import open_session
    from exo.bags.replay import compare_commands

    streams = []
    for path in (recorded, replayed):
        session = open_session(path)
        name = contract.TORQUE_COMMAND.resolved(session.metadata.namespace or contract.DEFAULT_NAMESPACE)
        streams.append([m for m in session.messages({name})])
    return compare_commands(*streams)


def analyze(
    bags: list[Path] = typer.Argument(..., help="Bags (sessions, bag folders or .mcap files); the first is the "
                                      "baseline of the comparison."),
    out: Path = typer.Option(Path("runs/analysis"), "--out", help="Folder for metrics.json, CSV, PNG, report.html."),
    trial_duration: float = typer.Option(-1.0, help="Seconds of each trial to score (default: the evaluator's "
                                         "episode length; 0 = whole trials)."),
) -> None:
    """Per-trial metrics, safety events, loop latency and sensor rates of bags, with a report."""
    from exo.bags.analysis import analyze_session
    from exo.bags.reader import BagError, open_session
    from exo.bags.report import write_report

    console = _console()
    analyses = []
    for path in bags:
        try:
            session = open_session(path)
        except BagError as exc:
            console.print(f"[red]exo analyze: {exc}[/]")
            raise typer.Exit(2) from None
        a = analyze_session(session, None if trial_duration < 0 else trial_duration)
        for problem in a.problems:
            console.print(f"[yellow]{a.name}: {problem}[/]")
        analyses.append(a)
        scored = [t for t in a.trials if t.metrics is not None]
        console.print(f"{a.name}: {a.message_count} messages, {len(a.trials)} trial(s) ({len(scored)} scored), "
                      f"{len(a.safety)} safety state change(s)"
                      + (f", latency p95 {a.latency.p95_ms:.2f} ms, {a.latency.misses} deadline miss(es)"
                         if a.latency else ""))
        for t in scored:
            m = t.metrics
            settle = f"{m.settling_time_s:.2f} s" if math.isfinite(m.settling_time_s) else "not settled"
            console.print(f"  trial {t.index}: settling {settle}, RMS {m.rms_torque_nm:.2f} N m, "
                          f"peak {m.peak_torque_nm:.2f} N m, final error {m.final_error_deg:.2f} deg, "
                          f"overshoot {m.overshoot_deg:.2f} deg")
    paths = write_report(analyses, out)
    console.print(f"report: {paths['report']}  metrics: {paths['metrics']}")
    if all(a.message_count == 0 for a in analyses):
        raise typer.Exit(1)


def export(
    bag: Path = typer.Argument(..., help="Bag to export."),
    format: str = typer.Option("csv", "--format", help="csv, parquet, or mcap (a complete re-indexed copy: "
                               "repairs a bag whose recorder was killed)."),
    out: Path = typer.Option(None, "--out", help="Folder for the tables (default runs/export/<bag>)."),
) -> None:
    """One table per topic (CSV or Parquet) for analysis elsewhere, or a repaired MCAP copy."""
    from exo.bags.export import FORMATS, export_session
    from exo.bags.reader import BagError, open_session

    console = _console()
    if format not in FORMATS:
        console.print(f"[red]exo export: unknown format {format!r}; use {' or '.join(FORMATS)}[/]")
        raise typer.Exit(2)
    try:
        session = open_session(bag)
    except BagError as exc:
        console.print(f"[red]exo export: {exc}[/]")
        raise typer.Exit(2) from None
    out = out or Path("runs/export") / session.name
    files = export_session(session, out, format)
    for problem in session.problems:
        console.print(f"[yellow]{problem}[/]")
    console.print(f"{out}: a complete session" if format == "mcap" else f"{len(files)} table(s) in {out}")


def register(app: typer.Typer) -> None:
    app.command("record")(record)
    app.command("replay")(replay)
    app.command("analyze")(analyze)
    app.command("export")(export)
