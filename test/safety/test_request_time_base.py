"""The request watchdog's notion of "future" on hardware time stamps (samples 10-13 ms apart)."""

from __future__ import annotations

from exo.safety import SafetyLimits, SafetyMonitor


def _samples(core: SafetyMonitor, t: float) -> None:
    core.on_sensor("joint_states", t, knee_angle_rad=1.0, knee_velocity_rad_s=0.0, motor_torque_nm=0.0)
    for source in ("interaction_thigh", "interaction_shank"):
        core.on_sensor(source, t, interaction_torque_nm=0.0)
    for source in ("imu_thigh", "imu_shank"):
        core.on_sensor(source, t)


def test_a_request_for_the_newest_sample_is_not_from_the_future_when_the_sample_came_late():
    limits = SafetyLimits()
    core = SafetyMonitor(limits)
    _samples(core, 100.0)
    assert core.on_request(100.0, 5.0, "pid", 1)
    core.update(100.0)
    # the next sample comes 13 ms later (hardware jitter): more than request_timeout_s after the last update
    t = 100.0 + limits.request_timeout_s + 0.001
    _samples(core, t)
    assert core.on_request(t, 5.0, "pid", 2), core.diagnostics()["last_rejected_request"]
    assert core.update(t).source == "pid"
    # a request stamped beyond the newest sample by more than the request timeout is still refused
    assert not core.on_request(t + limits.request_timeout_s + 0.001, 5.0, "pid", 3)
    assert "stamped in the future" in core.diagnostics()["last_rejected_request"]
