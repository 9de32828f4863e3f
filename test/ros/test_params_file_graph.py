"""`exo sim --params-file`: a user file's bad value stops the graph with the file and key named.

Before, a string for the safety monitor's float ``user_torque_cap_nm`` in the user file was
dropped by rcl (config/safety.yaml's 70.0 won, see exo.ros.params_file) and the run exited 0;
a file with a YAML syntax error ended the nodes with rcl's traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

VENV_BIN = Path(sys.executable).parent


def _exo_sim(params: Path, domain: int, tmp_path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [str(VENV_BIN / "exo"), "sim", "--duration", "1", "--lockstep", "--params-file", str(params),
         "--domain-id", str(domain), "--log-dir", str(tmp_path / "logs"), "--startup-timeout", "25"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


def test_a_wrongly_typed_value_in_the_user_params_file_stops_exo_sim(ros_domain: int, tmp_path: Path):
    user = tmp_path / "user.yaml"
    user.write_text("/**/safety_monitor:\n  ros__parameters:\n    user_torque_cap_nm: \"40\"\n")
    code, text = _exo_sim(user, ros_domain, tmp_path)
    assert code != 0, text
    assert "node 'safety_monitor' exited with code 2" in text, text
    assert (f"[fatal] cannot start: params file {user}:3: safety_monitor.user_torque_cap_nm: "
            "expected a float, got the string '40'") in text, text


def test_a_params_file_with_a_yaml_syntax_error_stops_exo_sim_with_one_line(ros_domain: int, tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**/safety_monitor:\n  ros__parameters:\n    user_torque_cap_nm: [40\n"
                      "    request_deadline_s: 0.02\n")
    code, text = _exo_sim(broken, ros_domain, tmp_path)
    assert code != 0, text
    assert "exited with code 2" in text and "Traceback" not in text, text
    assert f"[fatal] cannot start: params file {broken}: not valid YAML: line 4, column" in text, text
