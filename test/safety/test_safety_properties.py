"""Property-based tests: the monitor's invariants over arbitrary inputs (hypothesis).

Each example draws valid limits and a sequence of control periods; in each period time advances by an
arbitrary step (including stale gaps), some sensor samples and a request arrive (values may be NaN,
inf, huge, implausible, late or early), sometimes an e-stop or a reset, then update(). After every
update the invariants of exo.safety.monitor are checked against what the test itself fed in.

Example counts come from the active hypothesis profile (see conftest.py): ``examples(w)`` is ``w`` times
its ``max_examples``, 100 by default and in CI; ``bench/bench_safety_properties.py`` raises it.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exo.safety import SafetyLimits, SafetyMonitor, SafetyState

EPS = 1e-9
SOURCES = {"joint_states": 0.03, "interaction_thigh": 0.03, "imu_thigh": 0.05}


def examples(weight: float) -> int:
    """``weight`` x the active profile's ``max_examples`` (read when the test is decorated), at least 1."""
    return max(1, round(weight * settings().max_examples))


@st.composite
def limits_strategy(draw: st.DrawFn) -> SafetyLimits:
    return SafetyLimits(
        user_torque_cap_nm=draw(st.floats(1.0, 100.0)),
        max_slew_rate_nm_per_s=draw(st.floats(10.0, 5000.0)),
        soft_zone_width_rad=draw(st.floats(0.0, 0.5)),
        max_joint_velocity_rad_s=draw(st.floats(0.5, 10.0)),
        max_interaction_torque_nm=draw(st.floats(1.0, 60.0)),
        request_timeout_periods=draw(st.integers(1, 5)),
        latch_safe_stop=draw(st.booleans()),
        fallback_kind=draw(st.sampled_from(["pid", "zero"])),
        fallback_torque_cap_nm=draw(st.floats(1.0, 100.0)),
        fallback_kp_nm_per_rad=draw(st.floats(0.0, 200.0)),
        fallback_ki_nm_per_rad_s=draw(st.floats(0.0, 50.0)),
        fallback_kd_nm_s_per_rad=draw(st.floats(0.0, 20.0)),
        fallback_min_duration_s=draw(st.sampled_from([0.0, 0.03, 0.5])),
        safe_stop_damping_nm_s_per_rad=draw(st.floats(0.0, 20.0)),
        safe_stop_torque_cap_nm=draw(st.floats(0.0, 100.0)),
        sensor_timeouts_s=SOURCES,
        transition_log_size=draw(st.integers(1, 8)),
    )


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy, n: int = 9) -> st.SearchStrategy:
    """``good`` about n times in n + 1, else ``bad`` (one_of would weigh them about equally)."""
    return st.sampled_from([True] * n + [False]).flatmap(lambda ok: good if ok else bad)


wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0]))
angle = mostly(st.floats(-0.3, 2.2), wild, n=19)
velocity = mostly(st.floats(-12.0, 12.0), wild, n=19)
torque = mostly(st.floats(-120.0, 120.0), wild, n=19)
joint = st.tuples(angle, velocity)
period_step = st.fixed_dictionaries({
    # mostly the nominal period, some jitter, now and then a gap longer than the timeouts
    "dt": st.sampled_from(["nominal"] * 20 + ["jitter"] * 4 + ["gap"]).flatmap(
        lambda kind: {"nominal": st.just(0.01), "jitter": st.floats(0.0, 0.03), "gap": st.floats(0.0, 0.5)}[kind]),
    "lag": mostly(st.just(0.0), st.sampled_from([0.004, 0.05, -1.0, math.nan]), n=19),  # sample time = t - lag
    "joint": mostly(joint, st.none(), n=19),
    "interaction": mostly(mostly(st.floats(-25.0, 25.0), torque, n=3), st.none(), n=19),
    "imu": mostly(st.just(True), st.just(False), n=19),
    "request": mostly(torque, st.none(), n=6),
    "event": st.sampled_from([None] * 70 + ["estop"] + ["reset"] * 5),
})


def _scale_into_limit(lim: SafetyLimits, angle_rad: float, torque_nm: float) -> float:
    """Largest allowed fraction of the cap for a torque pushing towards an end stop."""
    room = lim.joint_max_angle_rad - angle_rad if torque_nm > 0 else angle_rad - lim.joint_min_angle_rad
    if room <= 0:
        return 0.0
    w = lim.soft_zone_width_rad
    return 1.0 if w <= 0 or room >= w else room / w


