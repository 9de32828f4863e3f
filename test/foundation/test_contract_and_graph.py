"""The topic contract and the node graph are the single sources of truth; check they hold together."""

from __future__ import annotations

import ast
import importlib.util
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from exo import contract, graph
from exo.runner import GraphRunner, NodeDied, StartupCrashWarning, ros_arguments

PKG = Path(__file__).resolve().parents[2] / "src" / "exo_bringup"


def test_every_contract_type_is_importable():
    from exo.ros.types import interface_class

    for topic in contract.TOPICS.values():
        cls = interface_class(topic.msg_type)
        assert cls.__name__ == topic.type_name
    for srv, _ in contract.SERVICES.values():
        interface_class(srv)


def test_topic_names_resolve_under_namespace():
    assert contract.JOINT_STATES.resolved("/exo") == "/exo/joint_states"
    assert contract.JOINT_STATES.resolved("/left_leg/exo") == "/left_leg/exo/joint_states"
    assert contract.JOINT_STATES.resolved("") == "/joint_states"
    assert contract.CLOCK_TOPIC.resolved("/exo") == "/clock"


def test_qos_of_the_contract():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from exo.ros.qos import qos_profile

    assert qos_profile(contract.JOINT_STATES).reliability == ReliabilityPolicy.BEST_EFFORT
    cmd = qos_profile(contract.TORQUE_COMMAND)
    assert cmd.reliability == ReliabilityPolicy.RELIABLE and cmd.depth == 1
    assert cmd.deadline.nanoseconds == 20_000_000
    assert qos_profile(contract.SAFETY_STATUS).durability == DurabilityPolicy.TRANSIENT_LOCAL


