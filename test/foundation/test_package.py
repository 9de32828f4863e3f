"""The ROS side of the install: colcon build of src/ and `exo doctor`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _exo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "exo"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_doctor_passes_on_a_set_up_machine():
    result = _exo("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "everything needed is in place" in result.stdout


def test_doctor_fails_naming_exo_msgs_when_its_build_is_broken(tmp_path: Path):
    shadow = tmp_path / "exo_msgs"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise ImportError("exo_msgs was not built")\n')
    result = _exo("doctor", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert "1 problem(s): exo_msgs" in result.stdout
    assert "scripts/setup.sh" in result.stdout


def test_cli_help_everywhere():
    top = _exo("--help")
    assert top.returncode == 0
    commands = [line.split()[1] for line in top.stdout.splitlines() if line.startswith("│ ") and
                len(line.split()) > 2 and not line.split()[1].startswith("-")]
    assert "doctor" in commands
    for cmd in commands:
        sub = _exo(cmd, "--help")
        assert sub.returncode == 0, f"exo {cmd} --help: {sub.stderr}"


@pytest.mark.slow
def test_colcon_build_of_src_in_a_temporary_workspace(tmp_path: Path):
    """A ROS user's `colcon build` of our sources, with only what scripts/setup.sh installed."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for part in ("src", "launch", "config", "urdf"):
        shutil.copytree(ROOT / part, ws / part, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    prefix = str(Path(sys.prefix))
    env = {**os.environ, "AMENT_PREFIX_PATH": prefix, "CMAKE_PREFIX_PATH": prefix,
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(VENV_BIN / "colcon"), "build", "--base-paths", "src", "--event-handlers", "console_direct-",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    install = ws / "install"
    for node in ("sim_bridge", "controller", "safety_monitor", "exo"):
        assert (install / "exo_bringup" / "lib" / "exo_bringup" / node).is_file(), node
    share = install / "exo_bringup" / "share" / "exo_bringup"
    assert (share / "launch" / "sim.launch.py").is_file()
    assert (share / "config" / "safety.yaml").is_file()
    assert any((share / "urdf").iterdir())
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "exo_bringup").is_file() or \
        (install / "exo_bringup" / "share" / "ament_index" / "resource_index" / "packages" / "exo_bringup").is_file()
    # the freshly built interface package is complete (python + C type support)
    msgs_py = list((install / "exo_msgs").rglob("exo_msgs/msg/_torque_command.py"))
    assert msgs_py, "exo_msgs python bindings not installed"
    assert list((install / "exo_msgs").rglob("libexo_msgs__rosidl_typesupport_c.so"))


def test_setup_names_a_missing_system_prerequisite(tmp_path: Path):
    """scripts/setup.sh on a machine without cmake stops at once, naming cmake and how to get it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("python3", "bash", "cat", "sha256sum", "cut", "dirname", "gcc", "g++", "make"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").unlink()
    (bin_dir / "python3").symlink_to(sys.executable)  # a Python with headers, venv and ensurepip
    result = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path), "EXO_VENV": str(tmp_path / "venv")},
                            timeout=60)
    assert result.returncode == 1
    assert "'cmake' is missing" in result.stderr and "apt install cmake" in result.stderr
    assert not (tmp_path / "venv").exists()  # nothing half-installed


def test_exo_sim_stops_with_a_message_naming_a_node_that_dies(tmp_path: Path):
    """A controller that cannot start (bad parameter) ends `exo sim` with exit 1, naming it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/controller:\n  ros__parameters:\n    target_knee_angle_rad: 7.0\n")
    from exo.testing.ros_env import claim_domain

    claim = claim_domain()
    try:
        result = _exo("sim", "--duration", "1", "--params-file", str(bad), "--domain-id", str(claim.domain_id),
                      "--log-dir", str(tmp_path / "logs"), "--startup-timeout", "60",
                      env={"ROS_LOG_DIR": str(tmp_path / "ros")})
    finally:
        claim.release()
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "node 'controller' exited with code 2" in text
    assert "target_knee_angle_rad" in text and "out of range" in text
