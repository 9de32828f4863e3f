"""Full digital twin: the MyoLeg right leg, seated, strapped into a knee exoskeleton (kind "full").

The model is built at run time from myo-sim's MyoLeg XML (``myo_sim/models/leg/assets``,
nothing is copied into this repository) and edited with :class:`mujoco.MjSpec`:

- left leg (body ``femur_l``, its 40 muscles, tendons and knee couplings) removed;
- hip joints removed: pelvis and femur fixed, hip at ``human.hip_flexion_rad`` (90 deg,
  thigh horizontal); the pelvis is turned so that world +x points forward, +z up and
  +y to the subject's left; contacts are disabled (no floor, no seat);
- knee ``knee_angle_r`` (+ = flexion) with its 7 polynomial equality couplings (tibia
  and patella translations/rotations), ankle free, subtalar/mtp locked (config);
- the 40 right-leg muscles kept; their drive is zero except the spastic coefficient
  added to the 11 knee flexors/extensors (:mod:`exo.twin.reflex`) once per control step;
- the exoskeleton, acting in the knee's mid-sagittal plane (straps wrap the segments),
  its hinge at the least-squares centre of the shank anchor's path
  (:func:`fit_exo_knee_axis`; MyoLeg's knee axis moves, so the exo is misaligned by ~1 mm):

  ``femur_r -[exo_strap_slide (+-5 mm, 20 kN/m), exo_strap_hinge (+-0.84 deg)]-> exo_upper
  -[exo_flexion (-105..+5 deg, negative = flexion)]-> exo_lower -[exo_cuff_lateral]-> exo_cuff``
  and a ``connect`` equality between the cuff site and ``exo_shank_anchor`` (a body on
  the tibia 0.29 m below the knee), closing the slider-crank loop. The connect leaves
  the rotation at the cuff free (it is the shank pin joint of the paper).
  ``exo_cuff_lateral`` (a soft frontal-plane slide, not in the paper) lets the cuff follow
  the MyoLeg tibia, which leaves the sagittal plane by about 1.3 cm over the knee range
  (tilted knee axis and coupled tibial rotations); without it the connect would fight
  the knee couplings;
- a motor on ``exo_flexion``, gear 100, ctrlrange [-1, 1] (+-100 N m).

Signs at the interface (:mod:`exo.twin.interface`): exo knee angle = ``-qpos[exo_flexion]``,
motor torque + = flexion, so ``ctrl = -torque / gear``.

Interaction torque (``Measurements.interaction_torque_nm``, + = flexing the human knee):
the generalised force that the shank connect constraint applies to the human knee,
reduced to the knee's single degree of freedom by virtual work over the coupled
joints: ``tau = sum_j w_j * (J_c^T f_c)_j`` over the tibia joints, with
``w_j = d q_j / d knee_angle`` from the coupling polynomials (w = 1 for the knee
itself) and ``J_c^T f_c`` the constraint rows of ``efc_J``/``efc_force``. Sampled
after the last physics step of the control step.

Thigh strap torque (``Measurements.thigh_interaction_torque_nm``, + = flexing the knee):
the wrench the femur exchanges with ``exo_upper`` through the strap joints (MuJoCo's
``cfrc_int`` of ``exo_upper`` after ``mj_rnePostConstraint``: everything the thigh
carries of the exo, i.e. the motor's reaction, the strap springs and end stops, and the
exo links' weight and inertia), as a torque about the exo knee axis. At rest it equals
the shank strap's torque; the thigh strap adds no torque to the knee joint itself
(the femur is fixed).

Measurements are exo-side only: exo encoder (``exo_flexion``), the motor's applied
torque, and IMU-like sagittal pitch / pitch rate of ``exo_upper`` (thigh IMU) and
``exo_lower`` (shank IMU) from their body orientations (pitch = angle of the
segment's distal-pointing axis above the forward horizontal, so
knee angle ~= thigh pitch - shank pitch).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from exo.twin.config import TwinConfig, load_twin_config
from exo.twin.interface import Measurements, TwinState
from exo.twin.reflex import SpasticityLevel, SpasticReflex
from exo.twin.stepping import MuJoCoTwinStepping

#: MyoLeg files assembled into one model (myo-sim 0.2.3 layout).
MYOLEG_FILES = ("myolegs_assets.xml", "myolegs_chain.xml", "myolegs_tendon.xml", "myolegs_muscle.xml")
KNEE_JOINT = "knee_angle_r"
EXO_KNEE_JOINT = "exo_flexion"
STRAP_SLIDE_JOINT = "exo_strap_slide"
STRAP_HINGE_JOINT = "exo_strap_hinge"
CUFF_LATERAL_JOINT = "exo_cuff_lateral"
EXO_MOTOR = "exo_motor"
CONNECT = "exo_shank_connect"
_REMOVED_JOINTS = ("hip_flexion_r", "hip_adduction_r", "hip_rotation_r")
_FOOT_JOINTS = ("subtalar_angle_r", "mtp_angle_r")


def myoleg_assets_dir() -> Path:
    """Folder of the MyoLeg XML in the installed myo-sim package."""
    import myo_sim

    path = Path(myo_sim.MODELS_DIR) / "leg" / "assets"
    missing = [f for f in MYOLEG_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"myo-sim at {path} lacks {missing}; install myo-sim 0.2.3")
    return path


def myoleg_xml() -> str:
    """One MJCF document made of MyoLeg's assets, chain, tendons and muscles (both legs)."""
    import myo_sim

    assets = myoleg_assets_dir()
    root = ET.Element("mujoco", model="exo_myoleg_knee")
    ET.SubElement(root, "compiler", angle="radian", meshdir=str(Path(myo_sim.MODELS_DIR)), inertiafromgeom="auto")
    for child in ET.parse(assets / MYOLEG_FILES[0]).getroot():
        if child.tag not in ("compiler", "size"):
            root.append(child)
    world = ET.SubElement(root, "worldbody")
    world.extend(ET.parse(assets / MYOLEG_FILES[1]).getroot())
    for name in MYOLEG_FILES[2:]:
        root.extend(ET.parse(assets / name).getroot())
    return ET.tostring(root, encoding="unicode")


