"""PID and zero-torque controllers on plain signals and a toy plant (no twin needed)."""

from __future__ import annotations

import numpy as np
import pytest

from exo.control import ControllerSpec, available_controllers, make_controller, register_controller
from exo.control.base import Controller
from exo.control.pid import PidController
from exo.control.zero import ZeroTorqueController

LAYOUT = {"exo_knee_angle": slice(0, 1), "exo_knee_velocity": slice(1, 2), "target_error": slice(2, 3)}


def _obs(angle: float, velocity: float, target: float) -> np.ndarray:
    return np.array([angle, velocity, target - angle])


def test_extension_needs_negative_torque() -> None:
    pid = PidController(kp=100.0, obs_layout=LAYOUT)
    torque = pid.act(_obs(1.544, 0.0, 0.2))
    assert torque == pytest.approx(-100.0)  # kp * (0.2 - 1.544) = -134 N m, saturated at -100
    pid = PidController(kp=10.0, obs_layout=LAYOUT)
    assert pid.act(_obs(0.1, 0.0, 0.2)) == pytest.approx(1.0)  # too extended: flexing torque


def test_integral_and_derivative_on_measurement() -> None:
    pid = PidController(kp=0.0, ki=10.0, kd=2.0, dt=0.01, obs_layout=LAYOUT)
    assert pid.act(_obs(0.5, 0.0, 0.4)) == pytest.approx(10.0 * -0.1 * 0.01)  # no derivative kick
    # angle moves +0.01 rad in one step: rate 1 rad/s -> D = -2 N m
    assert pid.act(_obs(0.51, 0.0, 0.4)) == pytest.approx(10.0 * (-0.1 - 0.11) * 0.01 - 2.0)
    vel = PidController(kp=0.0, kd=3.0, derivative_source="velocity", obs_layout=LAYOUT)
    assert vel.act(_obs(0.5, -0.5, 0.5)) == pytest.approx(1.5)


def test_derivative_filter_first_order() -> None:
    pid = PidController(kp=0.0, kd=1.0, dt=0.01, derivative_filter_s=0.01, derivative_source="velocity")
    outputs = [pid.update(0.0, 0.0, velocity_rad_s=1.0) for _ in range(3)]
    assert outputs == pytest.approx([-0.5, -0.75, -0.875])  # alpha = dt / (tau + dt) = 0.5


def test_anti_windup_clamp_limits_integrator() -> None:
    clamp = PidController(kp=200.0, ki=500.0, torque_limit_nm=100.0, dt=0.01)
    free = PidController(kp=200.0, ki=500.0, torque_limit_nm=100.0, dt=0.01, anti_windup="none")
    for _ in range(200):  # 2 s saturated at error -1 rad
        clamp.update(-1.0, 1.2)
        free.update(-1.0, 1.2)
    assert clamp.integral_nm == pytest.approx(0.0)  # saturated from the first step: never integrates
    assert free.integral_nm == pytest.approx(-1000.0)
    # The error reverses: the clamped controller reacts at once, the wound-up one stays saturated.
    assert clamp.update(0.1, 0.1) == pytest.approx(20.0 + 0.5)
    assert free.update(0.1, 0.1) == pytest.approx(-100.0)


def test_reset_clears_state() -> None:
    pid = PidController(kp=1.0, ki=100.0, kd=1.0)
    for _ in range(10):
        pid.update(0.1, 0.0)
    pid.reset()
    assert pid.integral_nm == 0.0
    assert pid.update(0.0, 5.0) == 0.0


def test_pid_drives_toy_knee_to_target() -> None:
    """Inertia 0.5 kg m^2, damping 1 N m s/rad, gravity-like 10 N m bias: integral removes the offset."""
    pid = PidController(kp=300.0, ki=300.0, kd=20.0, dt=0.01)
    angle, velocity, target = 1.544, 0.0, 0.2
    for _ in range(600):
        torque = pid.update(target - angle, angle)
        acceleration = (torque + 10.0 - 1.0 * velocity) / 0.5
        velocity += acceleration * 0.01
        angle += velocity * 0.01
    assert angle == pytest.approx(target, abs=1e-3)


@pytest.mark.parametrize("bad", [{"kp": -1.0}, {"kp": 1.0, "dt": 0.0}, {"kp": 1.0, "anti_windup": "x"}])
def test_invalid_parameters(bad: dict) -> None:
    with pytest.raises(ValueError):
        PidController(**bad)


def test_registry_and_spec() -> None:
    assert {"pid", "zero"} <= set(available_controllers())
    pid = make_controller("pid", kp=5.0, obs_layout=LAYOUT)
    assert isinstance(pid, PidController) and isinstance(pid, Controller)
    assert make_controller("zero").act(np.zeros(3)) == 0.0
    assert isinstance(ControllerSpec("zero")(), ZeroTorqueController)
    with pytest.raises(ValueError, match="unknown controller"):
        make_controller("nope")
    register_controller("test-zero", ZeroTorqueController)
    try:
        assert make_controller("test-zero").name == "zero"
    finally:
        from exo.control import CONTROLLERS

        del CONTROLLERS["test-zero"]


def test_params_round_trip() -> None:
    pid = PidController(kp=1.0, ki=2.0, kd=3.0, derivative_filter_s=0.02)
    clone = make_controller("pid", **pid.params())
    assert clone.params() == pid.params()  # type: ignore[attr-defined]
