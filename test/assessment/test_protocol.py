"""The assessment protocol and its controller, without ROS (the reduced twin stands in for the person)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exo.assessment import AssessmentProtocol
from exo.control import make_controller
from exo.control.assessment import AssessmentController, parse_velocities
from exo.envs.observation import build_observation
from exo.paths import config_file
from exo.safety import SafetyLimits


def test_the_default_protocol_is_short_and_visits_every_speed_both_ways():
    p = AssessmentProtocol()
    assert 30.0 <= p.duration_s <= 90.0
    moves = [s for s in p.segments if s.kind != "hold"]
    assert len(moves) == 2 * len(p.velocities_deg_s) * p.repetitions
    assert {round(math.degrees(s.velocity_rad_s)) for s in moves} == {30, 90, 180}
    for a, b in zip(p.segments, p.segments[1:], strict=False):  # contiguous in time and angle
        assert math.isclose(a.end_s, b.start_s) and math.isclose(a.to_rad, b.from_rad)


def test_the_reference_is_continuous_and_bounded():
    p = AssessmentProtocol()
    t = np.arange(0.0, p.duration_s + 1.0, 0.001)
    ref = np.array([p.reference(x) for x in t])
    q, qd, qdd = ref.T
    assert q.min() >= p.extended_angle_rad - 1e-9 and q.max() <= p.flexed_angle_rad + 1e-9
    assert np.abs(np.diff(q)).max() <= math.radians(180.0) * 0.001 + 1e-9  # no jumps
    assert np.abs(qd).max() <= math.radians(180.0) + 1e-9
    assert np.abs(qdd).max() <= p.accel_rad_s2 + 1e-9
    # the position is the integral of the velocity
    assert np.allclose(np.cumsum(qd[:-1]) * 0.001 + q[0], q[1:], atol=2e-3)


@pytest.mark.parametrize(("field", "value"), [("extended_angle_rad", 1.6), ("velocities_deg_s", (0.0,)),
                                              ("repetitions", 0), ("hold_s", float("nan"))])
def test_bad_protocols_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        AssessmentProtocol(**{field: value})
    with pytest.raises(ValueError, match="unknown field"):
        AssessmentProtocol.from_mapping({"speed": 3})
    with pytest.raises(ValueError, match="velocities_deg_s"):
        parse_velocities("30,fast")


@pytest.mark.parametrize("level", [0, 3])
def test_the_controller_moves_a_passive_knee_within_the_monitors_cap_and_slew(level):
    from exo.twin import make_twin

    limits = SafetyLimits.from_yaml(config_file("safety.yaml"))
    controller = make_controller("assessment", torque_limit_nm=limits.user_torque_cap_nm,
                                 slew_limit_nm_s=limits.max_slew_rate_nm_per_s)
    assert isinstance(controller, AssessmentController)
    twin = make_twin("reduced")
    state = twin.reset(level, seed=3, initial_knee_angle_rad=controller.protocol.flexed_angle_rad)
    u, torques, angles, refs = 0.0, [], [], []
    while not controller.done:
        m = state.measurements
        refs.append(controller.protocol.reference(controller.time_s)[0])
        u = controller.act(build_observation(m, 0.2, u / 100.0, m.time_s))
        state = twin.step(u)
        torques.append(u)
        angles.append(state.measurements.exo_knee_angle_rad)
    torques, angles = np.array(torques), np.array(angles)
    assert np.abs(torques).max() <= limits.user_torque_cap_nm
    assert np.abs(np.diff(torques)).max() <= limits.max_slew_rate_nm_per_s * 0.01 + 1e-9
    assert angles.max() <= limits.joint_max_angle_rad
    if level == 0:  # no reflex: the knee follows the reference
        assert np.sqrt(np.mean((angles - np.array(refs)) ** 2)) < 0.06
        assert angles.min() < controller.protocol.extended_angle_rad + 0.05
    else:  # a spastic catch the cap cannot overcome: the knee lags, and the whole range is still visited
        assert angles.max() - angles.min() > 0.5


def _run_protocol(level: int, seed: int = 3):
    from exo.twin import make_twin

    controller, twin = AssessmentController(), make_twin("reduced")
    state = twin.reset(level, seed=seed, initial_knee_angle_rad=controller.protocol.flexed_angle_rad)
    rows, u = [], 0.0
    while not controller.done:
        m = state.measurements
        u = controller.act(build_observation(m, 0.2, u / 100.0, m.time_s))
        state = twin.step(u)
        s = state.measurements
        rows.append((controller.time_s, s.exo_knee_angle_rad, s.exo_knee_velocity_rad_s, u, s.interaction_torque_nm))
    return controller.protocol, np.array(rows).T


def test_the_summary_shows_velocity_dependent_resistance_only_in_a_spastic_knee():
    from exo.assessment.summary import summarise

    protocol, relaxed = _run_protocol(0)
    _, spastic = _run_protocol(2)
    a, b = summarise(protocol, *relaxed), summarise(protocol, *spastic)
    assert a.complete and b.complete and len(a.stretches) == 18
    # flexing back (the extensors stretched) against no reflex: little resistance at any speed; against a
    # level-2 reflex it grows with speed
    ra, rb = a.by_velocity(), b.by_velocity()
    assert max(ra[("flex", v)]["peak_resistance_nm"] for v in (30.0, 90.0, 180.0)) < 10.0
    assert rb[("flex", 180.0)]["peak_resistance_nm"] > rb[("flex", 30.0)]["peak_resistance_nm"] + 20.0
    assert rb[("extend", 180.0)]["lag_deg"] > ra[("extend", 180.0)]["lag_deg"] + 10.0
    with pytest.raises(ValueError, match="interaction_torque_nm holds NaN"):
        summarise(protocol, *relaxed[:4], np.full(relaxed.shape[1], np.nan))
