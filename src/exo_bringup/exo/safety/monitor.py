"""The safety monitor: every decision about the torque sent to the knee is made in this file.

A pure core (no rclpy). A thin ROS node feeds it sensor samples (:meth:`SafetyMonitor.on_sensor`)
and torque requests (:meth:`SafetyMonitor.on_request`), calls :meth:`SafetyMonitor.update` once per
control period and publishes the returned :class:`SafetyDecision` on ``torque_command`` and
``safety/status``. Time is always passed in (float s, sim or wall clock); nothing here reads a
clock, so a run is deterministic and replays exactly. Units and signs: :mod:`exo.twin.interface`.

Where is X decided? In :meth:`SafetyMonitor.update`, in the order of the safety model (docs/architecture.md, docs/safety.md):

1. **Input sanity.** Requests and sensor samples are checked on arrival (:meth:`~SafetyMonitor.on_request`,
   :meth:`~SafetyMonitor.on_sensor`): NaN/inf, outside the plausibility ranges, older than the current
   one, stamped in the future, unknown source -> rejected and counted. A rejected request is as if none
   had arrived (the previous valid one stays in force until it expires); a rejected sample is ignored
   (its source ages towards its timeout). A non-finite or backwards update time is a FAULT.
2. **Hard limits** (:meth:`SafetyMonitor._apply_hard_limits`), applied alike to the controller's
   request, the fallback's output and the safe-stop damping, in this order: torque cap, slew rate
   (relative to the last *commanded* torque), range-of-motion soft zones, joint velocity.
3. **Shield.** A request no limit altered passes (OK); one a limit altered is clipped (LIMITING); while
   the interaction torque of any strap exceeds ``max_interaction_torque_nm`` the fallback replaces it
   (FALLBACK).
4. **Watchdog.** No valid request within ``request_timeout_periods`` -> FALLBACK. A sensor source with
   no valid sample within its timeout -> SAFE_STOP (latched until reset() once every source has
   reported, if ``latch_safe_stop``).
5. **E-stop.** :meth:`~SafetyMonitor.estop` latches ESTOP until :meth:`~SafetyMonitor.reset`, whatever the
   inputs. reset() is refused while a sensor source is stale or the sensors conflict.
6. **Sensor plausibility across sources** (a *sensor conflict*): more than ``max_sensor_publishers``
   publishers on a watched sensor topic (:meth:`~SafetyMonitor.on_sensor_publishers`), or the knee angle
   of ``joint_states`` disagreeing with the one the IMUs imply (thigh pitch - shank pitch) by more than
   ``imu_knee_tolerance_rad`` for ``imu_knee_disagreement_s``. A conflict hands the knee to the fallback
   at once; lasting ``sensor_conflict_safe_stop_s``, it latches SAFE_STOP. Either is a security event.

**Events.** Every e-stop, reset (accepted or refused) and security event (a request that was not the
controller's, reported by the node through :meth:`~SafetyMonitor.security_event`; a sensor conflict) is
an :class:`EventRecord` in the event log (:meth:`~SafetyMonitor.drain_events` hands the new ones to the
node, which publishes them on ``safety/events``). Counters and logs are never cleared, not even by a reset.

State precedence: ESTOP > FAULT > SAFE_STOP > FALLBACK > LIMITING > OK (numbering of
exo_msgs/SafetyStatus). Every state change is logged with its time and reason.

**Torque continuity (the slew rule).** The command never *rises in magnitude or reverses* faster than
``max_slew_rate_nm_per_s``, on every path. *Removing* torque is never delayed: entering SAFE_STOP,
ESTOP or FAULT sets the command to exactly zero at once (a ramp would keep assisting a knee whose
state is unknown), and the cap (when it was lowered), the range-of-motion soft zones and the velocity
limit may cut torque towards zero faster than the slew rate (a ramp would keep pushing the knee into
its end stop). Formally, for consecutive commands ``u0 -> u1`` over ``dt``:
``|u1 - u0| <= slew * min(dt, control_period_s)`` or ``u1`` lies between 0 and ``u0``. The slew step
uses ``min(dt, control_period_s)`` so that a stalled loop cannot produce a large step when it resumes.

**Fallback.** ``fallback_kind: pid`` is a compliant hold: a PID on the knee angle held at its value on
entry (clamped out of the soft zones), capped at ``fallback_torque_cap_nm``; ``zero`` ramps the torque
to zero (transparent mode). Either output goes through the hard limits, so it is capped, slew-limited
from the last command and never pushes into an end stop. The fallback stays active at least
``fallback_min_duration_s`` after its cause cleared; handing back to the controller is slew-limited.

**Safe stop.** Zero torque on entry; afterwards, while the knee velocity is still fresh, pure damping
``-safe_stop_damping_nm_s_per_rad * velocity`` capped at ``safe_stop_torque_cap_nm`` and built up from
zero under the slew rule. ESTOP and FAULT command exactly zero torque.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from exo import contract
from exo.safety.limits import INTERACTION_PREFIX, JOINT_STATES, SafetyLimits, source_name

if TYPE_CHECKING:
    from exo.twin.interface import Measurements

# Names reported in SafetyDecision.active_limits / SafetyStatus.active_limits.
TORQUE_CAP = "torque_cap"
SLEW_RATE = "slew_rate"
RANGE_OF_MOTION = "range_of_motion"
JOINT_VELOCITY = "joint_velocity"
INTERACTION_TORQUE = "interaction_torque"
REQUEST_TIMEOUT = "request_timeout"
FALLBACK_HOLD = "fallback_hold"
SENSOR_TIMEOUT = "sensor_timeout"
ESTOP = "estop"
MONITOR_FAULT = "monitor_fault"
SENSOR_CONFLICT = "sensor_conflict"

# Kinds of EventRecord (names of the KIND_* constants of exo_msgs/SafetyEvent).
EVENT_ESTOP = "ESTOP"
EVENT_RESET = "RESET"
EVENT_RESET_REFUSED = "RESET_REFUSED"
EVENT_SECURITY = "SECURITY"
#: A repeated security event (same origin and kind) is logged at most once per this many seconds, with its count.
SECURITY_REPORT_INTERVAL_S = 1.0

# Labels of who produced the commanded torque (TorqueCommand.source on torque_command),
# besides the controller's own label that passes through.
SOURCE_SAFE_STOP = "safe_stop"
SOURCE_ESTOP = "estop"

_EPS_S = 1e-9  # tolerance on time comparisons (periods are not exact in binary floating point)
IMU_PREFIX = "imu"
IMU_THIGH = source_name(contract.IMU_THIGH)
IMU_SHANK = source_name(contract.IMU_SHANK)


class SafetyState(IntEnum):
    """State of the monitor; values equal the STATE_* constants of exo_msgs/SafetyStatus."""

    OK = 0  #: requests pass unchanged
    LIMITING = 1  #: requests pass but at least one limit altered them
    FALLBACK = 2  #: the fallback controller drives the joint
    SAFE_STOP = 3  #: sensor data missing: zero torque / damping
    ESTOP = 4  #: emergency stop latched until reset()
    FAULT = 5  #: fault of the monitor itself (time not finite or backwards, internal error)

    @property
    def diagnostic_level(self) -> int:
        """diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN, 2 ERROR."""
        return 0 if self <= SafetyState.LIMITING else 1 if self == SafetyState.FALLBACK else 2


@dataclass(frozen=True)
class SafetyDecision:
    """What the monitor commands for one control period.

    Attributes:
        t: time of the decision, s.
        torque_nm: commanded knee torque, N m (+ = flexion); always finite.
        source: who produced it: the controller's label (passed or clipped), ``fallback_pid``,
            ``fallback_zero``, ``safe_stop`` (also in FAULT) or ``estop``.
        state: the monitor's state.
        active_limits: names of the limits/causes that acted on this command.
        reason: human-readable reason for the state.
        transition: whether the state changed at this update.
        requested_torque_nm: the valid, unexpired request in force, N m (None if there is none).
        seq: sequence number of the request when the controller produced the torque, else None.
    """

    t: float
    torque_nm: float
    source: str
    state: SafetyState
    active_limits: tuple[str, ...]
    reason: str
    transition: bool
    requested_torque_nm: float | None
    seq: int | None


@dataclass(frozen=True)
class SafetyStatus:
    """Snapshot for exo_msgs/SafetyStatus (same fields, plus the time and the latches)."""

    t: float | None
    state: SafetyState
    state_name: str
    active_limits: tuple[str, ...]
    reason: str
    requested_torque_nm: float | None
    commanded_torque_nm: float
    rejected_requests: int
    invalid_sensor_samples: int
    transitions: int
    estop_latched: bool
    fault_latched: bool
    safe_stop_latched: bool
    security_events: int = 0
    last_security_event: str = ""


@dataclass(frozen=True)
class EventRecord:
    """One entry of the event log (exo_msgs/SafetyEvent).

    Attributes:
        t: the monitor's time of the event, s (None before the first update).
        kind: ``ESTOP``, ``RESET``, ``RESET_REFUSED`` or ``SECURITY``.
        origin: where it came from (a topic, ``estop service``, ``local reset``, ``sensor plausibility``).
        detail: what happened.
        count: events of this kind since start (a repeated security event reports the total).
    """

    t: float | None
    kind: str
    origin: str
    detail: str
    count: int


class Transition(NamedTuple):
    """One entry of the transition log."""

    t: float
    from_state: SafetyState
    to_state: SafetyState
    reason: str


@dataclass(frozen=True)
class _Request:
    t: float
    torque_nm: float
    source: str
    seq: int


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, or None (NaN, inf, bool, non-numbers, overflow)."""
    if type(x) is float:  # the hot path (every sample of every control step): skip the ABC check
        return x if math.isfinite(x) else None
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return None
    try:
        value = float(x)
    except (OverflowError, ValueError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _wrap_rad(x: float) -> float:
    """An angle difference wrapped into (-pi, pi], rad."""
    return x - 2.0 * math.pi * math.floor((x + math.pi) / (2.0 * math.pi))


class _CompliantHold:
    """Fallback ``pid``: a low-gain PID holding the knee at the angle it had on entry."""

    def __init__(self, limits: SafetyLimits) -> None:
        self._limits = limits
        self.target_angle_rad = 0.0
        self._integral_rad_s = 0.0

    def start(self, angle_rad: float) -> None:
        """Hold ``angle_rad`` (clamped out of the soft zones), with a fresh integral."""
        lim = self._limits
        lo = lim.joint_min_angle_rad + lim.soft_zone_width_rad
        hi = lim.joint_max_angle_rad - lim.soft_zone_width_rad
        self.target_angle_rad = min(max(angle_rad, lo), hi)
        self._integral_rad_s = 0.0

    def torque_nm(self, angle_rad: float, velocity_rad_s: float, dt_s: float) -> float:
        """PID torque, N m, before the hard limits; the integral is clamped to the fallback cap."""
        lim = self._limits
        error_rad = self.target_angle_rad - angle_rad
        ki = lim.fallback_ki_nm_per_rad_s
        if ki > 0.0:
            bound = lim.fallback_torque_cap_nm / ki
            self._integral_rad_s = min(max(self._integral_rad_s + error_rad * dt_s, -bound), bound)
        return (lim.fallback_kp_nm_per_rad * error_rad + ki * self._integral_rad_s
                - lim.fallback_kd_nm_s_per_rad * velocity_rad_s)


class SafetyMonitor:
    """Limits, watchdogs, shield, fallback and e-stop of the knee torque (see the module docstring).

    Not thread-safe: the node calls every method from one executor thread.
    """

    def __init__(self, limits: SafetyLimits | None = None) -> None:
        self._limits = limits if limits is not None else SafetyLimits()
        self._hold = _CompliantHold(self._limits)
        self._log: deque[Transition] = deque(maxlen=self._limits.transition_log_size)
        # inputs
        self._sensor_t: dict[str, float] = {}  # source -> time of its last valid sample, s
        self._knee_angle_rad: float | None = None
        self._knee_velocity_rad_s: float | None = None
        self._motor_torque_nm: float | None = None
        self._interaction_nm: dict[str, float] = {}  # interaction source -> latest torque, N m
        self._request: _Request | None = None
        # state
        self._t: float | None = None  # time of the last update, s
        self._state = SafetyState.SAFE_STOP
        self._torque_nm = 0.0  # last commanded torque, N m
        self._armed = False  # every source has reported since start / the last reset
        self._estop_reason: str | None = None
        self._fault_reason: str | None = None
        self._safe_stop_reason: str | None = None  # latched safe stop
        self._fallback_until_s = -math.inf
        self._fallback_cause = ""
        self._reset_note = ""
        self._last = SafetyDecision(0.0, 0.0, SOURCE_SAFE_STOP, SafetyState.SAFE_STOP, (SENSOR_TIMEOUT,),
                                    "waiting for the first update", False, None, None)
        # sensor plausibility across sources
        self._imu_pitch_rad: dict[str, float] = {}  # imu source -> latest pitch, rad
        self._publishers: dict[str, int] = {}  # sensor source -> publishers seen on its topic
        self._imu_disagree_since: float | None = None
        self._conflict_since: float | None = None
        # counters since start (never cleared) and the event log
        self._rejected_requests = 0
        self._invalid_sensor_samples = 0
        self._transitions = 0
        self._last_rejected_request = ""
        self._last_invalid_sample = ""
        self._security_events = 0
        self._last_security_event = ""
        self._event_counts: dict[str, int] = {}
        self._events: deque[EventRecord] = deque(maxlen=self._limits.transition_log_size)
        self._new_events: list[EventRecord] = []
        self._security_reported: dict[tuple[str, str], float] = {}  # (origin, what) -> time of its last report
        self._security_unreported: dict[tuple[str, str], int] = {}  # (origin, what) -> events since that report

    # -- read-only views -----------------------------------------------------------------------
    @property
    def limits(self) -> SafetyLimits:
        return self._limits

    @property
    def state(self) -> SafetyState:
        return self._state

    @property
    def rejected_requests(self) -> int:
        """Requests rejected by input sanity since start (a reset does not clear it)."""
        return self._rejected_requests

    @property
    def invalid_sensor_samples(self) -> int:
        """Sensor samples rejected by input sanity since start."""
        return self._invalid_sensor_samples

    @property
    def transitions(self) -> int:
        """State transitions since start."""
        return self._transitions

    @property
    def security_events(self) -> int:
        """Security events since start (foreign or spoofed requests, sensor conflicts)."""
        return self._security_events

    @property
    def event_log(self) -> tuple[EventRecord, ...]:
        """The latest ``transition_log_size`` events (e-stops, resets, security), oldest first."""
        return tuple(self._events)

    def drain_events(self) -> list[EventRecord]:
        """The events recorded since the last call (the node publishes them on safety/events)."""
        out, self._new_events = self._new_events, []
        return out

    @property
    def transition_log(self) -> tuple[Transition, ...]:
        """The latest ``transition_log_size`` transitions, oldest first (kept across resets)."""
        return tuple(self._log)

    # -- inputs ----------------------------------------------------------------------------------
    def on_sensor(self, source: str, t: float, *, knee_angle_rad: float | None = None,
                  knee_velocity_rad_s: float | None = None, motor_torque_nm: float | None = None,
                  interaction_torque_nm: float | None = None, pitch_rad: float | None = None) -> bool:
        """Record one sample of a watched sensor source (input sanity, step 1).

        ``joint_states`` must carry ``knee_angle_rad`` (rad) and ``knee_velocity_rad_s`` (rad/s) and may
        carry ``motor_torque_nm``; ``interaction*`` sources must carry ``interaction_torque_nm`` (N m);
        ``imu*`` sources may carry their segment's sagittal ``pitch_rad`` (rad, for the knee-angle
        cross-check); other sources carry no value (liveness only). ``t`` is the sample's time, s.

        Returns:
            True if accepted; False if rejected (counted in ``invalid_sensor_samples``, sample ignored).
        """
        values = {"knee_angle_rad": knee_angle_rad, "knee_velocity_rad_s": knee_velocity_rad_s,
                  "motor_torque_nm": motor_torque_nm, "interaction_torque_nm": interaction_torque_nm,
                  "pitch_rad": pitch_rad}
        given = {k: v for k, v in values.items() if v is not None}
        why, t_s, clean = self._check_sample(source, t, given)
        if why:
            self._invalid_sensor_samples += 1
            self._last_invalid_sample = f"{source}: {why}"
            return False
        self._sensor_t[source] = t_s
        if source == JOINT_STATES:
            self._knee_angle_rad = clean["knee_angle_rad"]
            self._knee_velocity_rad_s = clean["knee_velocity_rad_s"]
            self._motor_torque_nm = clean.get("motor_torque_nm", self._motor_torque_nm)
        elif source.startswith(INTERACTION_PREFIX):
            self._interaction_nm[source] = clean["interaction_torque_nm"]
        elif "pitch_rad" in clean:
            self._imu_pitch_rad[source] = clean["pitch_rad"]
        return True

    def on_sensor_publishers(self, source: str, count: int) -> None:
        """How many publishers the node sees on the topic of sensor ``source`` (checked at every update)."""
        self._publishers[source] = int(count)

    def security_event(self, origin: str, what: str) -> None:
        """Count a security event the node detected (e.g. origin ``torque_request``, what ``bad_mac``).

        Every one is counted at once; the event log gets the first of each (origin, what) and then at
        most one entry per :data:`SECURITY_REPORT_INTERVAL_S` with the number since the previous entry,
        so that a flood cannot flood the log too.
        """
        self._security_events += 1
        self._last_security_event = f"{origin}: {what}"
        key = (origin, what)
        self._security_unreported[key] = self._security_unreported.get(key, 0) + 1
        self._report_security(key)

    def _report_security(self, key: tuple[str, str]) -> None:
        last = self._security_reported.get(key)
        now = self._t
        if last is not None and (now is None or now - last < SECURITY_REPORT_INTERVAL_S):
            return
        n = self._security_unreported.pop(key, 0)
        if not n:
            return
        self._security_reported[key] = now if now is not None else -math.inf
        self._event(EVENT_SECURITY, key[0], key[1] if n == 1 else f"{key[1]} x {n}", n)

    def _event(self, kind: str, origin: str, detail: str, n: int = 1) -> None:
        self._event_counts[kind] = self._event_counts.get(kind, 0) + (n if kind != EVENT_SECURITY else 0)
        count = self._security_events if kind == EVENT_SECURITY else self._event_counts[kind]
        record = EventRecord(self._t, kind, origin, detail, count)
        self._events.append(record)
        self._new_events.append(record)

    def on_measurements(self, m: Measurements) -> bool:
        """Feed one synchronous :class:`~exo.twin.interface.Measurements` to every watched source.

        ``joint_states`` gets the exo knee angle, velocity and motor torque, every ``interaction*``
        source the interaction torque, the others a liveness sample, all at ``m.time_s``.
        Returns True if every sample was accepted.
        """
        ok = True
        for source in self._limits.sensor_timeouts_s:
            if source == JOINT_STATES:
                ok &= self.on_sensor(source, m.time_s, knee_angle_rad=m.exo_knee_angle_rad,
                                     knee_velocity_rad_s=m.exo_knee_velocity_rad_s,
                                     motor_torque_nm=m.exo_motor_torque_nm)
            elif source.startswith(INTERACTION_PREFIX):
                ok &= self.on_sensor(source, m.time_s, interaction_torque_nm=m.interaction_torque_nm)
            else:
                ok &= self.on_sensor(source, m.time_s)
        return ok

    def on_request(self, t: float, torque_nm: float, source: str = "controller", seq: int = 0) -> bool:
        """Record a controller's torque request (input sanity, step 1).

        Args:
            t: time the request was received, s (not its header stamp, which is the stamp of the
                sensor sample it was computed from).
            torque_nm: requested knee torque, N m (+ = flexion).
            source: the controller's label, copied to the command when it passes.
            seq: the request's sequence number, copied to the command when it passes.

        Returns:
            True if accepted; False if rejected (counted in ``rejected_requests``; the previous valid
            request stays in force until it expires, so a rejected request counts as no request).
        """
        lim = self._limits
        t_s, u = _finite(t), _finite(torque_nm)
        why = ""
        if t_s is None:
            why = f"time {t!r} is not a finite number"
        elif u is None:
            why = f"torque {torque_nm!r} is not a finite number"
        elif abs(u) > lim.max_request_torque_nm:
            why = f"|torque| {abs(u):.6g} N m above max_request_torque_nm {lim.max_request_torque_nm} N m"
        elif isinstance(seq, bool) or not isinstance(seq, numbers.Integral):
            why = f"seq {seq!r} is not an integer"
        elif self._request is not None and t_s < self._request.t:
            why = f"older (t={t_s:.6g} s) than the request in force (t={self._request.t:.6g} s)"
        elif self._t is not None and t_s > max(self._t, self._sensor_t.get(JOINT_STATES, self._t)) + \
                lim.request_timeout_s + _EPS_S:
            # "future" = beyond the newest knee sample received: on hardware the samples' stamps jitter,
            # and the request for sample k+1 may come before step k+1 is decided (the last update is t_k)
            why = f"stamped in the future (t={t_s:.6g} s, last update t={self._t:.6g} s)"
        if why:
            self._rejected_requests += 1
            self._last_rejected_request = why
            return False
        assert t_s is not None and u is not None
        self._request = _Request(t_s, u, str(source) or "controller", int(seq))
        return True

    def estop(self, reason: str = "e-stop requested", origin: str = "estop service") -> None:
        """Latch the emergency stop: zero torque from the next update() until a successful reset()."""
        if self._estop_reason is None:
            self._estop_reason = reason or "e-stop requested"
        self._event(EVENT_ESTOP, origin, reason or "e-stop requested")

    def reset(self, t: float | None = None, origin: str = "local reset") -> tuple[bool, str]:
        """Clear latched ESTOP / FAULT / SAFE_STOP, if no fault condition holds (counters stay).

        Refused while any watched sensor source is stale at ``t`` (default: the last update time) or the
        sensors conflict. The new state is decided (and logged) at the next update(). Every call is an
        event (RESET or RESET_REFUSED). Returns (accepted, message).
        """
        ok, message = self._try_reset(t)
        self._event(EVENT_RESET if ok else EVENT_RESET_REFUSED, origin, message)
        return ok, message

    def _try_reset(self, t: float | None) -> tuple[bool, str]:
        when = self._t if t is None else _finite(t)
        if when is None:
            return False, "reset refused: no update yet (or time not finite), sensor freshness unknown"
        stale = self._stale_sources(when)
        if stale:
            return False, "reset refused: sensor data stale: " + "; ".join(stale)
        conflicts = self._sensor_conflicts(when)
        if conflicts:
            return False, "reset refused: sensor conflict: " + "; ".join(conflicts)
        cleared = [f"{name} ({why})" for name, why in (("e-stop", self._estop_reason),
                                                         ("fault", self._fault_reason),
                                                         ("safe stop", self._safe_stop_reason)) if why]
        self._estop_reason = self._fault_reason = self._safe_stop_reason = None
        self._conflict_since = None
        self._reset_note = f"after reset at t={when:.3f} s: "
        return True, ("reset: cleared " + ", ".join(cleared)) if cleared else "reset: nothing was latched"

    # -- the decision ------------------------------------------------------------------------------
    def update(self, t: float) -> SafetyDecision:
        """Decide the torque command at time ``t`` (s); call once per control period.

        Never raises: an internal error latches FAULT with zero torque.
        """
        try:
            return self._decide(t)
        except Exception as exc:  # a bug here must not leave torque on the knee
            self._fault_reason = f"internal error: {exc!r}"
            t_s = self._t if self._t is not None else 0.0
            return self._finish(t_s, SafetyState.FAULT, 0.0, SOURCE_SAFE_STOP, (MONITOR_FAULT,),
                                f"monitor fault latched: {self._fault_reason}; reset() required", None, None)

    def _decide(self, t: float) -> SafetyDecision:
        lim = self._limits
        # 1. input sanity of the time itself: not finite or backwards -> latched FAULT
        t_s = _finite(t)
        dt_s = 0.0
        if t_s is None:  # keep the monitor's time; the decision is stamped with it
            self._fault_reason = self._fault_reason or f"update time {t!r} is not finite"
            t_s = self._t if self._t is not None else 0.0
        else:
            if self._t is not None and t_s < self._t:
                self._fault_reason = self._fault_reason or f"time went backwards from {self._t:.6g} s to {t_s:.6g} s"
                self._forget_inputs()  # they are stamped on the old time base
            elif self._t is not None:
                dt_s = t_s - self._t
            self._t = t_s
        max_step_nm = lim.max_slew_rate_nm_per_s * min(dt_s, lim.control_period_s)
        request = self._request
        request_fresh = request is not None and t_s - request.t <= lim.request_timeout_s + _EPS_S
        requested = request.torque_nm if request_fresh and request is not None else None

        # 5. e-stop, and faults of the monitor itself: latched, exactly zero torque
        if self._estop_reason is not None:
            return self._finish(t_s, SafetyState.ESTOP, 0.0, SOURCE_ESTOP, (ESTOP,),
                                f"e-stop latched: {self._estop_reason}; reset() required", requested, None)
        if self._fault_reason is not None:
            return self._finish(t_s, SafetyState.FAULT, 0.0, SOURCE_SAFE_STOP, (MONITOR_FAULT,),
                                f"monitor fault latched: {self._fault_reason}; reset() required", requested, None)

        # 4. watchdog on sensor data -> safe stop (1. stale inputs are a fault)
        stale = self._stale_sources(t_s)
        if stale:
            why = "sensor data stale: " + "; ".join(stale)
            if self._armed and lim.latch_safe_stop and self._safe_stop_reason is None:
                self._safe_stop_reason = why
            return self._safe_stop(t_s, why, requested, max_step_nm)
        self._armed = True
        if self._safe_stop_reason is not None:
            return self._safe_stop(t_s, f"safe stop latched after: {self._safe_stop_reason}; reset() required",
                                   requested, max_step_nm)

        # 6. sensor plausibility across sources: fallback at once, latched safe stop if it lasts
        causes: list[tuple[str, str]] = []
        conflicts = self._sensor_conflicts(t_s)
        if conflicts:
            why = "sensor conflict: " + "; ".join(conflicts)
            if self._conflict_since is None:
                self._conflict_since = t_s
                self._security_events += 1
                self._last_security_event = f"sensor plausibility: {why}"
                self._event(EVENT_SECURITY, "sensor plausibility", why)
            if t_s - self._conflict_since >= lim.sensor_conflict_safe_stop_s - _EPS_S:
                self._safe_stop_reason = f"{why} (for {t_s - self._conflict_since:.3f} s)"
                return self._safe_stop(t_s, self._safe_stop_reason, requested, max_step_nm, SENSOR_CONFLICT)
            causes.append((SENSOR_CONFLICT, why))
        else:
            self._conflict_since = None
        for key in [k for k in self._security_unreported if k not in self._security_reported
                    or t_s - self._security_reported[k] >= SECURITY_REPORT_INTERVAL_S]:
            self._report_security(key)  # the count of a repeated security event, once per interval

        # 4. request watchdog and 3. interaction torque shield -> fallback
        if request is None:
            causes.append((REQUEST_TIMEOUT, "no valid torque request received"))
        elif not request_fresh:
            causes.append((REQUEST_TIMEOUT, f"no valid torque request for {t_s - request.t:.3f} s "
                                            f"(> {lim.request_timeout_periods} periods)"))
        over = {s: x for s, x in self._interaction_nm.items() if abs(x) > lim.max_interaction_torque_nm}
        if over:
            worst = max(over, key=lambda s: abs(over[s]))
            causes.append((INTERACTION_TORQUE, f"interaction torque {over[worst]:.1f} N m on {worst} over "
                                               f"{lim.max_interaction_torque_nm} N m"))
        if causes:
            self._fallback_until_s = t_s + lim.fallback_min_duration_s
            self._fallback_cause = "; ".join(why for _, why in causes)
        elif self._state == SafetyState.FALLBACK and t_s < self._fallback_until_s - _EPS_S:
            causes.append((FALLBACK_HOLD, f"holding the fallback {self._fallback_until_s - t_s:.3f} s more "
                                          f"after: {self._fallback_cause}"))
        if causes:
            return self._fallback(t_s, causes, requested, dt_s, max_step_nm)

        # 2. hard limits and 3. shield on the controller's request -> OK / LIMITING
        assert request is not None
        torque, acted = self._apply_hard_limits(request.torque_nm, lim.torque_cap_nm, max_step_nm)
        if acted:
            return self._finish(t_s, SafetyState.LIMITING, torque, request.source, tuple(acted),
                                "request limited by " + ", ".join(acted), requested, request.seq)
        return self._finish(t_s, SafetyState.OK, torque, request.source, (), "request passed unchanged",
                            requested, request.seq)

    def _safe_stop(self, t_s: float, reason: str, requested: float | None, max_step_nm: float,
                   cause: str = SENSOR_TIMEOUT) -> SafetyDecision:
        """SAFE_STOP: zero torque on entry, then capped damping while the knee velocity is fresh."""
        lim = self._limits
        torque, acted = 0.0, [cause]
        joint_fresh = JOINT_STATES in self._sensor_t and not self._stale_sources(t_s, (JOINT_STATES,))
        if (self._state == SafetyState.SAFE_STOP and joint_fresh and lim.safe_stop_damping_nm_s_per_rad > 0
                and self._knee_velocity_rad_s is not None):
            damping = -lim.safe_stop_damping_nm_s_per_rad * self._knee_velocity_rad_s
            torque, limits_acted = self._apply_hard_limits(damping, lim.safe_stop_torque_cap_nm, max_step_nm)
            acted += limits_acted
        return self._finish(t_s, SafetyState.SAFE_STOP, torque, SOURCE_SAFE_STOP, tuple(acted), reason,
                            requested, None)

    def _fallback(self, t_s: float, causes: list[tuple[str, str]], requested: float | None, dt_s: float,
                  max_step_nm: float) -> SafetyDecision:
        """FALLBACK: the fallback controller's output through the hard limits."""
        lim = self._limits
        target = 0.0
        if lim.fallback_kind == "pid":
            assert self._knee_angle_rad is not None and self._knee_velocity_rad_s is not None
            if self._state != SafetyState.FALLBACK:
                self._hold.start(self._knee_angle_rad)
            target = self._hold.torque_nm(self._knee_angle_rad, self._knee_velocity_rad_s,
                                          min(dt_s, lim.control_period_s))
        torque, acted = self._apply_hard_limits(target, lim.fallback_torque_cap_nm, max_step_nm)
        names = tuple(dict.fromkeys([name for name, _ in causes] + acted))
        reason = "fallback: " + "; ".join(why for _, why in causes)
        return self._finish(t_s, SafetyState.FALLBACK, torque, f"fallback_{lim.fallback_kind}", names, reason,
                            requested, None)

    def _apply_hard_limits(self, target_nm: float, cap_nm: float, max_step_nm: float) -> tuple[float, list[str]]:
        """Step 2: the hard limits on a torque target, N m. Returns (torque N m, names of limits that acted).

        Precedence when limits conflict: range of motion and velocity > cap > slew (the slew limit only
        restrains rises and reversals; the later limits only scale the torque towards zero).
        """
        lim = self._limits
        acted: list[str] = []
        torque = target_nm
        cap_nm = min(cap_nm, lim.torque_cap_nm)
        if abs(torque) > cap_nm:
            torque = math.copysign(cap_nm, torque)
            acted.append(TORQUE_CAP)
        low, high = self._torque_nm - max_step_nm, self._torque_nm + max_step_nm
        if not low <= torque <= high:
            torque = min(max(torque, low), high)
            acted.append(SLEW_RATE)
        if abs(torque) > cap_nm:  # the last command was above a cap that is now lower: cut at once
            torque = math.copysign(cap_nm, torque)
            if TORQUE_CAP not in acted:
                acted.append(TORQUE_CAP)
        scale = self._range_scale(torque)
        if scale < 1.0:
            torque *= scale
            acted.append(RANGE_OF_MOTION)
        velocity = self._knee_velocity_rad_s
        if velocity is not None and abs(velocity) > lim.max_joint_velocity_rad_s and torque * velocity > 0.0:
            torque = 0.0
            acted.append(JOINT_VELOCITY)
        return torque, acted

    def _range_scale(self, torque_nm: float) -> float:
        """Factor in [0, 1] on a torque pushing towards an end stop: 1 outside the soft zone, 0 at/beyond the limit."""
        lim = self._limits
        angle = self._knee_angle_rad
        if angle is None or torque_nm == 0.0:
            return 1.0
        # room left before the limit the torque pushes towards, rad
        room = lim.joint_max_angle_rad - angle if torque_nm > 0.0 else angle - lim.joint_min_angle_rad
        if room <= 0.0:
            return 0.0
        width = lim.soft_zone_width_rad
        return 1.0 if width <= 0.0 or room >= width else room / width

    def _finish(self, t_s: float, state: SafetyState, torque_nm: float, source: str, active: tuple[str, ...],
                reason: str, requested: float | None, seq: int | None) -> SafetyDecision:
        """Record the command and any transition; the only place the state changes."""
        torque_nm = float(torque_nm) + 0.0  # no -0.0
        if not math.isfinite(torque_nm):  # cannot happen by construction; update() turns this into FAULT
            raise FloatingPointError(f"non-finite torque {torque_nm!r} in state {state.name}")
        transition = state != self._state
        note, self._reset_note = self._reset_note, ""
        if transition:
            self._log.append(Transition(t_s, self._state, state, note + reason))
            self._transitions += 1
            self._state = state
        self._torque_nm = torque_nm
        self._last = SafetyDecision(t_s, torque_nm, source, state, active, reason, transition, requested, seq)
        return self._last

    # -- helpers -----------------------------------------------------------------------------------
    def _check_sample(self, source: str, t: Any, given: dict[str, Any]) -> tuple[str, float, dict[str, float]]:
        """Input sanity of one sensor sample: (why it is invalid or "", time s, clean values)."""
        lim = self._limits
        timeout = lim.sensor_timeouts_s.get(source) if isinstance(source, str) else None
        if timeout is None:
            return f"unknown source (watched: {', '.join(lim.sensor_timeouts_s)})", 0.0, {}
        t_s = _finite(t)
        if t_s is None:
            return f"time {t!r} is not a finite number", 0.0, {}
        last = self._sensor_t.get(source)
        if last is not None and t_s < last:
            return f"older (t={t_s:.6g} s) than the previous sample (t={last:.6g} s)", t_s, {}
        if self._t is not None and t_s > self._t + timeout + _EPS_S:
            return f"stamped in the future (t={t_s:.6g} s, last update t={self._t:.6g} s)", t_s, {}
        if source == JOINT_STATES:
            required, optional = ("knee_angle_rad", "knee_velocity_rad_s"), ("motor_torque_nm",)
        elif source.startswith(INTERACTION_PREFIX):
            required, optional = ("interaction_torque_nm",), ()
        elif source.startswith(IMU_PREFIX):
            required, optional = (), ("pitch_rad",)
        else:
            required, optional = (), ()
        missing = [k for k in required if k not in given]
        if missing:
            return f"missing {', '.join(missing)}", t_s, {}
        extra = [k for k in given if k not in required + optional]
        if extra:
            return f"this source does not carry {', '.join(extra)}", t_s, {}
        bounds = {
            "knee_angle_rad": (lim.plausible_angle_min_rad, lim.plausible_angle_max_rad),
            "knee_velocity_rad_s": (-lim.plausible_velocity_max_rad_s, lim.plausible_velocity_max_rad_s),
            "motor_torque_nm": (-lim.plausible_torque_max_nm, lim.plausible_torque_max_nm),
            "interaction_torque_nm": (-lim.plausible_torque_max_nm, lim.plausible_torque_max_nm),
            "pitch_rad": (-math.pi - 1e-9, math.pi + 1e-9),
        }
        clean: dict[str, float] = {}
        for key, raw in given.items():
            value = _finite(raw)
            low, high = bounds[key]
            if value is None:
                return f"{key} {raw!r} is not a finite number", t_s, {}
            if not low <= value <= high:
                return f"{key} {value:.6g} outside the plausible range [{low}, {high}]", t_s, {}
            clean[key] = value
        return "", t_s, clean

    def _stale_sources(self, t_s: float, sources: tuple[str, ...] | None = None) -> list[str]:
        """Descriptions of the watched sources with no valid sample within their timeout at ``t_s``."""
        out = []
        for source, timeout in self._limits.sensor_timeouts_s.items():
            if sources is not None and source not in sources:
                continue
            last = self._sensor_t.get(source)
            if last is None:
                out.append(f"{source} never received")
            elif abs(t_s - last) > timeout + self._limits.stamp_jitter_tolerance_s + _EPS_S:
                out.append(f"{source} sample age {t_s - last:.3f} s (timeout {timeout} s)")
        return out

    def _sensor_conflicts(self, t_s: float) -> list[str]:
        """Descriptions of the sensor conflicts at ``t_s`` (step 6); empty if the sensors agree."""
        lim = self._limits
        out = [f"{n} publishers on {source} (expected at most {lim.max_sensor_publishers})"
               for source, n in self._publishers.items() if n > lim.max_sensor_publishers]
        thigh, shank = self._imu_pitch_rad.get(IMU_THIGH), self._imu_pitch_rad.get(IMU_SHANK)
        knee = self._knee_angle_rad
        if (lim.imu_knee_tolerance_rad <= 0 or thigh is None or shank is None or knee is None
                or self._stale_sources(t_s, (JOINT_STATES, IMU_THIGH, IMU_SHANK))):
            self._imu_disagree_since = None
            return out
        implied = _wrap_rad(thigh - shank + lim.imu_knee_offset_rad)
        gap = abs(_wrap_rad(knee - implied))
        if gap <= lim.imu_knee_tolerance_rad:
            self._imu_disagree_since = None
            return out
        if self._imu_disagree_since is None or t_s < self._imu_disagree_since:
            self._imu_disagree_since = t_s
        if t_s - self._imu_disagree_since >= lim.imu_knee_disagreement_s - _EPS_S:
            out.append(f"knee angle {knee:.3f} rad (joint_states) vs {implied:.3f} rad from the IMUs: "
                       f"{gap:.3f} rad apart (tolerance {lim.imu_knee_tolerance_rad} rad)")
        return out

    def _forget_inputs(self) -> None:
        """Drop every stored sample and request (after the time base changed)."""
        self._sensor_t.clear()
        self._interaction_nm.clear()
        self._knee_angle_rad = self._knee_velocity_rad_s = self._motor_torque_nm = None
        self._imu_pitch_rad.clear()
        self._imu_disagree_since = None
        self._request = None
        self._fallback_until_s = -math.inf

    # -- reporting ---------------------------------------------------------------------------------
    def status(self) -> SafetyStatus:
        """Snapshot of the latest decision and the counters (exo_msgs/SafetyStatus)."""
        d = self._last
        return SafetyStatus(
            t=self._t, state=self._state, state_name=self._state.name, active_limits=d.active_limits,
            reason=d.reason, requested_torque_nm=d.requested_torque_nm, commanded_torque_nm=self._torque_nm,
            rejected_requests=self._rejected_requests, invalid_sensor_samples=self._invalid_sensor_samples,
            transitions=self._transitions, estop_latched=self._estop_reason is not None,
            fault_latched=self._fault_reason is not None, safe_stop_latched=self._safe_stop_reason is not None,
            security_events=self._security_events, last_security_event=self._last_security_event,
        )

    def diagnostics(self) -> dict[str, str]:
        """Flat key/values for diagnostic_msgs/DiagnosticStatus (level: ``state.diagnostic_level``)."""
        lim, d, now = self._limits, self._last, self._t

        def age(t_sample: float | None) -> str:
            if t_sample is None:
                return "never"
            return "unknown" if now is None else f"{now - t_sample:.4f}"

        out = {
            "state": self._state.name,
            "reason": d.reason,
            "active_limits": ",".join(d.active_limits),
            "source": d.source,
            "commanded_torque_nm": f"{self._torque_nm:.4f}",
            "requested_torque_nm": "none" if d.requested_torque_nm is None else f"{d.requested_torque_nm:.4f}",
            "torque_cap_nm": f"{lim.torque_cap_nm:g}",
            "fallback_kind": lim.fallback_kind,
            "rejected_requests": str(self._rejected_requests),
            "invalid_sensor_samples": str(self._invalid_sensor_samples),
            "transitions": str(self._transitions),
            "estop_latched": str(self._estop_reason is not None).lower(),
            "fault_latched": str(self._fault_reason is not None).lower(),
            "safe_stop_latched": str(self._safe_stop_reason is not None).lower(),
            "last_rejected_request": self._last_rejected_request,
            "security_events": str(self._security_events),
            "last_security_event": self._last_security_event,
            "last_invalid_sensor_sample": self._last_invalid_sample,
            "request_age_s": age(self._request.t if self._request else None),
            "knee_angle_rad": "none" if self._knee_angle_rad is None else f"{self._knee_angle_rad:.4f}",
            "knee_velocity_rad_s": "none" if self._knee_velocity_rad_s is None else f"{self._knee_velocity_rad_s:.4f}",
        }
        for source in lim.sensor_timeouts_s:
            out[f"sensor_age_s.{source}"] = age(self._sensor_t.get(source))
        if self._log:
            last = self._log[-1]
            out["last_transition"] = f"t={last.t:.3f} s {last.from_state.name} -> {last.to_state.name}: {last.reason}"
        return out
