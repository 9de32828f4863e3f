"""Reduced digital twin: a 1-DoF knee with lumped muscles and a torsional strap (kind "reduced").

A small MuJoCo model written as MJCF in code (same 1 ms x 10 stepping, same
interface, same :class:`~exo.twin.reflex.SpasticReflex` as the full twin):

- ``knee`` hinge (+ = flexion, axis world +y, 0 = shank horizontal forward, thigh
  fixed horizontal) carrying the shank + foot (mass, COM offset and inertia fitted
  to the full twin);
- two MuJoCo muscle actuators on the knee's joint transmission, ``flexors`` and
  ``extensors``, each the lumped version of the full twin's spastic group (7
  flexors, 4 extensors): constant moment arm, force-length/passive curves and
  peak force fitted so that, at every knee angle, the group's maximal isometric
  torque and the total passive torque match the full twin (:func:`fit_reduced`);
  activation dynamics (10/40 ms) as MyoLeg. The other 29 MyoLeg muscles only add
  passive torque in the full twin, which the fitted passive curves absorb;
- ``exo_flexion`` hinge (negative = flexion, like the full twin) coaxial with the
  knee, carrying the exo lower link (same mass/COM/inertia as the full twin), with
  the motor (gear 100, ctrlrange [-1, 1]);
- the straps as a fixed tendon ``strap = q_exo_flexion_angle - q_knee`` with a
  torsional stiffness/damping (``reduced.strap_*``: the thigh slide's 20 kN/m seen
  through the 0.29 m shank lever) and a limit of +-``exo.strap_slide_range_m /
  reduced.strap_lever_m`` rad. ``TwinState.strap_slide_m`` reports
  ``strap_lever_m * strap`` (the equivalent strap travel, m).

Interaction torque = the tendon's spring + damper + limit force on the human knee
(+ = flexing). Thigh strap torque: the thigh carries the exo frame rigidly, so it takes the
reaction of everything acting across the exo knee joint (motor, joint damping, end stops),
as a torque that flexes the knee (+); at rest it equals the shank strap's torque. Thigh IMU: the thigh is fixed (pitch 0, rate 0); shank IMU: on the
exo lower link (pitch = -exo knee angle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from exo.twin.config import MuscleGroupConfig, TwinConfig, load_twin_config
from exo.twin.full import KneeCharacterization
from exo.twin.interface import Measurements, TwinState
from exo.twin.reflex import SpasticityLevel, SpasticReflex
from exo.twin.stepping import MuJoCoTwinStepping

MUSCLE_GROUPS = ("flexors", "extensors")


def _muscle_xml(name: str, g: MuscleGroupConfig, flexor: bool, knee_max_rad: float) -> str:
    """A MuJoCo muscle on the knee: flexors shorten with flexion (gear = -r), extensors lengthen (gear = +r)."""
    r = g.moment_arm_m
    straight, flexed = g.length_range
    if flexor:
        gear, lengthrange, rng = -r, (-r * knee_max_rad, 0.0), (flexed, straight)
    else:
        gear, lengthrange, rng = r, (0.0, r * knee_max_rad), (straight, flexed)
    if not rng[0] < rng[1]:
        raise ValueError(f"reduced.{name}.length_range {g.length_range} must make the muscle longer when stretched")
    return (
        f'<muscle name="{name}" joint="knee" gear="{gear!r}" lengthrange="{lengthrange[0]!r} {lengthrange[1]!r}" '
        f'range="{rng[0]!r} {rng[1]!r}" force="{g.max_isometric_force_n!r}" lmin="{g.lmin!r}" lmax="{g.lmax!r}" '
        f'vmax="{g.vmax_l0_s!r}" fpmax="{g.passive_force_max!r}" fvmax="{g.fvmax!r}" '
        f'timeconst="{g.activation_tau_s[0]!r} {g.activation_tau_s[1]!r}"/>'
    )


def reduced_mjcf(cfg: TwinConfig) -> str:
    """The reduced model as an MJCF string (world x forward, y left, z up; knee at the origin of ``thigh``)."""
    rd, e, h = cfg.reduced, cfg.exo, cfg.human
    lo, hi = h.knee_range_rad
    # shank COM: ``shank_com_m`` along the shank, ``shank_com_angle_rad`` below its axis
    cx = rd.shank_com_m * math.cos(rd.shank_com_angle_rad)
    cz = -rd.shank_com_m * math.sin(rd.shank_com_angle_rad)
    i_s = rd.shank_inertia_kg_m2
    exo_across = e.lower_link_mass_kg * (e.lower_link_length_m**2 + e.link_width_m**2) / 12.0
    exo_along = e.lower_link_mass_kg * 2.0 * e.link_width_m**2 / 12.0
    strap_limit = e.strap_slide_range_m / rd.strap_lever_m
    solref = f"{e.limit_timeconst_s!r} 1"
    solimp = " ".join(repr(x) for x in e.limit_solimp)
    return f"""
