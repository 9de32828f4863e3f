"""`exo replay --user ID --session N`: a session of the encrypted user store, replayed by the real graph.

Real node processes over DDS in the test's own domain (see test/conftest.py). The replay of a user's session
is that user's data too: without --out it is recorded into the store as a new session (kind "replay"), its
comparison stored as that session's artefact, and no plaintext is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exo.users import UserStore, create_key_file

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]


def test_replaying_a_store_session_records_the_replay_into_the_store(ros_domain: int, tmp_path: Path):
    key_file = create_key_file(tmp_path / "store.key")
    store = UserStore.open(tmp_path / "store", key_file=key_file, create=True)
    store.create_user("p07")
    with store.recording("p07", "sim", {"twin": "reduced", "level": "3", "controller": "pid"}) as staging:
        shutil.copytree(REPO / "bags" / "sim_level3_pid", staging, dirs_exist_ok=True)

    env = {**os.environ, "COLUMNS": "200", "EXO_STORE": str(tmp_path / "store"), "EXO_KEY_FILE": str(key_file)}
    proc = subprocess.run([sys.executable, "-m", "exo.cli.main", "replay", "--user", "p07", "--session", "1",
                           "--max-diff", "1e-9", "--domain-id", str(ros_domain)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())
    assert "replay stored as session 2 of user p07" in text, text

    sessions = store.sessions("p07")
    assert [(s.number, s.kind) for s in sessions] == [(1, "sim"), (2, "replay")]
    assert sessions[1].metadata["source_session"] == 1 and sessions[1].files >= 2 and not sessions[1].recovered
    comparison = store.get_json("p07", 2, "comparison")
    assert comparison["identical"] and comparison["max_abs_diff_nm"] == 0.0 and comparison["matched"] >= 560
    # nothing in plaintext: no staging or decrypted folder left, nothing written in the working folder
    assert not any((tmp_path / "store" / ".staging").iterdir()) and not any((tmp_path / "store" / ".tmp").iterdir())
    assert not (tmp_path / "runs").exists()
    with store.open_session("p07", 2) as bag:
        from exo.bags.reader import open_session

        assert open_session(bag).metadata.mode == "replay"
