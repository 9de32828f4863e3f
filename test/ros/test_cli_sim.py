"""`exo sim` as a user runs it: the default SAC policy and real-time pacing, through the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

VENV_BIN = Path(sys.executable).parent


def _exo_sim(domain: int, tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(VENV_BIN / "exo"), "sim", "--domain-id", str(domain), "--log-dir",
         str(tmp_path / "logs"), "--startup-timeout", "40", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


def test_exo_sim_with_sac_and_no_policy_runs_the_best_committed_policy(ros_domain: int, tmp_path: Path):
    code, text = _exo_sim(ros_domain, tmp_path, "--controller", "sac", "--lockstep", "--duration", "2")
    assert code == 0, text
    assert "command sources │ sac:" in text, text
    log = (tmp_path / "logs" / "controller.log").read_text()
    assert "sac-residual-limited-reduced" in log, log


def test_exo_sim_realtime_runs_at_the_control_rate(ros_domain: int, tmp_path: Path):
    # (the duration is simulated time since the bridge started: in real time it includes the graph's start-up)
    code, text = _exo_sim(ros_domain, tmp_path, "--controller", "zero", "--realtime", "--duration", "8")
    assert code == 0, text
    found = re.search(r"real-time factor ([0-9.]+)\).*command sources │ [^│]*zero: (\d+)", text)
    assert found, text
    assert 0.8 <= float(found[1]) <= 1.2 and int(found[2]) >= 300, text  # paced by the wall clock