@settings(max_examples=examples(1.5), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits_strategy(), steps=st.lists(period_step, min_size=10, max_size=60))
def test_invariants_hold_over_arbitrary_inputs(lim: SafetyLimits, steps: list[dict]) -> None:
    m = SafetyMonitor(lim)
    t = 0.0
    t_prev: float | None = None
    u_prev = 0.0
    state_prev = m.state
    angle_now = velocity_now = None  # last joint sample the monitor accepted
    rejected = invalid = 0
    estopped = False
    seq = 0
    for s in steps:
        t += s["dt"]
        t_sample = t - s["lag"]
        if s["joint"] is not None:
            a, v = s["joint"]
            if m.on_sensor("joint_states", t_sample, knee_angle_rad=a, knee_velocity_rad_s=v):
                angle_now, velocity_now = a, v
            else:
                invalid += 1
        if s["interaction"] is not None:
            invalid += not m.on_sensor("interaction_thigh", t_sample, interaction_torque_nm=s["interaction"])
        if s["imu"]:
            invalid += not m.on_sensor("imu_thigh", t_sample)
        if s["request"] is not None:
            seq += 1
            rejected += not m.on_request(t_sample, s["request"], "sac", seq)
        if s["event"] == "estop":
            m.estop("property test")
            estopped = True
        elif s["event"] == "reset":
            ok, _ = m.reset()
            if ok:
                estopped = False  # the counters are never cleared
        d = m.update(t)

        u = d.torque_nm
        cap = lim.torque_cap_nm
        assert math.isfinite(u)
        assert abs(u) <= cap + EPS
        assert d.state != SafetyState.FAULT, d.reason  # time is monotonic here: a FAULT would be a bug
        if d.state == SafetyState.FALLBACK:
            assert abs(u) <= min(cap, lim.fallback_torque_cap_nm) + EPS
            assert d.source == f"fallback_{lim.fallback_kind}"
        if d.state == SafetyState.SAFE_STOP:
            assert abs(u) <= min(cap, lim.safe_stop_torque_cap_nm) + EPS
        if estopped:
            assert d.state == SafetyState.ESTOP and u == 0.0 and d.source == "estop"
        else:
            assert d.state != SafetyState.ESTOP
        # the slew rule: rises and reversals are slew-limited; removing torque may be immediate
        dt_eff = 0.0 if t_prev is None else min(t - t_prev, lim.control_period_s)
        max_step = lim.max_slew_rate_nm_per_s * dt_eff
        removed_only = min(0.0, u_prev) - EPS <= u <= max(0.0, u_prev) + EPS
        assert abs(u - u_prev) <= max_step + 1e-7 or removed_only, (u_prev, u, max_step, d)
        # never pushing further into an end stop; soft-zone scaling
        if angle_now is not None and u != 0.0:
            assert abs(u) <= cap * _scale_into_limit(lim, angle_now, u) + 1e-7, (angle_now, d)
            if angle_now >= lim.joint_max_angle_rad:
                assert u < 0.0
            if angle_now <= lim.joint_min_angle_rad:
                assert u > 0.0
        # never accelerating a knee already over the velocity limit
        if velocity_now is not None and abs(velocity_now) > lim.max_joint_velocity_rad_s:
            assert u * velocity_now <= 0.0
        # bookkeeping
        assert d.transition == (d.state != state_prev)
        assert (m.rejected_requests, m.invalid_sensor_samples) == (rejected, invalid)
        assert len(m.transition_log) <= lim.transition_log_size
        assert m.status().commanded_torque_nm == u
        t_prev, u_prev, state_prev = t, u, d.state


update_time = st.one_of(st.floats(-0.05, 0.05), st.just(0.01), st.just(0.01), st.sampled_from([math.nan, math.inf]))


@settings(max_examples=examples(1.0), deadline=None)
@given(ops=st.lists(st.tuples(update_time, st.booleans(), torque, st.booleans()), min_size=1, max_size=60))
def test_bad_time_latches_a_fault_with_zero_torque_until_reset(ops: list[tuple]) -> None:
    """A non-finite or backwards update time latches FAULT (zero torque) until a successful reset."""
    lim = SafetyLimits(sensor_timeouts_s=SOURCES)
    m = SafetyMonitor(lim)
    t_last: float | None = None
    faulted = False
    t = 0.0
    for dt, feed, request, reset in ops:
        t_new = t + dt
        if feed and math.isfinite(t_new):
            m.on_sensor("joint_states", t_new, knee_angle_rad=0.8, knee_velocity_rad_s=0.0)
            m.on_sensor("interaction_thigh", t_new, interaction_torque_nm=0.0)
            m.on_sensor("imu_thigh", t_new)
            m.on_request(t_new, request)
        if reset and m.reset()[0]:
            faulted = False
        if not math.isfinite(t_new) or (t_last is not None and t_new < t_last):
            faulted = True
        d = m.update(t_new)
        assert math.isfinite(d.torque_nm)
        if faulted:
            assert d.state == SafetyState.FAULT and d.torque_nm == 0.0
        else:
            assert d.state != SafetyState.FAULT
        if math.isfinite(t_new):
            t, t_last = t_new, t_new


@settings(max_examples=examples(0.3), deadline=None)
@given(lim=limits_strategy(), steps=st.lists(period_step, min_size=1, max_size=40))
def test_same_inputs_give_the_same_decisions(lim: SafetyLimits, steps: list[dict]) -> None:
    """Deterministic: no clock or randomness inside, so a replay reproduces every decision."""

    def run() -> list:
        m, t, out = SafetyMonitor(lim), 0.0, []
        for s in steps:
            t += s["dt"]
            if s["joint"] is not None:
                m.on_sensor("joint_states", t - s["lag"], knee_angle_rad=s["joint"][0], knee_velocity_rad_s=s["joint"][1])
            if s["interaction"] is not None:
                m.on_sensor("interaction_thigh", t, interaction_torque_nm=s["interaction"])
            m.on_sensor("imu_thigh", t)
            if s["request"] is not None:
                m.on_request(t, s["request"])
            if s["event"] == "estop":
                m.estop()
            elif s["event"] == "reset":
                m.reset()
            out.append(m.update(t))
        return out

    assert run() == run()