def _bar_inertia(mass: float, length: float, width: float) -> list[float]:
    """Diagonal inertia (kg m^2) of a square bar along local y: [Ixx, Iyy, Izz]."""
    across = mass * (length**2 + width**2) / 12.0
    along = mass * (2.0 * width**2) / 12.0
    return [across, along, across]


def _quat_about(axis: tuple[float, float, float], angle: float) -> list[float]:
    s = math.sin(angle / 2.0)
    return [math.cos(angle / 2.0), axis[0] * s, axis[1] * s, axis[2] * s]


def build_full_spec(cfg: TwinConfig) -> mujoco.MjSpec:
    """The MjSpec of the seated right MyoLeg with the exoskeleton (see the module docstring)."""
    spec = mujoco.MjSpec.from_string(myoleg_xml())
    # ---- left leg out
    for act in list(spec.actuators):
        if act.name.endswith("_l"):
            spec.delete(act)
    for ten in list(spec.tendons):
        if ten.name.endswith("_l_tendon"):
            spec.delete(ten)
    for eq in list(spec.equalities):
        if eq.name.endswith("_l"):
            spec.delete(eq)
    spec.delete(spec.body("femur_l"))
    # ---- seated posture: pelvis fixed, femur fixed at the hip flexion angle
    removed = _REMOVED_JOINTS + (_FOOT_JOINTS if cfg.human.lock_foot_joints else ())
    for name in removed:
        spec.delete(spec.joint(name))
    pelvis = spec.body("pelvis")
    pelvis.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
    pelvis.quat = _quat_about((1.0, 0.0, 0.0), math.pi / 2.0)  # OpenSim y-up, x-forward -> world z-up, x-forward
    pelvis.pos = [0.0, 0.0, cfg.human.pelvis_height_m]
    femur = spec.body("femur_r")
    femur.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
    femur.quat = _quat_about((0.0, 0.0, 1.0), cfg.human.hip_flexion_rad)  # hip flexion about OpenSim z
    knee = spec.joint(KNEE_JOINT)
    knee.damping[0] = cfg.human.knee_damping_nm_s_rad
    knee.armature = cfg.human.knee_armature_kg_m2
    # ---- options
    spec.option.timestep = cfg.sim.physics_timestep_s
    spec.option.gravity = [0.0, 0.0, -cfg.sim.gravity_m_s2]
    spec.option.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
    spec.option.jacobian = int(mujoco.mjtJacobian.mjJAC_DENSE)
    _add_exo(spec, cfg)
    return spec