<mujoco model="exo_knee_reduced">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{cfg.sim.physics_timestep_s!r}" gravity="0 0 {-cfg.sim.gravity_m_s2!r}" jacobian="dense">
    <flag contact="disable"/>
  </option>
  <worldbody>
    <body name="thigh" pos="0 0 {h.pelvis_height_m!r}">
      <geom type="capsule" fromto="-0.4 0 0 0 0 0" size="0.06" mass="0" contype="0" conaffinity="0" rgba="0.8 0.7 0.5 0.4"/>
      <site name="thigh_imu" pos="-0.1 0 0.07"/>
      <body name="shank">
        <joint name="knee" type="hinge" axis="0 1 0" range="{lo!r} {hi!r}" damping="{h.knee_damping_nm_s_rad!r}"
               armature="{h.knee_armature_kg_m2!r}" solreflimit="{solref}" solimplimit="{solimp} 0.5 2"/>
        <inertial pos="{cx!r} 0 {cz!r}" mass="{rd.shank_mass_kg!r}" diaginertia="{i_s!r} {i_s!r} {i_s!r}"/>
        <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.05" mass="0" contype="0" conaffinity="0" rgba="0.8 0.7 0.5 0.4"/>
      </body>
      <body name="exo_lower">
        <joint name="exo_flexion" type="hinge" axis="0 1 0" range="{math.radians(-e.knee_range_deg[1])!r} {math.radians(-e.knee_range_deg[0])!r}"
               damping="{e.knee_damping_nm_s_rad!r}" armature="{e.knee_armature_kg_m2!r}" solreflimit="{e.knee_stop_timeconst_s!r} 1"/>
        <inertial pos="{e.lower_link_com_m!r} 0 0" mass="{e.lower_link_mass_kg!r}" diaginertia="{exo_along!r} {exo_across!r} {exo_across!r}"/>
        <geom type="capsule" fromto="0 0.08 0 {e.lower_link_length_m!r} 0.08 0" size="0.02" mass="0" contype="0" conaffinity="0" rgba="0.2 0.4 0.8 0.6"/>
        <site name="shank_imu" pos="{e.lower_link_length_m / 2.0!r} 0.08 0"/>
      </body>
    </body>
  </worldbody>
  <tendon>
    <fixed name="strap" stiffness="{rd.strap_stiffness_nm_rad!r}" damping="{rd.strap_damping_nm_s_rad!r}"
           range="{-strap_limit!r} {strap_limit!r}" solreflimit="{solref}" solimplimit="{solimp} 0.5 2">
      <joint joint="exo_flexion" coef="1"/>
      <joint joint="knee" coef="-1"/>
    </fixed>
  </tendon>
  <actuator>
    {_muscle_xml("flexors", rd.flexors, True, hi)}
    {_muscle_xml("extensors", rd.extensors, False, hi)}
    <motor name="exo_motor" joint="exo_flexion" gear="{-e.motor_gear!r}" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