def _string_literals(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_no_module_but_the_contract_spells_a_topic_name():
    # compound names only: single words such as "intent" or "emg" are also ordinary identifiers
    names = {t.name for t in contract.TOPICS.values()} | {t.name.lstrip("/") for t in contract.TOPICS.values()}
    names |= set(contract.SERVICES)
    names = {n for n in names if "/" in n.strip("/") or "_" in n}
    offenders = []
    for path in (PKG / "exo").rglob("*.py"):
        if path.name == "contract.py":
            continue
        hits = _string_literals(path) & names
        if hits:
            offenders.append(f"{path.relative_to(PKG)}: {sorted(hits)}")
    assert not offenders, "topic names outside exo/contract.py:\n" + "\n".join(offenders)


def test_setup_py_console_scripts_match_the_graph_spec():
    spec = importlib.util.spec_from_file_location("exo_setup", PKG / "setup.py")
    text = (PKG / "setup.py").read_text()
    table = ast.literal_eval(re.search(r"NODE_EXECUTABLES = (\{.*?\})", text, re.S).group(1))
    assert spec is not None
    for node in graph.NODES:
        assert table.get(node.executable) == f"{node.module}:main", node.name
        assert importlib.util.find_spec(node.module) is not None, node.module


def test_every_node_param_file_exists():
    for node in graph.NODES:
        for name in node.param_files:
            assert (PKG / "config" / name).is_file(), f"{node.name}: config/{name} missing"


def test_arguments_are_validated_with_a_message_naming_them():
    args = graph.resolve_arguments("sim", {"level": "3", "lockstep": "false"})
    assert args["level"] == 3 and args["lockstep"] is False and args["controller"] == "pid"
    with pytest.raises(ValueError, match="argument 'level'"):
        graph.resolve_arguments("sim", {"level": "7"})
    with pytest.raises(ValueError, match="argument 'subject_seed'"):
        graph.resolve_arguments("sim", {"subject_seed": "abc"})
    with pytest.raises(ValueError, match="unknown argument"):
        graph.resolve_arguments("sim", {"levle": "1"})
    with pytest.raises(ValueError, match="unknown mode"):
        graph.nodes_for("simulation")


def test_runner_gives_nodes_the_arguments_a_launch_file_would():
    runner = GraphRunner("sim", {"level": "2", "controller": "zero", "namespace": "/leg"})
    bridge = next(n for n in runner.nodes if n.name == "sim_bridge")
    cmd = bridge.command
    assert cmd[1:3] == ["-m", "exo.nodes.sim_bridge"]
    assert "__ns:=/leg" in cmd and "__node:=sim_bridge" in cmd
    # the launch arguments come last, in a parameter file keyed by the node's full name (exo.graph.overrides_file)
    last = Path(cmd[len(cmd) - 1 - cmd[::-1].index("--params-file") + 1])
    assert last.parent == runner.secrets.folder and oct(last.stat().st_mode & 0o777) == "0o600"
    overrides = yaml.safe_load(last.read_text())["/leg/sim_bridge"]["ros__parameters"]
    assert overrides["level"] == 2 and overrides["use_sim_time"] is True
    runner.secrets.remove()
    ctrl = ros_arguments(next(n for n in graph.NODES if n.name == "controller"), runner.args)
    assert "controller:=zero" in ctrl and "policy:=''" in ctrl  # without a run: shown as -p


def test_launch_files_are_thin_wrappers_of_the_graph_spec():
    launch_dir = PKG / "launch"
    files = sorted(launch_dir.glob("*.launch.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                 "graph_launch_description"]
        assert calls, f"{path.name} does not build its graph from the spec"
        mode = calls[0].args[0].value
        assert mode in graph.MODES


def test_optional_nodes_are_switched_by_their_argument_and_modes_bring_their_defaults(monkeypatch):
    extra = graph.NodeSpec(
        name="probe_recorder",
        executable="probe_recorder",
        module="exo.nodes.controller",
        modes=frozenset({"sim"}),
        enabled_by="lockstep",  # any bool argument of the sim mode works for the mechanism
        mode_defaults={"sim": {"level": "3"}},
    )
    monkeypatch.setattr(graph, "NODES", (*graph.NODES, extra))
    assert graph.arguments_for("sim")["level"].default == "3"
    assert graph.arguments_for("sim")["level"].default != graph.LAUNCH_ARGUMENTS["level"].default
    on = graph.resolve_arguments("sim", {"lockstep": "true"})
    off = graph.resolve_arguments("sim", {"lockstep": "false"})
    assert "probe_recorder" in [n.name for n in graph.active_nodes("sim", on)]
    assert "probe_recorder" not in [n.name for n in graph.active_nodes("sim", off)]
    assert "probe_recorder" not in [n.name for n in GraphRunner("sim", {"lockstep": "false"}).nodes]


def _scripted(runner: GraphRunner, name: str, script: str) -> None:
    """Replace one node's command by a Python script (the process behaviour under test, no ROS)."""
    runner.node(name).command = [sys.executable, "-c", script]


def test_a_native_crash_before_a_node_joins_the_graph_is_restarted_once_and_warned(tmp_path):
    marker = tmp_path / "crashed-once"
    runner = GraphRunner("sim", log_dir=tmp_path / "logs", only=("controller", "safety_monitor"))
    # first start: a segfault (what FastDDS did once on CI during participant start-up); then it runs
    _scripted(runner, "controller", textwrap.dedent(f"""
        import os, pathlib, signal, time
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.write_text("x")
            print("about to crash", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)
    """))
    _scripted(runner, "safety_monitor", "import time; time.sleep(60)")
    try:
        runner.start()
        runner.node("controller").process.wait(timeout=30)
        with pytest.warns(StartupCrashWarning, match="controller.*SIGSEGV.*about to crash"):
            assert runner.recover_startup_crashes(["controller", "safety_monitor"]) == ["controller"]
        assert (tmp_path / "logs" / "controller.crash1.log").read_text().startswith("about to crash")
        time.sleep(0.5)
        runner.check()  # both run
        assert runner.recover_startup_crashes(["controller"]) == []
        # a second native crash before it joined is not retried: the test or the user sees it
        runner.kill("controller", signal.SIGSEGV)
        with pytest.raises(NodeDied, match="controller.*code -11"):
            runner.recover_startup_crashes(["controller"])
    finally:
        runner.stop()


def test_a_node_that_exits_with_an_error_before_it_joins_the_graph_fails_at_once(tmp_path):
    runner = GraphRunner("sim", log_dir=tmp_path / "logs", only=("controller",))
    _scripted(runner, "controller", "import sys; print('[fatal] cannot start: bad gain'); sys.exit(2)")
    try:
        runner.start()
        runner.node("controller").process.wait(timeout=30)
        with pytest.raises(NodeDied, match="(?s)code 2.*bad gain"):
            runner.recover_startup_crashes(["controller"])
    finally:
        runner.stop()