def fit_exo_knee_axis(spec: mujoco.MjSpec, cfg: TwinConfig, n: int = 40) -> tuple[np.ndarray, float]:
    """Where to put the exo knee axis: least-squares circle through the shank anchor's path.

    The MyoLeg knee has no fixed axis (the tibia translates and rotates with the
    knee angle), so a fixed exo hinge is always misaligned. Like a fitter aligning
    the exo on a patient, we place it at the centre of the circle that best fits
    the path of the shank attachment point over ``exo_axis_fit_range_rad``
    (Kasa algebraic fit in the femur's sagittal plane); the lower link length is
    the circle's radius. The remaining misalignment (about 1 mm) is what the
    straps absorb.

    Returns:
        (centre, radius): centre in the femur frame (OpenSim axes x anterior,
        y proximal, z lateral), m; radius, m.
    """
    model = spec.compile()
    data = mujoco.MjData(model)
    coupling = KneeCoupling.from_model(model)
    femur, tibia = model.body("femur_r").id, model.body("tibia_r").id
    anchor = np.array(cfg.exo.shank_anchor_m)
    pts = []
    for a in np.linspace(*cfg.exo.exo_axis_fit_range_rad, n):
        mujoco.mj_resetData(model, data)
        coupling.set_pose(data, float(a))
        mujoco.mj_kinematics(model, data)
        world = data.xpos[tibia] + data.xmat[tibia].reshape(3, 3) @ anchor
        local = data.xmat[femur].reshape(3, 3).T @ (world - data.xpos[femur])
        pts.append(local)
    p = np.array(pts)
    x, y = p[:, 0], p[:, 1]
    a_mat = np.column_stack([x, y, np.ones_like(x)])
    sol = np.linalg.lstsq(a_mat, x * x + y * y, rcond=None)[0]
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    radius = math.sqrt(sol[2] + cx * cx + cy * cy)
    return np.array([cx, cy, float(np.mean(p[:, 2]))]), radius


def _add_exo(spec: mujoco.MjSpec, cfg: TwinConfig) -> None:
    """Exo links, strap joints, shank connect and motor, in the femur frame at the straight-knee pose.

    The exo acts in the knee's mid-sagittal plane (its straps wrap the segments, so
    their forces act on the segment axes); geometry in the femur frame, OpenSim
    axes (x anterior, y proximal, z lateral), with the straight knee (q = 0).
    """
    e = cfg.exo
    tibia = spec.body("tibia_r")
    centre, radius = fit_exo_knee_axis(spec, cfg)
    knee_to_anchor_0 = np.array(tibia.pos, dtype=float) + np.array(e.shank_anchor_m) - centre  # at q = 0
    link_dir = knee_to_anchor_0 / np.linalg.norm(knee_to_anchor_0)
    cuff_pos = link_dir * radius  # cuff on the circle; the loop closes exactly on the fitted path
    limited = mujoco.mjtLimited.mjLIMITED_TRUE
    limit_solref = [e.limit_timeconst_s, 1.0]
    limit_solimp = [*e.limit_solimp, 0.5, 2.0]
    femur = spec.body("femur_r")

    upper = femur.add_body(name="exo_upper", pos=(centre + [0.0, e.upper_link_length_m, 0.0]).tolist())
    upper.explicitinertial = True
    upper.mass = e.upper_link_mass_kg
    upper.ipos = [0.0, -e.upper_link_length_m / 2.0, 0.0]
    upper.inertia = _bar_inertia(e.upper_link_mass_kg, e.upper_link_length_m, e.link_width_m)
    slide = upper.add_joint(name=STRAP_SLIDE_JOINT, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0.0, 1.0, 0.0])
    slide.range = [-e.strap_slide_range_m, e.strap_slide_range_m]
    slide.limited = limited
    slide.solref_limit = limit_solref
    slide.solimp_limit = limit_solimp
    slide.stiffness[0] = e.strap_slide_stiffness_n_m
    slide.damping[0] = e.strap_slide_damping_n_s_m
    hinge = upper.add_joint(name=STRAP_HINGE_JOINT, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0.0, 0.0, 1.0])
    hinge.range = [-math.radians(e.strap_hinge_range_deg), math.radians(e.strap_hinge_range_deg)]
    hinge.limited = limited
    hinge.solref_limit = limit_solref
    hinge.solimp_limit = limit_solimp
    hinge.damping[0] = e.strap_hinge_damping_nm_s_rad
    _visual_bar(upper, [0.0, 0.0, 0.0], [0.0, -e.upper_link_length_m, 0.0], e.link_width_m / 2.0)
    upper.add_site(name="thigh_imu", pos=[0.0, -e.upper_link_length_m / 2.0, 0.0])

    lower = upper.add_body(name="exo_lower", pos=[0.0, -e.upper_link_length_m, 0.0])
    lower.explicitinertial = True
    lower.mass = e.lower_link_mass_kg
    lower.ipos = (link_dir * e.lower_link_com_m).tolist()
    lower.inertia = _bar_inertia(e.lower_link_mass_kg, e.lower_link_length_m, e.link_width_m)
    exo_knee = lower.add_joint(name=EXO_KNEE_JOINT, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0.0, 0.0, 1.0])
    exo_knee.range = [math.radians(e.knee_range_deg[0]), math.radians(e.knee_range_deg[1])]
    exo_knee.limited = limited
    exo_knee.solref_limit = [e.knee_stop_timeconst_s, 1.0]
    exo_knee.damping[0] = e.knee_damping_nm_s_rad
    exo_knee.armature = e.knee_armature_kg_m2
    _visual_bar(lower, [0.0, 0.0, 0.0], cuff_pos.tolist(), e.link_width_m / 2.0)
    lower.add_site(name="shank_imu", pos=(cuff_pos / 2.0).tolist())

    cuff = lower.add_body(name="exo_cuff", pos=cuff_pos.tolist())
    cuff.explicitinertial = True
    cuff.mass = e.cuff_mass_kg
    r = 0.03
    cuff.inertia = [0.4 * e.cuff_mass_kg * r * r] * 3
    lateral = cuff.add_joint(name=CUFF_LATERAL_JOINT, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0.0, 0.0, 1.0])
    lateral.range = [-e.cuff_lateral_range_m, e.cuff_lateral_range_m]
    lateral.limited = limited
    lateral.solref_limit = limit_solref
    lateral.solimp_limit = limit_solimp
    lateral.stiffness[0] = e.cuff_lateral_stiffness_n_m
    lateral.damping[0] = e.cuff_lateral_damping_n_s_m
    cuff.add_site(name="exo_cuff_site")

    # the anchor sits where the cuff is at q = 0 (on the fitted circle, within ~1 mm of shank_anchor_m)
    anchor_pos = centre + cuff_pos - np.array(tibia.pos, dtype=float)
    anchor = tibia.add_body(name="exo_shank_anchor", pos=anchor_pos.tolist())
    anchor.add_site(name="exo_shank_anchor_site")

    eq = spec.add_equality(name=CONNECT, type=mujoco.mjtEq.mjEQ_CONNECT, objtype=mujoco.mjtObj.mjOBJ_SITE)
    eq.name1 = "exo_cuff_site"
    eq.name2 = "exo_shank_anchor_site"
    eq.solref = [e.connect_timeconst_s, 1.0]

    motor = spec.add_actuator(name=EXO_MOTOR, target=EXO_KNEE_JOINT, trntype=mujoco.mjtTrn.mjTRN_JOINT)
    motor.set_to_motor()
    motor.gear = [e.motor_gear, 0.0, 0.0, 0.0, 0.0, 0.0]
    motor.ctrlrange = [-1.0, 1.0]
    motor.ctrllimited = limited


