"""Sensor plausibility across sources: IMUs vs joint_states, a second sensor publisher, security events."""

from __future__ import annotations

import pytest

from exo.safety import SafetyLimits, SafetyMonitor, SafetyState
from exo.safety import monitor as mon

PERIOD = 0.01


class Feed:
    """Every watched source each period, the IMUs implying ``imu_knee`` while joint_states says ``knee``."""

    def __init__(self, **limits) -> None:
        self.m = SafetyMonitor(SafetyLimits(**limits))
        self.t = 0.0
        self.seq = 0

    def step(self, knee: float = 1.0, imu_knee: float | None = None, request: float = 5.0):
        m, t = self.m, self.t
        imu_knee = knee if imu_knee is None else imu_knee
        m.on_sensor("joint_states", t, knee_angle_rad=knee, knee_velocity_rad_s=0.0, motor_torque_nm=0.0)
        m.on_sensor("interaction_thigh", t, interaction_torque_nm=0.0)
        m.on_sensor("interaction_shank", t, interaction_torque_nm=0.0)
        m.on_sensor("imu_thigh", t, pitch_rad=0.3)
        m.on_sensor("imu_shank", t, pitch_rad=0.3 - imu_knee)
        self.seq += 1
        m.on_request(t, request, "pid", self.seq)
        d = m.update(t)
        self.t += PERIOD
        return d


def test_imus_disagreeing_with_the_knee_angle_give_the_fallback_then_a_latched_safe_stop():
    f = Feed()
    f.step(1.0, 1.05)  # the first commands ramp up (LIMITING by the slew rate)
    f.step(1.0, 1.05)
    for _ in range(20):
        assert f.step(1.0, 1.05).state == SafetyState.OK  # 0.05 rad apart: within the tolerance
    d = [f.step(1.0, 1.5) for _ in range(3)]
    assert [x.state for x in d[:3]] == [SafetyState.OK] * 3  # a few samples: not yet (imu_knee_disagreement_s)
    d = f.step(1.0, 1.5)
    assert d.state == SafetyState.FALLBACK and mon.SENSOR_CONFLICT in d.active_limits
    assert "from the IMUs" in d.reason
    assert f.m.security_events == 1
    events = f.m.drain_events()
    assert [(e.kind, e.origin) for e in events] == [(mon.EVENT_SECURITY, "sensor plausibility")]
    states = [f.step(1.0, 1.5).state for _ in range(60)]
    assert states[-1] == SafetyState.SAFE_STOP and SafetyState.FALLBACK in states
    # it lasted sensor_conflict_safe_stop_s: latched, even once the sensors agree again
    assert f.step(1.0, 1.0).state == SafetyState.SAFE_STOP
    ok, message = f.m.reset()
    assert ok, message
    assert f.step(1.0, 1.0).state in (SafetyState.OK, SafetyState.LIMITING)
    # the counters survive the reset
    assert f.m.security_events == 1 and [e.kind for e in f.m.event_log][-1] == mon.EVENT_RESET


def test_a_short_conflict_returns_to_the_controller_and_the_check_can_be_switched_off():
    f = Feed()
    f.step()
    for _ in range(10):
        f.step(1.0, 1.6)
    states = [f.step().state for _ in range(80)]
    assert states[0] == SafetyState.FALLBACK and states[-1] in (SafetyState.OK, SafetyState.LIMITING)
    off = Feed(imu_knee_tolerance_rad=0.0)
    assert all(off.step(1.0, 2.0).state != SafetyState.FALLBACK for _ in range(100))


def test_a_second_publisher_on_a_sensor_topic_is_a_sensor_conflict_and_blocks_the_reset():
    f = Feed()
    f.step()
    f.m.on_sensor_publishers("joint_states", 2)
    d = f.step()
    assert d.state == SafetyState.FALLBACK and "2 publishers on joint_states" in d.reason
    for _ in range(60):
        d = f.step()
    assert d.state == SafetyState.SAFE_STOP
    ok, message = f.m.reset()
    assert not ok and "publishers on joint_states" in message
    f.m.on_sensor_publishers("joint_states", 1)
    assert f.m.reset()[0]
    kinds = [e.kind for e in f.m.event_log]
    assert kinds == [mon.EVENT_SECURITY, mon.EVENT_RESET_REFUSED, mon.EVENT_RESET]


def test_a_flood_of_security_events_is_counted_each_and_logged_once_a_second():
    f = Feed()
    f.step()
    for k in range(300):
        f.m.security_event("torque_request", "bad_mac request")
        if k % 3 == 0:
            f.step()
    assert f.m.security_events == 300
    logged = [e for e in f.m.drain_events() if e.kind == mon.EVENT_SECURITY]
    assert len(logged) == 1 + 1  # the first at once, the next 99 after a second of sensor time
    assert logged[0].detail == "bad_mac request" and "x " in logged[1].detail
    assert f.m.status().security_events == 300
    assert f.m.status().last_security_event == "torque_request: bad_mac request"


@pytest.mark.parametrize("pitch", [4.0, float("nan")])
def test_an_implausible_imu_pitch_is_rejected(pitch):
    m = SafetyMonitor()
    assert not m.on_sensor("imu_thigh", 0.0, pitch_rad=pitch)
    assert not m.on_sensor("joint_states", 0.0, knee_angle_rad=1.0, knee_velocity_rad_s=0.0, pitch_rad=0.1)
