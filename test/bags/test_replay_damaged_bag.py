"""`exo replay` on a truncated bag: refused with the count of commands it cannot compare, or compared
in part with a WARNING under --allow-partial.

Before, `exo replay BAG --max-diff 1e-9` on a copy of bags/sim_level3_pid cut in the middle of its
.mcap exited 0 ("identical") having compared 323 of its commands, without a word about the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exo.bags.reader import open_session
from exo.bags.replay import recorded_completeness

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "bags" / "sim_level3_pid"


@pytest.fixture
def truncated_bag(tmp_path: Path) -> Path:
    """A copy of the level-3 sample session whose .mcap is cut at half its size (metadata.yaml kept)."""
    bag = tmp_path / "truncated"
    shutil.copytree(SAMPLE, bag)
    [mcap] = bag.rglob("*.mcap")
    with open(mcap, "r+b") as f:
        f.truncate(mcap.stat().st_size // 2)
    return bag


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exo.cli.main", "replay", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_completeness_counts_what_a_truncated_bag_lost(truncated_bag: Path):
    full = recorded_completeness(open_session(SAMPLE))
    assert not full.damaged and full.readable == full.listed == 572 and full.problems == []
    cut = recorded_completeness(open_session(truncated_bag))
    assert cut.damaged and cut.listed == 572 and cut.readable == 323 and cut.unreadable == 249
    assert len(cut.problems) == 1 and "truncated or corrupt" in cut.problems[0]
    assert "249 of the 572 recorded /exo/torque_command messages" in cut.describe()
    [mcap] = truncated_bag.rglob("*.mcap")
    bare = recorded_completeness(open_session(mcap))  # no metadata.yaml: the loss is known, not its size
    assert bare.damaged and bare.listed is None and bare.unreadable is None
    assert "an unknown number of recorded /exo/torque_command messages" in bare.describe()


@pytest.mark.ros
def test_replay_refuses_a_truncated_bag_naming_what_it_cannot_compare(ros_domain: int, truncated_bag: Path,
                                                                      tmp_path: Path):
    out = tmp_path / "replayed"
    proc = _replay(str(truncated_bag), "--out", str(out), "--max-diff", "1e-9", "--domain-id", str(ros_domain))
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 2, text + proc.stderr
    assert ("the recorded bag is truncated or damaged: 249 of the 572 recorded /exo/torque_command messages its "
            "metadata.yaml lists cannot be read, so they cannot be compared (only 323 can)") in text
    assert "the file is truncated or corrupt" in text and "--allow-partial" in text
    assert not out.exists()  # refused before any node started


@pytest.mark.ros
def test_replay_with_allow_partial_compares_the_readable_part_with_a_warning(ros_domain: int, truncated_bag: Path,
                                                                             tmp_path: Path):
    out = tmp_path / "replayed"
    proc = _replay(str(truncated_bag), "--out", str(out), "--max-diff", "1e-9", "--allow-partial",
                   "--domain-id", str(ros_domain))
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0, text + proc.stderr
    result = json.loads((out / "comparison.json").read_text())
    assert result["identical"] and result["partial"] and result["max_abs_diff_nm"] == 0.0, result
    assert result["recorded_listed"] == 572 and result["recorded_unreadable"] == 249
    assert 300 <= result["matched"] <= 323 and result["bag_problems"], result
    assert (f"WARNING: PARTIAL COMPARISON: {result['matched']} commands compared of 572 recorded; 249 recorded "
            "commands could not be read from the damaged bag and were not compared") in text
