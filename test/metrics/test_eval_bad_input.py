"""`exo eval` with bad input: one line naming the problem on stderr, exit 2, no traceback.

Before, a missing or broken policy, a malformed controllers file, an unknown parameter entry,
controller or env override ended in a Python traceback (exit 1), some of them only after the
worker processes had started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def _eval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "exo"), "eval", "--trials", "1", "--levels", "0", "--workers", "1",
                           "--max-steps", "5", "--out", str(cwd / "out"), *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def _files(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("/**/controller:\n  ros__parameters:\n    pid: {kp: [1\n")
    (tmp_path / "garbage.npz").write_bytes(b"not a policy")
    (tmp_path / "empty_policy").mkdir()


@pytest.mark.parametrize(("args", "message"), [
    (["--controller", "sac", "--policy", "no/such/policy"], "--policy no/such/policy: no such file or folder"),
    (["--controller", "sac", "--policy", "empty_policy"],
     "controller 'sac' cannot be built from entry 'sac' of config/controllers.yaml, policy empty_policy: "
     "SAC policy file not found: empty_policy/policy.npz"),
    (["--controller", "sac", "--policy", "garbage.npz"],
     "controller 'sac' cannot be built from entry 'sac' of config/controllers.yaml, policy garbage.npz: "),
    (["--controllers-config", "broken.yaml"], "broken.yaml: not valid YAML: line 4, column 1: "),
    (["--controllers-config", "missing.yaml"], "missing.yaml: cannot read: No such file or directory"),
    (["--params-key", "pid_typo"], "no parameter entry 'pid_typo' for the controller (entries: pid, "),
    (["-p", "kp=abc"], "controller 'pid' cannot be built from entry 'pid' of config/controllers.yaml, -p kp=abc: "),
    (["-p", "kq=1"], "-p kq=1: PidController.__init__() got an unexpected keyword argument 'kq'"),
    (["--env-param", "no_such_field=1"], "--env-param: override 'no_such_field': unknown field"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str):
    _files(tmp_path)
    proc = _eval(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("exo eval: error: ") and message in line, line
    assert not (tmp_path / "out").exists()  # refused before any trial


@pytest.mark.parametrize("levels", [["7"], ["0", "x"]])
def test_an_unknown_level_is_a_usage_error(tmp_path: Path, levels: list[str]):
    proc = subprocess.run([str(VENV_BIN / "exo"), "eval", "--trials", "1", "--levels", *levels],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "levels must be" in " ".join(proc.stderr.split())