def _visual_bar(body: mujoco.MjsBody, start: list[float], end: list[float], radius: float) -> None:
    g = body.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[radius, 0.0, 0.0])
    g.fromto = [*start, *end]
    g.mass = 0.0
    g.contype = 0
    g.conaffinity = 0
    g.group = 1
    g.rgba = [0.2, 0.4, 0.8, 0.6]


# ----------------------------------------------------------------------------- knee kinematics helpers


@dataclass(frozen=True)
class KneeCoupling:
    """The knee's polynomial couplings: joint ``j`` follows ``q_j = poly_j(knee angle)``.

    Attributes:
        knee_qpos, knee_dof: addresses of ``knee_angle_r``.
        qpos: qpos addresses of the coupled joints.
        dofs: dof addresses of the coupled joints.
        coefs: (n, 5) polynomial coefficients c0..c4 (rad or m).
        tibia_mask: which coupled joints move the tibia (vs the patella).
    """

    knee_qpos: int
    knee_dof: int
    qpos: np.ndarray
    dofs: np.ndarray
    coefs: np.ndarray
    tibia_mask: np.ndarray

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> KneeCoupling:
        knee = model.joint(KNEE_JOINT).id
        qpos, dofs, coefs, tibia = [], [], [], []
        tibia_body = model.body("tibia_r").id
        for i in range(model.neq):
            if model.eq_type[i] != mujoco.mjtEq.mjEQ_JOINT or model.eq_obj2id[i] != knee:
                continue
            j = model.eq_obj1id[i]
            qpos.append(model.jnt_qposadr[j])
            dofs.append(model.jnt_dofadr[j])
            coefs.append(np.array(model.eq_data[i, :5]))
            tibia.append(model.jnt_bodyid[j] == tibia_body)
        return cls(
            knee_qpos=int(model.jnt_qposadr[knee]),
            knee_dof=int(model.jnt_dofadr[knee]),
            qpos=np.array(qpos, dtype=int),
            dofs=np.array(dofs, dtype=int),
            coefs=np.array(coefs),
            tibia_mask=np.array(tibia, dtype=bool),
        )

    def positions(self, angle_rad: float) -> np.ndarray:
        """Coupled joint positions at a knee angle."""
        powers = angle_rad ** np.arange(5)
        return self.coefs @ powers

    def weights(self, angle_rad: float) -> np.ndarray:
        """d q_j / d knee angle of the coupled joints (virtual-work weights)."""
        a = angle_rad
        dpowers = np.array([0.0, 1.0, 2.0 * a, 3.0 * a * a, 4.0 * a * a * a])
        return self.coefs @ dpowers

    def set_pose(self, data: mujoco.MjData, angle_rad: float) -> None:
        """Write a consistent knee pose (knee and coupled joints) into ``data.qpos``."""
        data.qpos[self.knee_qpos] = angle_rad
        data.qpos[self.qpos] = self.positions(angle_rad)

    def effective_torque(self, qfrc: np.ndarray, angle_rad: float, tibia_only: bool = False) -> float:
        """A generalised force reduced to the knee DoF by virtual work, N m (+ = flexion)."""
        w = self.weights(angle_rad)
        if tibia_only:
            return float(qfrc[self.knee_dof] + qfrc[self.dofs[self.tibia_mask]] @ w[self.tibia_mask])
        return float(qfrc[self.knee_dof] + qfrc[self.dofs] @ w)


