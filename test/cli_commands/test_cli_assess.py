"""`exo assess --user ID`: the assessment protocol through the sim graph, recorded into the user's encrypted records.

A user with a therapist's torque cap lower than the default: every command of the run stays within that cap (the
safety monitor and the sim bridge's guard both take it from the profile), the session is stored encrypted (no
MCAP or JSON plaintext anywhere in the store afterwards) and reads back through the store; ``exo identify --user``
then fits the user's twin to it and keeps it in the profile, encrypted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exo import contract
from exo.bags.reader import open_session
from exo.users import UserStore

pytestmark = pytest.mark.ros

CAP_NM = 40.0


def test_exo_assess_records_an_encrypted_assessment_within_the_users_cap(exo, ros_domain: int, tmp_path: Path):
    store, key = tmp_path / "store", tmp_path / "store.key"
    common = ("--store", str(store), "--key-file", str(key))
    assert exo("user", "init-key", "--key-file", str(key)).code == 0
    # a user whose knee straightens to 0.1 rad only: the protocol stops a soft zone (0.15 rad) before it
    created = exo("user", "create", "p-assess", "--mas", "2", "--torque-cap", str(CAP_NM), "--joint-min-rad", "0.1",
                  *common)
    assert created.code == 0, created

    result = exo("assess", "--user", "p-assess", "--level", "2", "--subject-seed", "4", "--domain-id",
                 str(ros_domain), "--log-dir", str(tmp_path / "logs"), "--json", *common, timeout=300)
    assert result.code == 0, result
    summary = json.loads(result.stdout)
    assert summary["complete"] and len(summary["stretches"]) == 18
    assert summary["peak_motor_torque_nm"] <= CAP_NM + 1e-6
    assert "session 1 (assessment, encrypted)" in result.text

    # nothing in the store is plaintext: no MCAP magic, no summary or profile JSON, no bag metadata, no topic
    plaintext = (b"\x89MCAP0\r\n", b'"stretches"', b'"user_id"', b"rosbag2_bagfile_information",
                 b"torque_command", b"p-assess")
    for path in store.rglob("*"):
        if path.is_file() and path.name != "store.json":
            data = path.read_bytes()
            assert not [p for p in plaintext if p in data], path

    opened = UserStore.open(store, key_file=key)
    [session] = opened.sessions("p-assess")
    assert session.kind == "assessment" and session.metadata["level"] == 2
    assert opened.get_json("p-assess", 1, "assessment")["stretches"] == summary["stretches"]
    protocol = opened.get_json("p-assess", 1, "protocol")
    assert protocol["extended_angle_rad"] == pytest.approx(0.25)
    with opened.open_session("p-assess", 1) as bag:
        name = contract.TORQUE_COMMAND.resolved("/exo")
        commands = open_session(bag).read_all({name})[name]
        torques = np.array([m.msg.torque for m in commands])
        sources = {m.msg.source for m in commands}
    assert len(torques) >= 3500 and np.abs(torques).max() <= CAP_NM + 1e-9, (len(torques), np.abs(torques).max())
    assert "assessment" in sources
    assert not bag.exists()  # the decrypted copy is gone

    # the user's own twin, identified from that session on the full twin and kept in the profile
    identified = exo("identify", "--user", "p-assess", "--json", *common, timeout=300)
    assert identified.code == 0, identified
    result = json.loads(identified.stdout)
    assert result["mas_level"] == 2 and result["recording"]["source"] == "p-assess/session-1", result
    assert result["recording"]["protocol"] == protocol  # the session's own protocol, not the default one
    twin = UserStore.open(store, key_file=key).profile("p-assess").identified_twin
    assert twin["mas_level"] == 2 and twin["session"] == 1 and twin["params"] == result["params"]
    for path in store.rglob("*"):
        if path.is_file() and path.name != "store.json":
            assert b"a_flex_deg" not in path.read_bytes(), path


def test_exo_real_assess_runs_the_protocol_on_the_emulated_rig_into_the_records(exo, ros_domain: int,
                                                                                 tmp_path: Path):
    """The hardware path: the same protocol through the drivers (emulated AK motor, IMUs), in real time."""
    store, key = tmp_path / "store", tmp_path / "store.key"
    common = ("--store", str(store), "--key-file", str(key))
    assert exo("user", "init-key", "--key-file", str(key)).code == 0
    assert exo("user", "create", "p-rig", "--torque-cap", str(CAP_NM), *common).code == 0
    result = exo("real", "--emulate", "--user", "p-rig", "--assess", "--relaxed-timing", "--level", "1",
                 "--domain-id", str(ros_domain), "--log-dir", str(tmp_path / "logs"),
                 "--timing-report", str(tmp_path / "timing.json"), *common, timeout=300)
    assert result.code == 0, result
    assert "session 1 (assessment, encrypted)" in result.text, result
    timing = json.loads((tmp_path / "timing.json").read_text())
    sources = timing["command_sources"]
    assert sources.get("assessment", 0) >= 0.9 * sum(sources.values()), sources
    opened = UserStore.open(store, key_file=key)
    [session] = opened.sessions("p-rig")
    summary = opened.get_json("p-rig", 1, "assessment")
    assert session.kind == "assessment" and len(summary["stretches"]) == 18
    # the motor's own torque reading (12-bit MIT frames) may round a little past the commanded cap
    assert summary["peak_motor_torque_nm"] <= 1.02 * CAP_NM
    with opened.open_session("p-rig", 1) as bag:
        name = contract.TORQUE_COMMAND.resolved("/exo")
        torques = np.array([m.msg.torque for m in open_session(bag).read_all({name})[name]])
    assert len(torques) >= 3500 and np.abs(torques).max() <= CAP_NM + 1e-9
