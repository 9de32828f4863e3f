"""Safety limits of the knee exoskeleton: every threshold the safety monitor enforces.

Each limit is one field of :class:`SafetyLimits`, named with its unit, documented
in the field's ``metadata`` (``unit`` and ``doc``; the ROS node declares one
parameter per field from them, see :meth:`SafetyLimits.parameter_docs`).

Conventions are those of :mod:`exo.twin.interface`: knee angle in rad,
positive = flexion, 0 = straight leg; velocity in rad/s (positive = flexing);
torque in N m (positive = a flexing torque); time in s.

Sensor sources are named after the topics of :mod:`exo.contract` with ``/``
replaced by ``_`` (ROS parameter names cannot hold a slash): ``joint_states``
(must be watched: it carries the knee angle and velocity the range and velocity
limits need), ``interaction_thigh``/``interaction_shank`` (every source whose
name starts with ``interaction`` carries an interaction torque; at least one
must be watched), ``imu_thigh``, ``imu_shank``, ``emg``, ... (liveness only).

Load a robot's limits from its ROS parameter file with
:meth:`SafetyLimits.from_yaml` (``config/safety.yaml``) or from a parameter
mapping with :meth:`SafetyLimits.from_dict`. Constructing a ``SafetyLimits`` in
any way validates it; every problem found raises one :class:`SafetyConfigError`
that names each bad key and why.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exo import contract
from exo.params import ConfigError, flatten, load_node_parameters


def source_name(topic: contract.Topic) -> str:
    """Sensor source name of a contract topic: its relative name with ``/`` -> ``_`` (a ROS parameter name)."""
    return topic.name.strip("/").replace("/", "_")


#: Node name whose ``ros__parameters`` hold the limits in ``config/safety.yaml``.
NODE_NAME = "safety_monitor"
#: Source carrying the knee angle, velocity and measured motor torque (required).
JOINT_STATES = source_name(contract.JOINT_STATES)
#: Sources whose name starts with this carry an interaction torque (at least one required).
INTERACTION_PREFIX = "interaction"
#: Accepted values of ``fallback_kind``.
FALLBACK_KINDS = ("pid", "zero")

_SOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SafetyConfigError(ConfigError):
    """Invalid safety limits. ``problems`` lists ``(key, why)`` for every bad key."""

    def __init__(self, problems: list[tuple[str, str]], origin: str = "safety limits") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {key}: {why}" for key, why in self.problems)
        super().__init__(f"{origin}: {len(self.problems)} invalid parameter(s):\n{lines}")


def _param(default: Any, unit: str, doc: str) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc})


def _default_sensor_timeouts() -> dict[str, float]:
    topics = (contract.JOINT_STATES, contract.INTERACTION_THIGH, contract.INTERACTION_SHANK,
              contract.IMU_THIGH, contract.IMU_SHANK)
    return {source_name(topic): 0.05 for topic in topics}


@dataclass(frozen=True)
class SafetyLimits:
    """Every limit of the safety monitor (frozen; use ``dataclasses.replace`` to derive).

    Defaults are those of ``config/safety.yaml`` (a test keeps them equal). See the
    field metadata for units and meaning, and :mod:`exo.safety.monitor` for where
    each limit acts.
    """

    # -- torque ---------------------------------------------------------------
    actuator_torque_limit_nm: float = _param(
        100.0, "N m", "Hard ceiling of the actuator (gear 100 x 1 N m motor); no command ever exceeds it.")
    user_torque_cap_nm: float = _param(
        70.0, "N m", "Per-user cap from the user's profile, <= actuator_torque_limit_nm; larger requests are clipped.")
    max_request_torque_nm: float = _param(
        100.0, "N m", "Requests with |torque| above this are rejected as implausible (a controller fault) "
        "instead of clipped; >= user_torque_cap_nm.")
    max_slew_rate_nm_per_s: float = _param(
        400.0, "N m/s", "Fastest rise or reversal of the commanded torque, relative to the last commanded "
        "torque. Removing torque (towards zero) is never delayed by it.")
    # -- range of motion and velocity -------------------------------------------
    joint_min_angle_rad: float = _param(
        -0.05, "rad", "Hard extension limit of the knee (+ = flexion, 0 = straight).")
    joint_max_angle_rad: float = _param(1.85, "rad", "Hard flexion limit of the knee.")
    soft_zone_width_rad: float = _param(
        0.15, "rad", "Width of the soft zone inside each hard limit: torque pushing towards that limit is "
        "scaled linearly from full at the zone's inner edge to zero at the limit, and refused beyond it.")
    max_joint_velocity_rad_s: float = _param(
        6.0, "rad/s", "Above this knee speed, torque accelerating the knee further in its direction of "
        "motion is refused (braking torque still passes).")
    max_interaction_torque_nm: float = _param(
        80.0, "N m", "Above this |interaction torque| on any strap, the fallback controller replaces the "
        "controller.")
    # -- watchdogs ----------------------------------------------------------------
    control_period_s: float = _param(0.01, "s", "Period at which update() is called (100 Hz control).")
    request_timeout_periods: int = _param(
        1, "periods", "A torque request expires after this many control periods; without a valid request "
        "the fallback drives the joint.")
    stamp_jitter_tolerance_s: float = _param(
        0.002, "s", "Clock jitter tolerated on top of every timeout (request expiry, sensor timeouts): "
        "hardware stamps of a 100 Hz stream are not exactly 10 ms apart.")
    sensor_timeouts_s: Mapping[str, float] = field(
        default_factory=_default_sensor_timeouts, hash=False,
        metadata={"unit": "s", "doc": "Watched sensor sources and their timeouts (source: timeout); a source "
                  "with no valid sample within its timeout triggers SAFE_STOP. Replaces the default set."})
    latch_safe_stop: bool = _param(
        True, "-", "Once every source has reported, a SAFE_STOP caused by a stale source stays latched until "
        "reset() (false: it clears by itself when the data returns).")
    # -- sensor plausibility across sources ----------------------------------------
    imu_knee_tolerance_rad: float = _param(
        0.3, "rad", "Largest disagreement between the knee angle of joint_states and the one the IMUs imply "
        "(thigh pitch - shank pitch + imu_knee_offset_rad) while all three are fresh; beyond it for "
        "imu_knee_disagreement_s it is a sensor conflict. 0 = no cross-check.")
    imu_knee_offset_rad: float = _param(
        0.0, "rad", "Knee angle when the two IMUs' pitches are equal (their mounting offset on the cuffs).")
    imu_knee_disagreement_s: float = _param(
        0.03, "s", "How long the IMU/joint_states disagreement must last to count (a few samples: the streams "
        "are sampled at different instants).")
    max_sensor_publishers: int = _param(
        1, "publishers", "More publishers than this on a watched sensor topic (a spoofed or second source) is a "
        "sensor conflict.")
    sensor_conflict_safe_stop_s: float = _param(
        0.5, "s", "A sensor conflict (IMU disagreement, a second sensor publisher) hands the knee to the fallback "
        "at once; if it lasts this long, a latched SAFE_STOP.")
    # -- fallback controller --------------------------------------------------------
    fallback_kind: str = _param(
        "pid", "-", "Fallback controller: 'pid' (compliant hold of the angle at entry) or 'zero' "
        "(transparent, zero torque).")
    fallback_torque_cap_nm: float = _param(
        15.0, "N m", "Torque cap of the fallback controller; the effective cap is min(this, user cap).")
    fallback_kp_nm_per_rad: float = _param(20.0, "N m/rad", "Fallback PID proportional gain.")
    fallback_ki_nm_per_rad_s: float = _param(
        0.0, "N m/(rad s)", "Fallback PID integral gain (integral clamped to the fallback cap).")
    fallback_kd_nm_s_per_rad: float = _param(1.0, "N m s/rad", "Fallback PID derivative (damping) gain.")
    fallback_min_duration_s: float = _param(
        0.5, "s", "Once in FALLBACK, stay at least this long after its cause cleared (no chattering).")
    # -- safe stop ------------------------------------------------------------------
    safe_stop_damping_nm_s_per_rad: float = _param(
        2.0, "N m s/rad", "Damping applied in SAFE_STOP while the knee velocity is still fresh "
        "(torque = -gain * velocity); 0 = pure zero torque.")
    safe_stop_torque_cap_nm: float = _param(
        10.0, "N m", "Cap of the safe-stop damping torque; the effective cap is min(this, user cap).")
    # -- input plausibility -----------------------------------------------------------
    plausible_angle_min_rad: float = _param(
        -0.5, "rad", "Knee angles below this are sensor faults (sample rejected); <= joint_min_angle_rad.")
    plausible_angle_max_rad: float = _param(
        2.5, "rad", "Knee angles above this are sensor faults; >= joint_max_angle_rad.")
    plausible_velocity_max_rad_s: float = _param(
        30.0, "rad/s", "|Knee velocity| above this is a sensor fault; >= max_joint_velocity_rad_s.")
    plausible_torque_max_nm: float = _param(
        300.0, "N m", "|Measured motor or interaction torque| above this is a sensor fault; "
        ">= actuator_torque_limit_nm and >= max_interaction_torque_nm.")
    # -- bookkeeping --------------------------------------------------------------------
    transition_log_size: int = _param(256, "entries", "Number of state transitions kept in memory.")

    def __post_init__(self) -> None:
        problems = self._normalise_types()
        if not problems:
            problems = self._check_values()
        if problems:
            raise SafetyConfigError(problems)

    # -- derived values --------------------------------------------------------------
    @property
    def torque_cap_nm(self) -> float:
        """Cap of the controller's torque, N m: min(user cap, actuator limit)."""
        return min(self.user_torque_cap_nm, self.actuator_torque_limit_nm)

    @property
    def request_timeout_s(self) -> float:
        """Age at which a torque request expires, s."""
        return self.request_timeout_periods * self.control_period_s + self.stamp_jitter_tolerance_s

    @property
    def interaction_sources(self) -> tuple[str, ...]:
        """Watched sources that carry an interaction torque."""
        return tuple(s for s in self.sensor_timeouts_s if s.startswith(INTERACTION_PREFIX))

    # -- loading ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, params: Mapping[str, Any], origin: str = "safety limits") -> SafetyLimits:
        """Limits from a parameter mapping; missing keys keep their defaults.

        Accepts nested (``{"sensor_timeouts_s": {"joint_states": 0.05}}``) or dotted
        (``{"sensor_timeouts_s.joint_states": 0.05}``, as ROS lists parameters) keys.

        Raises:
            SafetyConfigError: naming every unknown key, wrong type or bad value.
        """
        if not isinstance(params, Mapping):
            raise SafetyConfigError([("<root>", f"expected a mapping of parameters, got {type(params).__name__}")],
                                    origin)
        known = [f.name for f in dataclasses.fields(cls)]
        kwargs: dict[str, Any] = {}
        timeouts: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        for key, value in flatten(params).items():
            name = str(key)
            if name.startswith("sensor_timeouts_s."):
                timeouts[name.split(".", 1)[1]] = value
            elif name in known:  # sensor_timeouts_s here only if it is not a mapping: type error below
                kwargs[name] = value
            else:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append((name, f"unknown key{hint}"))
        if isinstance(params.get("sensor_timeouts_s"), Mapping) and not timeouts:
            problems.append(("sensor_timeouts_s", "must map at least one source name to its timeout in s"))
        if timeouts:
            kwargs["sensor_timeouts_s"] = timeouts
        try:
            limits = cls(**kwargs)
        except SafetyConfigError as exc:
            raise SafetyConfigError(problems + exc.problems, origin) from None
        if problems:
            raise SafetyConfigError(problems, origin)
        return limits

    @classmethod
    def from_yaml(cls, path: Path | str, node_name: str = NODE_NAME) -> SafetyLimits:
        """Limits from a ROS 2 parameter file (``<node_name>`` or ``/**`` -> ``ros__parameters``).

        Raises:
            ConfigError: unreadable file, invalid YAML, no entry for the node.
            SafetyConfigError: bad parameters (names the file and every bad key).
        """
        return cls.from_dict(load_node_parameters(path, node_name), origin=str(path))

    def __reduce__(self) -> tuple[Any, ...]:
        # the read-only mapping does not pickle; rebuild (and re-validate) from plain parameters
        return (type(self).from_dict, (self.to_dict(),))

    def to_dict(self) -> dict[str, Any]:
        """Plain parameters (``from_dict(to_dict())`` round-trips)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["sensor_timeouts_s"] = dict(self.sensor_timeouts_s)
        return out

    @classmethod
    def parameter_docs(cls) -> dict[str, tuple[str, str]]:
        """``{key: (unit, description)}`` for every parameter (ROS ParameterDescriptors, docs)."""
        return {f.name: (f.metadata["unit"], f.metadata["doc"]) for f in dataclasses.fields(cls)}

    # -- validation ------------------------------------------------------------------
    def _normalise_types(self) -> list[tuple[str, str]]:
        """Check every field's type; store ints given for floats as floats, mappings read-only."""
        problems: list[tuple[str, str]] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = type(f.default) if f.default is not dataclasses.MISSING else dict
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    problems.append((f.name, f"expected a number, got {type(value).__name__} {value!r}"))
                elif not math.isfinite(float(value)):
                    problems.append((f.name, f"must be finite, got {value!r}"))
                else:
                    object.__setattr__(self, f.name, float(value))
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    problems.append((f.name, f"expected an integer, got {type(value).__name__} {value!r}"))
                else:
                    object.__setattr__(self, f.name, int(value))
            elif kind is bool:
                if not isinstance(value, bool):
                    problems.append((f.name, f"expected true or false, got {type(value).__name__} {value!r}"))
            elif kind is str:
                if not isinstance(value, str):
                    problems.append((f.name, f"expected a string, got {type(value).__name__} {value!r}"))
            else:  # sensor_timeouts_s
                problems += self._normalise_timeouts(f.name, value)
        return problems

    def _normalise_timeouts(self, name: str, value: Any) -> list[tuple[str, str]]:
        if not isinstance(value, Mapping):
            return [(name, f"expected a mapping source -> timeout s, got {type(value).__name__} {value!r}")]
        problems: list[tuple[str, str]] = []
        clean: dict[str, float] = {}
        for source, timeout in value.items():
            key = f"{name}.{source}"
            if not isinstance(source, str) or not _SOURCE_NAME.match(source):
                problems.append((key, "source names are identifiers (letters, digits, '_'; topic 'imu/thigh' "
                                      "is source 'imu_thigh')"))
            elif isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
                problems.append((key, f"expected a timeout in s, got {type(timeout).__name__} {timeout!r}"))
            elif not math.isfinite(float(timeout)):
                problems.append((key, f"must be finite, got {timeout!r}"))
            else:
                clean[source] = float(timeout)
        object.__setattr__(self, name, MappingProxyType(clean))
        return problems

    def _check_values(self) -> list[tuple[str, str]]:
        """Relations between the (well-typed) values; each problem names its key."""
        p: list[tuple[str, str]] = []

        def need(ok: bool, key: str, why: str) -> None:
            if not ok:
                p.append((key, f"{why} (got {getattr(self, key)!r})"))

        for key in ("actuator_torque_limit_nm", "user_torque_cap_nm", "max_request_torque_nm",
                    "max_slew_rate_nm_per_s", "max_joint_velocity_rad_s", "max_interaction_torque_nm",
                    "control_period_s", "fallback_torque_cap_nm", "plausible_velocity_max_rad_s",
                    "plausible_torque_max_nm"):
            need(getattr(self, key) > 0, key, "must be > 0")
        for key in ("soft_zone_width_rad", "fallback_kp_nm_per_rad", "fallback_ki_nm_per_rad_s",
                    "fallback_kd_nm_s_per_rad", "fallback_min_duration_s", "safe_stop_damping_nm_s_per_rad",
                    "safe_stop_torque_cap_nm", "stamp_jitter_tolerance_s", "imu_knee_tolerance_rad",
                    "imu_knee_disagreement_s", "sensor_conflict_safe_stop_s"):
            need(getattr(self, key) >= 0, key, "must be >= 0")
        need(self.stamp_jitter_tolerance_s < self.control_period_s, "stamp_jitter_tolerance_s",
             f"must be < control_period_s ({self.control_period_s} s)")
        cap = self.user_torque_cap_nm
        need(cap <= self.actuator_torque_limit_nm, "user_torque_cap_nm",
             f"must be <= actuator_torque_limit_nm ({self.actuator_torque_limit_nm} N m)")
        need(self.max_request_torque_nm >= self.torque_cap_nm, "max_request_torque_nm",
             f"must be >= user_torque_cap_nm ({cap} N m), else clippable requests are rejected")
        lo, hi = self.joint_min_angle_rad, self.joint_max_angle_rad
        need(lo < hi, "joint_min_angle_rad", f"must be < joint_max_angle_rad ({hi} rad)")
        if lo < hi:
            need(2 * self.soft_zone_width_rad < hi - lo, "soft_zone_width_rad",
                 f"the two soft zones must not overlap: 2 x width < range {hi - lo:.3f} rad")
        need(self.plausible_angle_min_rad <= lo, "plausible_angle_min_rad",
             f"must be <= joint_min_angle_rad ({lo} rad): a knee beyond its limit must still read as plausible")
        need(self.plausible_angle_max_rad >= hi, "plausible_angle_max_rad", f"must be >= joint_max_angle_rad ({hi} rad)")
        need(self.plausible_velocity_max_rad_s >= self.max_joint_velocity_rad_s, "plausible_velocity_max_rad_s",
             f"must be >= max_joint_velocity_rad_s ({self.max_joint_velocity_rad_s} rad/s)")
        need(self.plausible_torque_max_nm >= max(self.actuator_torque_limit_nm, self.max_interaction_torque_nm),
             "plausible_torque_max_nm", "must be >= actuator_torque_limit_nm and >= max_interaction_torque_nm")
        need(self.request_timeout_periods >= 1, "request_timeout_periods", "must be >= 1")
        need(self.max_sensor_publishers >= 1, "max_sensor_publishers", "must be >= 1")
        need(self.transition_log_size >= 1, "transition_log_size", "must be >= 1")
        need(self.fallback_kind in FALLBACK_KINDS, "fallback_kind", f"must be one of {', '.join(FALLBACK_KINDS)}")
        timeouts = self.sensor_timeouts_s
        if JOINT_STATES not in timeouts:
            p.append(("sensor_timeouts_s", f"must watch {JOINT_STATES!r} (knee angle and velocity for the range "
                                           f"and velocity limits); got {sorted(timeouts)}"))
        if not self.interaction_sources:
            p.append(("sensor_timeouts_s", f"must watch at least one '{INTERACTION_PREFIX}*' source for "
                                           f"max_interaction_torque_nm; got {sorted(timeouts)}"))
        for source, timeout in timeouts.items():
            if timeout <= 0:
                p.append((f"sensor_timeouts_s.{source}", f"must be > 0, got {timeout!r}"))
            elif timeout < self.control_period_s:
                p.append((f"sensor_timeouts_s.{source}", f"must be >= control_period_s ({self.control_period_s} s), "
                                                         f"got {timeout!r}"))
        return p
