"""Bags as files: writing, independent readers, splits, damage, export, analysis vs the evaluator.

No node processes here: messages are real ROS messages serialised by rclpy, the
sample bags in bags/ were recorded from the running sim graph (`exo sim --record`).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from exo import contract
from exo.bags.analysis import CONTROL_PERIOD_S, analyze_session
from exo.bags.reader import BagError, open_session, stamp_s
from exo.bags.replay import RecordedTorques, compare_commands, trial_commands
from exo.bags.writer import BagWriter, SessionMetadata
from exo.metrics import METRIC_NAMES
from exo.ros import convert
from exo.ros.types import interface_class

REPO = Path(__file__).resolve().parents[2]
SAMPLES = {0: REPO / "bags" / "sim_level0_pid", 3: REPO / "bags" / "sim_level3_pid"}
NS = contract.DEFAULT_NAMESPACE


def sample_message(topic: contract.Topic, k: int):
    """A filled message of the topic's type for step k (every contract type)."""
    t = k * CONTROL_PERIOD_S
    msg = interface_class(topic.msg_type)()
    if hasattr(msg, "header"):
        msg.header = convert.header(t, "frame")
    name = topic.type_name
    if name == "JointState":
        msg.name, msg.position, msg.velocity, msg.effort = [contract.KNEE_JOINT], [1.5 - t], [-1.0], [float(k)]
    elif name == "EmgPacket":
        msg.sample_rate_hz, msg.channel_names, msg.num_samples = 1000.0, ["vl", "st"], 20
        msg.samples = [float(i) * 1e-6 for i in range(40)]
    elif name == "FootPressure":
        msg.cell_names, msg.pressure_pa, msg.total_force_n = ["heel", "toe"], [1e4, float("nan")], 300.0
    elif name == "IntentEstimate":
        msg.class_names, msg.probabilities, msg.predicted_class, msg.model_id = ["hold", "extend"], [0.2, 0.8], 1, "m1"
    elif name == "TorqueCommand":
        msg.joint, msg.torque, msg.source, msg.seq = contract.KNEE_JOINT, -float(k) / 10, "pid", k
    elif name == "Float64MultiArray":
        msg.data = [float(k)]
    elif name == "SafetyStatus":
        msg.state, msg.state_name, msg.active_limits, msg.reason = 1, "LIMITING", ["torque_cap"], "limited"
    elif name == "DiagnosticArray":
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        msg.status = [DiagnosticStatus(name="exo", message="ok", values=[KeyValue(key="k", value="v")])]
    elif name == "KneeTruth":
        msg.human_knee_angle, msg.target_knee_angle, msg.subject_seed = 1.5 - t, 0.2, 2**62
        msg.muscle_names, msg.muscle_activations = ["vasti"], [0.5]
    elif name == "Clock":
        msg.clock = convert.to_time_msg(t)
    elif name == "WrenchStamped":
        msg.wrench.torque.y = float(k)
    elif name == "Imu":
        msg.orientation.w = 1.0
    return msg


def write_all_types(path: Path, steps: int = 50, **kwargs) -> int:
    """A session with ``steps`` messages of every contract topic; returns the message count."""
    n = 0
    with BagWriter(path, SessionMetadata(user_id="u7", mode="sim", controller="pid"), **kwargs) as w:
        for k in range(steps):
            for topic in contract.TOPICS.values():
                w.write(topic.resolved(NS), topic.msg_type, time.time_ns(), serialize_message(sample_message(topic, k)))
                n += 1
    return n


