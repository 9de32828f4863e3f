"""When the safety monitor decides a control step: the scheduling of the monitor node, as a pure core.

The monitor decides the torque of each ``joint_states`` sample once (:class:`~exo.safety.SafetyMonitor`
decides *what*; this decides *when*). Inputs are what the node receives, with the wall time of
receipt (monotonic, s): sensor samples (:meth:`StepClock.on_sample`), the controller's authenticated
answers (:meth:`StepClock.on_answer`, then :meth:`StepClock.fed` once the core has judged it) and the
node's timer (:meth:`StepClock.tick`). Each returns the :class:`Step` to decide now, or None. Nothing
here reads a clock or imports rclpy.

A step t_k (the stamp of a ``joint_states`` sample) is decided:

- when the controller's answer stamped t_k arrives, valid or not (with ``sync_sources``: once every
  listed source's sample of t_k has arrived too, so that a lockstep run never depends on how DDS
  interleaved the deliveries);
- at once if the controller did not answer the previous step (do not wait for a controller that is
  not answering); a sample stamped less than ``sample_burst_s`` after the pending one is a *burst*
  (a late driver loop, a USB-CAN adapter batching frames): it replaces the pending one without
  counting as a missed step, and the wait keeps the burst's first arrival;
- after ``request_deadline_s`` of wall time without an answer.

Until the controller's first accepted request, and at most ``startup_grace_s`` of wall time after the
first accepted ``joint_states`` sample, nothing is decided (the actuator holds zero torque while the
graph's processes come up in any order). An answer delivered *before* the sample it answers (two
publishers: DDS does not order their deliveries) is held (``feed_held`` feeds it to the core later)
until that sample, a newer one or ``request_deadline_s`` arrives. When every sensor stops for longer
than the stall grace, sensor time runs on with the wall clock (:meth:`StepClock.sensor_time`), so that
the core's per-source timeouts fire: a dead source gets a safe stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exo.safety.limits import JOINT_STATES

_EPS_S = 1e-9


@dataclass(frozen=True)
class StepTiming:
    """The node's timing parameters (config/safety_monitor.yaml), resolved for its time base.

    Attributes:
        control_period_s: period of the control steps, s.
        request_deadline_s: wall s to wait for a step's answer before deciding without it.
        sample_burst_s: a sample stamped less than this after the pending one is a burst, s (0 = off).
        startup_grace_s: wall s after the first joint_states sample to wait for the controller's first request.
        stall_grace_s: wall s of total sensor silence that mean a dead source, once the stream has covered
            ``stall_warmup_s`` of sensor time.
        stall_grace_startup_s: the same before that (a simulator's first steps are slow; a lockstep source
            pauses while it waits for a command: its warm-up never ends).
        stall_warmup_s: sensor time after the first sample before ``stall_grace_s`` applies, s.
        sync_sources: sources whose sample of a step must have arrived before the step is decided on its
            answer (empty: decide on the answer with whatever is at hand).
    """

    control_period_s: float
    request_deadline_s: float
    sample_burst_s: float
    startup_grace_s: float
    stall_grace_s: float
    stall_grace_startup_s: float
    stall_warmup_s: float
    sync_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """A control step to decide now.

    Attributes:
        t_s: the step's time, s (a sample's stamp, or sensor time run on by the wall clock).
        stamp_ns: the exact stamp of the sample it answers (copied to the command), or None.
    """

    t_s: float
    stamp_ns: int | None


class StepClock:
    """Decides when the monitor decides (see the module docstring).

    Args:
        timing: the node's timing parameters.
        feed_held: called when a held answer is due: the node hands it to the core and returns its time
            (s) if the core accepted it, else None.
    """

    def __init__(self, timing: StepTiming, feed_held: Callable[[], float | None]) -> None:
        self.timing = timing
        self._feed_held = feed_held
        self.pending_t: float | None = None  # joint_states stamp awaiting its decision, s
        self.pending_ns: int | None = None
        self.pending_since = 0.0  # wall time it arrived (the first sample's, in a burst)
        self.last_decided_t: float | None = None
        self.last_sample_t: float | None = None  # newest accepted sample, any source
        self.last_sample_wall = 0.0
        self.first_sample_t: float | None = None
        self.first_joint_wall: float | None = None  # the start-up grace runs from the control loop's start
        self.last_request_t: float | None = None  # newest request the core accepted
        self.last_answer_t: float | None = None  # newest answer, valid or not
        self.last_answer_ns: int | None = None
        self.sensor_ns: dict[str, int] = {}  # newest stamp that arrived per source (accepted or not)
        self.held_ns: int | None = None  # an answer that came before its sample
        self.held_since = 0.0

    # --- inputs ----------------------------------------------------------------------------------
    def on_sample(self, source: str, t_s: float, stamp_ns: int, accepted: bool, wall_s: float) -> Step | None:
        """A sample of ``source`` stamped ``stamp_ns`` arrived at ``wall_s``; ``accepted`` by the core."""
        if stamp_ns > self.sensor_ns.get(source, -1):
            self.sensor_ns[source] = stamp_ns
        if accepted:
            if self.first_sample_t is None:
                self.first_sample_t = t_s
            self.last_sample_t = t_s if self.last_sample_t is None else max(self.last_sample_t, t_s)
            self.last_sample_wall = wall_s
        if source != JOINT_STATES:
            return self._complete()
        if accepted and self.first_joint_wall is None:
            self.first_joint_wall = wall_s
        if self.held_ns is not None and self.held_ns <= stamp_ns:
            self._release_held()  # its sample (or a newer one) is here: the core sees them in order
        if not accepted:
            return None
        if self.last_decided_t is not None and t_s <= self.last_decided_t:
            return None
        if self.pending_t is not None and stamp_ns == self.pending_ns:
            return self._complete()  # the same sample offered again (lockstep start-up)
        # the controller missed the previous step: it was never decided (its request never came), or it
        # was decided on the deadline without its own request; a burst gave it no time to answer
        burst = self.pending_t is not None and t_s - self.pending_t < self.timing.sample_burst_s
        missed_previous = (self.pending_t is not None and not burst) or self.last_answer_t is None or (
            self.last_decided_t is not None and self.last_answer_t < self.last_decided_t - _EPS_S)
        self.pending_t, self.pending_ns = t_s, stamp_ns
        if not burst:
            self.pending_since = wall_s
        if self.last_answer_ns == stamp_ns:
            return self._complete()  # the step's answer (valid or not) came before its sample
        if self.waiting_for_controller(wall_s):
            return None
        if missed_previous:
            return self._step(t_s, stamp_ns)
        return None  # wait for the answer (or the deadline): a lockstep run stays paced by the controller

    def on_answer(self, t_s: float, stamp_ns: int, wall_s: float) -> bool:
        """The controller's (authenticated) answer stamped ``stamp_ns`` arrived at ``wall_s``.

        Returns True if the node is to hand it to the core now (then call :meth:`fed`); False if it
        answers a sample that has not arrived yet: the node holds it, and ``feed_held`` is called when due.
        """
        self.last_answer_t = t_s if self.last_answer_t is None else max(self.last_answer_t, t_s)
        self.last_answer_ns = stamp_ns
        if stamp_ns > self.sensor_ns.get(JOINT_STATES, stamp_ns):
            if self.held_ns is not None:
                self._release_held()  # two answers ahead: the older one is judged now
            self.held_ns, self.held_since = stamp_ns, wall_s
            return False
        return True

    def fed(self, accepted_t_s: float | None) -> Step | None:
        """The core judged the answer handed to it (its time if accepted, else None)."""
        if accepted_t_s is not None:
            self.last_request_t = accepted_t_s
        return self._complete()  # even if rejected: the step's answer came, the core decides what holds

    def tick(self, wall_s: float) -> Step | None:
        """The node's timer: held answers, request deadlines and stalled sensor streams."""
        timing = self.timing
        if self.held_ns is not None and wall_s - self.held_since >= timing.request_deadline_s:
            self._release_held()  # its sample did not come: judged as it is (a future stamp is refused)
        if (self.pending_t is not None and wall_s - self.pending_since >= timing.request_deadline_s
                and not self.waiting_for_controller(wall_s)):
            return self._step(self.pending_t, self.pending_ns)
        if self.stalled(wall_s):
            t = self.sensor_time(wall_s)
            if t is not None and (self.last_decided_t is None
                                  or t >= self.last_decided_t + timing.control_period_s - _EPS_S):
                return self._step(t, None)
        return None

    def step_after_last(self) -> Step | None:
        """The step one period after the last decided one (an e-stop is commanded at once), or None."""
        if self.last_decided_t is None:
            return None
        return self._step(self.last_decided_t + self.timing.control_period_s, None)

    # --- state -----------------------------------------------------------------------------------
    def waiting_for_controller(self, wall_s: float) -> bool:
        """Start-up: no request accepted yet, and the controller still has time to come up."""
        if self.last_request_t is not None:
            return False
        return self.first_joint_wall is None or wall_s - self.first_joint_wall < self.timing.startup_grace_s

    def stall_grace_s(self) -> float:
        """Wall seconds of total sensor silence taken for a dead source now."""
        timing = self.timing
        if (self.first_sample_t is None or self.last_sample_t is None
                or self.last_sample_t - self.first_sample_t < timing.stall_warmup_s):
            return timing.stall_grace_startup_s
        return timing.stall_grace_s

    def stalled(self, wall_s: float) -> bool:
        """True when no sensor sample was accepted for longer than the stall grace."""
        return self.last_sample_t is not None and wall_s - self.last_sample_wall > self.stall_grace_s()

    def sensor_time(self, wall_s: float) -> float | None:
        """Sensor time now: the newest sample's stamp, run on by the wall clock once the stream stalled."""
        if self.last_sample_t is None:
            return None
        stalled_s = wall_s - self.last_sample_wall
        return self.last_sample_t + (stalled_s if stalled_s > self.stall_grace_s() else 0.0)

    # --- helpers ---------------------------------------------------------------------------------
    def _complete(self) -> Step | None:
        """The pending step, if its answer came and (with sync) every listed source's sample of it."""
        if self.pending_t is None or self.last_answer_ns != self.pending_ns:
            return None
        ns = self.pending_ns
        if any(self.sensor_ns.get(s, -1) < ns for s in self.timing.sync_sources):
            return None  # a sample of this step is still on its way; the request deadline bounds the wait
        return self._step(self.pending_t, ns)

    def _step(self, t_s: float, stamp_ns: int | None) -> Step:
        """Mark ``t_s`` decided (whatever was pending with it is done)."""
        if stamp_ns is None and self.pending_t is not None and t_s == self.pending_t:
            stamp_ns = self.pending_ns
        self.pending_t = self.pending_ns = None
        self.last_decided_t = t_s
        return Step(t_s, stamp_ns)

    def _release_held(self) -> None:
        self.held_ns = None
        accepted = self._feed_held()
        if accepted is not None:
            self.last_request_t = accepted

