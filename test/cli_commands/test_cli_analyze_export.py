"""`exo analyze` and `exo export` of the committed sample bags, exactly as the README's table shows them.

No ROS processes: both commands only read the bags' MCAP files.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from exo import contract
from exo.bags.reader import open_session, stamp_s

REPO = Path(__file__).resolve().parents[2]
BAGS = {0: REPO / "bags" / "sim_level0_pid", 3: REPO / "bags" / "sim_level3_pid"}
NS = contract.DEFAULT_NAMESPACE
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _topic_counts(bag: Path) -> Counter[str]:
    return Counter(m.topic for m in open_session(bag).messages())


def test_exo_analyze_of_the_two_sample_bags_writes_metrics_csv_png_and_report(exo, tmp_path: Path):
    out = tmp_path / "analysis"
    result = exo("analyze", str(BAGS[0]), str(BAGS[3]), "--out", str(out))
    assert result.code == 0, result
    counts = {level: sum(_topic_counts(bag).values()) for level, bag in BAGS.items()}
    for level, bag in BAGS.items():
        assert f"{bag.name}: {counts[level]} messages, 1 trial(s) (1 scored)" in result.text, result
    assert re.search(r"latency p95 [0-9.]+ ms", result.text), result

    doc = json.loads((out / "metrics.json").read_text())
    sessions = {s["name"]: s for s in doc["sessions"]}
    assert list(sessions) == [BAGS[0].name, BAGS[3].name]  # in the order given: the first is the baseline
    for level, bag in BAGS.items():
        s = sessions[bag.name]
        assert s["problems"] == [] and s["message_count"] == counts[level]
        assert s["metadata"]["level"] == str(level) and s["metadata"]["controller"] == "pid"
        # one complete trial per bag, scored like the evaluator (512 control steps + the initial sample)
        assert len(s["trials"]) == 1
        trial = s["trials"][0]
        assert trial["complete"] and trial["level"] == level and trial["samples"] == 513 and not trial["error"]
        assert 0.0 < trial["rms_torque_nm"] <= trial["peak_torque_nm"] <= 100.0  # the actuator's limit
        assert math.isfinite(trial["final_error_deg"]) and trial["final_error_deg"] >= 0.0
        assert s["summary"]["trials"] == s["summary"]["scored_trials"] == 1
        # every command came from the PID, and the loop latency of each one is measured
        assert set(s["command_sources"]) <= {"pid", "safe_stop"} and s["command_sources"]["pid"] >= 500
        lat = s["latency"]
        assert lat["count"] >= 500 and lat["deadline_ms"] == pytest.approx(10.0)
        assert 0.0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"] < 1000.0
        assert 0 <= lat["misses"] <= lat["count"] and sum(lat["hist_counts"]) <= lat["count"]
        assert s["summary"]["latency_p95_ms"] == pytest.approx(lat["p95_ms"])
        # sensor rates: joint_states at the 100 Hz control rate in sim time, no gaps
        topics = {t["topic"]: t for t in s["topics"]}
        joint = topics[contract.JOINT_STATES.resolved(NS)]
        assert joint["stamp_rate_hz"] == pytest.approx(100.0, rel=0.01) and joint["gaps"] == 0
        # the monitor's first state is its start-up safe stop, before the first sensor sample
        assert s["safety_events"][0]["state"] == "SAFE_STOP"
    # a spastic (MAS 3) knee needs more torque and ends farther from the target than MAS 0 under the same PID
    t0, t3 = sessions[BAGS[0].name]["trials"][0], sessions[BAGS[3].name]["trials"][0]
    assert t3["rms_torque_nm"] > t0["rms_torque_nm"] and t3["final_error_deg"] > t0["final_error_deg"]

    # comparison vs the first bag, in metrics.json and comparison.csv
    comparison = {row["session"]: row for row in doc["comparison"]}
    assert comparison[BAGS[0].name]["rms_torque_nm_change_pct"] == 0.0
    expected = 100.0 * (t3["rms_torque_nm"] - t0["rms_torque_nm"]) / t0["rms_torque_nm"]
    assert comparison[BAGS[3].name]["rms_torque_nm_change_pct"] == pytest.approx(expected)
    csv_comparison = {r["session"]: r for r in _rows(out / "comparison.csv")}
    assert float(csv_comparison[BAGS[3].name]["rms_torque_nm_change_pct"]) == pytest.approx(expected)

    # CSV tables agree with metrics.json
    trials = _rows(out / "trials.csv")
    assert [(r["session"], int(r["level"])) for r in trials] == [(BAGS[0].name, 0), (BAGS[3].name, 3)]
    assert float(trials[1]["peak_torque_nm"]) == pytest.approx(t3["peak_torque_nm"])
    events = _rows(out / "safety_events.csv")
    assert len(events) == sum(len(s["safety_events"]) for s in sessions.values())
    assert {r["session"] for r in _rows(out / "latency.csv")} == set(sessions)
    assert {r["topic"] for r in _rows(out / "topics.csv")} >= {contract.JOINT_STATES.resolved(NS),
                                                                 contract.TORQUE_COMMAND.resolved(NS)}

    # figures: a time series and a latency histogram per bag, real PNGs
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.name for f in figures] == [f"00_{BAGS[0].name}_latency.png", f"00_{BAGS[0].name}_timeseries.png",
                                         f"01_{BAGS[3].name}_latency.png", f"01_{BAGS[3].name}_timeseries.png"]
    for f in figures:
        data = f.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, f

    # report.html: self-contained (figures embedded, nothing fetched), names both bags
    report = (out / "report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html") or report.lstrip().lower().startswith("<html")
    assert report.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", report)
    assert BAGS[0].name in report and BAGS[3].name in report


def test_exo_export_of_a_sample_bag_to_csv_writes_one_table_per_topic(exo, tmp_path: Path):
    bag = BAGS[0]
    out = tmp_path / "csv"
    result = exo("export", str(bag), "--format", "csv", "--out", str(out))
    assert result.code == 0, result
    counts = _topic_counts(bag)
    assert f"{len(counts)} table(s) in {out}" in result.text, result
    files = {p.stem: p for p in out.glob("*.csv")}
    assert set(files) == {t.strip("/").replace("/", "__") for t in counts}
    for topic, n in counts.items():
        assert len(_rows(files[topic.strip("/").replace("/", "__")])) == n, topic
    # the torque_command table holds the bag's commands, stamps and sources, in order
    name = contract.TORQUE_COMMAND.resolved(NS)
    recorded = [m.msg for m in open_session(bag).messages({name})]
    rows = _rows(files[name.strip("/").replace("/", "__")])
    assert [float(r["torque"]) for r in rows] == [m.torque for m in recorded]
    assert [float(r["stamp_s"]) for r in rows] == pytest.approx([stamp_s(m) for m in recorded])
    assert {r["source"] for r in rows} == {m.source for m in recorded}
    # joint_states: the 1-element arrays are expanded into columns
    joint = _rows(files[contract.JOINT_STATES.resolved(NS).strip("/").replace("/", "__")])
    assert {"position.0", "velocity.0", "effort.0"} <= set(joint[0])
    assert all(-0.5 < float(r["position.0"]) < 2.5 for r in joint)  # rad, within the knee's range


def test_exo_export_of_a_sample_bag_to_parquet(exo, tmp_path: Path):
    pq = pytest.importorskip("pyarrow.parquet")
    bag = BAGS[3]
    out = tmp_path / "parquet"
    result = exo("export", str(bag), "--format", "parquet", "--out", str(out))
    assert result.code == 0, result
    counts = _topic_counts(bag)
    tables = {p.stem: pq.read_table(p) for p in out.glob("*.parquet")}
    assert {stem: t.num_rows for stem, t in tables.items()} == {
        t.strip("/").replace("/", "__"): n for t, n in counts.items()}
    name = contract.TORQUE_COMMAND.resolved(NS)
    torques = tables[name.strip("/").replace("/", "__")].column("torque").to_pylist()
    assert torques == [m.msg.torque for m in open_session(bag).messages({name})]


def test_exo_export_to_mcap_writes_a_complete_copy_with_every_message(exo, tmp_path: Path):
    bag = BAGS[0]
    out = tmp_path / "copy"
    result = exo("export", str(bag), "--format", "mcap", "--out", str(out))
    assert result.code == 0, result
    assert f"{out}: a complete session" in result.text, result
    original, copy = open_session(bag), open_session(out)
    a, b = list(original.messages()), list(copy.messages())
    assert len(b) == len(a) > 8000
    assert Counter(m.topic for m in b) == Counter(m.topic for m in a)
    assert [(m.topic, m.log_time_ns) for m in b] == [(m.topic, m.log_time_ns) for m in a]
    name = contract.TORQUE_COMMAND.resolved(NS)
    assert [m.msg.torque for m in b if m.topic == name] == [m.msg.torque for m in a if m.topic == name]
    # a complete bag: summary and metadata.yaml written, no problem reading it, the session metadata kept
    assert copy.problems == [] and not copy.truncated_files()
    assert list(out.rglob("metadata.yaml")) and list(out.rglob("*.mcap"))
    for key in ("user_id", "controller", "twin", "level", "subject_seed"):
        assert getattr(copy.metadata, key) == getattr(original.metadata, key), key
