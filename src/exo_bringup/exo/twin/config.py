"""Typed configuration of the digital twin (``config/twin.yaml``) and of the env (``config/env.yaml``).

Both files are ROS 2 parameter files (``/**: ros__parameters: ...``, see
:mod:`exo.params`) so that the ROS shell can load them unchanged. Every
physical number is written as::

    name: {value: 0.001, unit: s, source: "facts: MuJoCo timestep"}

and the loader checks that ``value`` is a finite number (or a list of them) of
the expected length and range, that ``unit`` is the unit this module expects
(so a file written in degrees is not read as radians) and that ``source`` is
given. Every error is a :class:`exo.params.ConfigError` naming the file and the
key. Sources are ``paper`` (the study), ``facts``
(``digital-twin-facts.md``), ``myoleg`` (myo-sim 0.2.3), ``chosen: why`` or
``fitted: how``.

Overrides: :meth:`TwinConfig.with_overrides` takes ``field=value`` for any
field name that is unique across the sections (e.g. ``subject_noise=False``)
or ``section__field=value`` (e.g. ``exo__max_torque_nm=50.0``), or whole
sections (``exo=ExoConfig(...)``); the result is validated again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from exo.params import ConfigError, load_node_parameters
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


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ConfigError(what)


def _finite(name: str, value: float, lo: float | None = None, hi: float | None = None, strict_lo: bool = False) -> None:
    _check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f"{name} must be a finite number, got {value!r}")
    if lo is not None:
        ok = value > lo if strict_lo else value >= lo
        _check(ok, f"{name} must be {'>' if strict_lo else '>='} {lo}, got {value}")
    if hi is not None:
        _check(value <= hi, f"{name} must be <= {hi}, got {value}")


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
        _finite("simulation.physics_timestep_s", self.physics_timestep_s, 0.0, 0.01, strict_lo=True)
        _check(isinstance(self.physics_steps_per_control, int) and self.physics_steps_per_control >= 1,
               f"simulation.physics_steps_per_control must be an integer >= 1, got {self.physics_steps_per_control!r}")
        _finite("simulation.gravity_m_s2", self.gravity_m_s2, 0.0)

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
        _finite("human.knee_range_rad[0]", lo)
        _finite("human.knee_range_rad[1]", hi)
        _check(lo < hi, f"human.knee_range_rad must be increasing, got {self.knee_range_rad}")
        _finite("human.initial_knee_angle_rad", self.initial_knee_angle_rad, lo, hi)
        _finite("human.hip_flexion_rad", self.hip_flexion_rad, 0.0, math.pi)
        _finite("human.pelvis_height_m", self.pelvis_height_m)
        _finite("human.knee_damping_nm_s_rad", self.knee_damping_nm_s_rad, 0.0)
        _finite("human.knee_armature_kg_m2", self.knee_armature_kg_m2, 0.0)
        _check(len(self.flexor_muscles) > 0 and len(self.extensor_muscles) > 0, "human: flexor_muscles and extensor_muscles must not be empty")
        _check(not set(self.flexor_muscles) & set(self.extensor_muscles), "human: a muscle cannot be both flexor and extensor")


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
                _finite("exo.knee_range_deg[0]", value[0], -180.0, 0.0)
                _finite("exo.knee_range_deg[1]", value[1], 0.0, 30.0)
            elif f.name == "limit_solimp":
                _finite("exo.limit_solimp[0]", value[0], 0.0, 1.0, strict_lo=True)
                _finite("exo.limit_solimp[1]", value[1], value[0], 1.0)
                _finite("exo.limit_solimp[2]", value[2], 0.0, strict_lo=True)
            elif f.name in ("shank_anchor_m", "exo_axis_fit_range_rad"):
                for i, x in enumerate(value):
                    _finite(f"exo.{f.name}[{i}]", x)
            else:
                _finite(f"exo.{f.name}", value, 0.0, strict_lo=f.name not in ("knee_damping_nm_s_rad", "strap_slide_damping_n_s_m", "strap_hinge_damping_nm_s_rad", "cuff_lateral_damping_n_s_m", "knee_armature_kg_m2"))
        _check(self.lower_link_com_m <= self.lower_link_length_m, "exo.lower_link_com_m must be <= exo.lower_link_length_m")
        _check(self.exo_axis_fit_range_rad[0] < self.exo_axis_fit_range_rad[1], "exo.exo_axis_fit_range_rad must be increasing")
        _check(self.max_torque_nm <= self.motor_gear, "exo.max_torque_nm must be <= exo.motor_gear (ctrlrange is [-1, 1])")


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
        _check(self.table in self.tables, f"spasticity.table {self.table!r} is not one of {sorted(self.tables)}")
        _check(self.angle_mapping in ANGLE_MAPPINGS, f"spasticity.angle_mapping {self.angle_mapping!r} is not one of {sorted(ANGLE_MAPPINGS)}")
        _check(self.routing in ROUTINGS, f"spasticity.routing {self.routing!r} is not one of {list(ROUTINGS)}")
        _check(isinstance(self.subject_noise, bool), f"spasticity.subject_noise must be true/false, got {self.subject_noise!r}")
        _finite("spasticity.subject_noise_rel_sd", self.subject_noise_rel_sd, 0.0, 1.0)
        for name, levels in self.tables.items():
            _check(tuple(p.level for p in levels) == (0, 1, 2, 3), f"spasticity.tables.{name} must hold levels 0-3 in order")

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

    def make_reflex(self, level: int, seed: int | None) -> SpasticReflex:
        """The reflex model of a new subject (see :meth:`subject`)."""
        return SpasticReflex(self.subject(level, seed), self.mapping, self.routing)  # type: ignore[arg-type]


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
        _finite("moment_arm_m", self.moment_arm_m, 0.0, strict_lo=True)
        _finite("max_isometric_force_n", self.max_isometric_force_n, 0.0, strict_lo=True)
        for x in self.length_range:
            _finite("length_range", x, 0.3, 2.0)
        _finite("passive_force_max", self.passive_force_max, 0.0)
        _finite("lmin", self.lmin, 0.0, 1.0)
        _finite("lmax", self.lmax, 1.0, 4.0)
        _finite("vmax_l0_s", self.vmax_l0_s, 0.0, strict_lo=True)
        _finite("fvmax", self.fvmax, 1.0)
        for x in self.activation_tau_s:
            _finite("activation_tau_s", x, 0.0, strict_lo=True)


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
            _finite(f"reduced.{name}", getattr(self, name), 0.0, strict_lo=True)
        _finite("reduced.strap_damping_nm_s_rad", self.strap_damping_nm_s_rad, 0.0)
        _finite("reduced.shank_com_angle_rad", self.shank_com_angle_rad, -math.pi / 2.0, math.pi / 2.0)


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
        return _apply_overrides(self, overrides, ("sim", "human", "exo", "spasticity", "reduced"))


# ----------------------------------------------------------------------------- env config


@dataclass(frozen=True)
class RewardConfig:
    """Reward terms of the knee-extension task (see :func:`exo.envs.knee_extension.compute_reward`).

    Attributes:
        weights: weight of each named term (pose, interaction, smoothness, acceleration, range, peak).
        pose_sigma_rad: width sigma of the pose kernel exp(-e / (2 sigma^2)), rad.
        pose_kernel: "abs" (e = |error|, as in the facts) or "squared" (e = error^2).
        bonus_per_step: bonus growth per consecutive in-band step (-).
        bonus_angle_band_rad: |error| band of the bonus, rad.
        bonus_velocity_band_rad_s: |velocity| band of the bonus, rad/s.
        interaction_form: "facts" (-(tau / scale)^2) or "paper" (linear normalisation plus a
            quadratic penalty above ``interaction_quadratic_above_nm``).
        interaction_scale_nm: torque normalisation, N m (1 N m = the facts' raw N m^2 penalty).
        interaction_quadratic_above_nm: threshold of the paper's quadratic penalty, N m.
        acceleration_scale_rad_s2: normalisation of the knee-acceleration change, rad/s^2.
        safe_range_rad: human knee range outside which the range penalty applies, rad.
        peak_above_nm: interaction torque at which the peak term starts, N m.
        peak_span_nm: torque above ``peak_above_nm`` at which the peak term reaches its floor
            of -1 (it is ``-min(1, max(0, |tau| - peak_above_nm) / peak_span_nm)^2``), N m.
            The term targets the peak-torque metric, which a per-step linear penalty barely
            sees; its weight is 0 in the paper's reward (config/env.yaml).
        peak_form: "band" (the bounded per-step penalty above) or "running_max": the step's
            increase of the episode's running maximum of |tau| above ``peak_above_nm``, in units
            of ``peak_span_nm`` (``-max(0, |tau| - max(M, peak_above_nm)) / peak_span_nm``, M = the
            largest |tau| of the earlier steps). Summed over an episode it is exactly
            ``-max(0, peak - peak_above_nm) / peak_span_nm``: the peak metric itself, and holding a
            torque below the peak reached costs nothing.
        unsafe_stop_penalty_per_step: charged once per control step left in the episode when a
            training episode ends on the unsafe condition (-), so that stopping early never
            pays more than finishing the trial; it must exceed the largest per-step loss of
            the other terms (range term excluded).
    """

    weights: Mapping[str, float]
    pose_sigma_rad: float
    pose_kernel: str
    bonus_per_step: float
    bonus_angle_band_rad: float
    bonus_velocity_band_rad_s: float
    interaction_form: str
    interaction_scale_nm: float
    interaction_quadratic_above_nm: float
    acceleration_scale_rad_s2: float
    safe_range_rad: tuple[float, float]
    unsafe_stop_penalty_per_step: float = 0.0
    peak_above_nm: float = 70.0
    peak_span_nm: float = 30.0
    peak_form: str = "band"

    TERMS: ClassVar[tuple[str, ...]] = ("pose", "interaction", "smoothness", "acceleration", "range", "peak")

    def __post_init__(self) -> None:
        _check(set(self.weights) == set(self.TERMS), f"reward.weights must name exactly {list(self.TERMS)}, got {sorted(self.weights)}")
        for k, w in self.weights.items():
            _finite(f"reward.weights.{k}", w, 0.0)
        _finite("reward.pose_sigma_rad", self.pose_sigma_rad, 0.0, strict_lo=True)
        _check(self.pose_kernel in ("abs", "squared"), f"reward.pose_kernel must be 'abs' or 'squared', got {self.pose_kernel!r}")
        _check(self.interaction_form in ("facts", "paper"), f"reward.interaction_form must be 'facts' or 'paper', got {self.interaction_form!r}")
        for name in ("bonus_per_step", "bonus_angle_band_rad", "bonus_velocity_band_rad_s", "interaction_quadratic_above_nm", "unsafe_stop_penalty_per_step"):
            _finite(f"reward.{name}", getattr(self, name), 0.0)
        _finite("reward.peak_above_nm", self.peak_above_nm, 0.0)
        _check(self.peak_form in ("band", "running_max"), f"reward.peak_form must be 'band' or 'running_max', got {self.peak_form!r}")
        for name in ("interaction_scale_nm", "acceleration_scale_rad_s2", "peak_span_nm"):
            _finite(f"reward.{name}", getattr(self, name), 0.0, strict_lo=True)
        _check(self.safe_range_rad[0] < self.safe_range_rad[1], "reward.safe_range_rad must be increasing")


@dataclass(frozen=True)
class EnvConfig:
    """The seated knee-extension episode.

    Attributes:
        control_steps: episode length in control steps (truncation), -.
        initial_knee_angle_rad: start angle, rad (+ = flexion).
        initial_angle_noise_rad: half-width of a uniform start-angle perturbation, rad.
        target_knee_angle_rad: target angle, rad.
        safe_range_rad: termination range of the human knee, rad.
        termination_interaction_nm: |interaction torque| above which leaving the range terminates, N m.
        reward: the reward terms.
    """

    control_steps: int
    initial_knee_angle_rad: float
    initial_angle_noise_rad: float
    target_knee_angle_rad: float
    safe_range_rad: tuple[float, float]
    termination_interaction_nm: float
    reward: RewardConfig
    source_path: str = ""

    def __post_init__(self) -> None:
        _check(isinstance(self.control_steps, int) and self.control_steps >= 1, f"episode.control_steps must be an integer >= 1, got {self.control_steps!r}")
        _finite("episode.initial_knee_angle_rad", self.initial_knee_angle_rad, 0.0, 2.0944)
        _finite("episode.initial_angle_noise_rad", self.initial_angle_noise_rad, 0.0, 0.5)
        _finite("episode.target_knee_angle_rad", self.target_knee_angle_rad, 0.0, 2.0944)
        _check(self.safe_range_rad[0] < self.safe_range_rad[1], "termination.safe_range_rad must be increasing")
        _finite("termination.interaction_torque_nm", self.termination_interaction_nm, 0.0)

    def with_overrides(self, **overrides: Any) -> EnvConfig:
        """A copy with ``field=value`` (env or reward field) or ``reward__field=value`` replaced."""
        return _apply_overrides(self, overrides, ("reward",))


# ----------------------------------------------------------------------------- overrides


def _apply_overrides(cfg: Any, overrides: Mapping[str, Any], sections: Sequence[str]) -> Any:
    top: dict[str, Any] = {}
    per_section: dict[str, dict[str, Any]] = {s: {} for s in sections}
    own = {f.name for f in fields(cfg)}
    for key, value in overrides.items():
        if "__" in key:
            section, name = key.split("__", 1)
            if section not in per_section:
                raise ConfigError(f"override {key!r}: no section {section!r} (sections: {list(sections)})")
            per_section[section][name] = value
            continue
        if key in own:
            top[key] = value
            continue
        owners = [s for s in sections if key in {f.name for f in fields(getattr(cfg, s))}]
        if len(owners) != 1:
            hint = f"ambiguous, use one of {[f'{s}__{key}' for s in owners]}" if owners else "unknown field"
            raise ConfigError(f"override {key!r}: {hint}")
        per_section[owners[0]][key] = value
    out = replace(cfg, **top) if top else cfg
    for section, values in per_section.items():
        if values:
            current = getattr(out, section)
            valid = {f.name for f in fields(current)}
            unknown = sorted(set(values) - valid)
            if unknown:
                raise ConfigError(f"override: section {section!r} has no field(s) {unknown}")
            out = replace(out, **{section: replace(current, **values)})
    return out


# ----------------------------------------------------------------------------- YAML parsing


class _Reader:
    """Typed access to one nested mapping of a parameter file, with errors naming file and key."""

    def __init__(self, data: Any, path: str, where: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: {where or 'top level'} must be a mapping, got {type(data).__name__}")
        self.data, self.path, self.where = data, path, where

    def _key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise ConfigError(f"{self.path}: missing key {self._key(name)!r}")
        return self.data[name]

    def section(self, name: str) -> _Reader:
        return _Reader(self._get(name), self.path, self._key(name))

    def child_keys(self) -> list[str]:
        return list(self.data)

    def _entry(self, name: str, unit: str) -> Any:
        entry = self._get(name)
        key = self._key(name)
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise ConfigError(f"{self.path}: {key} must be {{value: ..., unit: {unit!r}, source: ...}}, got {entry!r}")
        if str(entry.get("unit")) != unit:
            raise ConfigError(f"{self.path}: {key} has unit {entry.get('unit')!r}, expected {unit!r}")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"{self.path}: {key} needs a 'source' (paper, facts, myoleg, 'chosen: why' or 'fitted: how')")
        return entry["value"]

    def number(self, name: str, unit: str) -> float:
        value = self._entry(name, unit)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{self.path}: {self._key(name)}.value must be a finite number, got {value!r}")
        return float(value)

    def integer(self, name: str, unit: str) -> int:
        value = self._entry(name, unit)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path}: {self._key(name)}.value must be an integer, got {value!r}")
        return value

    def vector(self, name: str, unit: str, length: int) -> tuple[float, ...]:
        value = self._entry(name, unit)
        key = self._key(name)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
            raise ConfigError(f"{self.path}: {key}.value must be a list of {length} numbers, got {value!r}")
        out = []
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ConfigError(f"{self.path}: {key}.value[{i}] must be a finite number, got {x!r}")
            out.append(float(x))
        return tuple(out)

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = self._get(name)
        if value not in options:
            raise ConfigError(f"{self.path}: {self._key(name)} must be one of {list(options)}, got {value!r}")
        return str(value)

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}: {self._key(name)} must be true or false, got {value!r}")
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(x, str) and x for x in value):
            raise ConfigError(f"{self.path}: {self._key(name)} must be a list of names, got {value!r}")
        return tuple(value)


def _wrap(path: str, build: Any) -> Any:
    """Run a dataclass constructor, prefixing validation errors with the file name."""
    try:
        return build()
    except ConfigError as exc:
        if str(exc).startswith(path):
            raise
        raise ConfigError(f"{path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _default_path(name: str) -> Path:
    """``config/<name>`` via :mod:`exo.paths`, else the repository's top-level ``config/``."""
    try:
        from exo.paths import config_file

        return config_file(name)
    except (ImportError, FileNotFoundError):
        candidate = Path(__file__).resolve().parents[4] / "config" / name
        if candidate.is_file():
            return candidate
        raise ConfigError(f"cannot find config/{name} (set EXO_SHARE_DIR or pass a path)") from None


def _parameters(path: Path | str | None, name: str) -> tuple[dict[str, Any], str]:
    p = Path(path) if path is not None else _default_path(name)
    return load_node_parameters(p, TWIN_NODE), str(p)


def _muscle_group(r: _Reader) -> MuscleGroupConfig:
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
    root = _Reader(params, path).section("twin")

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

    return _wrap(path, build)


def load_twin_config(path: Path | str | None = None) -> TwinConfig:
    """Load ``config/twin.yaml`` (or ``path``); raises :class:`ConfigError` naming file and key."""
    params, where = _parameters(path, "twin.yaml")
    return parse_twin_config(params, where)


def parse_env_config(params: Mapping[str, Any], path: str = "<dict>") -> EnvConfig:
    """Build an :class:`EnvConfig` from the ``ros__parameters`` mapping of ``env.yaml``."""
    root = _Reader(params, path).section("knee_extension")

    def build() -> EnvConfig:
        ep = root.section("episode")
        term = root.section("termination")
        rw = root.section("reward")
        wr = rw.section("weights")
        weights = {k: wr.number(k, "1") for k in RewardConfig.TERMS}
        unknown = sorted(set(wr.child_keys()) - set(RewardConfig.TERMS))
        if unknown:
            raise ConfigError(f"{path}: knee_extension.reward.weights has unknown term(s) {unknown}")
        reward = RewardConfig(
            weights=weights,
            pose_sigma_rad=rw.number("pose_sigma_rad", "rad"),
            pose_kernel=rw.choice("pose_kernel", ("abs", "squared")),
            bonus_per_step=rw.number("bonus_per_step", "1"),
            bonus_angle_band_rad=rw.number("bonus_angle_band_rad", "rad"),
            bonus_velocity_band_rad_s=rw.number("bonus_velocity_band_rad_s", "rad/s"),
            interaction_form=rw.choice("interaction_form", ("facts", "paper")),
            interaction_scale_nm=rw.number("interaction_scale_nm", "N m"),
            interaction_quadratic_above_nm=rw.number("interaction_quadratic_above_nm", "N m"),
            acceleration_scale_rad_s2=rw.number("acceleration_scale_rad_s2", "rad/s^2"),
            safe_range_rad=rw.vector("safe_range_rad", "rad", 2),  # type: ignore[arg-type]
            unsafe_stop_penalty_per_step=rw.number("unsafe_stop_penalty_per_step", "1"),
            peak_above_nm=rw.number("peak_above_nm", "N m"),
            peak_span_nm=rw.number("peak_span_nm", "N m"),
            peak_form=rw.choice("peak_form", ("band", "running_max")),
        )
        return EnvConfig(
            control_steps=ep.integer("control_steps", "1"),
            initial_knee_angle_rad=ep.number("initial_knee_angle_rad", "rad"),
            initial_angle_noise_rad=ep.number("initial_angle_noise_rad", "rad"),
            target_knee_angle_rad=ep.number("target_knee_angle_rad", "rad"),
            safe_range_rad=term.vector("safe_range_rad", "rad", 2),  # type: ignore[arg-type]
            termination_interaction_nm=term.number("interaction_torque_nm", "N m"),
            reward=reward,
            source_path=path,
        )

    return _wrap(path, build)


def load_env_config(path: Path | str | None = None) -> EnvConfig:
    """Load ``config/env.yaml`` (or ``path``); raises :class:`ConfigError` naming file and key."""
    params, where = _parameters(path, "env.yaml")
    return parse_env_config(params, where)
