"""Controllers in the loop of the reduced twin's env, and Ziegler–Nichols on the reduced twin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exo.control import load_controller_params, make_controller
from exo.control.ziegler_nichols import tune_on_twin
from exo.envs.knee_extension import KneeExtensionEnv


def _run(controller_name: str, steps: int, level: int = 0, **params: float) -> tuple[list[float], np.ndarray]:
    env = KneeExtensionEnv(twin="reduced", level=level)
    controller = make_controller(controller_name, **params)
    controller.reset()
    obs, info = env.reset(seed=0)
    torques, exo_angles = [], []
    for _ in range(steps):
        torque = controller.act(obs)
        torques.append(torque)
        obs, _, terminated, _, info = env.step(np.array([torque / 100.0], dtype=np.float32))
        exo_angles.append(info["measurements"].exo_knee_angle_rad)
        assert not terminated
    return torques, np.array(exo_angles)


def test_pid_extends_the_knee_to_the_target_at_level_0() -> None:
    torques, angles = _run("pid", 300, kp=100.0, ki=200.0, kd=10.0)
    assert torques[0] == pytest.approx(-100.0)  # from 1.544 rad toward 0.2 rad: extension torque, saturated
    assert angles[0] < 1.544
    assert abs(angles[-1] - 0.2) < 0.01  # rad, after 3 s
    assert np.ptp(angles[-50:]) < 0.01  # rad: at rest (the integral still trims the last mrad)


@pytest.mark.parametrize("key", ["pid", "pid_zn_no_overshoot"])
def test_configured_pid_reaches_the_target_at_level_1(key: str) -> None:
    """The Ziegler–Nichols gains of config/controllers.yaml, on the level they were tuned for."""
    _, angles = _run("pid", 300, level=1, **load_controller_params("pid", key=key))
    assert abs(angles[-1] - 0.2) < 0.01


def test_zero_torque_leaves_the_knee_hanging() -> None:
    torques, angles = _run("zero", 100)
    assert set(torques) == {0.0}
    assert angles[-1] > 1.0  # gravity and passive tissue keep the seated knee flexed


@pytest.mark.slow
def test_ziegler_nichols_finds_finite_ultimate_gain_on_reduced_twin() -> None:
    result = tune_on_twin("reduced", level=1, seed=0, duration_s=2.0, rel_tol=0.05)
    assert math.isfinite(result.ku) and 100.0 < result.ku < 5000.0  # N m/rad
    assert math.isfinite(result.tu_s) and 0.02 < result.tu_s < 1.0  # s
    low, high = result.bracket
    ratio = {run.kp: run.amplitude_ratio for run in result.experiments}
    assert ratio[low] < result.sustained_ratio <= ratio[high]
    classic = result.gains["classic"]
    assert classic["kp"] == pytest.approx(0.6 * result.ku)
    assert classic["ki"] == pytest.approx(1.2 * result.ku / result.tu_s)
    assert classic["kd"] == pytest.approx(0.075 * result.ku * result.tu_s)
