"""Bags of the running graph: record the sim graph, analyse it, SIGKILL the recorder, replay a bag.

Real node processes over DDS in the test's own domain (see test/conftest.py),
started the way users start them (`exo sim --record`, `exo replay`, the graph
runner), real MuJoCo twin, real files.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from exo import contract
from exo.bags.analysis import CONTROL_PERIOD_S, analyze_session
from exo.bags.reader import BagError, open_session, stamp_s
from exo.bags.replay import RecordedTorques, trial_commands
from exo.metrics import METRIC_NAMES
from exo.ros.convert import from_time_msg

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
NS = contract.DEFAULT_NAMESPACE


def exo_cli(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "exo.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    return proc


def test_a_bag_of_the_sim_graph_scores_its_trial_like_the_evaluator(ros_domain: int, tmp_path: Path):
    """`exo sim --record` (sim bridge, PID controller, safety monitor in the loop, recorder); the bag's trial
    metrics agree within 1 % with the evaluator's run of the same subject driven by the commanded torques."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from exo.envs.knee_extension import KneeExtensionEnv
    from exo.evaluate import run_trial, subject_seed

    level = 2
    env = KneeExtensionEnv(twin="reduced", level=level, terminate_on_unsafe=False)
    twin_seed = env.reset(seed=subject_seed(0, level, 0))[1]["subject_seed"]
    bag = tmp_path / "sim_bag"
    proc = exo_cli("sim", "--record", str(bag), "--user-id", "test-user", "--duration", "5.3", "--level", str(level),
                   "--subject-seed", str(twin_seed), "--domain-id", str(ros_domain), "--log-dir", str(tmp_path / "logs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    session = open_session(bag)
    assert session.metadata.user_id == "test-user" and session.metadata.controller == "pid"
    assert session.metadata.level == str(level) and session.metadata.twin == "reduced" and session.metadata.commit
    a = analyze_session(session)
    assert not a.problems, a.problems
    trial = a.trials[0]
    assert trial.complete and trial.subject_seed == twin_seed and trial.samples == 513
    assert set(a.command_sources) <= {"pid", "safe_stop"} and a.command_sources["pid"] >= 512
    msgs = session.read_all()
    torques = trial_commands(msgs[contract.SIM_TRUTH.resolved(NS)], msgs[contract.TORQUE_COMMAND.resolved(NS)],
                             trial.start_s, 512, CONTROL_PERIOD_S)
    ref = run_trial(RecordedTorques(torques), "reduced", level, trial=0, seed=0)
    for name in METRIC_NAMES:
        got, want = getattr(trial.metrics, name), getattr(ref.metrics, name)
        assert math.isclose(got, want, rel_tol=0.01, abs_tol=1e-6), f"{name}: bag {got} vs evaluator {want}"
    # every message decodes with the mcap tools and the embedded definitions alone
    mcap = next(bag.rglob("*.mcap"))
    with open(mcap, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        decoded = sum(1 for _ in reader.iter_decoded_messages())
        assert decoded == reader.get_summary().statistics.message_count == a.message_count


def test_a_recorder_killed_with_sigkill_leaves_a_readable_bag(processes, probe, tmp_path: Path):
    """SIGKILL loses at most what was not flushed: once the stream pauses, everything is on disk."""
    from mcap.stream_reader import StreamReader

    bag = tmp_path / "killed"
    joint = probe.subscribe(contract.JOINT_STATES)
    graph = processes.graph("sim", start=False, record="true", record_dir=str(bag), level="1", lockstep="true")
    graph.start(["recorder", "controller", "safety_monitor"])  # the sensor source last, as `exo sim` does
    probe.wait_for_nodes(["controller", "safety_monitor", "recorder"], timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: any(i.node_name == "recorder" for i in probe.node.get_subscriptions_info_by_topic(
        contract.JOINT_STATES.resolved(NS))), 30.0, "the recorder's subscription")
    graph.start(["sim_bridge"])
    # 1.5 s of sim time, and 50 samples seen here (a probe that matched the bridge late on a busy machine has
    # fewer than the sim time says)
    probe.wait_for(lambda: len(joint) >= 50 and from_time_msg(joint[-1].header.stamp) >= 1.5, 120.0,
                   "1.5 s of sim time")
    # pause the sensor source (a SIGKILLed publisher may take samples still in flight with it): the stream
    # stops, the rest of the graph goes on (the monitor's safe stop), and every sample sent reaches the recorder
    os.killpg(graph.node("sim_bridge").process.pid, signal.SIGSTOP)
    probe.spin_for(0.3)
    # SIGSTOP can land inside the last step's publish, between two readers: in one CI run the probe got
    # joint_states t=1.5 s and the recorder did not (its imu t=1.5 s was in the bag), and a stopped writer
    # repairs nothing. Every step before the last one was published to all readers before the bridge went on.
    sent = sorted({round(from_time_msg(m.header.stamp), 9) for m in joint})
    seen = set(sent[:-1])
    name = contract.JOINT_STATES.resolved(NS)

    def on_disk() -> set[float]:
        return {round(stamp_s(m.msg), 9) for m in open_session(bag).messages({name})}

    # the recorder's flush timer (flush_period_s = 0.5 s) writes what it holds although no sample arrives
    probe.wait_for(lambda: max(seen) in on_disk(), 30.0, "the last completely published joint_states sample on disk")
    graph.kill("recorder", signal.SIGKILL)
    graph.kill("sim_bridge", signal.SIGKILL)  # (stopped: only SIGKILL ends it)
    assert not list(bag.rglob("metadata.yaml")), "a killed recorder cannot have written metadata.yaml"
    session = open_session(bag)
    stamps = {round(stamp_s(m.msg), 9) for m in session.messages({name})}
    assert stamps >= {s for s in seen if s >= min(stamps)}, "samples the probe saw are missing from the bag"
    # record:=true makes the bridge hold its first sample until the recorder has subscribed and matched
    # (before, a recorder the bridge's participant had not discovered yet missed the first samples)
    assert min(stamps) == 0.0 and len(stamps) >= 150
    assert any("truncated" in p for p in session.problems), session.problems
    a = analyze_session(open_session(bag))
    assert a.message_count > 1000 and a.trials and a.safety
    assert any(e.state == "SAFE_STOP" for e in a.safety)  # the monitor's reaction to the dead sensor is in the bag
    # an independent stream reader reads the same messages up to the cut
    count = 0
    with open(next(bag.rglob("*.mcap")), "rb") as f:
        try:
            for record in StreamReader(f).records:
                count += type(record).__name__ == "Message"
        except Exception:  # noqa: BLE001 - the cut
            pass
    assert count == a.message_count


def test_a_recorder_behind_its_graph_writes_its_backlog_before_it_closes(processes, probe, tmp_path: Path):
    """A lockstep graph can run faster than its recorder writes; when the graph stops, what the recorder's
    queues still hold goes into the bag (the stop signal drains them) instead of dying with the process.

    The backlog is made exact: the recorder is frozen (SIGSTOP) while 300 commands are sent to it, and its
    stop signal is waiting when it runs again. Without the drain the bag held at most one of them.
    """
    from exo.ros.convert import to_time_msg
    from exo.ros.qos import qos_profile
    from exo_msgs.msg import TorqueCommand

    bag = tmp_path / "behind"
    graph = processes.graph("sim", start=False, record="true", record_dir=str(bag), level="1", lockstep="true")
    graph.start(["recorder"])
    probe.wait_for_nodes(["recorder"], timeout_s=60.0, graph=graph)
    name = contract.TORQUE_COMMAND.resolved(NS)
    # the probe's writer keeps every message (repairs, should the frozen reader's socket drop one)
    publisher = probe.publisher(contract.TORQUE_COMMAND, qos=qos_profile(contract.TORQUE_COMMAND, reader=True))
    probe.wait_for(lambda: publisher.get_subscription_count() >= 1 and any(
        i.node_name == "recorder" for i in probe.node.get_subscriptions_info_by_topic(name)), 30.0,
        "the recorder's torque_command subscription")
    probe.spin_for(0.5)
    recorder = graph.node("recorder").process
    os.killpg(recorder.pid, signal.SIGSTOP)
    try:
        for k in range(300):
            msg = TorqueCommand(joint=contract.KNEE_JOINT, torque=0.1 * k, source="test", seq=k + 1)
            msg.header.stamp = to_time_msg(0.01 * k)
            publisher.publish(msg)
        probe.spin_for(0.3)
        os.killpg(recorder.pid, signal.SIGINT)
    finally:
        os.killpg(recorder.pid, signal.SIGCONT)
    assert recorder.wait(timeout=20) == 0
    stamps = {round(stamp_s(m.msg), 9) for m in open_session(bag).messages({name})}
    assert stamps == {round(0.01 * k, 9) for k in range(300)}, f"{len(stamps)} of 300 commands in the bag"
    log = (graph.log_dir / "recorder.log").read_text()
    assert "queued messages after the stop signal" in log, log


@pytest.mark.parametrize("mode", ["sim", "replay"])
def test_with_record_the_source_holds_its_first_step_for_a_late_recorder(processes, probe, tmp_path: Path,
                                                                           mode: str):
    """record:=true: a recorder that comes up 3 s after the rest of the graph (three lockstep_timeout_s, when
    the sensor source would otherwise have started) still gets the run from its first step."""
    bag = tmp_path / "late"
    joint = probe.subscribe(contract.JOINT_STATES)
    source = {"sim": "sim_bridge", "replay": "bag_player"}[mode]
    extra = {"level": "1", "lockstep": "true"} if mode == "sim" else {"bag": str(REPO / "bags" / "sim_level3_pid")}
    graph = processes.graph(mode, start=False, record="true", record_dir=str(bag), **extra)
    graph.start(["controller", "safety_monitor", source])
    probe.wait_for_nodes(["controller", "safety_monitor", source], timeout_s=60.0, graph=graph)
    # a node outside the graph says "recorder ready" before any recorder exists: the source still waits for the
    # recorder itself to subscribe (the word only counts from a recorder it sees)
    assert probe.call("std_srvs/srv/Trigger", contract.RECORDER_READY_SERVICE).success
    probe.spin_for(3.0)
    first = {from_time_msg(m.header.stamp) for m in joint}
    assert len(first) == 1, f"the {source} left its first step without the recorder"
    graph.start(["recorder"])
    t0 = first.pop()
    name = contract.JOINT_STATES.resolved(NS)

    def recorded() -> list[float]:  # the recorder flushes every flush_period_s (0.5 s) while it runs
        try:
            return sorted(stamp_s(m.msg) for m in open_session(bag).messages({name}))
        except BagError:  # no bag file yet
            return []

    probe.wait_for(lambda: (r := recorded()) and r[-1] >= t0 + 1.0, 120.0, "1 s of sensor time in the bag")
    graph.stop(timeout_s=5.0)
    stamps = recorded()
    assert stamps[0] == t0 and len(stamps) >= 100


def test_with_record_the_bridge_starts_without_a_recorder_that_never_comes(processes, probe, tmp_path: Path):
    """A recorder must never hold the exoskeleton back: after await_recorder_timeout_s the run starts, and the
    bridge's log says why some subscriber may have missed the first samples."""
    params = tmp_path / "params.yaml"
    params.write_text("/**/sim_bridge:\n  ros__parameters:\n    await_recorder_timeout_s: 2.0\n")
    joint = probe.subscribe(contract.JOINT_STATES)
    graph = processes.graph("sim", start=False, record="true", record_dir=str(tmp_path / "never"),
                            params_file=str(params), level="1", lockstep="true")
    graph.start(["controller", "safety_monitor", "sim_bridge"])
    probe.wait_for_nodes(["controller", "safety_monitor", "sim_bridge"], timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: joint and from_time_msg(joint[-1].header.stamp) >= 0.5, 60.0, "0.5 s of sim time")
    log = (graph.log_dir / "sim_bridge.log").read_text()
    assert "starting after" in log and "recorder subscribed: False" in log, log


def test_replaying_a_bag_reproduces_its_torque_commands(ros_domain: int, tmp_path: Path):
    """`exo replay` (bag player in lockstep, controller, safety monitor, recorder) on the level-3 sample bag:
    the same PID and safety monitor give the recorded torque_command stream bit for bit."""
    out = tmp_path / "replayed"
    proc = exo_cli("replay", str(REPO / "bags" / "sim_level3_pid"), "--out", str(out), "--max-diff", "1e-9",
                   "--domain-id", str(ros_domain))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "comparison.json").read_text())
    assert result["identical"] and result["max_abs_diff_nm"] == 0.0, result
    assert result["matched"] >= 560 and result["only_recorded"] == 0
    replay = open_session(out)
    assert replay.metadata.mode == "replay" and replay.metadata.source_bag.endswith("sim_level3_pid")
    a = analyze_session(replay)
    # every step's sample is in the new bag: the player held its first step until the recorder had matched
    assert a.latency is not None and a.latency.count >= 560