def segment_pitch(xmat: np.ndarray) -> float:
    """Sagittal pitch (rad) of a body whose local -y axis points distally: atan2(u_z, u_x)."""
    # xmat is the row-major 3x3 rotation; column 1 is the body's y axis in world
    return math.atan2(-xmat[7], -xmat[1])


# ----------------------------------------------------------------------------- the twin


class MyoLegKneeTwin(MuJoCoTwinStepping):
    """Full MyoLeg + exoskeleton twin (conforms to :class:`exo.twin.interface.KneeTwin`).

    Args:
        config: the twin configuration (default: ``config/twin.yaml``).
    """

    kind = "full"

    def __init__(self, config: TwinConfig | None = None) -> None:
        self.config = config if config is not None else load_twin_config()
        cfg = self.config
        self.model = build_full_spec(cfg).compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.control_timestep_s = cfg.sim.control_timestep_s
        self.max_exo_torque_nm = float(cfg.exo.max_torque_nm)
        self._nstep = cfg.sim.physics_steps_per_control
        self._gear = float(cfg.exo.motor_gear)
        self.coupling = KneeCoupling.from_model(m)
        self._knee_dof = self.coupling.knee_dof
        self._exo_qpos = int(m.jnt_qposadr[m.joint(EXO_KNEE_JOINT).id])
        self._exo_dof = int(m.jnt_dofadr[m.joint(EXO_KNEE_JOINT).id])
        self._slide_qpos = int(m.jnt_qposadr[m.joint(STRAP_SLIDE_JOINT).id])
        self._slide_dof = int(m.jnt_dofadr[m.joint(STRAP_SLIDE_JOINT).id])
        self._hinge_dof = int(m.jnt_dofadr[m.joint(STRAP_HINGE_JOINT).id])
        self._lateral_dof = int(m.jnt_dofadr[m.joint(CUFF_LATERAL_JOINT).id])
        self._motor = m.actuator(EXO_MOTOR).id
        self._upper = m.body("exo_upper").id
        self._upper_root = int(m.body_rootid[self._upper])
        self._exo_joint = m.joint(EXO_KNEE_JOINT).id
        self._lower = m.body("exo_lower").id
        self._connect = m.equality(CONNECT).id
        self._cuff_site = m.site("exo_cuff_site").id
        self._anchor_site = m.site("exo_shank_anchor_site").id
        self._muscles = np.array([i for i in range(m.nu) if m.actuator_dyntype[i] == mujoco.mjtDyn.mjDYN_MUSCLE], dtype=int)
        self.muscle_names = tuple(m.actuator(int(i)).name for i in self._muscles)
        self._muscle_act = m.actuator_actadr[self._muscles]
        self._flexors = np.array([m.actuator(n).id for n in cfg.human.flexor_muscles], dtype=int)
        self._extensors = np.array([m.actuator(n).id for n in cfg.human.extensor_muscles], dtype=int)
        # persistent views of MjData buffers (property access allocates a new array object each time)
        d = self.data
        self._qpos, self._qvel, self._ctrl, self._act = d.qpos, d.qvel, d.ctrl, d.act
        self._xmat, self._cvel, self._actuator_force = d.xmat, d.cvel, d.actuator_force
        self._qfrc_actuator = d.qfrc_actuator
        self._reflex: SpasticReflex | None = None
        self._level = 0
        self._coefficient = 0.0
        self._state: TwinState | None = None

    # ---------------------------------------------------------------- interface

    def reset(self, level: int, seed: int | None = None, initial_knee_angle_rad: float | None = None,
              *, subject: SpasticityLevel | None = None) -> TwinState:
        """New trial: a subject of MAS ``level`` (noise seeded by ``seed``), knee at rest at the start angle.

        ``subject`` runs given reflex parameters instead of a generated subject (``level`` must be
        ``subject.level``; ``seed`` is then unused).
        """
        self._reflex = self.config.spasticity.make_reflex(level, seed, subject)
        self._level = int(level)
        angle = self._initial_angle(initial_knee_angle_rad)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.coupling.set_pose(d, angle)
        d.qpos[self._exo_qpos] = -angle
        self._close_loop()
        mujoco.mj_forward(m, d)
        self._apply_reflex()
        mujoco.mj_forward(m, d)
        self._state = self._make_state()
        return self._state

    # ---------------------------------------------------------------- internals

    def _apply_reflex(self) -> None:
        q = float(self._qpos[self.coupling.knee_qpos])
        v = float(self._qvel[self._knee_dof])
        out = self._reflex.evaluate(q, v)  # type: ignore[union-attr]
        self._coefficient = out.c_ang + out.c_vel
        self._ctrl[self._flexors] = min(max(out.flexor_drive + self._voluntary_flexor_drive, 0.0), 1.0)
        self._ctrl[self._extensors] = min(max(out.extensor_drive + self._voluntary_extensor_drive, 0.0), 1.0)

    def _close_loop(self, iterations: int = 8) -> None:
        """Solve the strap, exo knee and cuff joints (min-norm Newton) so that the cuff meets the shank anchor."""
        m, d = self.model, self.data
        dofs = [self._slide_dof, self._hinge_dof, self._exo_dof, self._lateral_dof]
        qadr = [int(m.jnt_qposadr[m.dof_jntid[i]]) for i in dofs]
        jacp = np.zeros((3, m.nv))
        for _ in range(iterations):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            residual = d.site_xpos[self._cuff_site] - d.site_xpos[self._anchor_site]
            if np.linalg.norm(residual) < 1e-9:
                break
            mujoco.mj_jacSite(m, d, jacp, None, self._cuff_site)
            step = np.linalg.lstsq(jacp[:, dofs], -residual, rcond=None)[0]
            d.qpos[qadr] += step
        for j in (STRAP_SLIDE_JOINT, STRAP_HINGE_JOINT, CUFF_LATERAL_JOINT):
            jid = m.joint(j).id
            adr = m.jnt_qposadr[jid]
            d.qpos[adr] = np.clip(d.qpos[adr], *m.jnt_range[jid])

    def interaction_torque_nm(self) -> float:
        """Torque the exo's shank connect applies to the human knee DoF, N m (+ = flexing), see module doc."""
        m, d = self.model, self.data
        nefc = d.nefc
        if nefc == 0:
            return 0.0
        rows = np.flatnonzero((d.efc_type[:nefc] == mujoco.mjtConstraint.mjCNSTR_EQUALITY) & (d.efc_id[:nefc] == self._connect))
        if rows.size == 0:
            return 0.0
        jac = d.efc_J.reshape(-1, m.nv)[rows]
        qfrc = jac.T @ d.efc_force[rows]
        return self.coupling.effective_torque(qfrc, float(d.qpos[self.coupling.knee_qpos]), tibia_only=True)

    def thigh_interaction_torque_nm(self) -> float:
        """Torque the thigh strap transmits to the thigh about the exo knee axis, N m (+ = flexing), module doc."""
        m, d = self.model, self.data
        mujoco.mj_rnePostConstraint(m, d)
        wrench = d.cfrc_int[self._upper]  # [torque, force] from the femur onto exo_upper, at the root's subtree com
        centre = d.subtree_com[self._upper_root]
        torque = wrench[:3] + np.cross(centre - d.xanchor[self._exo_joint], wrench[3:])
        return -float(torque @ d.xaxis[self._exo_joint])  # its reaction on the thigh, flexing = +

    def muscle_knee_torque_nm(self) -> float:
        """Net muscle torque about the human knee (virtual work over the couplings), N m (+ = flexing)."""
        return self.coupling.effective_torque(self._qfrc_actuator, float(self._qpos[self.coupling.knee_qpos]))

    def _make_state(self) -> TwinState:
        qpos, qvel, xmat, cvel = self._qpos, self._qvel, self._xmat, self._cvel
        up, lo = self._upper, self._lower
        meas = Measurements(
            time_s=self.data.time,
            exo_knee_angle_rad=-float(qpos[self._exo_qpos]),
            exo_knee_velocity_rad_s=-float(qvel[self._exo_dof]),
            exo_motor_torque_nm=-self._gear * float(self._actuator_force[self._motor]),
            thigh_pitch_rad=segment_pitch(xmat[up]),
            shank_pitch_rad=segment_pitch(xmat[lo]),
            thigh_angular_velocity_rad_s=-float(cvel[up, 1]),
            shank_angular_velocity_rad_s=-float(cvel[lo, 1]),
            interaction_torque_nm=self.interaction_torque_nm(),
            thigh_interaction_torque_nm=self.thigh_interaction_torque_nm(),
        )
        return TwinState(
            measurements=meas,
            human_knee_angle_rad=float(qpos[self.coupling.knee_qpos]),
            human_knee_velocity_rad_s=float(qvel[self._knee_dof]),
            strap_slide_m=float(qpos[self._slide_qpos]),
            spasticity_level=self._level,
            spasticity_coefficient=self._coefficient,
            muscle_names=self.muscle_names,
            muscle_activations=self._act[self._muscle_act],
            muscle_knee_torque_nm=self.muscle_knee_torque_nm(),
        )

    @property
    def subject(self) -> SpasticityLevel | None:
        """Reflex parameters of the current subject (ground truth; None before the first reset)."""
        return None if self._reflex is None else self._reflex.params


