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

``replay``, ``analyze`` and ``export`` read a session of the encrypted user store
instead of a bag path with ``--user ID --session N`` (and ``--store``/``--key-file``,
see ``exo user``): the session is decrypted into a private temporary folder for the
command and deleted afterwards. What they derive from it is personal data too, so
it stays in the store unless ``--out`` asks for plaintext (with a WARNING): the
analysis is stored as the session's ``analysis`` artefact, the replay is recorded as
a new ``replay`` session (its comparison as that session's ``comparison``
artefact), and export refuses to run without ``--out``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import typer

from exo.cli.live import LIVE_HOST_OPTION, LIVE_OPTION, LIVE_PORT_OPTION


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


_USER_HELP = "Read a session of this user of the encrypted user store instead of a bag path (with --session)."
_STORE_HELP = "User store folder for --user (default: $EXO_STORE, else ~/.local/share/exo/users)."
_KEY_HELP = "Key file of the user store (default: $EXO_KEY_FILE; a passphrase store reads $EXO_PASSPHRASE)."


def _plaintext_warning(console, out: Path, user: str) -> None:
    console.print(f"[bold yellow]WARNING: {_escape(out)} will hold PLAINTEXT personal data of user {_escape(user)} "
                  "(derived from the encrypted user store, outside it); protect or delete it.[/]", soft_wrap=True)


def _store_source(bags: list[Path], user: str, sessions: list[int], command: str) -> bool:
    """Whether the command reads store sessions; exit 2 with one line for a bad combination of arguments."""
    if not user and not sessions:
        if not bags:
            _console().print(f"[red]exo {command}: give a bag, or --user ID --session N[/]")
            raise typer.Exit(2)
        return False
    if bags:
        _console().print(f"[red]exo {command}: give either bag paths or --user ID --session N, not both[/]")
        raise typer.Exit(2)
    if not user or not sessions:
        _console().print(f"[red]exo {command}: --user and --session go together[/]")
        raise typer.Exit(2)
    return True


def _open_store(store_dir: Path | None, key_file: Path | None):
    """The user store of ``--store``/``--key-file`` (or the environment), opened and recovered."""
    from exo.cli.user import open_store

    return open_store(store_dir, key_file)


