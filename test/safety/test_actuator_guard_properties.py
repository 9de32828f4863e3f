"""Property-based tests of the actuator guard: whatever arrives, its limits hold and foreigners change nothing.

Each example draws limits and a sequence of actuator cycles; in each, time advances, the knee angle
is measured (or not), and a mix of the monitor's authentic commands (any torque, stamp jitter, late,
early) and foreign ones (no MAC, forged MAC, replayed genuine ones) arrives. Checked after every
application: the cap, the slew rule, the hard range, zero torque without a fresh authentic command,
and that a second guard fed only the authentic commands applied exactly the same torques.

Example counts come from the active hypothesis profile (see conftest.py); bench/bench_safety_properties.py
raises them.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exo.safety.actuator_guard import ActuatorGuard, ActuatorLimits
from exo.security import COMMAND_PURPOSE, MessageSigner

KEY = bytes(range(32))
JOINT = "exo_knee"
EPS = 1e-9


def examples(weight: float) -> int:
    """``weight`` x the active profile's ``max_examples`` (read when the test is decorated), at least 1."""
    return max(1, round(weight * settings().max_examples))


@st.composite
def limits(draw) -> ActuatorLimits:
    lo = draw(st.floats(-0.5, 0.5))
    return ActuatorLimits(
        torque_cap_nm=draw(st.floats(1.0, 100.0)), max_slew_rate_nm_per_s=draw(st.floats(10.0, 5000.0)),
        joint_min_angle_rad=lo, joint_max_angle_rad=lo + draw(st.floats(0.1, 2.5)),
        control_period_s=0.01, max_command_age_s=draw(st.floats(0.005, 0.1)),
        max_future_stamp_s=draw(st.floats(0.0, 0.02)), max_angle_age_s=draw(st.floats(0.005, 0.1)))


torques = st.one_of(st.floats(-300.0, 300.0), st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300]))
cycle = st.fixed_dictionaries({
    "dt": st.sampled_from([0.0, 0.001, 0.009, 0.01, 0.011, 0.05, 0.2]),
    "angle": st.one_of(st.none(), st.floats(-1.0, 3.0)),
    "commands": st.lists(st.tuples(st.sampled_from(["monitor", "no_mac", "forged", "replay"]),
                                   st.floats(-0.05, 0.05), torques), max_size=3),
})


@settings(max_examples=examples(1.0), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits(), cycles=st.lists(cycle, min_size=1, max_size=60))
def test_the_guard_holds_its_limits_and_ignores_foreigners(lim: ActuatorLimits, cycles: list[dict]) -> None:
    attacked, clean = ActuatorGuard(lim, KEY, JOINT), ActuatorGuard(lim, KEY, JOINT)
    signer = MessageSigner(KEY, COMMAND_PURPOSE)
    genuine: list[tuple] = []
    t, u_prev, t_prev = 0.0, 0.0, None
    for c in cycles:
        t += c["dt"]
        if c["angle"] is not None:
            attacked.on_angle(t, c["angle"])
            clean.on_angle(t, c["angle"])
        for who, offset, torque in c["commands"]:
            stamp_ns = round((t + offset) * 1e9)
            if who == "monitor":
                seq, mac = signer.next(stamp_ns, JOINT, torque, "pid")
                msg = (stamp_ns, seq, JOINT, torque, "pid", mac)
                genuine.append(msg)
                assert attacked.on_command(t, *msg) == clean.on_command(t, *msg)
            elif who == "replay" and genuine:
                assert attacked.on_command(t, *genuine[0]) is not None or len(genuine) == 1
            else:
                mac = b"" if who == "no_mac" else bytes(32)
                assert attacked.on_command(t, stamp_ns, 10**9, JOINT, torque, "pid", mac) is not None
        a, b = attacked.apply(t), clean.apply(t)
        assert a == b, "a foreign message changed what the actuator applies"
        u = a.torque_nm
        assert abs(u) <= lim.torque_cap_nm + EPS
        if a.commanded_nm is None:
            assert u == 0.0
        removing = min(0.0, u_prev) - EPS <= u <= max(0.0, u_prev) + EPS
        dt = lim.control_period_s if t_prev is None else min(t - t_prev, lim.control_period_s)
        assert removing or abs(u - u_prev) <= lim.max_slew_rate_nm_per_s * dt * (1 + 1e-9) + 1e-7
        angle_known = c["angle"] is not None  # measured this cycle (older ones may have expired)
        if angle_known and u > 0.0:
            assert c["angle"] < lim.joint_max_angle_rad
        if angle_known and u < 0.0:
            assert c["angle"] > lim.joint_min_angle_rad
        u_prev, t_prev = u, t
