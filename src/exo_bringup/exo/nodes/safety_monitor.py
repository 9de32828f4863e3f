"""safety_monitor: every torque the knee receives passes through here.

A thin rclpy shell around :class:`exo.safety.SafetyMonitor` (the pure core,
where every decision is made). This node only moves data:

- sensor topics (``joint_states``, ``interaction/*``, ``imu/*``) -> ``on_sensor``,
- ``torque_request`` -> ``on_request``,
- one ``update(t)`` per control step -> ``torque_command`` (and its
  ``Float64MultiArray`` twin for ros2_control), ``safety/status`` on every
  transition and at ``status_rate_hz``, ``/diagnostics``,
- ``safety/estop`` and ``safety/reset`` (std_srvs/Trigger) -> ``estop``/``reset``.

**Start-up.** Until the controller's first request (at most ``startup_grace_s``
of wall time from the first joint_states sample: the samples the controller answers; on
hardware the IMUs stream before the actuator driver starts the control loop) no command is
published: the actuator holds zero torque, and a
lockstep sim bridge keeps offering its first sample. After that, no request
means the fallback.

**Time base.** The core runs on sensor time: the header stamps of the samples
(sim time from the sim bridge or a bag; the drivers' clock on hardware), so a
lockstep run is deterministic. A control step is decided once per
``joint_states`` sample t_k: when the controller's answer (request) stamped t_k
arrives, valid or not (with ``step_sync``, under simulated time by default:
once every watched sensor's sample of that step has arrived too, so that the
decision never depends on how DDS interleaved the deliveries); at once if the
controller did not answer the previous step (a sample stamped within ``sample_burst_s`` of
the pending one is a burst, not a missed step: see below); or after ``request_deadline_s`` of wall time (``request_deadline_sim_s``
under simulated time) without an answer. A request delivered before the
sample it answers (DDS does not order two publishers' deliveries) is held
until that sample arrives, and judged then. Samples can also come in bursts, several
stamped within a millisecond after a gap: a late driver loop, or a USB-CAN adapter that
batches frames.
Within a burst the controller has had no time to answer; the newest sample replaces the
pending one. The wait for its request stays bounded by ``request_deadline_s``, counted from
the first sample of the burst. When the
sensor stream itself stops (a dead driver or sim bridge stops sensor time
too), a steady-clock timer extrapolates sensor time by the wall time elapsed
beyond ``stall_grace_s`` so that the core's per-source timeouts fire and the
knee gets a safe stop.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import WrenchStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from exo import contract
from exo.ros import convert
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo.safety import SafetyConfigError, SafetyLimits, SafetyMonitor, SafetyState
from exo.safety.limits import INTERACTION_PREFIX, JOINT_STATES, source_name
from exo_msgs.msg import SafetyStatus, TorqueCommand

#: Parameters of the ROS shell itself (config/safety_monitor.yaml); the limits are in config/safety.yaml.
NODE_PARAMS = [
    Param("request_deadline_s", 0.02, "Wall seconds after a joint_states sample to wait for the controller's "
          "request for it before deciding without it (the previous request holds until it expires), s.",
          0.0005, 1.0),
    Param("sample_burst_s", 0.005, "A joint_states sample stamped less than this after the pending one (a burst: "
          "a late driver loop, a USB-CAN adapter batching frames; the drivers stamp on receipt) replaces it "
          "without counting as a step the controller missed; the wait for the newest sample's request stays "
          "bounded by request_deadline_s from the burst's first sample. 0 turns it off, s.", 0.0, 0.1),
    Param("request_deadline_sim_s", 2.0, "As request_deadline_s under use_sim_time (lockstep sim, bag "
          "replay): sensor time waits for the graph, so a busy CPU must not count as a late controller, s.",
          0.0005, 60.0),
    Param("stall_grace_s", 0.1, "Wall seconds without any sensor sample before sensor time is extrapolated by "
          "wall time (so that per-source timeouts fire when the whole stream stops), s.", 0.001, 10.0),
    Param("stall_grace_sim_s", 3.0, "As stall_grace_s under use_sim_time: longer than the sim bridge's "
          "lockstep_timeout_s, during which a lockstep sensor stream waits for a command, s.", 0.001, 60.0),
    Param("startup_grace_s", 5.0, "Wall seconds after the first joint_states sample during which, until the controller's first "
          "request, sensor samples get no command (the actuator stays at zero torque) instead of the "
          "fallback: the graph's processes come up in any order, s.", 0.0, 600.0),
    Param("step_sync", "sim_time", "Decide a step only once a sample stamped at that step has arrived from every "
          "watched sensor (or on the request deadline): 'sim_time' (under use_sim_time: lockstep runs are then "
          "deterministic however the DDS deliveries interleave), 'always', or 'never' (decide on the request "
          "with the newest samples at hand: hardware sensors run at their own rates and stamps).",
          choices=("sim_time", "always", "never")),
    Param("status_rate_hz", 10.0, "Rate of safety/status besides every transition, Hz.", 0.1, 100.0),
    Param("diagnostics_rate_hz", 1.0, "Rate of /diagnostics, Hz.", 0.1, 10.0),
]

#: Sensor topics the monitor watches, by the core's source name ('/' -> '_').
WATCHED = {source_name(t): t for t in (contract.JOINT_STATES, contract.INTERACTION_THIGH,
                                        contract.INTERACTION_SHANK, contract.IMU_THIGH, contract.IMU_SHANK)}


def _ns(stamp) -> int:
    """A builtin_interfaces/Time as integer nanoseconds (exact, for matching stamps)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _limit_params() -> list[Param]:
    """One declared ROS parameter per SafetyLimits field, documented with its unit."""
    defaults = SafetyLimits().to_dict()
    params = []
    for name, (unit, doc) in SafetyLimits.parameter_docs().items():
        if name == "sensor_timeouts_s":
            for source, timeout in defaults[name].items():
                params.append(Param(f"{name}.{source}", float(timeout),
                                    f"Timeout of sensor source '{source}', {unit}. {doc}", 0.0, 60.0))
            continue
        value = defaults[name]
        params.append(Param(name, value, f"[{unit}] {doc}"))
    return params