@contextlib.contextmanager
def _store_bag(store, user: str, number: int) -> Iterator[Path]:
    """Session ``number`` of ``user`` decrypted into a private temporary folder, deleted when the block ends."""
    from exo.users import StoreError

    if store.session(user, number).files == 0:
        raise StoreError(f"session {number} of user {user!r} holds no bag")
    with store.open_session(user, number) as bag:
        yield bag

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
    bag: Path = typer.Argument(None, help="Bag to replay (exo session folder, rosbag2 folder or .mcap file); "
                               "or --user ID --session N."),
    rate: float = typer.Option(0.0, min=0.0, help="Sim s per wall s; 0 = lockstep, as fast as the graph answers."),
    controller: str = typer.Option("", help="Controller to re-run (default: the bag's, else pid)."),
    policy: str = typer.Option("", help="Exported policy for --controller sac."),
    out: Path = typer.Option(None, "--out", help="Session folder of the replay's own bag "
                             "(default runs/replay/<bag>-<UTC time>; for a store session: a new session in the "
                             "store)."),
    compare: bool = typer.Option(True, help="Compare the new torque_command stream with the recorded one."),
    max_diff: float = typer.Option(math.inf, help="Exit 1 if the max |torque difference| exceeds this, N m."),
    allow_partial: bool = typer.Option(False, "--allow-partial",
                                       help="Compare what a truncated or damaged bag still holds (with a WARNING) "
                                       "instead of refusing it (exit 2)."),
    namespace: str = typer.Option("/exo", help="Namespace of the replay graph."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    timeout: float = typer.Option(600.0, help="Wall seconds the whole replay may take."),
    user: str = typer.Option("", "--user", help=_USER_HELP),
    session: int = typer.Option(0, "--session", min=0, help="Session number of --user."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
    live: bool = LIVE_OPTION,
    live_host: str = LIVE_HOST_OPTION,
    live_port: int = LIVE_PORT_OPTION,
) -> None:
    """Re-run controller and safety monitor on a bag's sensors; compare the torque commands."""
    from exo.bags.reader import BagError, open_session
    from exo.bags.replay import recorded_completeness

    console = _console()
    from exo.cli.live import view_arguments
    from exo.live.net import LOCALHOST, AddressError

    try:
        views = view_arguments(live, live_host, live_port, False, LOCALHOST, 0)
    except AddressError as exc:
        console.print(f"[red]exo replay: {exc}[/]")
        raise typer.Exit(2) from None
    from_store = _store_source([bag] if bag is not None else [], user, [session] if session else [], "replay")
    with contextlib.ExitStack() as stack:
        user_store = None
        into_store = False
        if from_store:
            user_store = _open_store(store, key_file)
            bag = stack.enter_context(_store_bag(user_store, user, session))
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
        if user_store is not None and out is None:  # the replay of a user's session is theirs: into the store
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exo-replay-logs-")))
            meta = {"source_session": session, "controller": controller, "policy": policy}
            out = stack.enter_context(user_store.recording(user, "replay", meta))
            shown = f"a new replay session of user {user}"
            into_store = True
        else:
            if user_store is not None:
                _plaintext_warning(console, out, user)
            out = out or Path("runs/replay") / f"{source.name}-{_stamp()}"
            log_dir = out.parent / f"{out.name}-logs"
            shown = str(out)
        code, document = _replay_and_compare(console, source, bag, out, log_dir, controller=controller, policy=policy,
                                             rate=rate, namespace=namespace, domain_id=domain_id,
                                             startup_timeout=startup_timeout, timeout=timeout, compare=compare,
                                             max_diff=max_diff, completeness=completeness, shown=shown,
                                             views=views)
        if document is not None and not into_store:
            (out / "comparison.json").write_text(json.dumps(document, indent=2) + "\n")
            console.print(f"comparison: {out / 'comparison.json'}")
    if document is not None and into_store:
        new = user_store.sessions(user)[-1]
        user_store.put_json(user, new.number, "comparison", document)
        console.print(f"replay stored as session {new.number} of user {user} (its comparison as artefact "
                      "'comparison'); --out DIR writes it in plaintext instead")
    if code:
        raise typer.Exit(code)


def _replay_and_compare(console, source, bag: Path, out: Path, log_dir: Path, *, controller: str, policy: str,
                        rate: float, namespace: str, domain_id: int, startup_timeout: float, timeout: float,
                        compare: bool, max_diff: float, completeness, shown: str,
                        views: dict[str, str] | None = None) -> tuple[int, dict | None]:
    """Replay ``bag`` into ``out`` and compare; returns (exit code, comparison document or None)."""
    try:
        new_bag, elapsed = run_replay(bag, out, log_dir, views=views, controller=controller, policy=policy, rate=rate,
                                      namespace=namespace, domain_id=domain_id, startup_timeout=startup_timeout,
                                      timeout=timeout, progress=console.print)
    except (RuntimeError, TimeoutError, ValueError) as exc:
        console.print(f"[red]exo replay: {_escape(exc)}[/]")
        return 1, None
    console.print(f"replayed in {elapsed:.1f} s wall; new bag: {shown}")
    if not compare:
        return 0, None
    result = compare_bags(bag, new_bag)
    document = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.to_dict().items()}
    if completeness is not None and completeness.damaged:
        document.update({"partial": True, **completeness.to_dict()})
    first = "none" if math.isnan(result.first_divergence_s) else f"{result.first_divergence_s:.3f} s"
    console.print(
        f"torque_command recorded vs replayed: {result.matched} matched, max |diff| {result.max_abs_diff_nm:.3g} N m, "
        f"RMS {result.rms_diff_nm:.3g} N m, first divergence {first}, "
        f"{result.only_recorded} only recorded, {result.only_replayed} only replayed, "
        f"{result.source_changes} source changes")
    if completeness is not None and completeness.damaged:
        listed = "an unknown number of" if completeness.listed is None else f"{completeness.listed}"
        not_compared = "an unknown number" if completeness.unreadable is None else f"{completeness.unreadable}"
        console.print(f"[bold yellow]WARNING: PARTIAL COMPARISON: {result.matched} commands compared of {listed} "
                      f"recorded; {not_compared} recorded commands could not be read from the damaged bag and were "
                      f"not compared; {result.only_recorded} readable ones had no replayed answer.[/]", soft_wrap=True)
    if result.matched == 0 or result.max_abs_diff_nm > max_diff:
        console.print(f"[red]exo replay: commands differ by more than {max_diff} N m[/]")
        return 1, document
    return 0, document