class ReducedKneeTwin(MuJoCoTwinStepping):
    """Fast 1-DoF knee twin (conforms to :class:`exo.twin.interface.KneeTwin`).

    In this model ``exo_flexion`` uses the world +y axis like the knee, so its
    qpos is + = flexion directly (the full twin's MuJoCo joint is negative in
    flexion; the interface hides the difference). The motor gear is
    ``-motor_gear`` so that ``ctrl = -torque / motor_gear`` as in the full twin.

    Args:
        config: the twin configuration (default: ``config/twin.yaml``).
    """

    kind = "reduced"

    def __init__(self, config: TwinConfig | None = None) -> None:
        self.config = config if config is not None else load_twin_config()
        cfg = self.config
        self.model = mujoco.MjModel.from_xml_string(reduced_mjcf(cfg))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.control_timestep_s = cfg.sim.control_timestep_s
        self.max_exo_torque_nm = float(cfg.exo.max_torque_nm)
        self._nstep = cfg.sim.physics_steps_per_control
        self._gear = float(cfg.exo.motor_gear)
        self._knee_q = int(m.jnt_qposadr[m.joint("knee").id])
        self._knee_v = int(m.jnt_dofadr[m.joint("knee").id])
        self._exo_q = int(m.jnt_qposadr[m.joint("exo_flexion").id])
        self._exo_v = int(m.jnt_dofadr[m.joint("exo_flexion").id])
        self._flexor = m.actuator("flexors").id
        self._extensor = m.actuator("extensors").id
        self._motor = m.actuator("exo_motor").id
        self._strap = m.tendon("strap").id
        self._strap_k = float(m.tendon_stiffness[self._strap])
        self._strap_b = float(m.tendon_damping[self._strap])
        self._lever = cfg.reduced.strap_lever_m
        self._limit_tendon = int(mujoco.mjtConstraint.mjCNSTR_LIMIT_TENDON)
        self._limit_joint = int(mujoco.mjtConstraint.mjCNSTR_LIMIT_JOINT)
        self._exo_joint = m.joint("exo_flexion").id
        self._exo_damping = float(m.dof_damping[self._exo_v])
        adr = m.actuator_actadr[[self._flexor, self._extensor]]
        if not (adr[1] == adr[0] + 1):
            raise RuntimeError("reduced twin: muscle activations are expected to be contiguous")
        self._act = slice(int(adr[0]), int(adr[0]) + 2)
        # persistent views of MjData buffers (property access allocates a new array object each time)
        self._qpos, self._qvel, self._ctrl = self.data.qpos, self.data.qvel, self.data.ctrl
        self._actuator_force, self._qfrc_actuator = self.data.actuator_force, self.data.qfrc_actuator
        self._ten_length, self._ten_velocity, self._act_state = self.data.ten_length, self.data.ten_velocity, self.data.act
        self.muscle_names = MUSCLE_GROUPS
        self._reflex: SpasticReflex | None = None
        self._level = 0
        self._coefficient = 0.0
        self._state: TwinState | None = None

    def reset(self, level: int, seed: int | None = None, initial_knee_angle_rad: float | None = None,
              *, subject: SpasticityLevel | None = None) -> TwinState:
        """New trial: a subject of MAS ``level`` (noise seeded by ``seed``), knee and exo at rest at the start angle.

        ``subject`` runs given reflex parameters instead of a generated subject (``level`` must be
        ``subject.level``; ``seed`` is then unused).
        """
        self._reflex = self.config.spasticity.make_reflex(level, seed, subject)
        self._level = int(level)
        angle = self._initial_angle(initial_knee_angle_rad)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._knee_q] = angle
        d.qpos[self._exo_q] = angle
        self._apply_reflex()
        mujoco.mj_forward(m, d)
        self._state = self._make_state()
        return self._state

    @property
    def subject(self) -> SpasticityLevel | None:
        """Reflex parameters of the current subject (ground truth; None before the first reset)."""
        return None if self._reflex is None else self._reflex.params

    def _apply_reflex(self) -> None:
        out = self._reflex.evaluate(float(self._qpos[self._knee_q]), float(self._qvel[self._knee_v]))  # type: ignore[union-attr]
        self._coefficient = out.c_ang + out.c_vel
        ctrl = self._ctrl
        ctrl[self._flexor] = min(max(out.flexor_drive + self._voluntary_flexor_drive, 0.0), 1.0)
        ctrl[self._extensor] = min(max(out.extensor_drive + self._voluntary_extensor_drive, 0.0), 1.0)

    def interaction_torque_nm(self) -> float:
        """Strap torque on the human knee, N m (+ = flexing): spring + damper + limit of the strap tendon."""
        d = self.data
        s = self._strap
        tau = self._strap_k * float(self._ten_length[s]) + self._strap_b * float(self._ten_velocity[s])
        n = d.nefc
        if n:
            nv = self.model.nv
            for row in np.flatnonzero(d.efc_type[:n] == self._limit_tendon):
                tau += float(d.efc_J[row * nv + self._knee_v] * d.efc_force[row])
        return tau

    def thigh_interaction_torque_nm(self) -> float:
        """Torque the thigh strap transmits to the thigh, N m (+ = flexing the knee), see module doc: motor +
        damping + end-stop force across the exo knee joint (the exo's upper frame is massless and rigid here)."""
        m, d = self.model, self.data
        v = self._exo_v
        tau = float(self._qfrc_actuator[v]) - self._exo_damping * float(self._qvel[v])
        n = d.nefc
        if n:
            rows = np.flatnonzero((d.efc_type[:n] == self._limit_joint) & (d.efc_id[:n] == self._exo_joint))
            for row in rows:
                tau += float(d.efc_J[row * m.nv + v] * d.efc_force[row])
        return tau

    def _make_state(self) -> TwinState:
        qpos, qvel = self._qpos, self._qvel
        exo_q = float(qpos[self._exo_q])
        exo_v = float(qvel[self._exo_v])
        meas = Measurements(
            time_s=self.data.time,
            exo_knee_angle_rad=exo_q,
            exo_knee_velocity_rad_s=exo_v,
            exo_motor_torque_nm=-self._gear * float(self._actuator_force[self._motor]),
            thigh_pitch_rad=0.0,
            shank_pitch_rad=-exo_q,
            thigh_angular_velocity_rad_s=0.0,
            shank_angular_velocity_rad_s=-exo_v,
            interaction_torque_nm=self.interaction_torque_nm(),
            thigh_interaction_torque_nm=self.thigh_interaction_torque_nm(),
        )
        return TwinState(
            measurements=meas,
            human_knee_angle_rad=float(qpos[self._knee_q]),
            human_knee_velocity_rad_s=float(qvel[self._knee_v]),
            strap_slide_m=self._lever * float(self._ten_length[self._strap]),
            spasticity_level=self._level,
            spasticity_coefficient=self._coefficient,
            muscle_names=self.muscle_names,
            muscle_activations=self._act_state[self._act].copy(),
            muscle_knee_torque_nm=float(self._qfrc_actuator[self._knee_v]),
        )


