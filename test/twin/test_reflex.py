"""Spastic reflex model: the facts' equations, angle mapping, routing and per-subject noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exo.twin.config import load_twin_config
from exo.twin.reflex import (
    ANGLE_MAPPINGS,
    AngleMapping,
    SpasticityLevel,
    SpasticReflex,
    reference_coefficient,
    sample_subject,
    sigmoid,
)

CFG = load_twin_config()
LEVELS = CFG.spasticity.tables["paper"]
SEATED = ANGLE_MAPPINGS["seated_extension"]


def literal_c(theta_deg: float, v: float, p: SpasticityLevel) -> float:
    """The facts' equation written out with math.exp (independent of the module's sigmoid)."""

    def s(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    c_ang = p.l_ang * (2 - s(p.k_ang_per_deg * (theta_deg - p.a_flex_deg)) - s(-p.k_ang_per_deg * (theta_deg - p.a_ext_deg)))
    c_vel = p.l_vel * (2 - s(p.k_vel_s_per_rad * (v + p.v_lim_rad_s)) - s(-p.k_vel_s_per_rad * (v - p.v_lim_rad_s)))
    return c_ang + c_vel


def test_paper_table_values() -> None:
    ranges = [(p.a_flex_deg, p.a_ext_deg) for p in LEVELS]
    assert ranges == [(-45, 95), (-35, 80), (-30, 75), (-15, 60)]
    assert [p.v_lim_rad_s for p in LEVELS] == [10, 1, 0.5, 0.25]
    assert [p.l_ang for p in LEVELS] == [0, 0.2, 0.3, 0.3]
    assert [p.l_vel for p in LEVELS] == [0, 0.2, 0.3, 0.5]
    assert [p.k_ang_per_deg for p in LEVELS] == [0, 0.5, 0.2, 0.1]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_coefficient_matches_formula_inside_and_outside(level: int) -> None:
    p = LEVELS[level]
    reflex = SpasticReflex(p, SEATED)
    mid = 0.5 * (p.a_flex_deg + p.a_ext_deg)
    # table angles: inside, beyond each threshold; velocities: inside, beyond +-v_lim
    for theta in (mid, p.a_ext_deg + 20.0, p.a_flex_deg - 20.0, p.a_ext_deg, p.a_flex_deg):
        for v in (0.0, 2.0 * p.v_lim_rad_s, -2.0 * p.v_lim_rad_s, 0.5 * p.v_lim_rad_s):
            q = math.radians(90.0 - theta)  # seated_extension: theta = 90 - degrees(q)
            dq = -v  # table velocity = -dq/dt
            got = reflex.coefficient(q, dq)
            assert got == pytest.approx(literal_c(theta, v, p), abs=1e-12)
            assert got == pytest.approx(sum(reference_coefficient(theta, v, p)), abs=1e-12)


def test_coefficient_shape_levels_1_to_3() -> None:
    for p in LEVELS[1:]:
        r = SpasticReflex(p, SEATED)
        mid_q = math.radians(90.0 - 0.5 * (p.a_flex_deg + p.a_ext_deg))
        assert r.evaluate(mid_q, 0.0).c_ang < 0.1 * p.l_ang  # angle reflex quiet inside the range
        beyond_ext_q = math.radians(90.0 - (p.a_ext_deg + 40.0))
        assert r.evaluate(beyond_ext_q, 0.0).c_ang == pytest.approx(p.l_ang, rel=0.05)
        assert r.evaluate(mid_q, -5.0 * p.v_lim_rad_s).c_vel == pytest.approx(p.l_vel, rel=0.01)
    assert SpasticReflex(LEVELS[0], SEATED).coefficient(1.0, -5.0) == 0.0  # level 0: no reflex


def test_extension_side_thresholds_matter_for_the_task() -> None:
    """From 88.5 deg to 11.5 deg flexion (1.544 -> 0.2 rad) the task reaches the extension threshold of levels 1-3."""
    for p in LEVELS[1:]:
        r = SpasticReflex(p, SEATED)
        at_target = r.evaluate(0.2, 0.0)
        assert at_target.c_ang > 0.25 * p.l_ang  # table angle 78.5 deg: at/beyond a_ext (80, 75, 60)
        assert at_target.flexor_drive > at_target.extensor_drive  # ... which stretches the flexors
        assert r.evaluate(1.544, 0.0).c_ang < 0.2 * p.l_ang  # the start pose is inside the range


def test_faster_stretch_gives_more_activation() -> None:
    for p in LEVELS[1:]:
        r = SpasticReflex(p, SEATED)
        speeds = np.linspace(0.0, 4.0 * p.v_lim_rad_s, 9)
        flexor = [r.evaluate(1.0, -s).flexor_drive for s in speeds]  # extending stretches the flexors
        assert all(b > a for a, b in zip(flexor, flexor[1:], strict=False))
        assert flexor[-1] > flexor[0] + 0.5 * p.l_vel


def test_routing_stretched_velocity_sign_all() -> None:
    p = LEVELS[3]
    stretched = SpasticReflex(p, SEATED, "stretched").evaluate(0.8, -1.0)  # extending fast
    assert stretched.flexor_drive > 0.4 and stretched.extensor_drive < 0.1
    assert stretched.flexor_drive + stretched.extensor_drive == pytest.approx(stretched.coefficient)
    flexing = SpasticReflex(p, SEATED, "stretched").evaluate(0.8, +1.0)
    assert flexing.extensor_drive > 0.4 and flexing.flexor_drive < 0.1
    vs = SpasticReflex(p, SEATED, "velocity_sign")
    assert vs.evaluate(0.8, 1.0).extensor_drive == pytest.approx(vs.coefficient(0.8, 1.0))
    assert vs.evaluate(0.8, -1.0).flexor_drive == pytest.approx(vs.coefficient(0.8, -1.0))
    both = SpasticReflex(p, SEATED, "all").evaluate(0.8, -1.0)
    assert both.flexor_drive == both.extensor_drive == pytest.approx(both.coefficient)
    with pytest.raises(ValueError):
        SpasticReflex(p, SEATED, "bogus")  # type: ignore[arg-type]


def test_degrees_not_the_research_unit_bug() -> None:
    p = LEVELS[1]
    r = SpasticReflex(p, ANGLE_MAPPINGS["flexion_from_straight"])
    assert r.table_angle_deg(math.pi / 2) == pytest.approx(90.0)
    assert r.table_angle_deg(1.0) != pytest.approx(360.0 / 2.0 * math.pi)
    assert SpasticReflex(p, SEATED).table_angle_deg(0.2) == pytest.approx(90.0 - math.degrees(0.2))
    with pytest.raises(ValueError):
        AngleMapping("bad", 0.0, 2.0)


def test_sigmoid_is_overflow_free() -> None:
    assert sigmoid(1e6) == 1.0 and sigmoid(-1e6) == 0.0 and sigmoid(0.0) == 0.5
    r = SpasticReflex(LEVELS[3], SEATED)
    assert math.isfinite(r.coefficient(1.0, 1e5))


def test_subject_noise_statistics() -> None:
    nominal = LEVELS[2]
    rng = np.random.default_rng(1234)
    subjects = [sample_subject(nominal, rng, 0.1) for _ in range(4000)]
    for name in ("a_flex_deg", "a_ext_deg", "v_lim_rad_s", "l_ang", "l_vel", "k_ang_per_deg", "k_vel_s_per_rad"):
        x = np.array([getattr(s, name) for s in subjects])
        value = getattr(nominal, name)
        assert x.mean() == pytest.approx(value, abs=4 * 0.1 * abs(value) / math.sqrt(len(x)))
        assert x.std() == pytest.approx(0.1 * abs(value), rel=0.06)
    assert all(s.level == 2 for s in subjects)


def test_subject_noise_seeded_and_zero() -> None:
    a = sample_subject(LEVELS[1], np.random.default_rng(7))
    b = sample_subject(LEVELS[1], np.random.default_rng(7))
    c = sample_subject(LEVELS[1], np.random.default_rng(8))
    assert a == b and a != c
    assert sample_subject(LEVELS[1], np.random.default_rng(7), 0.0) == LEVELS[1]
    assert sample_subject(LEVELS[0], np.random.default_rng(7)).l_vel == 0.0  # 10 % of 0 is 0
    cfg_subject = CFG.spasticity.subject(3, seed=5)
    assert cfg_subject == CFG.spasticity.subject(3, seed=5)
    assert CFG.with_overrides(subject_noise=False).spasticity.subject(3, seed=5) == LEVELS[3]


def test_level_validation() -> None:
    with pytest.raises(ValueError):
        SpasticityLevel(4, -10, 10, 1, 0.1, 0.1, 1, 1)
    with pytest.raises(ValueError):
        SpasticityLevel(1, 10, -10, 1, 0.1, 0.1, 1, 1)
    with pytest.raises(ValueError):
        CFG.spasticity.make_reflex(5, 0)


@settings(max_examples=200, deadline=None)
@given(
    level=st.integers(0, 3),
    q=st.floats(-0.5, 2.5),
    v=st.floats(-20.0, 20.0),
    mapping=st.sampled_from(sorted(ANGLE_MAPPINGS)),
)
def test_reflex_properties(level: int, q: float, v: float, mapping: str) -> None:
    p = CFG.spasticity.tables["code"][level]
    r = SpasticReflex(p, ANGLE_MAPPINGS[mapping], "stretched")
    out = r.evaluate(q, v)
    theta = ANGLE_MAPPINGS[mapping].offset_deg + ANGLE_MAPPINGS[mapping].sign * math.degrees(q)
    v_table = ANGLE_MAPPINGS[mapping].sign * v
    assert out.coefficient == pytest.approx(sum(reference_coefficient(theta, v_table, p)), abs=1e-9)
    assert 0.0 <= out.coefficient <= 2.0 * (p.l_ang + p.l_vel) + 1e-12
    assert out.flexor_drive >= 0.0 and out.extensor_drive >= 0.0
    assert out.flexor_drive + out.extensor_drive == pytest.approx(out.coefficient, abs=1e-12)
