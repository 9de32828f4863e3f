"""``exo doctor``: check that this machine can run the exo graph, and say how to fix what is missing."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

#: The exact torch release the project is pinned to (a newer one may pull a CUDA build).
PINNED_TORCH = "2.13.0"
SETUP_FIX = "run scripts/setup.sh"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _check(name: str, fix: str, fn: Callable[[], str], required: bool = True) -> Check:
    try:
        return Check(name, True, fn(), "", required)
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a row
        return Check(name, False, f"{type(exc).__name__}: {exc}".strip(), fix, required)


def _python() -> str:
    if not (3, 10) <= sys.version_info[:2] <= (3, 13):
        raise RuntimeError(f"Python {sys.version.split()[0]}; ROS 2 Kilted wheels need 3.10-3.13")
    return f"{sys.version.split()[0]} ({sys.prefix})"


def _rclpy() -> str:
    import rclpy  # noqa: F401

    return f"rclpy from {Path(rclpy.__file__).parent}"


def _rmw() -> str:
    import rclpy

    return rclpy.get_rmw_implementation_identifier()


def _exo_msgs() -> str:
    from exo_msgs.msg import EmgPacket, IntentEstimate, SafetyStatus, TorqueCommand

    for cls in (EmgPacket, IntentEstimate, SafetyStatus, TorqueCommand):
        cls.__class__.__import_type_support__()  # loads the compiled C type support
    return "EmgPacket, FootPressure, IntentEstimate, TorqueCommand, SafetyStatus, KneeTruth"


def _std_interfaces() -> str:
    for pkg in ("std_msgs", "sensor_msgs", "geometry_msgs", "diagnostic_msgs", "std_srvs", "rosgraph_msgs"):
        importlib.import_module(f"{pkg}.msg" if pkg != "std_srvs" else "std_srvs.srv")
    return "std, sensor, geometry, diagnostic, rosgraph msgs; std_srvs"


def _mujoco() -> str:
    import mujoco

    return mujoco.__version__


def _myo_sim() -> str:
    import myo_sim

    root = Path(myo_sim.__file__).parent / "models" / "leg" / "assets"
    needed = [root / f"myolegs_{part}.xml" for part in ("assets", "chain", "muscle", "tendon")]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"MyoLeg model files missing in {root}: {', '.join(missing)}")
    return f"MyoLeg model in {root}"


def _torch() -> str:
    import torch

    version = torch.__version__.split("+")[0]
    if version != PINNED_TORCH:
        raise RuntimeError(f"torch {torch.__version__} installed, the project is pinned to {PINNED_TORCH}")
    return f"{torch.__version__} (threads: {torch.get_num_threads()})"


def _simple(module: str) -> Callable[[], str]:
    def check() -> str:
        mod = importlib.import_module(module)
        return str(getattr(mod, "__version__", "ok"))

    return check


def _config() -> str:
    from exo.paths import share_dir

    root = share_dir()
    missing = [d for d in ("config", "launch", "urdf") if not (root / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} lacks {', '.join(missing)}")
    return str(root)


def _ros_env() -> str:
    domain = os.environ.get("ROS_DOMAIN_ID", "0 (default)")
    rng = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET (default)")
    return f"ROS_DOMAIN_ID={domain}, ROS_AUTOMATIC_DISCOVERY_RANGE={rng}"


def run_checks() -> list[Check]:
    """Every check, in the order a broken install is best diagnosed."""
    return [
        _check("python", "use Python 3.10-3.13 (EXO_PYTHON=python3.11 scripts/setup.sh)", _python),
        _check("rclpy", SETUP_FIX + " (installs the ros-rclpy wheels)", _rclpy),
        _check("rmw", "pip install ros-rmw-fastrtps-cpp (" + SETUP_FIX + ")", _rmw),
        _check("ros interfaces", SETUP_FIX, _std_interfaces),
        _check("exo_msgs", SETUP_FIX + " (builds src/exo_msgs into the venv; needs cmake, g++, python3-dev)",
               _exo_msgs),
        _check("mujoco", SETUP_FIX, _mujoco),
        _check("myo-sim (MyoLeg)", "pip install myo-sim==0.2.3 (" + SETUP_FIX + ")", _myo_sim),
        _check("torch", f"pip install torch=={PINNED_TORCH} (never an unpinned torch)", _torch),
        _check("gymnasium", SETUP_FIX, _simple("gymnasium")),
        _check("rosbags", SETUP_FIX, _simple("rosbags")),
        _check("exo data", "run from a checkout, or set EXO_SHARE_DIR", _config),
        _check("ros environment", "", _ros_env, required=False),
    ]


def doctor() -> None:
    """Check the installation (ROS 2 wheels, RMW, exo_msgs, MuJoCo, MyoLeg, torch) and print fixes."""
    from rich.console import Console
    from rich.table import Table

    checks = run_checks()
    table = Table(title="exo doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for c in checks:
        status = "[green]ok[/]" if c.ok else ("[red]FAIL[/]" if c.required else "[yellow]warn[/]")
        table.add_row(c.name, status, c.detail, c.fix)
    console = Console(width=max(100, Console().width))
    console.print(table)
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        console.print(f"[red]exo doctor: {len(failed)} problem(s): {', '.join(failed)}[/]")
        raise typer.Exit(code=1)
    console.print("[green]exo doctor: everything needed is in place[/]")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