# ----------------------------------------------------------------------------- fitting to the full twin


def mujoco_active_fl(length: np.ndarray, lmin: float, lmax: float) -> np.ndarray:
    """MuJoCo's active force-length curve (``mju_muscleGainLength``), vectorised."""
    a = 0.5 * (lmin + 1.0)
    b = 0.5 * (1.0 + lmax)
    x_len = np.asarray(length, dtype=float)
    out = np.zeros_like(x_len)
    m1 = (x_len > lmin) & (x_len <= a)
    out[m1] = 0.5 * ((x_len[m1] - lmin) / (a - lmin)) ** 2
    m2 = (x_len > a) & (x_len <= 1.0)
    out[m2] = 1.0 - 0.5 * ((1.0 - x_len[m2]) / (1.0 - a)) ** 2
    m3 = (x_len > 1.0) & (x_len <= b)
    out[m3] = 1.0 - 0.5 * ((x_len[m3] - 1.0) / (b - 1.0)) ** 2
    m4 = (x_len > b) & (x_len < lmax)
    out[m4] = 0.5 * ((lmax - x_len[m4]) / (lmax - b)) ** 2
    return out


def mujoco_passive_fl(length: np.ndarray, lmax: float, fpmax: float) -> np.ndarray:
    """MuJoCo's passive force-length curve (muscle bias), in units of F0, vectorised."""
    b = 0.5 * (1.0 + lmax)
    x_len = np.asarray(length, dtype=float)
    out = np.zeros_like(x_len)
    m1 = (x_len > 1.0) & (x_len <= b)
    out[m1] = fpmax * 0.5 * ((x_len[m1] - 1.0) / (b - 1.0)) ** 2
    m2 = x_len > b
    out[m2] = fpmax * (0.5 + (x_len[m2] - b) / (b - 1.0))
    return out


@dataclass(frozen=True)
class ReducedFit:
    """Result of :func:`fit_reduced`: the fitted parameters and the fit's RMS errors (N m)."""

    shank_mass_kg: float
    shank_com_m: float
    shank_com_angle_rad: float
    shank_inertia_kg_m2: float
    flexors: MuscleGroupConfig
    extensors: MuscleGroupConfig
    rms_gravity_nm: float
    rms_passive_nm: float
    rms_flexor_nm: float
    rms_extensor_nm: float