# ----------------------------------------------------------------------------- characterisation


@dataclass(frozen=True)
class KneeCharacterization:
    """Static knee properties of the full twin's human leg (ankle at 0, exo excluded).

    All torques in N m about the knee (+ = flexing), as functions of ``angles_rad``.
    ``*_moment_arm_m`` and ``*_max_speed_rad_s`` are force-weighted means over the
    group's muscles (at the listed angles) of the moment arm and of the knee speed
    at which a muscle shortens at its vmax (``vmax * L0 / r``).
    """

    angles_rad: np.ndarray
    gravity_torque_nm: np.ndarray
    passive_torque_nm: np.ndarray
    flexor_max_torque_nm: np.ndarray
    extensor_max_torque_nm: np.ndarray
    effective_inertia_kg_m2: np.ndarray
    flexor_moment_arm_m: float
    extensor_moment_arm_m: float
    flexor_max_speed_rad_s: float
    extensor_max_speed_rad_s: float
    below_knee_mass_kg: float


def _group_speed(twin: MyoLegKneeTwin, group: np.ndarray, angles: np.ndarray) -> tuple[float, float]:
    """Force-weighted mean |moment arm| (m) and vmax-equivalent knee speed (rad/s) of a muscle group."""
    m = twin.model
    d = mujoco.MjData(m)
    lengths = []
    h = 1e-4
    for a in angles:
        pair = []
        for da in (-h, h):
            mujoco.mj_resetData(m, d)
            twin.coupling.set_pose(d, float(a + da))
            mujoco.mj_fwdPosition(m, d)
            mujoco.mj_fwdVelocity(m, d)
            pair.append(d.actuator_length[group].copy())
        lengths.append((pair[1] - pair[0]) / (2 * h))
    arms = np.abs(np.array(lengths))  # (n_angles, n_muscles), m/rad
    prm = m.actuator_gainprm[group]
    lr = m.actuator_lengthrange[group]
    l0 = (lr[:, 1] - lr[:, 0]) / (prm[:, 1] - prm[:, 0])
    speed = prm[:, 6] * l0 / arms
    weight = prm[:, 2] * arms
    return float(np.sum(weight * arms) / np.sum(weight)), float(np.sum(weight * speed) / np.sum(weight))


