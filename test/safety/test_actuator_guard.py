"""The actuator side's guard (exo.safety.actuator_guard): who may move the knee, and its own limits."""

from __future__ import annotations

import math

import pytest

from exo.safety.actuator_guard import (
    LIMIT_ANGLE_UNKNOWN,
    LIMIT_CAP,
    LIMIT_RANGE,
    LIMIT_SLEW,
    LIMIT_STALE,
    ActuatorGuard,
    ActuatorLimits,
)
from exo.security import COMMAND_PURPOSE, REQUEST_PURPOSE, MessageSigner

KEY = b"k" * 32
JOINT = "exo_knee"
PERIOD = 0.01


class Monitor:
    """Signs commands as the safety monitor does (the run's command key)."""

    def __init__(self, key: bytes = KEY, purpose: str = COMMAND_PURPOSE) -> None:
        self.signer = MessageSigner(key, purpose)

    def command(self, t: float, torque: float, source: str = "pid", joint: str = JOINT) -> tuple:
        stamp_ns = round(t * 1e9)
        seq, mac = self.signer.next(stamp_ns, joint, torque, source)
        return stamp_ns, seq, joint, torque, source, mac


def guard(**limits) -> ActuatorGuard:
    g = ActuatorGuard(ActuatorLimits(**limits), KEY, JOINT)
    g.on_angle(0.0, 1.0)
    return g


def test_only_the_monitors_fresh_authenticated_commands_are_applied():
    g, monitor = guard(), Monitor()
    assert g.on_command(0.0, *monitor.command(0.0, 3.0)) is None
    assert g.apply(0.0).torque_nm == 3.0
    # no MAC, a forged MAC, another key, a request's signature: refused, nothing changes
    stamp = round(0.01 * 1e9)
    assert g.on_command(0.01, stamp, 99, JOINT, 100.0, "pid", b"") == "unauthenticated"
    assert g.on_command(0.01, stamp, 99, JOINT, 100.0, "pid", b"x" * 32) == "bad_mac"
    assert g.on_command(0.01, *Monitor(b"o" * 32).command(0.01, 100.0)) == "bad_mac"
    assert g.on_command(0.01, *Monitor(KEY, REQUEST_PURPOSE).command(0.01, 100.0)) == "bad_mac"
    # a genuine command played again later (a recorded bag on the same domain): out of sequence
    old = monitor.command(0.01, 4.0)
    assert g.on_command(0.01, *old) is None
    assert g.on_command(0.015, *monitor.command(0.015, 5.0)) is None
    assert g.on_command(0.02, *old) == "out_of_sequence"
    # from the future (more than one period ahead), too old, another joint, not finite
    assert g.on_command(0.02, *monitor.command(0.02 + 0.0101, 5.0)) == "future_stamp"
    assert g.on_command(0.10, *monitor.command(0.06, 5.0)) == "late"
    assert g.on_command(0.02, *monitor.command(0.02, 5.0, joint="other")) == "other_joint"
    assert g.on_command(0.02, *monitor.command(0.02, math.nan)) == "not_finite"
    assert g.refused == {"unauthenticated": 1, "bad_mac": 3, "out_of_sequence": 1, "future_stamp": 1, "late": 1,
                         "other_joint": 1, "not_finite": 1}
    assert g.accepted == 3
    assert g.apply(0.02).torque_nm == 5.0  # the newest accepted command
    # no fresh command after max_command_age_s: zero torque
    assert g.apply(0.015 + 0.03 + 1e-6) == type(g.apply(0.0))(0.0, None, (LIMIT_STALE,))


def test_the_guard_limits_cap_slew_and_range_on_its_own_copy():
    g, monitor = guard(torque_cap_nm=40.0, max_slew_rate_nm_per_s=400.0), Monitor()
    t, applied = 0.0, []
    for _ in range(15):
        g.on_command(t, *monitor.command(t, 100.0))
        applied.append(g.apply(t))
        g.on_angle(t, 1.0)
        t += PERIOD
    # ramps at 4 N m per period, then the cap
    assert [a.torque_nm for a in applied[:3]] == pytest.approx([4.0, 8.0, 12.0])
    assert applied[0].limits == (LIMIT_CAP, LIMIT_SLEW)
    assert applied[-1].torque_nm == 40.0 and applied[-1].limits == (LIMIT_CAP,)
    # removing torque is never delayed, reversing is
    g.on_command(t, *monitor.command(t, 0.0))
    assert g.apply(t).torque_nm == 0.0
    t += PERIOD
    g.on_command(t, *monitor.command(t, -30.0))
    assert g.apply(t).torque_nm == pytest.approx(-4.0)
    # at the flexion limit no flexing torque, extending torque passes; unknown angle: zero
    g2 = guard(torque_cap_nm=40.0)
    m2 = Monitor()
    g2.on_angle(0.0, 1.86)
    g2.on_command(0.0, *m2.command(0.0, 3.0))
    first = g2.apply(0.0)
    assert first.limits == (LIMIT_RANGE,) and first.torque_nm == 0.0
    g2.on_command(0.01, *m2.command(0.01, -3.0))
    assert g2.apply(0.01).torque_nm == -3.0
    g2.on_command(0.1, *m2.command(0.1, -3.0))
    assert g2.apply(0.1).limits == (LIMIT_ANGLE_UNKNOWN,)  # the last angle is 0.1 s old


def test_limits_are_validated_with_names():
    with pytest.raises(ValueError, match="guard.torque_cap_nm: must be > 0"):
        ActuatorLimits(torque_cap_nm=0.0)
    with pytest.raises(ValueError, match="guard.joint_min_angle_rad"):
        ActuatorLimits(joint_min_angle_rad=2.0)
    with pytest.raises(ValueError, match="finite number"):
        ActuatorLimits(max_slew_rate_nm_per_s=math.inf)


def test_the_config_file_keeps_the_guard_at_or_outside_the_monitors_limits():
    from exo.params import load_node_parameters
    from exo.paths import config_file
    from exo.safety import SafetyLimits

    monitor = SafetyLimits.from_yaml(config_file("safety.yaml"))
    sections = [load_node_parameters(config_file("actuator_guard.yaml"), node)["guard"]
                for node in ("sim_bridge", "actuator_driver")]
    assert sections[0] == sections[1], "the sim bridge and the actuator driver must guard alike"
    limits = ActuatorLimits(**sections[0])
    assert limits == ActuatorLimits()  # the file equals the documented defaults
    assert limits.torque_cap_nm >= monitor.torque_cap_nm
    assert limits.max_slew_rate_nm_per_s >= monitor.max_slew_rate_nm_per_s
    assert limits.joint_min_angle_rad <= monitor.joint_min_angle_rad
    assert limits.joint_max_angle_rad >= monitor.joint_max_angle_rad
    assert limits.control_period_s == monitor.control_period_s