def fit_reduced(char: KneeCharacterization, cfg: TwinConfig) -> ReducedFit:
    """Fit the reduced twin's shank and muscle groups to a full-twin characterisation.

    Args:
        char: characterisation of the full twin (:func:`exo.twin.full.characterize_knee`).
        cfg: configuration whose fvmax and activation time constants are kept.

    Gravity: ``tau_g = m g c cos(q + phi)`` fitted by linear least squares in
    (cos q, sin q) -> c, phi. Inertia: mean effective inertia minus ``m c^2`` and
    the armature. Muscles: moment arm = the group's force-weighted MyoLeg moment
    arm; (F0, straight/flexed normalised lengths, lmin, lmax, fpmax) by nonlinear
    least squares on the group's maximal active torque and on the total passive
    torque, using MuJoCo's own curves; vmax so that the group reaches vmax at the
    same knee speed as its MyoLeg muscles (force-weighted).
    """
    from scipy.optimize import least_squares

    q = np.asarray(char.angles_rad)
    shank_mass_kg = char.below_knee_mass_kg
    knee_armature_kg_m2 = cfg.human.knee_armature_kg_m2
    g = cfg.sim.gravity_m_s2
    qmax = cfg.human.knee_range_rad[1]
    basis = np.column_stack([np.cos(q), -np.sin(q)])
    (a_cos, b_sin), *_ = np.linalg.lstsq(basis, char.gravity_torque_nm, rcond=None)
    amplitude = math.hypot(a_cos, b_sin)
    phi = math.atan2(b_sin, a_cos)
    com = amplitude / (shank_mass_kg * g)
    grav_fit = amplitude * np.cos(q + phi)
    inertia = float(np.mean(char.effective_inertia_kg_m2)) - shank_mass_kg * com**2 - knee_armature_kg_m2

    rf, re_ = char.flexor_moment_arm_m, char.extensor_moment_arm_m
    s = q / qmax

    def curves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ff, fs, ffl, flmin, flmax, ffp, ef, es, efl, elmin, elmax, efp = x
        lf = fs + (ffl - fs) * s
        le = es + (efl - es) * s
        flex = rf * ff * mujoco_active_fl(lf, flmin, flmax)
        ext = -re_ * ef * mujoco_active_fl(le, elmin, elmax)
        passive = rf * ff * mujoco_passive_fl(lf, flmax, ffp) - re_ * ef * mujoco_passive_fl(le, elmax, efp)
        return flex, ext, passive

    def residual(x: np.ndarray) -> np.ndarray:
        flex, ext, passive = curves(x)
        return np.concatenate([
            (flex - char.flexor_max_torque_nm) / 100.0,
            (ext - char.extensor_max_torque_nm) / 100.0,
            (passive - char.passive_torque_nm) / 10.0,
        ])

    x0 = np.array([10000.0, 1.2, 0.8, 0.5, 1.6, 1.3, 8000.0, 0.8, 1.3, 0.5, 1.6, 1.3])
    lo = np.array([100.0, 0.5, 0.4, 0.1, 1.05, 0.0, 100.0, 0.4, 0.5, 0.1, 1.05, 0.0])
    hi = np.array([1e6, 2.0, 1.5, 0.95, 3.5, 5.0, 1e6, 1.5, 2.0, 0.95, 3.5, 5.0])
    sol = least_squares(residual, x0, bounds=(lo, hi))
    flex, ext, passive = curves(sol.x)
    ff, fs, ffl, flmin, flmax, ffp, ef, es, efl, elmin, elmax, efp = (float(v) for v in sol.x)
    base_f, base_e = cfg.reduced.flexors, cfg.reduced.extensors

    def rms(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))

    return ReducedFit(
        shank_mass_kg=shank_mass_kg,
        shank_com_m=com,
        shank_com_angle_rad=phi,
        shank_inertia_kg_m2=inertia,
        flexors=replace(
            base_f, moment_arm_m=rf, max_isometric_force_n=ff, length_range=(fs, ffl), lmin=flmin, lmax=flmax,
            passive_force_max=ffp, vmax_l0_s=char.flexor_max_speed_rad_s * abs(ffl - fs) / qmax,
        ),
        extensors=replace(
            base_e, moment_arm_m=re_, max_isometric_force_n=ef, length_range=(es, efl), lmin=elmin, lmax=elmax,
            passive_force_max=efp, vmax_l0_s=char.extensor_max_speed_rad_s * abs(efl - es) / qmax,
        ),
        rms_gravity_nm=rms(grav_fit, char.gravity_torque_nm),
        rms_passive_nm=rms(passive, char.passive_torque_nm),
        rms_flexor_nm=rms(flex, char.flexor_max_torque_nm),
        rms_extensor_nm=rms(ext, char.extensor_max_torque_nm),
    )