def characterize_knee(twin: MyoLegKneeTwin, angles_rad: np.ndarray) -> KneeCharacterization:
    """Gravity, passive-muscle and maximal group torques and inertia of the human knee vs angle.

    Used to fit the reduced twin (see :mod:`exo.twin.reduced`): at each angle the
    knee pose is set kinematically (couplings included, velocities zero) and
    ``mj_forward`` is evaluated with all activations 0 (passive), or 1 for one
    spastic group. Gravity torque = -qfrc_bias reduced to the knee; inertia =
    w^T M w over the knee's coupled joints.
    """
    m = twin.model
    d = mujoco.MjData(m)
    cp = twin.coupling
    human = np.concatenate([[cp.knee_dof], cp.dofs])
    out: dict[str, list[float]] = {k: [] for k in ("g", "p", "f", "e", "i")}
    full_m = np.zeros((m.nv, m.nv))
    for a in angles_rad:
        mujoco.mj_resetData(m, d)
        cp.set_pose(d, float(a))
        d.qpos[twin._exo_qpos] = -float(a)
        mujoco.mj_forward(m, d)
        w = np.concatenate([[1.0], cp.weights(float(a))])
        out["g"].append(-float(d.qfrc_bias[human] @ w))
        out["p"].append(cp.effective_torque(d.qfrc_actuator, float(a)))
        for key, group in (("f", twin._flexors), ("e", twin._extensors)):
            d.act[:] = 0.0
            d.act[m.actuator_actadr[group]] = 1.0
            mujoco.mj_forward(m, d)
            out[key].append(cp.effective_torque(d.qfrc_actuator, float(a)) - out["p"][-1])
        d.act[:] = 0.0
        mujoco.mj_fullM(m, d, full_m)
        out["i"].append(float(w @ full_m[np.ix_(human, human)] @ w))
    mid = np.array([0.3, 0.8, 1.3])
    flex_arm, flex_speed = _group_speed(twin, twin._flexors, mid)
    ext_arm, ext_speed = _group_speed(twin, twin._extensors, mid)
    below = [b for b in range(m.nbody) if _is_below(m, b, m.body("tibia_r").id)]
    return KneeCharacterization(
        flexor_moment_arm_m=flex_arm,
        extensor_moment_arm_m=ext_arm,
        flexor_max_speed_rad_s=flex_speed,
        extensor_max_speed_rad_s=ext_speed,
        below_knee_mass_kg=float(np.sum(m.body_mass[below])),
        angles_rad=np.asarray(angles_rad, dtype=float),
        gravity_torque_nm=np.array(out["g"]),
        passive_torque_nm=np.array(out["p"]),
        flexor_max_torque_nm=np.array(out["f"]),
        extensor_max_torque_nm=np.array(out["e"]),
        effective_inertia_kg_m2=np.array(out["i"]),
    )


