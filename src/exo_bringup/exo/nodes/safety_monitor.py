"""safety_monitor: every torque the knee receives passes through here.

A thin rclpy shell around :class:`exo.safety.SafetyMonitor` (the pure core,
where every decision is made). This node only moves data:

- sensor topics (``joint_states``, ``interaction/*``, ``imu/*``) -> ``on_sensor``; the number of
  publishers on each (a second one is spoofing or a misconfigured graph) -> ``on_sensor_publishers``,
- ``torque_request`` -> ``on_request``, **only if authentic**: signed with the run's request key,
  which only the controller holds, with a sequence number newer than the last (:mod:`exo.ros.trust`).
  Anything else is a security event (counted, on ``safety/status``, ``/diagnostics`` and
  ``safety/events``) and never reaches the core. Requests are read with a deep queue
  (``reader_depth`` of the contract), so that a flood of foreign messages cannot push the
  controller's out before they are checked,
- one ``update(t)`` per control step -> ``torque_command`` (numbered and signed with the run's
  command key, which only this node and the actuator side hold; and its ``Float64MultiArray``
  twin for ros2_control), ``safety/status`` on every transition and at ``status_rate_hz``,
  ``safety/events`` (every e-stop, reset and security event), ``/diagnostics``,
- ``safety/estop`` (std_srvs/Trigger, open to all: stopping is always safe) -> ``estop``;
  resetting is local only: ``exo reset`` over a Unix socket in the run's private folder with the
  run's reset token, or a reset button (``reset_button_path``) on hardware (:mod:`exo.security.reset`).

**When** a step is decided (start-up grace, the controller's answer or its deadline, bursts, answers
that arrive before their sample, stalled sensor streams) is the pure :class:`exo.safety.step_clock.StepClock`;
**what** is commanded is the core. The core runs on sensor time (the samples' header stamps: sim time
from the sim bridge or a bag, the drivers' clock on hardware), so a lockstep run is deterministic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from exo import contract
from exo.ros import convert, trust
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo.safety import SafetyConfigError, SafetyLimits, SafetyMonitor, SafetyState
from exo.safety.limits import INTERACTION_PREFIX, JOINT_STATES, source_name
from exo.safety.monitor import IMU_PREFIX
from exo.safety.step_clock import Step, StepClock, StepTiming
from exo.security import COMMAND_PURPOSE, REQUEST_PURPOSE, MessageSigner, MessageVerifier, Verdict
from exo.security.keys import SecretError
from exo.security.reset import LocalResetServer, ResetButton
from exo_msgs.msg import SafetyEvent, SafetyStatus, TorqueCommand

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
    Param("stall_grace_sim_s", 3.0, "As stall_grace_s under use_sim_time with a paced source (paced_source): "
          "longer than the sim bridge's lockstep_timeout_s, during which a lockstep sensor stream waits for a "
          "command, s.", 0.001, 60.0),
    Param("paced_source", True, "The sensor source waits for each command (a lockstep sim bridge or bag player): "
          "under use_sim_time its pauses are allowed stall_grace_sim_s. False (a real-time sim, hardware): a "
          "source silent for stall_grace_s of wall time is dead, once it has run for stall_warmup_s."),
    Param("stall_warmup_s", 1.0, "Under use_sim_time with a free-running source (paced_source false): sensor time "
          "the stream must have covered before stall_grace_s applies; until then stall_grace_sim_s (a simulator's "
          "first steps are slow: lazy imports, first allocations), s.", 0.0, 60.0),
    Param("publisher_check_period_s", 0.2, "Wall seconds between counts of the publishers on each watched "
          "sensor topic (a second one is a sensor conflict), s.", 0.01, 10.0),
    Param("reset_button_path", "", "Hardware: file of the reset button's GPIO line (reads 1 while pressed); when "
          "set, the button is the only way to reset a latched stop. Empty: exo reset with the run's token."),
    Param("reset_poll_period_s", 0.05, "Wall seconds between polls of the reset input, s.", 0.005, 1.0),
    trust.secret_param("command_key_file"),
    trust.secret_param("request_key_file"),
    trust.secret_param("reset_token_file"),
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




def sensor_decoder(source: str) -> Callable[[Any], dict[str, float]]:
    """How a message of watched ``source`` becomes the core's keyword arguments (one decoding, shared with
    the controller: exo.ros.convert)."""
    if source == JOINT_STATES:
        return convert.knee_sample
    if source.startswith(INTERACTION_PREFIX):
        return lambda msg: {"interaction_torque_nm": convert.interaction_torque(msg)}
    if source.startswith(IMU_PREFIX):
        return lambda msg: {"pitch_rad": convert.imu_pitch(msg)}
    raise ValueError(f"no decoding for sensor source {source!r}")

#: Event kinds of the core -> exo_msgs/SafetyEvent constants.
EVENT_KINDS = {"ESTOP": SafetyEvent.KIND_ESTOP, "RESET": SafetyEvent.KIND_RESET,
               "RESET_REFUSED": SafetyEvent.KIND_RESET_REFUSED, "SECURITY": SafetyEvent.KIND_SECURITY}


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
        self.request_verifier = MessageVerifier(trust.load_key(self.p, "request_key_file"), REQUEST_PURPOSE)
        self.command_signer = MessageSigner(trust.load_key(self.p, "command_key_file"), COMMAND_PURPOSE)
        self.reset_button = ResetButton(self.p["reset_button_path"]) if self.p["reset_button_path"] else None
        self.reset_server = None
        if self.reset_button is None:
            if not self.p["reset_token_file"]:
                trust.load_key(self.p, "reset_token_file")  # raises: names the missing parameter
            try:
                self.reset_server = LocalResetServer(self.p["reset_token_file"])
            except (SecretError, OSError) as exc:
                raise ParameterError(f"parameter 'reset_token_file': {exc}") from None

        self.pub_command = self.create_publisher(TorqueCommand, contract.TORQUE_COMMAND.name,
                                                 qos_profile(contract.TORQUE_COMMAND))
        self.pub_array = self.create_publisher(Float64MultiArray, contract.TORQUE_COMMAND_ARRAY.name,
                                               qos_profile(contract.TORQUE_COMMAND_ARRAY))
        self.pub_status = self.create_publisher(SafetyStatus, contract.SAFETY_STATUS.name,
                                                qos_profile(contract.SAFETY_STATUS))
        self.pub_diag = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS_TOPIC.name,
                                              qos_profile(contract.DIAGNOSTICS_TOPIC))
        self.pub_events = self.create_publisher(SafetyEvent, contract.SAFETY_EVENTS.name,
                                                qos_profile(contract.SAFETY_EVENTS))
        self.watched_topics: dict[str, str] = {}  # source -> topic name, for the publisher count
        for source, topic in WATCHED.items():
            if source not in self.limits.sensor_timeouts_s:
                continue
            msg_type = interface_class(topic.msg_type)
            sub = self.create_subscription(msg_type, topic.name, self._sensor_callback(source), qos_profile(topic))
            self.watched_topics[source] = sub.topic_name
        self.create_subscription(TorqueCommand, contract.TORQUE_REQUEST.name, self._on_request,
                                 qos_profile(contract.TORQUE_REQUEST, reader=True))
        self.create_service(Trigger, contract.ESTOP_SERVICE, self._on_estop)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.last_status_wall = 0.0
        self.held_request: TorqueCommand | None = None  # an answer that came before its sample (StepClock)
        sim = self.get_parameter("use_sim_time").value
        self.clock = StepClock(self._step_timing(sim), self._feed_held)
        period = self.limits.control_period_s
        self.create_timer(min(period, self.p["request_deadline_s"]) / 2, self._watch, clock=self.steady)
        self.create_timer(1.0 / self.p["diagnostics_rate_hz"], self._publish_diagnostics, clock=self.steady)
        self.create_timer(self.p["publisher_check_period_s"], self._count_publishers, clock=self.steady)
        self.create_timer(self.p["reset_poll_period_s"], self._poll_reset, clock=self.steady)
        self.get_logger().info(
            f"cap {self.limits.torque_cap_nm:g} N m, slew {self.limits.max_slew_rate_nm_per_s:g} N m/s, "
            f"fallback {self.limits.fallback_kind}, watching {', '.join(self.limits.sensor_timeouts_s)}"
        )
        self._publish_status()

    def _step_timing(self, sim: bool) -> StepTiming:
        """The scheduling parameters for this node's time base (exo.safety.step_clock)."""
        p = self.p
        # Under simulated time a slow controller is not late in sim time: wait much longer (a dead one is
        # still caught on the next sample). A lockstep source pauses while it waits for a command, and a
        # real-time simulator's first steps are slow: under sim time the stall grace is stall_grace_sim_s
        # until the stream has run stall_warmup_s (for ever, with a paced source).
        if not sim:
            warmup, startup_grace = 0.0, p["stall_grace_s"]
        else:
            warmup, startup_grace = (math.inf if p["paced_source"] else p["stall_warmup_s"]), p["stall_grace_sim_s"]
        sync = p["step_sync"] == "always" or (p["step_sync"] == "sim_time" and sim)
        return StepTiming(
            control_period_s=self.limits.control_period_s,
            request_deadline_s=p["request_deadline_sim_s" if sim else "request_deadline_s"],
            sample_burst_s=p["sample_burst_s"], startup_grace_s=p["startup_grace_s"],
            stall_grace_s=p["stall_grace_s"], stall_grace_startup_s=startup_grace, stall_warmup_s=warmup,
            sync_sources=tuple(s for s in WATCHED if s in self.limits.sensor_timeouts_s) if sync else ())

    # --- inputs --------------------------------------------------------------
    def _sensor_callback(self, source: str):
        """The callback of one watched sensor topic: the core judges the sample, the step clock schedules."""
        decode = sensor_decoder(source)

        def on_sample(msg) -> None:
            t, ns = convert.from_time_msg(msg.header.stamp), convert.stamp_ns(msg.header.stamp)
            accepted = self.core.on_sensor(source, t, **decode(msg))
            self._decide(self.clock.on_sample(source, t, ns, accepted, time.monotonic()))

        return on_sample

    def _on_request(self, msg: TorqueCommand) -> None:
        verdict = trust.check_message(self.request_verifier, msg)
        if verdict not in (Verdict.OK, Verdict.DUPLICATE):
            # not the controller's: never reaches the core, never counts as the step's answer; counted at
            # once, logged and published as an event at most once a second per kind (the core aggregates):
            # a flood must cost the monitor as little as possible (rclpy's throttled logging inspects the
            # stack on every call)
            self.core.security_event(contract.TORQUE_REQUEST.name, f"{verdict.value} request")
            self._publish_events()
            return
        t, ns = convert.from_time_msg(msg.header.stamp), convert.stamp_ns(msg.header.stamp)
        if self.clock.on_answer(t, ns, time.monotonic()):
            self._decide(self.clock.fed(self._feed(msg)))
        else:
            self.held_request = msg  # it answers a sample still on its way (DDS orders no two publishers)

    def _feed(self, msg: TorqueCommand) -> float | None:
        """Hand a request to the core; its time (s) if accepted."""
        t = convert.from_time_msg(msg.header.stamp)
        return t if self.core.on_request(t, msg.torque, msg.source or "controller", int(msg.seq)) else None

    def _feed_held(self) -> float | None:
        msg, self.held_request = self.held_request, None
        return None if msg is None else self._feed(msg)

    # --- decisions ---------------------------------------------------------------
    def _decide(self, step: Step | None) -> None:
        """Decide ``step`` (if any) and publish the command, the status and new events."""
        if step is None:
            return
        t = step.t_s
        decision = self.core.update(t)
        header = convert.header(t, contract.KNEE_JOINT)
        if step.stamp_ns is not None:
            header.stamp = convert.time_msg_from_ns(step.stamp_ns)  # the sample's exact stamp
        cmd = TorqueCommand(header=header, joint=contract.KNEE_JOINT,
                            torque=decision.torque_nm, source=decision.source,
                            request_seq=decision.seq if decision.seq is not None else 0)
        trust.sign_message(self.command_signer, cmd)
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
        self._publish_events()

    def _watch(self) -> None:
        step = self.clock.tick(time.monotonic())
        if step is not None:
            self._decide(step)
        elif time.monotonic() - self.last_status_wall >= 1.0 / self.p["status_rate_hz"]:
            self._publish_status()

    # --- services ------------------------------------------------------------------
    def _on_estop(self, request, response):
        self.core.estop("e-stop service called", origin=contract.ESTOP_SERVICE)
        self.get_logger().error("E-STOP latched by service call")
        self._decide(self.clock.step_after_last())  # the e-stop is commanded at once
        self._publish_events()
        response.success = True
        response.message = ("e-stop latched; reset with the reset button" if self.reset_button is not None
                            else "e-stop latched; reset locally with: exo reset")
        return response

    def _reset(self, origin: str) -> tuple[bool, str]:
        ok, message = self.core.reset(self.clock.sensor_time(time.monotonic()), origin=origin)
        if ok:
            self.get_logger().info(f"{message} ({origin})")
        else:
            self.get_logger().warning(f"{message} ({origin})")
        self._publish_events()
        self._publish_status()
        return ok, message

    def _poll_reset(self) -> None:
        """The local reset inputs: the reset button (hardware) or ``exo reset`` on the run's socket."""
        if self.reset_button is not None:
            if self.reset_button.poll():
                self._reset("reset button")
            return
        for request, client in self.reset_server.poll():
            if request.authorised:
                ok, message = self._reset(f"exo reset by {request.operator or 'operator'}")
            else:
                self.core.security_event("local reset", f"refused: {request.why}")
                ok, message = False, f"reset refused: {request.why}"
                self.get_logger().warning(message)
                self._publish_events()
            self.reset_server.reply(client, ok, message)

    def _count_publishers(self) -> None:
        """Publishers per watched sensor topic (a second one is a sensor conflict the core acts on)."""
        for source, topic in self.watched_topics.items():
            self.core.on_sensor_publishers(source, self.count_publishers(topic))

    # --- reporting -------------------------------------------------------------------
    def _publish_status(self) -> None:
        st = self.core.status()
        msg = SafetyStatus(header=convert.header(st.t if st.t is not None else 0.0, ""), state=int(st.state),
                           state_name=st.state_name, active_limits=list(st.active_limits), reason=st.reason,
                           requested_torque=st.requested_torque_nm if st.requested_torque_nm is not None
                           else float("nan"),
                           commanded_torque=st.commanded_torque_nm, rejected_requests=st.rejected_requests,
                           invalid_sensor_samples=st.invalid_sensor_samples, transitions=st.transitions,
                           security_events=st.security_events, last_security_event=st.last_security_event)
        self.pub_status.publish(msg)
        self.last_status_wall = time.monotonic()

    def _publish_events(self) -> None:
        """The core's new event-log entries -> safety/events (recorded in bags)."""
        for event in self.core.drain_events():
            msg = SafetyEvent(header=convert.header(event.t if event.t is not None else 0.0, ""),
                              kind=EVENT_KINDS[event.kind], kind_name=event.kind, detail=event.detail,
                              origin=event.origin, count=event.count)
            self.pub_events.publish(msg)
            self.get_logger().warning(f"event {event.kind} ({event.origin}): {event.detail} "
                                      f"({event.count} {event.kind.lower()} event(s) so far)")

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
            cmd = TorqueCommand(header=convert.header(self.clock.last_decided_t or 0.0, contract.KNEE_JOINT),
                                joint=contract.KNEE_JOINT, torque=0.0, source="safe_stop")
            trust.sign_message(self.command_signer, cmd)
            self.pub_command.publish(cmd)
        except Exception:  # noqa: BLE001 - the context may already be shut down
            pass
        if self.reset_server is not None:
            self.reset_server.close()


def main(args: list[str] | None = None) -> None:
    run(SafetyMonitorNode, args)


if __name__ == "__main__":
    main()