class SafetyMonitorNode(Node):
    def __init__(self) -> None:
        super().__init__("safety_monitor")
        self.p = declare_all(self, NODE_PARAMS)
        try:
            self.limits = SafetyLimits.from_dict(declare_all(self, _limit_params()), origin="safety_monitor parameters")
        except SafetyConfigError as exc:
            raise ParameterError(str(exc)) from None
        self.core = SafetyMonitor(self.limits)

        self.pub_command = self.create_publisher(TorqueCommand, contract.TORQUE_COMMAND.name,
                                                 qos_profile(contract.TORQUE_COMMAND))
        self.pub_array = self.create_publisher(Float64MultiArray, contract.TORQUE_COMMAND_ARRAY.name,
                                               qos_profile(contract.TORQUE_COMMAND_ARRAY))
        self.pub_status = self.create_publisher(SafetyStatus, contract.SAFETY_STATUS.name,
                                                qos_profile(contract.SAFETY_STATUS))
        self.pub_diag = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS_TOPIC.name,
                                              qos_profile(contract.DIAGNOSTICS_TOPIC))
        for source, topic in WATCHED.items():
            if source not in self.limits.sensor_timeouts_s:
                continue
            msg_type = interface_class(topic.msg_type)
            self.create_subscription(msg_type, topic.name, self._sensor_callback(source), qos_profile(topic))
        self.create_subscription(TorqueCommand, contract.TORQUE_REQUEST.name, self._on_request,
                                 qos_profile(contract.TORQUE_REQUEST))
        self.create_service(Trigger, contract.ESTOP_SERVICE, self._on_estop)
        self.create_service(Trigger, contract.SAFETY_RESET_SERVICE, self._on_reset)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.pending_t: float | None = None  # joint_states stamp awaiting its decision
        self.pending_since = 0.0  # wall time it arrived (the first sample's, in a burst)
        self.last_decided_t: float | None = None
        self.last_sample_t: float | None = None
        self.last_sample_wall = time.monotonic()
        self.last_request_t: float | None = None  # stamp of the newest valid request
        self.last_answer_ns: int | None = None  # exact stamp of the newest answer (matched in integer ns)
        self.pending_stamp = None  # exact stamp of the pending sample (copied to its command)
        self.sensor_ns: dict[str, int] = {}  # newest stamp that arrived per watched source (accepted or not)
        self.last_answer_t: float | None = None  # stamp of the newest request, valid or not
        self.early_request: TorqueCommand | None = None  # a request that came before its joint_states sample
        self.early_since = 0.0  # wall time it arrived
        self.last_status_wall = 0.0
        self.first_sample_wall: float | None = None  # wall time of the first accepted joint_states sample
        # Under simulated time a slow controller is not late in sim time: wait much longer
        # (a dead one is still caught on the next sample, see _sensor_callback).
        sim = self.get_parameter("use_sim_time").value
        self.request_deadline_s = self.p["request_deadline_sim_s" if sim else "request_deadline_s"]
        # ... and a lockstep sensor source legitimately pauses while it waits for a command
        self.stall_grace_s = self.p["stall_grace_sim_s" if sim else "stall_grace_s"]
        self.step_sources = [s for s in WATCHED if s in self.limits.sensor_timeouts_s]
        self.sync_sensors = self.p["step_sync"] == "always" or (self.p["step_sync"] == "sim_time" and sim)
        period = self.limits.control_period_s
        self.create_timer(min(period, self.p["request_deadline_s"]) / 2, self._watch, clock=self.steady)
        self.create_timer(1.0 / self.p["diagnostics_rate_hz"], self._publish_diagnostics, clock=self.steady)
        self.get_logger().info(
            f"cap {self.limits.torque_cap_nm:g} N m, slew {self.limits.max_slew_rate_nm_per_s:g} N m/s, "
            f"fallback {self.limits.fallback_kind}, watching {', '.join(self.limits.sensor_timeouts_s)}"
        )
        self._publish_status()

    # --- inputs --------------------------------------------------------------
    def _sensor_callback(self, source: str):
        def on_joint(msg: JointState) -> None:
            t = convert.from_time_msg(msg.header.stamp)
            ns = self._arrived(source, msg.header.stamp)
            try:
                angle, velocity, torque = convert.knee_from_joint_state(msg)
            except ValueError:
                angle = velocity = torque = float("nan")  # the core rejects and counts it
            accepted = self.core.on_sensor(source, t, knee_angle_rad=angle, knee_velocity_rad_s=velocity,
                                           motor_torque_nm=torque)
            self._on_sample(t, accepted)
            if accepted and self.first_sample_wall is None:
                self.first_sample_wall = time.monotonic()  # the start-up grace runs from the control loop's start
            if self.early_request is not None and _ns(self.early_request.header.stamp) <= ns:
                self._release_early_request()  # its sample (or a newer one) is here: the core sees them in order
            if not accepted:
                return
            if self.last_decided_t is not None and t <= self.last_decided_t:
                return
            if self.pending_t is not None and ns == _ns(self.pending_stamp):
                self._decide_pending_if_complete()  # the same sample offered again (lockstep start-up)
                return
            # the controller missed the previous step: it was never decided (its request never
            # came), or it was decided on the deadline without its own request. A sample stamped
            # less than sample_burst_s after the pending one is a burst: the controller had no time
            # to answer, and the wait keeps its start (the first sample of the burst).
            now = time.monotonic()
            burst = self.pending_t is not None and t - self.pending_t < self.p["sample_burst_s"]
            missed_previous = (self.pending_t is not None and not burst) or self.last_answer_t is None or (
                self.last_decided_t is not None and self.last_answer_t < self.last_decided_t - 1e-9)
            self.pending_t = t
            if not burst:
                self.pending_since = now
            self.pending_stamp = msg.header.stamp
            if self.last_answer_ns == ns:
                self._decide_pending_if_complete()  # the step's answer (valid or not) came before its sample
                return
            if self._waiting_for_controller():
                return
            if missed_previous:
                self._decide(t)  # do not wait for a controller that is not answering
            # else: wait for the request (or request_deadline_s), in every state, so that
            # a lockstep simulation stays paced by the controller and deterministic

        def on_interaction(msg: WrenchStamped) -> None:
            t = convert.from_time_msg(msg.header.stamp)
            self._arrived(source, msg.header.stamp)
            self._on_sample(t, self.core.on_sensor(source, t, interaction_torque_nm=msg.wrench.torque.y))
            self._decide_pending_if_complete()

        def on_liveness(msg: Imu) -> None:
            t = convert.from_time_msg(msg.header.stamp)
            self._arrived(source, msg.header.stamp)
            self._on_sample(t, self.core.on_sensor(source, t))
            self._decide_pending_if_complete()

        if source == JOINT_STATES:
            return on_joint
        return on_interaction if source.startswith(INTERACTION_PREFIX) else on_liveness

    def _arrived(self, source: str, stamp) -> int:
        """Note that a sample of ``source`` stamped ``stamp`` arrived; its stamp in integer ns."""
        ns = _ns(stamp)
        if ns > self.sensor_ns.get(source, -1):
            self.sensor_ns[source] = ns
        return ns

    def _decide_pending_if_complete(self) -> None:
        """Decide the pending step if its answer came and (with step_sync) every sensor's sample for it."""
        if self.pending_t is None or self.last_answer_ns != _ns(self.pending_stamp):
            return
        ns = _ns(self.pending_stamp)
        if self.sync_sensors and any(self.sensor_ns.get(s, -1) < ns for s in self.step_sources):
            return  # a sample of this step is still on its way; the request deadline bounds the wait
        self._decide(self.pending_t)

    def _on_sample(self, t: float, accepted: bool) -> None:
        if accepted:
            self.last_sample_t = t if self.last_sample_t is None else max(self.last_sample_t, t)
            self.last_sample_wall = time.monotonic()

    def _on_request(self, msg: TorqueCommand) -> None:
        t = convert.from_time_msg(msg.header.stamp)
        self.last_answer_t = t if self.last_answer_t is None else max(self.last_answer_t, t)
        self.last_answer_ns = _ns(msg.header.stamp)
        if self.last_answer_ns > self.sensor_ns.get(JOINT_STATES, self.last_answer_ns):
            # The answer came before the joint_states sample it answers (two publishers: DDS does not
            # order their deliveries; seen on hardware time stamps, docs/drivers.md "Timing"). Judged
            # now, against the previous sample, it could look "from the future" and be refused. It is
            # held until its sample arrives (or a newer one, or request_deadline_s passes) and judged then,
            # with every check unchanged.
            if self.early_request is not None:
                self._release_early_request()  # two answers ahead: the older one is judged now
            self.early_request, self.early_since = msg, time.monotonic()
            return
        self._feed_request(msg)
        # even if rejected: the step's answer came, the core decides what holds
        self._decide_pending_if_complete()

    def _feed_request(self, msg: TorqueCommand) -> None:
        t = convert.from_time_msg(msg.header.stamp)
        if self.core.on_request(t, msg.torque, msg.source or "controller", int(msg.seq)):
            self.last_request_t = t

    def _release_early_request(self) -> None:
        msg, self.early_request = self.early_request, None
        self._feed_request(msg)

    # --- decisions ---------------------------------------------------------------
    def _decide(self, t: float) -> None:
        decision = self.core.update(t)
        header = convert.header(t, contract.KNEE_JOINT)
        if self.pending_t is not None and t == self.pending_t:
            header.stamp = self.pending_stamp  # the sample's exact stamp, not a float round trip
        self.pending_t = None
        self.last_decided_t = t
        cmd = TorqueCommand(header=header, joint=contract.KNEE_JOINT,
                            torque=decision.torque_nm, source=decision.source,
                            seq=decision.seq if decision.seq is not None else 0)
        self.pub_command.publish(cmd)
        self.pub_array.publish(Float64MultiArray(data=[decision.torque_nm]))
        if decision.transition:
            # (rclpy: one logging call site must keep one severity)
            if decision.state >= SafetyState.FALLBACK:
                self.get_logger().warning(f"t={t:.3f} s: {decision.state.name}: {decision.reason}")
            else:
                self.get_logger().info(f"t={t:.3f} s: {decision.state.name}: {decision.reason}")
            self._publish_status()
        elif time.monotonic() - self.last_status_wall >= 1.0 / self.p["status_rate_hz"]:
            self._publish_status()

    def _waiting_for_controller(self) -> bool:
        """Start-up: no request ever, and the controller still has time to come up (wall clock)."""
        if self.last_request_t is not None:
            return False
        return self.first_sample_wall is None or time.monotonic() - self.first_sample_wall < self.p["startup_grace_s"]

    def _watch(self) -> None:
        now = time.monotonic()
        if self.early_request is not None and now - self.early_since >= self.request_deadline_s:
            self._release_early_request()  # its sample did not come: judged as it is (a future stamp is refused)
        if (self.pending_t is not None and now - self.pending_since >= self.request_deadline_s
                and not self._waiting_for_controller()):
            self._decide(self.pending_t)
            return
        if self.last_sample_t is not None and now - self.last_sample_wall > self.stall_grace_s:
            # the whole sensor stream stopped: let sensor time run on with the wall clock
            t = self._sensor_time_now()
            if self.last_decided_t is None or t >= self.last_decided_t + self.limits.control_period_s - 1e-9:
                self._decide(t)
        elif now - self.last_status_wall >= 1.0 / self.p["status_rate_hz"]:
            self._publish_status()

    # --- services ------------------------------------------------------------------
    def _on_estop(self, request, response):
        self.core.estop("e-stop service called")
        self.get_logger().error("E-STOP latched by service call")
        if self.last_decided_t is not None:
            self._decide(self.last_decided_t + self.limits.control_period_s)
        response.success, response.message = True, "e-stop latched; call safety/reset to clear"
        return response

    def _sensor_time_now(self) -> float | None:
        """Sensor time now: the newest sample's stamp, run on by the wall clock once the stream stalled."""
        if self.last_sample_t is None:
            return None
        stalled_s = time.monotonic() - self.last_sample_wall
        return self.last_sample_t + (stalled_s if stalled_s > self.stall_grace_s else 0.0)

    def _on_reset(self, request, response):
        ok, message = self.core.reset(self._sensor_time_now())
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)
        response.success, response.message = ok, message
        return response

    # --- reporting -------------------------------------------------------------------
    def _publish_status(self) -> None:
        st = self.core.status()
        msg = SafetyStatus(header=convert.header(st.t if st.t is not None else 0.0, ""), state=int(st.state),
                           state_name=st.state_name, active_limits=list(st.active_limits), reason=st.reason,
                           requested_torque=st.requested_torque_nm if st.requested_torque_nm is not None
                           else float("nan"),
                           commanded_torque=st.commanded_torque_nm, rejected_requests=st.rejected_requests,
                           invalid_sensor_samples=st.invalid_sensor_samples, transitions=st.transitions)
        self.pub_status.publish(msg)
        self.last_status_wall = time.monotonic()

    def _publish_diagnostics(self) -> None:
        st = self.core.status()
        status = DiagnosticStatus(level=bytes([st.state.diagnostic_level]), name=f"{self.get_fully_qualified_name()}",
                                  message=f"{st.state_name}: {st.reason}", hardware_id="exo_knee")
        status.values = [KeyValue(key=k, value=v) for k, v in self.core.diagnostics().items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def on_shutdown(self) -> None:
        """Last words: zero torque, so an actuator that still listens does not keep the last command."""
        try:
            cmd = TorqueCommand(header=convert.header(self.last_decided_t or 0.0, contract.KNEE_JOINT),
                                joint=contract.KNEE_JOINT, torque=0.0, source="safe_stop")
            self.pub_command.publish(cmd)
        except Exception:  # noqa: BLE001 - the context may already be shut down
            pass


def main(args: list[str] | None = None) -> None:
    run(SafetyMonitorNode, args)


if __name__ == "__main__":
    main()