def fit_report(cfg: TwinConfig | None = None, angles_rad: np.ndarray | None = None) -> str:
    """Characterise the full twin, fit the reduced one and return the ``reduced:`` YAML entries.

    Run ``python -m exo.twin.reduced`` and paste the output into ``config/twin.yaml``.
    """
    from exo.twin.full import MyoLegKneeTwin, characterize_knee, strap_stiffness

    cfg = cfg if cfg is not None else load_twin_config()
    angles = np.linspace(0.0, 2.0, 41) if angles_rad is None else angles_rad
    full = MyoLegKneeTwin(cfg.with_overrides(subject_noise=False))
    char = characterize_knee(full, angles)
    k_strap = strap_stiffness(full)
    fit = fit_reduced(char, cfg)
    how = "fitted: exo.twin.reduced.fit_report on the full twin, knee 0-2 rad"
    lines = [
        f"# RMS fit errors (N m): gravity {fit.rms_gravity_nm:.2f}, passive {fit.rms_passive_nm:.2f}, "
        f"flexor max {fit.rms_flexor_nm:.1f}, extensor max {fit.rms_extensor_nm:.1f}",
        f'shank_mass_kg: {{value: {fit.shank_mass_kg:.4f}, unit: kg, source: "myoleg: tibia + talus + calcn + toes"}}',
        f'shank_com_m: {{value: {fit.shank_com_m:.4f}, unit: m, source: "{how} (gravity torque)"}}',
        f'shank_com_angle_rad: {{value: {fit.shank_com_angle_rad:.4f}, unit: rad, source: "{how} (gravity torque)"}}',
        f'shank_inertia_kg_m2: {{value: {fit.shank_inertia_kg_m2:.4f}, unit: kg m^2, source: "{how} (effective inertia)"}}',
        f'strap_stiffness_nm_rad: {{value: {k_strap:.0f}, unit: N m/rad, source: "fitted: exo.twin.full.strap_stiffness '
        f'(geometric mean over knee-angle bands; 0.29^2 x 20 kN/m = 1682 at 90 deg)"}}',
    ]
    for name, g in (("flexors", fit.flexors), ("extensors", fit.extensors)):
        lines += [
            f"{name}:",
            f'  moment_arm_m: {{value: {g.moment_arm_m:.4f}, unit: m, source: "{how} (force-weighted MyoLeg moment arm)"}}',
            f'  max_isometric_force_n: {{value: {g.max_isometric_force_n:.1f}, unit: N, source: "{how} (max active torque)"}}',
            f'  length_range: {{value: [{g.length_range[0]:.4f}, {g.length_range[1]:.4f}], unit: L0, source: "{how}"}}',
            f'  passive_force_max: {{value: {g.passive_force_max:.4f}, unit: F0, source: "{how} (passive torque)"}}',
            f'  lmin: {{value: {g.lmin:.4f}, unit: L0, source: "{how}"}}',
            f'  lmax: {{value: {g.lmax:.4f}, unit: L0, source: "{how}"}}',
            f'  vmax_l0_s: {{value: {g.vmax_l0_s:.4f}, unit: L0/s, source: "{how} (same knee speed at vmax as MyoLeg)"}}',
            f'  fvmax: {{value: {g.fvmax}, unit: F0, source: "myoleg: fvmax 1.4"}}',
            f'  activation_tau_s: {{value: [{g.activation_tau_s[0]}, {g.activation_tau_s[1]}], unit: s, source: "myoleg: dynprm 0.01 0.04"}}',
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(fit_report())
