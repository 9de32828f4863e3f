"""Example-based tests of the safety monitor: one per fault path, each injecting its fault."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from exo.safety import SafetyLimits, SafetyMonitor, SafetyState
from exo.safety import monitor as mon

ROOT = Path(__file__).resolve().parents[2]
# The example tests pin the limits they reason about (not the shipped defaults, which may change).
LIM = SafetyLimits(user_torque_cap_nm=40.0, max_interaction_torque_nm=30.0, request_timeout_periods=3)


@pytest.fixture
def rig(rig):
    """The conftest rig, with :data:`LIM` unless a test passes its own limits."""
    return lambda limits=None: rig(limits or LIM)
STEP_NM = LIM.max_slew_rate_nm_per_s * LIM.control_period_s  # 4 N m per period


def test_state_numbering_matches_the_safety_status_message():
    text = (ROOT / "src" / "exo_msgs" / "msg" / "SafetyStatus.msg").read_text()
    constants = {name: int(v) for name, v in re.findall(r"uint8 STATE_(\w+) = (\d+)", text)}
    assert constants == {s.name: s.value for s in SafetyState}


def test_startup_waits_for_sensors_then_falls_back_until_requests_arrive(rig):
    r = rig()
    d = r.monitor.update(0.0)
    assert d.state == SafetyState.SAFE_STOP and d.torque_nm == 0.0
    assert "joint_states never received" in d.reason
    assert not r.monitor.status().safe_stop_latched  # waiting for first data is not a latched fault
    d = r.step()
    assert d.state == SafetyState.FALLBACK and mon.REQUEST_TIMEOUT in d.active_limits
    assert d.source == "fallback_pid"
    d = r.step(5.0)
    assert d.state == SafetyState.FALLBACK and d.active_limits[0] == mon.FALLBACK_HOLD
    d = r.until(lambda d: d.state == SafetyState.OK, 5.0)
    assert d.t == pytest.approx(0.02 + LIM.fallback_min_duration_s, abs=0.011)
    assert d.source == "sac" and d.seq == r.seq


def test_request_passes_unchanged_and_is_ramped_and_capped(rig):
    r = rig()
    r.arm(0.0)
    torques = [d.torque_nm for d in r.run(5, 20.0)]
    assert torques == pytest.approx([4.0, 8.0, 12.0, 16.0, 20.0])
    d = r.step(20.0)
    assert d.state == SafetyState.OK and d.active_limits == () and d.torque_nm == 20.0
    d = r.step(80.0)  # above the user cap: capped at 40, reached at the slew rate
    assert d.state == SafetyState.LIMITING and d.active_limits == (mon.TORQUE_CAP, mon.SLEW_RATE)
    assert d.torque_nm == pytest.approx(24.0) and d.requested_torque_nm == 80.0
    assert r.until(lambda d: d.torque_nm >= 40.0, 80.0).torque_nm == 40.0
    assert r.step(80.0).active_limits == (mon.TORQUE_CAP,)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e300, 150.0, "10", None, True])
def test_invalid_request_rejected_counted_and_treated_as_no_request(rig, bad):
    r = rig()
    r.arm(10.0)
    d = r.until(lambda d: d.torque_nm == 10.0, 10.0)
    for i in range(1, LIM.request_timeout_periods + 1):
        r.k += 1
        r.t = round(r.k * LIM.control_period_s, 9)
        r.sensors()
        assert r.monitor.on_request(r.t, bad, "sac", 99) is False
        d = r.monitor.update(r.t)
        assert r.monitor.rejected_requests == i
        assert d.state == SafetyState.OK and d.torque_nm == 10.0  # the last valid request stays in force...
    r.k += 1
    r.t = round(r.k * LIM.control_period_s, 9)
    r.sensors()
    r.monitor.on_request(r.t, bad, "sac", 99)
    d = r.monitor.update(r.t)
    assert d.state == SafetyState.FALLBACK and mon.REQUEST_TIMEOUT in d.active_limits  # ...then expires
    assert r.monitor.status().rejected_requests == LIM.request_timeout_periods + 1
    assert r.monitor.diagnostics()["last_rejected_request"]


def test_request_older_than_the_one_in_force_or_with_a_bad_seq_is_rejected(rig):
    r = rig()
    r.arm(0.0)
    assert r.monitor.on_request(r.t - 0.005, 3.0, "sac", 1) is False
    assert r.monitor.on_request(r.t, 3.0, "sac", 2.5) is False
    assert r.monitor.on_request(r.t + 10.0, 3.0, "sac", 3) is False  # stamped in the future
    assert r.monitor.rejected_requests == 3


def test_request_timeout_hands_over_to_the_fallback_after_n_periods(rig):
    r = rig()
    r.arm(0.0)
    r.run(3, 8.0)
    n = LIM.request_timeout_periods
    decisions = r.run(n + 1)  # the controller goes silent
    assert [d.state for d in decisions[:n]] == [SafetyState.OK] * n  # a request is in force for N periods
    last = decisions[n]
    assert last.state == SafetyState.FALLBACK and last.transition
    assert last.active_limits[0] == mon.REQUEST_TIMEOUT and last.source == "fallback_pid"
    assert last.requested_torque_nm is None and last.seq is None
    assert r.monitor.transition_log[-1].to_state == SafetyState.FALLBACK


@pytest.mark.parametrize("source", list(LIM.sensor_timeouts_s))
def test_stale_sensor_source_triggers_a_latched_safe_stop_with_zero_torque(rig, source):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)
    timeout = LIM.sensor_timeouts_s[source]
    n_ok = round(timeout / LIM.control_period_s)
    decisions = r.run(n_ok + 1, 20.0, skip=[source])
    assert all(d.state == SafetyState.OK for d in decisions[:n_ok])  # fresh within the timeout
    d = decisions[-1]
    assert d.state == SafetyState.SAFE_STOP and d.transition and d.source == "safe_stop"
    assert d.torque_nm == 0.0  # documented: the stop removes torque at once (20 N m -> 0)
    assert source in d.reason and mon.SENSOR_TIMEOUT in d.active_limits
    d = r.run(20, 20.0)[-1]  # data is back: the safe stop stays latched until reset()
    assert d.state == SafetyState.SAFE_STOP and "reset() required" in d.reason
    ok, message = r.monitor.reset()
    assert ok, message
    assert r.step(20.0).state in (SafetyState.OK, SafetyState.LIMITING)


def test_unlatched_safe_stop_clears_by_itself_when_data_returns(rig):
    r = rig(dataclasses.replace(LIM, latch_safe_stop=False))
    r.arm(0.0)
    r.run(10, 0.0, skip=["imu_thigh"])
    assert r.monitor.state == SafetyState.SAFE_STOP
    assert r.step(0.0).state == SafetyState.OK


def test_safe_stop_damps_the_knee_while_its_velocity_is_fresh(rig):
    r = rig()
    r.arm(0.0)
    r.velocity = 3.0
    d = r.until(lambda d: d.state == SafetyState.SAFE_STOP, 0.0, skip=["imu_shank"])
    assert d.torque_nm == 0.0
    torques = [d.torque_nm for d in r.run(3, 0.0, skip=["imu_shank"])]
    assert torques == pytest.approx([-4.0, -6.0, -6.0])  # -2 N m s/rad * 3 rad/s, built up at the slew rate
    r.velocity = -5.5  # would need +11 N m: capped at safe_stop_torque_cap_nm
    assert r.run(10, 0.0, skip=["imu_shank"])[-1].torque_nm == LIM.safe_stop_torque_cap_nm
    r.velocity = -3.0
    d = r.run(30, 0.0, skip=["imu_shank", "joint_states"])[-1]  # the velocity itself goes stale: zero
    assert d.torque_nm == 0.0


def test_interaction_torque_over_limit_hands_over_to_the_fallback(rig):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)
    r.interaction = 35.0
    d = r.step(20.0)
    assert d.state == SafetyState.FALLBACK and d.active_limits[0] == mon.INTERACTION_TORQUE
    assert "interaction_thigh" in d.reason or "interaction_shank" in d.reason
    assert d.source == "fallback_pid" and abs(d.torque_nm) <= LIM.fallback_torque_cap_nm
    assert d.requested_torque_nm == 20.0  # still reported: it was valid, only replaced
    r.interaction = 5.0
    t_clear = r.t + LIM.control_period_s
    d = r.step(20.0)
    assert d.state == SafetyState.FALLBACK and d.active_limits[0] == mon.FALLBACK_HOLD
    d = r.until(lambda d: d.state != SafetyState.FALLBACK, 20.0)
    assert d.t - t_clear == pytest.approx(LIM.fallback_min_duration_s, abs=0.011)
    assert d.state == SafetyState.LIMITING and mon.SLEW_RATE in d.active_limits  # handing back is ramped


def test_fallback_pid_holds_the_entry_angle_within_its_cap(rig):
    r = rig(dataclasses.replace(LIM, fallback_min_duration_s=0.0))
    r.arm(0.0)
    r.angle = 1.0
    d = r.run(LIM.request_timeout_periods + 1)[-1]  # the controller goes silent at 1.0 rad
    assert d.state == SafetyState.FALLBACK and d.transition
    r.angle = 1.2  # pushed into flexion: the hold pulls back (extension, negative torque)
    d = r.run(20)[-1]
    assert d.torque_nm == pytest.approx(-0.2 * LIM.fallback_kp_nm_per_rad)
    r.angle = 0.0  # far away: capped
    assert r.run(20)[-1].torque_nm == LIM.fallback_torque_cap_nm


def test_fallback_zero_ramps_the_torque_to_zero(rig):
    r = rig(dataclasses.replace(LIM, fallback_kind="zero"))
    r.arm(0.0)
    r.run(3, 12.0)
    torques = [d.torque_nm for d in r.run(LIM.request_timeout_periods + 3)]
    assert torques[-3:] == pytest.approx([8.0, 4.0, 0.0])
    assert r.step().source == "fallback_zero"


def test_joint_velocity_over_limit_refuses_torque_that_accelerates_the_knee(rig):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)
    r.velocity = LIM.max_joint_velocity_rad_s + 1.0  # flexing too fast
    d = r.step(20.0)
    assert d.torque_nm == 0.0 and d.state == SafetyState.LIMITING and mon.JOINT_VELOCITY in d.active_limits
    d = r.step(-20.0)  # braking torque passes (ramped)
    assert d.torque_nm == pytest.approx(-STEP_NM) and mon.JOINT_VELOCITY not in d.active_limits
    r.velocity = -(LIM.max_joint_velocity_rad_s + 1.0)  # now extending too fast: extension torque refused
    assert r.step(-20.0).torque_nm == 0.0


def test_range_of_motion_soft_zones_scale_torque_pushing_into_a_limit(rig):
    r = rig(dataclasses.replace(LIM, max_slew_rate_nm_per_s=1e6))  # isolate the range limit from the slew limit
    r.arm(0.0)
    hi, lo, w = LIM.joint_max_angle_rad, LIM.joint_min_angle_rad, LIM.soft_zone_width_rad
    cases = [  # (angle, request, expected command)
        (hi - 2 * w, 20.0, 20.0),  # outside the zone
        (hi - w / 2, 20.0, 10.0),  # halfway into the zone: half the flexing torque
        (hi - w / 4, 20.0, 5.0),
        (hi, 20.0, 0.0),  # at the limit: refused
        (hi + 0.1, 20.0, 0.0),  # beyond: refused entirely
        (hi + 0.1, -20.0, -20.0),  # torque away from the limit passes
        (lo + w / 2, -20.0, -10.0),  # the extension limit, mirrored
        (lo - 0.02, -20.0, 0.0),
        (lo - 0.02, 20.0, 20.0),
    ]
    for angle, request, expected in cases:
        r.angle = angle
        d = r.step(request)
        assert d.torque_nm == pytest.approx(expected), (angle, request)
        assert (mon.RANGE_OF_MOTION in d.active_limits) == (abs(expected) < abs(request))


def test_estop_latches_until_reset_whatever_the_inputs(rig):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)
    r.monitor.estop("operator button")
    r.monitor.estop("second press")  # the first reason is kept
    d = r.step(20.0)
    assert d.state == SafetyState.ESTOP and d.torque_nm == 0.0 and d.source == "estop"
    assert "operator button" in d.reason and d.transition
    assert all(d.state == SafetyState.ESTOP and d.torque_nm == 0.0 for d in r.run(100, 40.0))
    assert r.monitor.status().estop_latched
    transitions = r.monitor.transitions
    ok, message = r.monitor.reset()
    assert ok and "operator button" in message
    d = r.step(20.0)
    assert d.state == SafetyState.LIMITING and d.active_limits == (mon.SLEW_RATE,)
    assert d.torque_nm == pytest.approx(STEP_NM)  # resumes from zero, ramped
    assert "after reset" in r.monitor.transition_log[-1].reason
    assert r.monitor.transitions == transitions + 1  # a reset never clears the counters
    # every e-stop and the reset are in the event log
    kinds = [(e.kind, e.detail) for e in r.monitor.event_log]
    assert kinds[:2] == [(mon.EVENT_ESTOP, "operator button"), (mon.EVENT_ESTOP, "second press")]
    assert kinds[2][0] == mon.EVENT_RESET and "operator button" in kinds[2][1]
    assert [e.count for e in r.monitor.event_log] == [1, 2, 1]


def test_reset_refused_while_sensors_are_stale(rig):
    r = rig()
    r.arm(0.0)
    r.monitor.estop("test")
    r.run(10, 0.0, skip=["joint_states", "interaction_thigh"])
    ok, message = r.monitor.reset()
    assert not ok and "joint_states" in message and "interaction_thigh" in message
    assert r.step(0.0, skip=["joint_states", "interaction_thigh"]).state == SafetyState.ESTOP
    r.step(0.0)  # the data is back
    ok, message = r.monitor.reset()
    assert ok, message
    assert r.step(0.0).state == SafetyState.OK
    ok, message = SafetyMonitor().reset()
    assert not ok and "no update yet" in message


def test_time_going_backwards_or_not_finite_is_a_latched_fault(rig):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)
    d = r.monitor.update(r.t - 1.0)
    assert d.state == SafetyState.FAULT and d.torque_nm == 0.0 and "backwards" in d.reason
    ok, _ = r.monitor.reset()
    assert not ok  # samples of the old time base were dropped: none is fresh
    r.k -= 100
    r.step(20.0)
    ok, message = r.monitor.reset()
    assert ok, message
    assert r.step(20.0).state in (SafetyState.OK, SafetyState.LIMITING)
    assert r.monitor.update(math.nan).state == SafetyState.FAULT


def test_internal_error_becomes_a_fault_with_zero_torque(rig, monkeypatch):
    r = rig()
    r.arm(0.0)
    r.run(5, 20.0)

    def boom(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(r.monitor, "_apply_hard_limits", boom)
    d = r.step(20.0)
    assert d.state == SafetyState.FAULT and d.torque_nm == 0.0 and "ZeroDivisionError" in d.reason


@pytest.mark.parametrize(("source", "values", "fragment"), [
    ("joint_states", {"knee_angle_rad": math.nan, "knee_velocity_rad_s": 0.0}, "not a finite number"),
    ("joint_states", {"knee_angle_rad": 5.0, "knee_velocity_rad_s": 0.0}, "plausible range"),
    ("joint_states", {"knee_angle_rad": 0.5, "knee_velocity_rad_s": math.inf}, "not a finite number"),
    ("joint_states", {"knee_angle_rad": 0.5, "knee_velocity_rad_s": 100.0}, "plausible range"),
    ("joint_states", {"knee_angle_rad": 0.5}, "missing knee_velocity_rad_s"),
    ("interaction_thigh", {"interaction_torque_nm": -1e9}, "plausible range"),
    ("interaction_thigh", {}, "missing interaction_torque_nm"),
    ("imu_thigh", {"knee_angle_rad": 0.5}, "does not carry"),
    ("imu/thigh", {}, "unknown source"),
])
def test_invalid_sensor_samples_are_counted_and_ignored(rig, source, values, fragment):
    r = rig()
    r.arm(0.0)
    assert r.monitor.on_sensor(source, r.t, **values) is False
    assert r.monitor.invalid_sensor_samples == 1
    assert fragment in r.monitor.diagnostics()["last_invalid_sensor_sample"]
    assert r.monitor.diagnostics()["knee_angle_rad"] == f"{r.angle:.4f}"  # the old value stands


def test_out_of_order_future_and_nan_time_samples_are_rejected(rig):
    r = rig()
    r.arm(0.0)
    m = r.monitor
    assert not m.on_sensor("imu_thigh", r.t - 0.001)
    assert not m.on_sensor("imu_thigh", r.t + 1.0)
    assert not m.on_sensor("imu_thigh", math.nan)
    assert m.invalid_sensor_samples == 3


def test_only_invalid_joint_samples_lead_to_a_safe_stop(rig):
    r = rig()
    r.arm(0.0)
    for _ in range(10):
        r.k += 1
        r.t = round(r.k * LIM.control_period_s, 9)
        r.sensors(skip=["joint_states"])
        r.monitor.on_sensor("joint_states", r.t, knee_angle_rad=math.nan, knee_velocity_rad_s=0.0)
        r.monitor.on_request(r.t, 0.0)
        d = r.monitor.update(r.t)
    assert d.state == SafetyState.SAFE_STOP and "joint_states" in d.reason
    assert r.monitor.invalid_sensor_samples == 10


def test_on_measurements_feeds_every_watched_source():
    from exo.twin.interface import Measurements

    m = SafetyMonitor()
    meas = Measurements(0.01, 0.7, 0.1, 2.0, 0.0, -0.7, 0.0, 0.0, 3.0)
    assert m.on_measurements(meas)
    m.on_request(0.01, 1.0)
    assert m.update(0.01).torque_nm == 0.0  # the first update has no elapsed time: no slew allowance
    assert m.on_measurements(dataclasses.replace(meas, time_s=0.02))
    m.on_request(0.02, 1.0)
    d = m.update(0.02)
    assert d.state == SafetyState.OK and d.torque_nm == 1.0


def test_status_diagnostics_and_a_bounded_transition_log(rig):
    r = rig(dataclasses.replace(LIM, transition_log_size=4, fallback_min_duration_s=0.0))
    r.arm(0.0)
    for _ in range(5):  # OK <-> FALLBACK five times
        r.run(LIM.request_timeout_periods + 1)
        r.step(0.0)
    assert r.monitor.transitions >= 10 and len(r.monitor.transition_log) == 4
    status = r.monitor.status()
    assert status.state_name == status.state.name and status.transitions == r.monitor.transitions
    diag = r.monitor.diagnostics()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in diag.items())
    for key in ("state", "reason", "commanded_torque_nm", "rejected_requests", "invalid_sensor_samples",
                "transitions", "estop_latched", "last_transition", "sensor_age_s.joint_states"):
        assert key in diag
    assert [s.diagnostic_level for s in SafetyState] == [0, 0, 1, 2, 2, 2]


def test_a_lower_cap_cuts_the_torque_at_once(rig):
    r = rig()
    r.arm(0.0)
    r.until(lambda d: d.torque_nm == 30.0, 30.0)
    r.interaction = 40.0  # fallback: its cap (15 N m) is lower than the 30 N m being commanded
    d = r.step(30.0)
    assert d.torque_nm <= LIM.fallback_torque_cap_nm
    assert dataclasses.replace(LIM, user_torque_cap_nm=10.0).torque_cap_nm == 10.0