def test_every_message_decodes_with_mcap_and_rosbags_from_the_embedded_definitions(tmp_path: Path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    n = write_all_types(tmp_path / "s")
    bag = tmp_path / "s" / "s_0"
    # the mcap tools: schemas embedded as ros2msg, every message decodes (mcap_ros2 knows no exo type)
    decoded, types = 0, set()
    with open(bag / "s_0.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, _channel, _, msg in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg"
            types.add(schema.name)
            decoded += 1
            if schema.name == "exo_msgs/msg/KneeTruth":
                assert msg.subject_seed == 2**62 and list(msg.muscle_names) == ["vasti"]
        qos = {c.topic: c.metadata.get("offered_qos_profiles", "") for c in reader.get_summary().channels.values()}
    assert decoded == n
    assert types == contract.message_types()
    assert "best_effort" in qos[contract.JOINT_STATES.resolved(NS)]
    assert "transient_local" in qos[contract.SAFETY_STATUS.resolved(NS)]
    # rosbags with an empty typestore: only the bag's definitions
    with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:
        count = sum(1 for c, _, raw in reader.messages() if reader.deserialize(raw, c.msgtype) is not None)
    assert count == n


def test_sample_bags_decode_completely_with_an_independent_reader():
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    for path in SAMPLES.values():
        for mcap in sorted(path.rglob("*.mcap")):
            with open(mcap, "rb") as f:
                reader = make_reader(f, decoder_factories=[DecoderFactory()])
                stats = reader.get_summary().statistics
                decoded = sum(1 for _ in reader.iter_decoded_messages())
            assert decoded == stats.message_count > 3000, mcap


def test_session_metadata_and_splits(tmp_path: Path):
    n = write_all_types(tmp_path / "s", steps=60, split_size_bytes=30_000)
    bags = sorted(p for p in (tmp_path / "s").iterdir() if p.is_dir())
    assert len(bags) >= 3
    assert all((b / "metadata.yaml").is_file() for b in bags)
    session = open_session(tmp_path / "s")
    msgs = list(session.messages())
    assert len(msgs) == n and not session.problems
    assert session.metadata.user_id == "u7" and session.metadata.controller == "pid"
    joint = [stamp_s(m.msg) for m in msgs if m.topic == contract.JOINT_STATES.resolved(NS)]
    assert joint == sorted(joint) and len(joint) == 60
    # each split is a bag of its own (metadata custom_data carries the session)
    single = open_session(bags[1])
    assert single.metadata.user_id == "u7" and len(list(single.messages())) > 0


def test_a_truncated_bag_is_read_up_to_the_cut_and_analysed(tmp_path: Path):
    src = next(SAMPLES[3].rglob("*.mcap"))
    cut = tmp_path / "cut.mcap"
    data = src.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    full = sum(1 for _ in open_session(src).messages())
    session = open_session(cut)
    n = sum(1 for _ in session.messages())
    assert 0 < n < full
    assert any("truncated" in p for p in session.problems), session.problems
    assert session.truncated_files() == [cut]
    a = analyze_session(open_session(cut))
    assert a.message_count == n and a.problems
    assert a.trials and not a.trials[0].complete  # a partial trial is reported, not scored as complete
    # the repair: a complete copy of everything readable (summary, footer, metadata.yaml)
    from mcap.reader import make_reader

    from exo.bags.export import export_session

    export_session(open_session(cut), tmp_path / "repaired", "mcap")
    repaired = next((tmp_path / "repaired").rglob("*.mcap"))
    assert (repaired.parent / "metadata.yaml").is_file()
    with open(repaired, "rb") as f:
        assert make_reader(f).get_summary().statistics.message_count == n
    again = open_session(tmp_path / "repaired")
    assert sum(1 for _ in again.messages()) == n and not again.problems


def test_a_corrupt_chunk_is_skipped_and_the_rest_is_read(tmp_path: Path):
    path = tmp_path / "s"
    with BagWriter(path, flush_period_s=0.0) as w:
        for k in range(300):
            msg = sample_message(contract.JOINT_STATES, k)
            w.write(contract.JOINT_STATES.resolved(NS), contract.JOINT_STATES.msg_type, time.time_ns(),
                    serialize_message(msg))
            if k % 100 == 99:
                w.flush()  # three chunks
    mcap = path / "s_0" / "s_0.mcap"
    from mcap.reader import make_reader

    with open(mcap, "rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    assert len(chunks) == 4  # the definitions (written at open), then three chunks of 100 messages
    # overwrite the start of the first message chunk's zstd frame (after opcode, length, times, sizes, crc, "zstd")
    start = chunks[1].chunk_start_offset + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len("zstd") + 8
    data = bytearray(mcap.read_bytes())
    data[start : start + 16] = bytes(16)
    mcap.write_bytes(bytes(data))
    session = open_session(path)
    stamps = [round(stamp_s(m.msg), 2) for m in session.messages()]
    assert any("chunk" in p and "skipped" in p for p in session.problems), session.problems
    assert len(stamps) == 200
    assert stamps == [round(k * 0.01, 2) for k in range(100, 300)]  # every later chunk is read


def test_paths_that_are_not_bags_give_clear_errors(tmp_path: Path):
    with pytest.raises(BagError, match="no such bag"):
        open_session(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="holds no .mcap file"):
        open_session(tmp_path / "empty")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all")
    session = open_session(junk)
    assert list(session.messages()) == []
    assert session.problems and "junk.mcap" in session.problems[0]
    with pytest.raises(FileExistsError, match="not empty"):
        BagWriter(SAMPLES[0])
    with BagWriter(tmp_path / "w") as w, pytest.raises(KeyError, match="/nope .* is not declared"):
        w.write("/nope", "std_msgs/msg/String", 0, b"")


@pytest.mark.parametrize("level", [0, 3])
def test_bag_analysis_agrees_with_the_evaluator_on_the_recorded_trial(level: int):
    """The sample bag's trial, scored by the analysis, against the evaluator (exo.evaluate.run_trial) re-running
    the same subject with the torques the graph commanded (after the safety monitor): within 1 %."""
    from exo.evaluate import run_trial

    session = open_session(SAMPLES[level])
    a = analyze_session(session)
    trial = a.trials[0]
    assert trial.complete and trial.metrics is not None and trial.level == level
    assert int(session.metadata.subject_seed) == trial.subject_seed
    msgs = session.read_all()
    steps = trial.samples - 1
    torques = trial_commands(msgs[contract.SIM_TRUTH.resolved(NS)], msgs[contract.TORQUE_COMMAND.resolved(NS)],
                             trial.start_s, steps, CONTROL_PERIOD_S)
    ref = run_trial(RecordedTorques(torques), "reduced", level, trial=0, seed=0, max_steps=steps)
    assert ref.steps == steps == 512
    for name in METRIC_NAMES:
        got, want = getattr(trial.metrics, name), getattr(ref.metrics, name)
        assert math.isclose(got, want, rel_tol=0.01, abs_tol=1e-6), f"{name}: bag {got} vs evaluator {want}"
    got, want = trial.range_events, ref.safety
    assert got.unsafe_event == want.unsafe_event
    assert math.isclose(got.out_of_range_s, want.out_of_range_s, abs_tol=1e-9)
    assert math.isclose(got.max_range_excess_deg, want.max_range_excess_deg, rel_tol=0.01, abs_tol=1e-6)


def test_export_csv_and_parquet(tmp_path: Path):
    import csv

    import pyarrow.parquet as pq

    from exo.bags.export import export_session

    session = open_session(SAMPLES[0])
    n_joint = sum(1 for m in session.messages({contract.JOINT_STATES.resolved(NS)}))
    files = export_session(session, tmp_path / "csv", "csv")
    joint_csv = tmp_path / "csv" / "exo__joint_states.csv"
    assert joint_csv in files
    rows = list(csv.DictReader(joint_csv.open()))
    assert len(rows) == n_joint and {"stamp_s", "position.0", "effort.0", "log_time_ns"} <= set(rows[0])
    export_session(session, tmp_path / "pq", "parquet")
    table = pq.read_table(tmp_path / "pq" / "exo__joint_states.parquet")
    assert table.num_rows == n_joint
    assert np.allclose(table.column("position.0").to_numpy(), [float(r["position.0"]) for r in rows])
    with pytest.raises(ValueError, match="unknown export format"):
        export_session(session, tmp_path / "x", "xlsx")


def test_report_of_two_sessions(tmp_path: Path):
    from exo.bags.report import write_report

    analyses = [analyze_session(open_session(p)) for p in SAMPLES.values()]
    paths = write_report(analyses, tmp_path)
    doc = json.loads(paths["metrics"].read_text())
    assert [s["name"] for s in doc["sessions"]] == ["sim_level0_pid", "sim_level3_pid"]
    assert len(doc["comparison"]) == 2 and doc["comparison"][0]["peak_torque_nm_change_pct"] == 0.0
    level3 = doc["sessions"][1]
    assert level3["latency"]["count"] > 500 and level3["safety_events"]
    assert {t["topic"] for t in level3["topics"]} >= {contract.JOINT_STATES.resolved(NS)}
    html = paths["report"].read_text()
    assert html.count("data:image/png;base64,") >= 4 and "http" not in html
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4


def test_command_comparison_finds_the_first_divergence(tmp_path: Path):
    session = open_session(SAMPLES[3])
    commands = session.read_all({contract.TORQUE_COMMAND.resolved(NS)})[contract.TORQUE_COMMAND.resolved(NS)]
    same = compare_commands(commands, commands)
    assert same.identical and same.max_abs_diff_nm == 0.0 and same.matched > 500
    changed = [m if i != 100 else type(m)(m.topic, m.msgtype, m.log_time_ns, type(m.msg)(
        header=m.msg.header, joint=m.msg.joint, torque=m.msg.torque + 0.5, source=m.msg.source, seq=m.msg.seq))
        for i, m in enumerate(commands)]
    diff = compare_commands(commands, changed)
    assert not diff.identical and math.isclose(diff.max_abs_diff_nm, 0.5)
    assert math.isclose(diff.first_divergence_s, stamp_s(commands[100].msg))


def test_copy_of_a_session_reads_like_the_original(tmp_path: Path):
    shutil.copytree(SAMPLES[0], tmp_path / "copy")
    a, b = open_session(SAMPLES[0]), open_session(tmp_path / "copy")
    assert sum(1 for _ in a.messages()) == sum(1 for _ in b.messages())
    assert a.metadata == b.metadata


def test_interventions_are_the_monitors_own_steps_while_the_controller_runs(tmp_path: Path):
    """Start-up and shutdown safe stops are not counted, a fallback or an e-stop is, and the monitor's
    zero-torque last words at shutdown (same stamp as the last step, which the controller decided) are not."""
    from exo.bags.analysis import intervention_steps
    from exo_msgs.msg import TorqueCommand

    def command(k: int, source: str) -> bytes:
        msg = TorqueCommand(joint=contract.KNEE_JOINT, torque=0.0 if source == "safe_stop" else 5.0, source=source,
                            seq=k)
        msg.header = convert.header(k * CONTROL_PERIOD_S, contract.KNEE_JOINT)
        return serialize_message(msg)

    def count(decisions: dict[int, str], last_words: bool, requested=range(1, 10)) -> int:
        """A session of steps 0..: the controller requests on ``requested``; the monitor decides as given."""
        path = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
        clock = time.time_ns()
        with BagWriter(path, SessionMetadata(user_id="u7", mode="sim", controller="pid")) as w:
            for k, source in sorted(decisions.items()):
                clock += 1000
                if k in requested:
                    w.write(contract.TORQUE_REQUEST.resolved(NS), contract.TORQUE_REQUEST.msg_type, clock,
                            command(k, "pid"))
                w.write(contract.TORQUE_COMMAND.resolved(NS), contract.TORQUE_COMMAND.msg_type, clock + 10,
                        command(k, source))
            if last_words:
                w.write(contract.TORQUE_COMMAND.resolved(NS), contract.TORQUE_COMMAND.msg_type, clock + 20,
                        command(max(decisions), "safe_stop"))
        return intervention_steps(open_session(path))

    clean = {0: "safe_stop", **{k: "pid" for k in range(1, 10)}, 10: "safe_stop"}  # start-up, PID, shutdown
    assert count(clean, last_words=False) == 0
    assert count({k: v for k, v in clean.items() if k < 10}, last_words=True) == 0  # last words at step 9
    assert count({**clean, 4: "fallback_pid", 5: "fallback_pid"}, last_words=True) == 2
    assert count({**clean, 7: "estop", 8: "estop"}, last_words=False) == 2
    assert count({k: "pid" for k in range(10)}, last_words=False, requested=()) == 0  # no controller: nothing
