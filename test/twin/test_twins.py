"""Physics sanity of both twins (full MyoLeg and reduced), through the KneeTwin interface."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from exo.twin import make_twin
from exo.twin.full import MyoLegKneeTwin, characterize_knee
from exo.twin.interface import KneeTwin, TwinState
from exo.twin.reduced import ReducedKneeTwin

KINDS = ("full", "reduced")
#: MuJoCo joint limits are soft: allowed overtravel of the 5 mm strap stop under 100 N m impacts, m.
LIMIT_OVERTRAVEL_M = 0.6e-3


@pytest.fixture(scope="module")
def twins() -> dict[str, KneeTwin]:
    return {kind: make_twin(kind, subject_noise=False) for kind in KINDS}


def run(twin: KneeTwin, level: int, torques: list[float] | np.ndarray, start: float | None = None, seed: int = 0) -> list[TwinState]:
    states = [twin.reset(level=level, seed=seed, initial_knee_angle_rad=start)]
    states += [twin.step(float(u)) for u in torques]
    return states


@pytest.mark.parametrize("kind", KINDS)
def test_interface_attributes(twins: dict[str, KneeTwin], kind: str) -> None:
    twin = twins[kind]
    assert twin.kind == kind
    assert twin.control_timestep_s == pytest.approx(0.01)
    assert twin.max_exo_torque_nm == 100.0
    s = twin.reset(level=1, seed=0)
    assert s.human_knee_angle_rad == pytest.approx(1.544)
    assert s.measurements.exo_knee_angle_rad == pytest.approx(1.544, abs=0.01)
    assert twin.state is s
    s2 = twin.step(0.0)
    assert s2.measurements.time_s == pytest.approx(0.01)
    assert len(s2.muscle_names) == len(s2.muscle_activations)


@pytest.mark.parametrize("kind", KINDS)
def test_gravity_flexes_the_released_knee(twins: dict[str, KneeTwin], kind: str) -> None:
    states = run(twins[kind], 0, [0.0] * 25, start=0.3)
    angles = [s.human_knee_angle_rad for s in states]
    assert angles[-1] > 0.3 + 0.5  # falls into flexion
    assert all(b >= a - 1e-3 for a, b in zip(angles[:12], angles[1:12], strict=False))  # monotonic at first
    assert states[5].measurements.exo_knee_angle_rad > 0.3  # the exo follows


@pytest.mark.parametrize("kind", KINDS)
def test_level3_resists_fast_extension_more_than_level0(twins: dict[str, KneeTwin], kind: str) -> None:
    torque = {}
    travelled = {}
    for level in (0, 3):
        states = run(twins[kind], level, [-100.0] * 30)
        torque[level] = float(np.mean([s.muscle_knee_torque_nm for s in states[1:]]))
        travelled[level] = states[0].human_knee_angle_rad - states[-1].human_knee_angle_rad
        coeff = max(s.spasticity_coefficient for s in states)
        assert (coeff == 0.0) if level == 0 else (coeff > 0.4)
    assert torque[3] > torque[0] + 30.0  # flexing (resistive) muscle torque, N m
    assert travelled[3] < 0.6 * travelled[0]


@pytest.mark.parametrize("kind", KINDS)
def test_exo_torque_is_clipped(twins: dict[str, KneeTwin], kind: str) -> None:
    twin = twins[kind]
    twin.reset(level=0, seed=0)
    for request, expected in ((1e6, 100.0), (-1e6, -100.0), (37.5, 37.5)):
        m = twin.step(request).measurements
        assert m.exo_motor_torque_nm == pytest.approx(expected)
        assert abs(m.exo_motor_torque_nm) <= 100.0 + 1e-9
    with pytest.raises(ValueError):
        twin.step(float("nan"))


@pytest.mark.parametrize("kind", KINDS)
def test_strap_slide_stays_within_5mm(twins: dict[str, KneeTwin], kind: str) -> None:
    rng = np.random.default_rng(0)
    torques = np.concatenate([rng.uniform(-100, 100, 60), [1e6] * 40, [-1e6] * 40, rng.uniform(-1e6, 1e6, 20)])
    worst = 0.0
    for level, start in ((0, 1.544), (3, 0.6)):
        states = run(twins[kind], level, torques, start=start)
        worst = max(worst, max(abs(s.strap_slide_m) for s in states))
        assert all(math.isfinite(s.human_knee_angle_rad) for s in states)
    assert worst <= 0.005 + LIMIT_OVERTRAVEL_M
    assert worst > 1e-4  # the strap does move


@pytest.mark.parametrize("kind", KINDS)
def test_interaction_torque_sign_and_measurement_conventions(twins: dict[str, KneeTwin], kind: str) -> None:
    states = run(twins[kind], 0, [-40.0] * 15)
    mid = states[10]
    m = mid.measurements
    assert m.interaction_torque_nm < -10.0  # the exo extends the human knee
    assert m.exo_knee_velocity_rad_s < 0.0 and mid.human_knee_velocity_rad_s < 0.0
    assert m.exo_knee_angle_rad == pytest.approx(mid.human_knee_angle_rad, abs=0.06)
    assert m.thigh_pitch_rad - m.shank_pitch_rad == pytest.approx(m.exo_knee_angle_rad, abs=0.03)
    # the shank IMU rate is the derivative of its pitch
    fd = (states[11].measurements.shank_pitch_rad - states[9].measurements.shank_pitch_rad) / 0.02
    assert m.shank_angular_velocity_rad_s == pytest.approx(fd, rel=0.15, abs=0.05)


@pytest.mark.parametrize("kind", KINDS)
def test_the_thigh_strap_torque_is_measured_not_copied_from_the_shank(twins: dict[str, KneeTwin], kind: str) -> None:
    """The thigh strap takes the motor's reaction: at rest it equals the shank strap's torque (same sign,
    flexing = +); while the knee accelerates or the exo hits a stop they differ (links, straps, stops)."""
    states = run(twins[kind], 1, [20.0] * 40 + [-30.0] * 40 + [50.0] * 40, start=0.8)
    thigh = np.array([s.measurements.thigh_interaction_torque_nm for s in states])
    shank = np.array([s.measurements.interaction_torque_nm for s in states])
    assert np.all(np.isfinite(thigh))
    for end, motor in ((39, 20.0), (79, -30.0)):  # settled holds: both carry about the motor's torque
        assert thigh[end] == pytest.approx(motor, abs=3.0)
        assert thigh[end] == pytest.approx(shank[end], abs=5.0)
    assert np.max(np.abs(thigh - shank)) > 2.0  # not the same signal


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_subject_and_trajectory(twins: dict[str, KneeTwin], kind: str) -> None:
    noisy = make_twin(kind)  # subject noise on
    torques = np.linspace(-60, 20, 20)
    a = [s.measurements for s in run(noisy, 2, torques, seed=11)]
    subject_a = noisy.subject  # type: ignore[attr-defined]
    b = [s.measurements for s in run(noisy, 2, torques, seed=11)]
    assert a == b and noisy.subject == subject_a  # type: ignore[attr-defined]
    run(noisy, 2, [], seed=12)
    assert noisy.subject != subject_a  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_reset_validation(kind: str, twins: dict[str, KneeTwin]) -> None:
    fresh = make_twin(kind)
    with pytest.raises(RuntimeError):
        fresh.step(0.0)
    with pytest.raises(ValueError):
        twins[kind].reset(level=4, seed=0)
    with pytest.raises(ValueError):
        twins[kind].reset(level=1, seed=0, initial_knee_angle_rad=3.0)
    with pytest.raises(ValueError, match="exo's stops"):
        twins[kind].reset(level=1, seed=0, initial_knee_angle_rad=1.9)  # beyond the exo's 105 deg stop


def test_reduced_twin_matches_full_statics(twins: dict[str, KneeTwin]) -> None:
    """The reduced twin's gravity, passive and maximal group torques follow the full twin's."""
    full, reduced = twins["full"], twins["reduced"]
    assert isinstance(full, MyoLegKneeTwin) and isinstance(reduced, ReducedKneeTwin)
    angles = np.linspace(0.1, 1.8, 8)
    char = characterize_knee(full, angles)
    m, d = reduced.model, mujoco.MjData(reduced.model)
    knee = reduced._knee_v  # noqa: SLF001 - test inspects the model
    grav, passive, flex = [], [], []
    for a in angles:
        mujoco.mj_resetData(m, d)
        d.qpos[reduced._knee_q] = d.qpos[reduced._exo_q] = a  # noqa: SLF001
        mujoco.mj_forward(m, d)
        grav.append(-d.qfrc_bias[knee])
        passive.append(d.qfrc_actuator[knee])
        d.act[m.actuator_actadr[reduced._flexor]] = 1.0  # noqa: SLF001
        mujoco.mj_forward(m, d)
        flex.append(d.qfrc_actuator[knee] - passive[-1])
    np.testing.assert_allclose(grav, char.gravity_torque_nm, atol=0.3)
    np.testing.assert_allclose(passive, char.passive_torque_nm, atol=6.0)
    np.testing.assert_allclose(flex, char.flexor_max_torque_nm, atol=60.0)  # RMS fit error ~30 N m of ~300
    assert np.mean(char.effective_inertia_kg_m2) == pytest.approx(
        reduced.config.reduced.shank_inertia_kg_m2 + reduced.config.reduced.shank_mass_kg * reduced.config.reduced.shank_com_m**2
        + reduced.config.human.knee_armature_kg_m2, rel=0.05)


def test_full_model_structure(twins: dict[str, KneeTwin]) -> None:
    full = twins["full"]
    assert isinstance(full, MyoLegKneeTwin)
    m = full.model
    names = [m.joint(i).name for i in range(m.njnt)]
    assert "knee_angle_r" in names and "ankle_angle_r" in names
    assert not any(n.startswith("hip_") or n.endswith("_l") for n in names)  # femur fixed, no left leg
    muscles = [m.actuator(i).name for i in range(m.nu) if m.actuator_dyntype[i] == mujoco.mjtDyn.mjDYN_MUSCLE]
    assert len(muscles) == 40 and all(n.endswith("_r") for n in muscles)
    assert m.opt.timestep == 0.001
    eq_types = sorted(int(t) for t in m.eq_type)
    assert eq_types.count(int(mujoco.mjtEq.mjEQ_JOINT)) == 7 and eq_types.count(int(mujoco.mjtEq.mjEQ_CONNECT)) == 1
    assert m.body_mass[m.body("exo_upper").id] == 1.1 and m.body_mass[m.body("exo_lower").id] == 7.4
    # thigh horizontal, shank hanging at 90 deg: the IMUs see it
    s = full.reset(level=0, seed=0, initial_knee_angle_rad=math.pi / 2)
    assert s.measurements.thigh_pitch_rad == pytest.approx(0.0, abs=0.02)
    assert s.measurements.shank_pitch_rad == pytest.approx(-math.pi / 2, abs=0.03)
