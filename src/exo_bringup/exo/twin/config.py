"""Typed configuration of the digital twin (``config/twin.yaml``).

The file is a ROS 2 parameter file (``/**: ros__parameters: ...``, see
:mod:`exo.params`) so that the ROS shell can load it unchanged. Every
physical number is written as::

    name: {value: 0.001, unit: s, source: "facts: MuJoCo timestep"}

and the loader (:class:`exo.config_entries.EntryReader`) checks that ``value``
is a finite number (or a list of them) of the expected length and range, that
``unit`` is the unit this module expects (so a file written in degrees is not
read as radians) and that ``source`` is given. Every error is a
:class:`exo.params.ConfigError` naming the file and the key. Sources are
``paper`` (the study), ``facts`` (``digital-twin-facts.md``), ``myoleg``
(myo-sim 0.2.3), ``chosen: why`` or ``fitted: how``. The task's
``config/env.yaml`` is read the same way by :mod:`exo.envs.config`.

Overrides: :meth:`TwinConfig.with_overrides` takes ``field=value`` for any
field name that is unique across the sections (e.g. ``subject_noise=False``)
or ``section__field=value`` (e.g. ``exo__max_torque_nm=50.0``), or whole
sections (``exo=ExoConfig(...)``); the result is validated again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from exo.config_entries import EntryReader, apply_overrides, check, check_finite, read_node_file, validated
from exo.twin.reflex import (
    ANGLE_MAPPINGS,
    ROUTINGS,
    AngleMapping,
    SpasticityLevel,
    SpasticReflex,
    sample_subject,
)

#: Node whose parameters hold the twin settings in the ROS shell (``/**`` entries apply too).
TWIN_NODE = "sim_bridge"

_SPASTICITY_PARAMS: tuple[tuple[str, str], ...] = (
    ("a_flex_deg", "deg"),
    ("a_ext_deg", "deg"),
    ("v_lim_rad_s", "rad/s"),
    ("l_ang", "1"),
    ("l_vel", "1"),
    ("k_ang_per_deg", "1/deg"),
    ("k_vel_s_per_rad", "s/rad"),
)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SimConfig:
    """Time stepping and gravity.

    Attributes:
        physics_timestep_s: MuJoCo timestep, s.
        physics_steps_per_control: physics steps per control step (-).
        gravity_m_s2: gravitational acceleration (along world -z), m/s^2.
    """

    physics_timestep_s: float
    physics_steps_per_control: int
    gravity_m_s2: float

    def __post_init__(self) -> None:
        check_finite("simulation.physics_timestep_s", self.physics_timestep_s, 0.0, 0.01, strict_lo=True)
        check(isinstance(self.physics_steps_per_control, int) and self.physics_steps_per_control >= 1,
               f"simulation.physics_steps_per_control must be an integer >= 1, got {self.physics_steps_per_control!r}")
        check_finite("simulation.gravity_m_s2", self.gravity_m_s2, 0.0)

    @property
    def control_timestep_s(self) -> float:
        """Duration of one control step, s."""
        return self.physics_timestep_s * self.physics_steps_per_control


@dataclass(frozen=True)
class HumanConfig:
    """The seated human leg (full twin: MyoLeg; reduced twin: its knee).

    Attributes:
        initial_knee_angle_rad: default start of a trial, rad (+ = flexion).
        knee_range_rad: anatomical knee range (min, max), rad.
        hip_flexion_rad: fixed hip flexion of the seated subject, rad.
        pelvis_height_m: height of the pelvis origin above the world origin, m.
        knee_damping_nm_s_rad: knee joint damping, N m s/rad.
        knee_armature_kg_m2: knee joint armature, kg m^2.
        lock_foot_joints: remove subtalar and mtp joints (only knee and ankle stay free).
        flexor_muscles: MyoLeg names of the spastic knee flexors.
        extensor_muscles: MyoLeg names of the spastic knee extensors.
    """

    initial_knee_angle_rad: float
    knee_range_rad: tuple[float, float]
    hip_flexion_rad: float
    pelvis_height_m: float
    knee_damping_nm_s_rad: float
    knee_armature_kg_m2: float
    lock_foot_joints: bool
    flexor_muscles: tuple[str, ...]
    extensor_muscles: tuple[str, ...]

    def __post_init__(self) -> None:
        lo, hi = self.knee_range_rad
        check_finite("human.knee_range_rad[0]", lo)
        check_finite("human.knee_range_rad[1]", hi)
        check(lo < hi, f"human.knee_range_rad must be increasing, got {self.knee_range_rad}")
        check_finite("human.initial_knee_angle_rad", self.initial_knee_angle_rad, lo, hi)
        check_finite("human.hip_flexion_rad", self.hip_flexion_rad, 0.0, math.pi)
        check_finite("human.pelvis_height_m", self.pelvis_height_m)
        check_finite("human.knee_damping_nm_s_rad", self.knee_damping_nm_s_rad, 0.0)
        check_finite("human.knee_armature_kg_m2", self.knee_armature_kg_m2, 0.0)
        check(len(self.flexor_muscles) > 0 and len(self.extensor_muscles) > 0, "human: flexor_muscles and extensor_muscles must not be empty")
        check(not set(self.flexor_muscles) & set(self.extensor_muscles), "human: a muscle cannot be both flexor and extensor")


@dataclass(frozen=True)
class ExoConfig:
    """The knee exoskeleton and its straps (geometry in the seated leg's sagittal plane).

    Attributes:
        max_torque_nm: motor torque limit, N m.
        motor_gear: MuJoCo motor gear (torque = gear * ctrl), N m.
        knee_range_deg: exo knee hinge range in MuJoCo's ``exo_flexion`` convention
            (negative = flexion), deg.
        knee_damping_nm_s_rad: exo knee bearing damping, N m s/rad.
        knee_armature_kg_m2: reflected rotor inertia at the exo knee, kg m^2.
        upper_link_mass_kg, upper_link_length_m: thigh link (strap -> exo knee).
        lower_link_mass_kg, lower_link_length_m: shank link (exo knee -> shank cuff), kg, m.
        lower_link_com_m: distance exo knee -> lower-link centre of mass, m.
        link_width_m: side of the square bar used for the links' inertia, m.
        shank_anchor_m: shank attachment point in the MyoLeg tibia frame (x anterior,
            y proximal, z lateral), m.
        exo_axis_fit_range_rad: knee range over which the exo axis is fitted to the
            anchor's path (see :func:`exo.twin.full.fit_exo_knee_axis`), rad.
        strap_slide_range_m: thigh strap slide travel (+-), m.
        strap_slide_stiffness_n_m: thigh strap slide stiffness, N/m.
        strap_slide_damping_n_s_m: thigh strap slide damping, N s/m.
        strap_hinge_range_deg: thigh strap hinge travel (+-), deg.
        strap_hinge_damping_nm_s_rad: thigh strap hinge damping, N m s/rad.
        cuff_mass_kg: shank cuff mass, kg.
        cuff_lateral_range_m: shank cuff lateral (frontal-plane) travel (+-), m.
        cuff_lateral_stiffness_n_m: its stiffness, N/m.
        cuff_lateral_damping_n_s_m: its damping, N s/m.
        connect_timeconst_s: solref time constant of the shank connect constraint, s.
        limit_timeconst_s: solref time constant of the strap joint limits, s.
        limit_solimp: solimp (d0, dwidth, width) of those limits (-, -, m or rad).
        knee_stop_timeconst_s: solref time constant of the exo knee's end stops, s.
    """

    max_torque_nm: float
    motor_gear: float
    knee_range_deg: tuple[float, float]
    knee_damping_nm_s_rad: float
    knee_armature_kg_m2: float
    upper_link_mass_kg: float
    upper_link_length_m: float
    lower_link_mass_kg: float
    lower_link_length_m: float
    lower_link_com_m: float
    link_width_m: float
    shank_anchor_m: tuple[float, float, float]
    exo_axis_fit_range_rad: tuple[float, float]
    strap_slide_range_m: float
    strap_slide_stiffness_n_m: float
    strap_slide_damping_n_s_m: float
    strap_hinge_range_deg: float
    strap_hinge_damping_nm_s_rad: float
    cuff_mass_kg: float
    cuff_lateral_range_m: float
    cuff_lateral_stiffness_n_m: float
    cuff_lateral_damping_n_s_m: float
    connect_timeconst_s: float
    limit_timeconst_s: float
    limit_solimp: tuple[float, float, float]
    knee_stop_timeconst_s: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "knee_range_deg":
                check_finite("exo.knee_range_deg[0]", value[0], -180.0, 0.0)
                check_finite("exo.knee_range_deg[1]", value[1], 0.0, 30.0)
            elif f.name == "limit_solimp":
                check_finite("exo.limit_solimp[0]", value[0], 0.0, 1.0, strict_lo=True)
                check_finite("exo.limit_solimp[1]", value[1], value[0], 1.0)
                check_finite("exo.limit_solimp[2]", value[2], 0.0, strict_lo=True)
            elif f.name in ("shank_anchor_m", "exo_axis_fit_range_rad"):
                for i, x in enumerate(value):
                    check_finite(f"exo.{f.name}[{i}]", x)
            else:
                check_finite(f"exo.{f.name}", value, 0.0, strict_lo=f.name not in ("knee_damping_nm_s_rad", "strap_slide_damping_n_s_m", "strap_hinge_damping_nm_s_rad", "cuff_lateral_damping_n_s_m", "knee_armature_kg_m2"))
        check(self.lower_link_com_m <= self.lower_link_length_m, "exo.lower_link_com_m must be <= exo.lower_link_length_m")
        check(self.exo_axis_fit_range_rad[0] < self.exo_axis_fit_range_rad[1], "exo.exo_axis_fit_range_rad must be increasing")
        check(self.max_torque_nm <= self.motor_gear, "exo.max_torque_nm must be <= exo.motor_gear (ctrlrange is [-1, 1])")


@dataclass(frozen=True)
class SpasticityConfig:
    """Reflex model choices and the level tables.

    Attributes:
        table: name of the level table in use (a key of ``tables``).
        angle_mapping: name of the angle mapping (:data:`exo.twin.reflex.ANGLE_MAPPINGS`).
        routing: which muscles receive the coefficient (:data:`exo.twin.reflex.ROUTINGS`).
        subject_noise: draw a new subject (per-parameter noise) at every reset.
        subject_noise_rel_sd: noise sd as a fraction of each parameter's |value| (-).
        tables: level tables, each the 4 levels 0-3.
    """

    table: str
    angle_mapping: str
    routing: str
    subject_noise: bool
    subject_noise_rel_sd: float
    tables: Mapping[str, tuple[SpasticityLevel, ...]] = field(repr=False)

    def __post_init__(self) -> None:
        check(self.table in self.tables, f"spasticity.table {self.table!r} is not one of {sorted(self.tables)}")
        check(self.angle_mapping in ANGLE_MAPPINGS, f"spasticity.angle_mapping {self.angle_mapping!r} is not one of {sorted(ANGLE_MAPPINGS)}")
        check(self.routing in ROUTINGS, f"spasticity.routing {self.routing!r} is not one of {list(ROUTINGS)}")
        check(isinstance(self.subject_noise, bool), f"spasticity.subject_noise must be true/false, got {self.subject_noise!r}")
        check_finite("spasticity.subject_noise_rel_sd", self.subject_noise_rel_sd, 0.0, 1.0)
        for name, levels in self.tables.items():
            check(tuple(p.level for p in levels) == (0, 1, 2, 3), f"spasticity.tables.{name} must hold levels 0-3 in order")

    @property
    def levels(self) -> tuple[SpasticityLevel, ...]:
        """Nominal parameters of levels 0-3 of the table in use."""
        return self.tables[self.table]

    @property
    def mapping(self) -> AngleMapping:
        """The angle mapping in use."""
        return ANGLE_MAPPINGS[self.angle_mapping]

    def subject(self, level: int, seed: int | None) -> SpasticityLevel:
        """Parameters of a generated subject of ``level``: nominal + noise from ``default_rng(seed)`` (if enabled)."""
        if level not in (0, 1, 2, 3):
            raise ValueError(f"spasticity level must be 0-3 (level 4 is not modelled), got {level!r}")
        nominal = self.levels[level]
        if not self.subject_noise:
            return nominal
        return sample_subject(nominal, np.random.default_rng(seed), self.subject_noise_rel_sd)

    def make_reflex(self, level: int, seed: int | None, subject: SpasticityLevel | None = None) -> SpasticReflex:
        """The reflex model of a new subject (see :meth:`subject`), or of the given ``subject``'s parameters.

        With ``subject`` (e.g. parameters identified from a recording) ``seed`` is not used and
        ``level`` must be ``subject.level``.
        """
        if subject is None:
            subject = self.subject(level, seed)
        elif subject.level != level:
            raise ValueError(f"subject parameters are of level {subject.level}, not of the requested level {level}")
        return SpasticReflex(subject, self.mapping, self.routing)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MuscleGroupConfig:
    """A lumped muscle group of the reduced twin (MuJoCo muscle on a joint transmission).

    Attributes:
        moment_arm_m: constant moment arm about the knee, m.
        max_isometric_force_n: peak isometric force, N.
        length_range: normalised fibre lengths (L/L0) at the knee's (straight, max-flexed) ends (-).
        passive_force_max: MuJoCo ``fpmax`` (passive force at lmax, in units of F0) (-).
        lmin: MuJoCo ``lmin``, lower end of the active force-length curve (L0).
        lmax: MuJoCo ``lmax``, upper end of the active force-length curve, where the
            passive force reaches ``fpmax`` (L0).
        vmax_l0_s: maximum shortening velocity, L0/s.
        fvmax: MuJoCo ``fvmax``, force at maximal lengthening velocity (F0).
        activation_tau_s: (activation, deactivation) time constants, s.
    """

    moment_arm_m: float
    max_isometric_force_n: float
    length_range: tuple[float, float]
    passive_force_max: float
    lmin: float
    lmax: float
    vmax_l0_s: float
    fvmax: float
    activation_tau_s: tuple[float, float]

    def __post_init__(self) -> None:
        check_finite("moment_arm_m", self.moment_arm_m, 0.0, strict_lo=True)
        check_finite("max_isometric_force_n", self.max_isometric_force_n, 0.0, strict_lo=True)
        for x in self.length_range:
            check_finite("length_range", x, 0.3, 2.0)
        check_finite("passive_force_max", self.passive_force_max, 0.0)
        check_finite("lmin", self.lmin, 0.0, 1.0)
        check_finite("lmax", self.lmax, 1.0, 4.0)
        check_finite("vmax_l0_s", self.vmax_l0_s, 0.0, strict_lo=True)
        check_finite("fvmax", self.fvmax, 1.0)
        for x in self.activation_tau_s:
            check_finite("activation_tau_s", x, 0.0, strict_lo=True)


@dataclass(frozen=True)
class ReducedConfig:
    """The reduced twin: a 1-DoF knee with lumped muscles and a torsional strap.

    Attributes:
        shank_mass_kg: shank + foot mass, kg.
        shank_com_m: knee -> centre of mass distance, m.
        shank_com_angle_rad: angle of the centre of mass below the shank axis
            (+ = towards flexion), rad.
        shank_inertia_kg_m2: shank + foot moment of inertia about its COM (sagittal axis), kg m^2.
        strap_stiffness_nm_rad: torsional strap stiffness between exo and human knee, N m/rad.
        strap_damping_nm_s_rad: torsional strap damping, N m s/rad.
        strap_lever_m: lever that converts strap rotation to the reported strap slide, m.
        flexors, extensors: the two lumped muscle groups.
    """

    shank_mass_kg: float
    shank_com_m: float
    shank_com_angle_rad: float
    shank_inertia_kg_m2: float
    strap_stiffness_nm_rad: float
    strap_damping_nm_s_rad: float
    strap_lever_m: float
    flexors: MuscleGroupConfig
    extensors: MuscleGroupConfig

    def __post_init__(self) -> None:
        for name in ("shank_mass_kg", "shank_com_m", "shank_inertia_kg_m2", "strap_stiffness_nm_rad", "strap_lever_m"):
            check_finite(f"reduced.{name}", getattr(self, name), 0.0, strict_lo=True)
        check_finite("reduced.strap_damping_nm_s_rad", self.strap_damping_nm_s_rad, 0.0)
        check_finite("reduced.shank_com_angle_rad", self.shank_com_angle_rad, -math.pi / 2.0, math.pi / 2.0)


@dataclass(frozen=True)
class TwinConfig:
    """Everything a twin is built from (one section per concern)."""

    sim: SimConfig
    human: HumanConfig
    exo: ExoConfig
    spasticity: SpasticityConfig
    reduced: ReducedConfig
    source_path: str = ""

    @property
    def start_range_rad(self) -> tuple[float, float]:
        """Knee angles a trial may start at (+ = flexion), rad: the human range within the exo's stops."""
        exo_lo = -math.radians(self.exo.knee_range_deg[1])
        exo_hi = -math.radians(self.exo.knee_range_deg[0])
        return max(self.human.knee_range_rad[0], exo_lo), min(self.human.knee_range_rad[1], exo_hi)

    def with_overrides(self, **overrides: Any) -> TwinConfig:
        """A copy with ``field=value``, ``section__field=value`` or ``section=Section(...)`` replaced."""
        return apply_overrides(self, overrides, ("sim", "human", "exo", "spasticity", "reduced"))


# ----------------------------------------------------------------------------- YAML parsing


def _muscle_group(r: EntryReader) -> MuscleGroupConfig:
    return MuscleGroupConfig(
        moment_arm_m=r.number("moment_arm_m", "m"),
        max_isometric_force_n=r.number("max_isometric_force_n", "N"),
        length_range=r.vector("length_range", "L0", 2),  # type: ignore[arg-type]
        passive_force_max=r.number("passive_force_max", "F0"),
        lmin=r.number("lmin", "L0"),
        lmax=r.number("lmax", "L0"),
        vmax_l0_s=r.number("vmax_l0_s", "L0/s"),
        fvmax=r.number("fvmax", "F0"),
        activation_tau_s=r.vector("activation_tau_s", "s", 2),  # type: ignore[arg-type]
    )


def parse_twin_config(params: Mapping[str, Any], path: str = "<dict>") -> TwinConfig:
    """Build a :class:`TwinConfig` from the ``ros__parameters`` mapping of ``twin.yaml``."""
    root = EntryReader(params, path).section("twin")

    def build() -> TwinConfig:
        s = root.section("simulation")
        sim = SimConfig(
            physics_timestep_s=s.number("physics_timestep_s", "s"),
            physics_steps_per_control=s.integer("physics_steps_per_control", "1"),
            gravity_m_s2=s.number("gravity_m_s2", "m/s^2"),
        )
        h = root.section("human")
        human = HumanConfig(
            initial_knee_angle_rad=h.number("initial_knee_angle_rad", "rad"),
            knee_range_rad=h.vector("knee_range_rad", "rad", 2),  # type: ignore[arg-type]
            hip_flexion_rad=h.number("hip_flexion_rad", "rad"),
            pelvis_height_m=h.number("pelvis_height_m", "m"),
            knee_damping_nm_s_rad=h.number("knee_damping_nm_s_rad", "N m s/rad"),
            knee_armature_kg_m2=h.number("knee_armature_kg_m2", "kg m^2"),
            lock_foot_joints=h.flag("lock_foot_joints"),
            flexor_muscles=h.names("flexor_muscles"),
            extensor_muscles=h.names("extensor_muscles"),
        )
        e = root.section("exo")
        units = {
            "max_torque_nm": "N m", "motor_gear": "N m", "knee_damping_nm_s_rad": "N m s/rad",
            "knee_armature_kg_m2": "kg m^2", "upper_link_mass_kg": "kg", "upper_link_length_m": "m",
            "lower_link_mass_kg": "kg", "lower_link_length_m": "m", "lower_link_com_m": "m",
            "link_width_m": "m", "strap_slide_range_m": "m",
            "strap_slide_stiffness_n_m": "N/m", "strap_slide_damping_n_s_m": "N s/m",
            "strap_hinge_range_deg": "deg", "strap_hinge_damping_nm_s_rad": "N m s/rad",
            "cuff_mass_kg": "kg", "cuff_lateral_range_m": "m", "cuff_lateral_stiffness_n_m": "N/m",
            "cuff_lateral_damping_n_s_m": "N s/m", "connect_timeconst_s": "s", "limit_timeconst_s": "s",
            "knee_stop_timeconst_s": "s",
        }
        exo_values: dict[str, Any] = {k: e.number(k, u) for k, u in units.items()}
        exo_values["knee_range_deg"] = e.vector("knee_range_deg", "deg", 2)
        exo_values["shank_anchor_m"] = e.vector("shank_anchor_m", "m", 3)
        exo_values["limit_solimp"] = e.vector("limit_solimp", "1", 3)
        exo_values["exo_axis_fit_range_rad"] = e.vector("exo_axis_fit_range_rad", "rad", 2)
        exo = ExoConfig(**exo_values)
        sp = root.section("spasticity")
        tables_r = sp.section("tables")
        tables: dict[str, tuple[SpasticityLevel, ...]] = {}
        for tname in tables_r.child_keys():
            t = tables_r.section(tname)
            columns = {name: t.vector(name, unit, 4) for name, unit in _SPASTICITY_PARAMS}
            tables[tname] = tuple(
                SpasticityLevel(level=lv, **{n: columns[n][lv] for n, _ in _SPASTICITY_PARAMS}) for lv in range(4)
            )
        spasticity = SpasticityConfig(
            table=sp.choice("table", sorted(tables)),
            angle_mapping=sp.choice("angle_mapping", sorted(ANGLE_MAPPINGS)),
            routing=sp.choice("routing", ROUTINGS),
            subject_noise=sp.flag("subject_noise"),
            subject_noise_rel_sd=sp.number("subject_noise_rel_sd", "1"),
            tables=tables,
        )
        rd = root.section("reduced")
        reduced = ReducedConfig(
            shank_mass_kg=rd.number("shank_mass_kg", "kg"),
            shank_com_m=rd.number("shank_com_m", "m"),
            shank_com_angle_rad=rd.number("shank_com_angle_rad", "rad"),
            shank_inertia_kg_m2=rd.number("shank_inertia_kg_m2", "kg m^2"),
            strap_stiffness_nm_rad=rd.number("strap_stiffness_nm_rad", "N m/rad"),
            strap_damping_nm_s_rad=rd.number("strap_damping_nm_s_rad", "N m s/rad"),
            strap_lever_m=rd.number("strap_lever_m", "m"),
            flexors=_muscle_group(rd.section("flexors")),
            extensors=_muscle_group(rd.section("extensors")),
        )
        return TwinConfig(sim=sim, human=human, exo=exo, spasticity=spasticity, reduced=reduced, source_path=path)

    return validated(path, build)


def load_twin_config(path: Path | str | None = None) -> TwinConfig:
    """Load ``config/twin.yaml`` (or ``path``); raises :class:`ConfigError` naming file and key."""
    params, where = read_node_file(path, "twin.yaml", TWIN_NODE)
    return parse_twin_config(params, where)
