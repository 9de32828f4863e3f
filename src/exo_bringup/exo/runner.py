"""Start the nodes of the graph as separate OS processes (the pip install's ``ros2 launch``).

:class:`GraphRunner` turns the graph spec (:mod:`exo.graph`) into one process
per node, with the same ROS arguments a launch file would give them
(``--ros-args -r __node:=... -r __ns:=... --params-file ...``),
watches them, and tears them all down (SIGINT, then SIGTERM, then SIGKILL of
the whole process group). ``exo sim`` and the integration tests use it, so the
tests exercise exactly what users run.

No rclpy import here: readiness and live summaries are the caller's business
(see :mod:`exo.cli.sim`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exo.graph import NodeSpec, active_nodes, resolve_arguments
from exo.paths import share_dir
from exo.security.keys import RunSecrets


def node_overrides(spec: NodeSpec, args: Mapping[str, object], secrets: RunSecrets | None = None) -> dict[str, object]:
    """The parameters the launch arguments (and the run's secrets) set on ``spec``'s node."""
    out = dict(spec.parameters_from(dict(args)))
    out["use_sim_time"] = args["use_sim_time"]
    if secrets is not None:
        out.update(secrets.parameters(spec.secrets))
    return out


def ros_arguments(spec: NodeSpec, args: Mapping[str, object], config_dir: Path | None = None,
                  secrets: RunSecrets | None = None) -> list[str]:
    """The ``--ros-args ...`` a node of ``spec`` gets for resolved graph ``args``.

    Parameter precedence (later wins, as in launch): the node's ``config/*.yaml``,
    then the user's ``params_file``, then launch arguments and ``use_sim_time``,
    then the paths of the run's secrets the node gets (``spec.secrets``). With ``secrets``
    (a run), the last two are a parameter file in the run's folder (:func:`exo.graph.overrides_file`:
    ``-p`` would lose against the ``/**/<node>`` entries of ``config/*.yaml``); without, they are
    shown as ``-p name:=value`` (for reading a command line, not for running it).
    """
    from exo.graph import overrides_file

    config_dir = config_dir or share_dir() / "config"
    out = ["--ros-args", "-r", f"__node:={spec.name}", "-r", f"__ns:={args['namespace']}"]
    for name in spec.param_files:
        out += ["--params-file", str(config_dir / name)]
    if args.get("params_file"):
        out += ["--params-file", str(args["params_file"])]
    overrides = node_overrides(spec, args, secrets)
    if secrets is not None:
        out += ["--params-file", str(overrides_file(spec, dict(args), overrides, secrets.folder))]
    else:
        for param, value in overrides.items():
            out += ["-p", f"{param}:={_param_text(value)}"]
    out += ["--log-level", str(args["log_level"])]
    if args.get("enclave_prefix"):
        out += ["--enclave", f"{str(args['enclave_prefix']).rstrip('/')}/{spec.name}"]
    return out


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value == "":
        return "''"
    return str(value)


@dataclass
class NodeProcess:
    """A running node: its spec, process and log file."""

    spec: NodeSpec
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    startup_restarts: int = 0  # times restarted after a native crash before it joined the ROS graph

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def parameters(self) -> dict[str, object]:
        """The parameters the launch arguments and the run's secrets set on this node (its overrides file)."""
        import yaml

        files = [a for a in self.command if a.endswith(".overrides.yaml")]
        if not files:
            return {}
        document = yaml.safe_load(Path(files[-1]).read_text()) or {}
        return dict(next(iter(document.values()))["ros__parameters"])

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


#: How a node is stopped: a clean shutdown (its on_shutdown runs: zero torque, the bag's last chunk), then harder.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def stop_process_groups(processes: Iterable[subprocess.Popen], timeout_s: float = 5.0,
                        signals: tuple[int, ...] = STOP_SIGNALS) -> list[int | None]:
    """Stop processes that each lead their own process group (``start_new_session=True``).

    Each signal goes to every group still running at once, then waits up to ``timeout_s`` for them;
    at the end whatever is left of every group (grandchildren too) gets SIGKILL and is reaped. The one
    way exo stops processes: the runner, the emulated rig, the tests and the benchmarks use it.
    Returns the exit codes, in order.
    """
    procs = list(processes)
    running = [p for p in procs if p.poll() is None]
    for sig in signals:
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(p.poll() is None for p in running):
            time.sleep(0.02)
        running = [p for p in running if p.poll() is None]
        if not running:
            break
    for proc in procs:  # reap, and kill any grandchildren left in the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return [p.returncode for p in procs]


#: Signals of a native crash (middleware or extension code), as opposed to a deliberate stop.
NATIVE_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE)


class StartupCrashWarning(RuntimeWarning):
    """A node crashed natively before it joined the ROS graph and was started again."""


class NodeDied(RuntimeError):
    """A required node exited while the graph was running."""

    def __init__(self, node: NodeProcess, code: int) -> None:
        self.node = node
        self.code = code
        super().__init__(
            f"node '{node.name}' exited with code {code}; last lines of {node.log_path}:\n{node.log_tail()}"
        )


@dataclass
class GraphRunner:
    """The graph of one mode, as OS processes.

    Args:
        mode: "sim", "real" or "replay".
        arguments: launch-argument overrides (strings, as on a command line).
        env: extra environment for every node (ROS_DOMAIN_ID, ...).
        log_dir: where each node's stdout/stderr goes (``<node>.log``).
        only: run only these nodes (tests that inject faults run part of the graph).

    The runner creates the run's secrets (:class:`exo.security.keys.RunSecrets`: command and request
    keys, reset token; ``secrets.folder``) and hands each node only the ones its spec names; they are
    deleted when the graph stops.
    """

    mode: str
    arguments: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path = Path("runs/logs")
    only: tuple[str, ...] | None = None
    nodes: list[NodeProcess] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.args = resolve_arguments(self.mode, dict(self.arguments))
        specs = active_nodes(self.mode, self.args)
        if self.only is not None:
            unknown = set(self.only) - {s.name for s in specs}
            if unknown:
                raise ValueError(f"no such node(s) in mode {self.mode!r}: {', '.join(sorted(unknown))}")
            specs = [s for s in specs if s.name in self.only]
        self.log_dir = Path(self.log_dir)
        domain = self.env.get("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID", "0"))
        self.secrets = RunSecrets.create(self.namespace, int(domain or 0))
        self.nodes = [
            NodeProcess(s, [sys.executable, "-m", s.module, *ros_arguments(s, self.args, secrets=self.secrets)],
                        self.log_dir / f"{s.name}.log")
            for s in specs
        ]

    @property
    def namespace(self) -> str:
        return str(self.args["namespace"])

    def start(self, names: Iterable[str] | None = None) -> None:
        """Start the nodes not started yet (in graph order), or only those in ``names``.

        ``exo sim`` starts the graph in two goes: everything but the sim bridge first, so
        that its watcher has matched every publisher before the trial's first sample exists.
        """
        wanted = None if names is None else set(names)
        if wanted is not None and wanted - {n.name for n in self.nodes}:
            raise ValueError(f"no such node(s) in this graph: {', '.join(sorted(wanted - {n.name for n in self.nodes}))}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            if node.process is not None or (wanted is not None and node.name not in wanted):
                continue
            self._spawn(node)

    def _spawn(self, node: NodeProcess) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        log = open(node.log_path, "wb")  # noqa: SIM115 - owned by the child
        node.process = subprocess.Popen(
            node.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def recover_startup_crashes(self, not_up: Iterable[str], max_restarts: int = 1) -> list[str]:
        """Start again the nodes of ``not_up`` that a native crash killed before they joined the graph.

        ``not_up`` names nodes the caller has not yet seen in the ROS graph (a node is "up" once
        discoverable). A node among them that exited with a signal of :data:`NATIVE_CRASH_SIGNALS`
        (a segfault in the DDS middleware during participant start-up was seen once in about
        3,000 node starts on the CI machine, before any exo code ran) is restarted, at most
        ``max_restarts`` times; its crash log is kept as ``<node>.crash<k>.log`` and a
        :class:`StartupCrashWarning` names it. Any other exit (a configuration error's code 2,
        a crash after start-up, a crash beyond ``max_restarts``) raises :class:`NodeDied` at once.
        Returns the names restarted.
        """
        restarted = []
        waiting = set(not_up)
        for node in self.nodes:
            code = node.poll()
            if code is None or node.name not in waiting:
                continue
            crashed = code < 0 and -code in NATIVE_CRASH_SIGNALS
            if not crashed or node.startup_restarts >= max_restarts:
                raise NodeDied(node, code)
            node.startup_restarts += 1
            kept = node.log_path.with_name(f"{node.name}.crash{node.startup_restarts}.log")
            node.log_path.replace(kept)
            warnings.warn(StartupCrashWarning(
                f"node '{node.name}' died of {signal.Signals(-code).name} before it joined the ROS graph; "
                f"started again (log of the crash: {kept}; first lines: "
                f"{' | '.join(kept.read_text(errors='replace').splitlines()[:3])})"), stacklevel=2)
            self._spawn(node)
            restarted.append(node.name)
        return restarted

    def check(self, awaiting: Iterable[str] = ()) -> None:
        """Raise :class:`NodeDied` if a required node has exited.

        ``awaiting`` names nodes not yet seen in the ROS graph: a native crash of one of them is
        restarted once first (:meth:`recover_startup_crashes`).
        """
        self.recover_startup_crashes(awaiting)
        for node in self.nodes:
            code = node.poll()
            if code is not None and node.spec.required:
                raise NodeDied(node, code)

    def node(self, name: str) -> NodeProcess:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process group (fault injection)."""
        proc = self.node(name).process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)

    def stop(self, timeout_s: float = 5.0) -> dict[str, int | None]:
        """Stop every node (:func:`stop_process_groups`, last started first) and delete the run's secrets.

        Returns the exit codes by node.
        """
        started = [n for n in reversed(self.nodes) if n.process is not None]
        stop_process_groups([n.process for n in started], timeout_s)
        self.secrets.remove()
        return {n.name: n.poll() for n in self.nodes}

    def __enter__(self) -> GraphRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