def run_replay(bag: Path, out: Path, log_dir: Path, *, controller: str = "pid", policy: str = "", rate: float = 0.0,
               namespace: str = "/exo", domain_id: int = -1, env: dict[str, str] | None = None,
               startup_timeout: float = 60.0, timeout: float = 600.0, progress=None,
               views: dict[str, str] | None = None) -> tuple[Path, float]:
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
            "session_info": f"mode=replay,source_bag={Path(bag).resolve()}", **(views or {})}
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
    bags: list[Path] = typer.Argument(None, help="Bags (sessions, bag folders or .mcap files); the first is the "
                                      "baseline of the comparison. Or --user ID --session N."),
    out: Path = typer.Option(None, "--out", help="Folder for metrics.json, CSV, PNG, report.html (default "
                             "runs/analysis; for store sessions: none, the analysis is stored in the store)."),
    trial_duration: float = typer.Option(-1.0, help="Seconds of each trial to score (default: the evaluator's "
                                         "episode length; 0 = whole trials)."),
    user: str = typer.Option("", "--user", help=_USER_HELP),
    session: list[int] = typer.Option(None, "--session", help="Session number of --user (repeatable; the first "
                                      "is the baseline)."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Per-trial metrics, safety events, loop latency and sensor rates of bags, with a report."""
    from exo.bags.analysis import analyze_session
    from exo.bags.reader import BagError, open_session
    from exo.bags.report import session_document, write_report
    from exo.records import json_safe

    console = _console()
    sessions = list(session or [])
    from_store = _store_source(list(bags or []), user, sessions, "analyze")
    analyses = []
    with contextlib.ExitStack() as stack:
        paths = list(bags or [])
        user_store = _open_store(store, key_file) if from_store else None
        for number in sessions if from_store else []:
            paths.append(stack.enter_context(_store_bag(user_store, user, number)))
        for path in paths:
            try:
                opened = open_session(path)
            except BagError as exc:
                console.print(f"[red]exo analyze: {exc}[/]")
                raise typer.Exit(2) from None
            a = analyze_session(opened, None if trial_duration < 0 else trial_duration)
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
        if user_store is not None and out is None:  # a user's analysis is theirs: it stays in the store
            for number, a in zip(sessions, analyses, strict=True):
                document = json_safe({**session_document(a), "path": f"user store, session {number}"})
                user_store.put_json(user, number, "analysis", document)
            console.print(f"analysis stored in the user store as artefact 'analysis' of session(s) "
                          f"{', '.join(map(str, sessions))} of user {user}; --out DIR writes metrics, CSV, figures "
                          "and report.html in plaintext instead")
        else:
            if user_store is not None:
                _plaintext_warning(console, out, user)
            paths_written = write_report(analyses, out or Path("runs/analysis"))
            console.print(f"report: {paths_written['report']}  metrics: {paths_written['metrics']}")
    if all(a.message_count == 0 for a in analyses):
        raise typer.Exit(1)


def export(
    bag: Path = typer.Argument(None, help="Bag to export (or --user ID --session N)."),
    format: str = typer.Option("csv", "--format", help="csv, parquet, or mcap (a complete re-indexed copy: "
                               "repairs a bag whose recorder was killed)."),
    out: Path = typer.Option(None, "--out", help="Folder for the tables (default runs/export/<bag>; required for "
                             "a store session)."),
    user: str = typer.Option("", "--user", help=_USER_HELP),
    session: int = typer.Option(0, "--session", min=0, help="Session number of --user."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """One table per topic (CSV or Parquet) for analysis elsewhere, or a repaired MCAP copy."""
    from exo.bags.export import FORMATS, export_session
    from exo.bags.reader import BagError, open_session

    console = _console()
    if format not in FORMATS:
        console.print(f"[red]exo export: unknown format {format!r}; use {' or '.join(FORMATS)}[/]")
        raise typer.Exit(2)
    from_store = _store_source([bag] if bag is not None else [], user, [session] if session else [], "export")
    if from_store and out is None:
        console.print(f"[red]exo export: session {session} of user {_escape(user)} is personal data; exporting it "
                      "writes plaintext outside the encrypted store, so give the folder explicitly with --out DIR[/]",
                      soft_wrap=True)
        raise typer.Exit(2)
    with contextlib.ExitStack() as stack:
        if from_store:
            bag = stack.enter_context(_store_bag(_open_store(store, key_file), user, session))
            _plaintext_warning(console, out, user)
        try:
            opened = open_session(bag)
        except BagError as exc:
            console.print(f"[red]exo export: {exc}[/]")
            raise typer.Exit(2) from None
        out = out or Path("runs/export") / opened.name
        files = export_session(opened, out, format)
        for problem in opened.problems:
            console.print(f"[yellow]{problem}[/]")
    console.print(f"{out}: a complete session" if format == "mcap" else f"{len(files)} table(s) in {out}")


def register(app: typer.Typer) -> None:
    app.command("record")(record)
    app.command("replay")(replay)
    app.command("analyze")(analyze)
    app.command("export")(export)