def _is_below(model: mujoco.MjModel, body: int, root: int) -> bool:
    """True if ``body`` is ``root`` or one of its descendants (exo bodies excluded)."""
    if model.body(body).name.startswith("exo_"):
        return False
    while body > 0:
        if body == root:
            return True
        body = int(model.body_parentid[body])
    return False


def strap_stiffness(twin: MyoLegKneeTwin, starts_rad: tuple[float, ...] = (0.3, 0.8, 1.3, 1.544), amplitude_nm: float = 40.0) -> float:
    """Effective torsional strap stiffness of the full twin, N m/rad (for the reduced twin's strap).

    Level-0 subject (no noise), a 1 Hz sinusoidal exo torque of ``amplitude_nm`` for 2 s
    from each start angle; the slope of interaction torque vs (exo - human) knee angle
    is fitted per 0.5 rad band of knee angle (the coupling is stiffer near full extension,
    where the strap hinge carries the load, than at 90 deg, where the slide does), and
    the geometric mean of the band slopes is returned.
    """
    diff, torque, angle = [], [], []
    for start in starts_rad:
        twin.reset(level=0, seed=0, initial_knee_angle_rad=start)
        n = round(2.0 / twin.control_timestep_s)
        for k in range(n):
            s = twin.step(amplitude_nm * math.sin(2.0 * math.pi * k * twin.control_timestep_s))
            if k > 20:
                diff.append(s.measurements.exo_knee_angle_rad - s.human_knee_angle_rad)
                torque.append(s.measurements.interaction_torque_nm)
                angle.append(s.human_knee_angle_rad)
    d, t, a = np.array(diff), np.array(torque), np.array(angle)
    slopes = []
    for lo in np.arange(0.0, 2.0, 0.5):
        band = (a >= lo) & (a < lo + 0.5)
        if band.sum() >= 10 and np.ptp(d[band]) > 1e-4:
            slope = np.polyfit(d[band], t[band], 1)[0]
            if slope > 0:
                slopes.append(slope)
    if not slopes:
        raise RuntimeError("strap_stiffness: no usable band (the exo did not move)")
    return float(np.exp(np.mean(np.log(slopes))))
