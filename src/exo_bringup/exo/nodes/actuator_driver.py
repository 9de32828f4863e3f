"""actuator_driver: a CubeMars AK actuator (MIT mode, CAN) -> ``joint_states`` + ``interaction/*``; applies ``torque_command``.

Loop (steady clock, ``rate_hz``, default the contract's control rate 100 Hz): send one MIT
torque frame (kp = kd = 0, :class:`exo.drivers.actuator.ActuatorCore`) with the torque the
actuator guard allows (:class:`exo.safety.actuator_guard.ActuatorGuard`, shared with the sim
bridge): the newest *authenticated* ``torque_command`` of the safety monitor (the run's command
key, strictly increasing sequence, stamped no later than a period ahead of this host's clock)
while younger than ``guard.max_command_age_s``, else **zero**; limited again by the guard's own
user cap, slew rate and hard range of motion, the range checked on this motor's own encoder.
A foreign publisher on ``torque_command`` is refused, counted (diagnostics ``refused_commands.*``)
and changes nothing.
The motor answers every frame; each valid reply becomes one ``joint_states`` sample
(angle, velocity, effort = motor torque estimate), stamped with the host receipt time.
A reply that is missing publishes nothing: the safety monitor's ``joint_states`` timeout
sees a silent motor.

**Interaction torque.** Until a strap load cell exists, ``interaction/thigh`` and
``interaction/shank`` carry the motor's torque estimate (current-based) about the knee
axis: with a light exoskeleton link (its inertia and weight small against the strap
loads, and the knee moving slowly) the straps transmit what the motor applies. It is an
estimate, published so that the safety monitor's interaction limit and timeouts work
unchanged; docs/drivers.md states its limits.

Start-up: enter motor mode (optionally set zero), zero torque. Shutdown (SIGINT/SIGTERM,
:meth:`ActuatorDriver.on_shutdown`): zero torque, then exit motor mode.
"""

from __future__ import annotations

import contextlib
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import WrenchStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState

from exo import contract
from exo.drivers.actuator import ActuatorConfig, ActuatorCore
from exo.drivers.ak_mit import MOTOR_MODELS
from exo.drivers.can_bus import open_can_bus
from exo.drivers.health import DeviceHealth
from exo.ros import trust
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo_msgs.msg import TorqueCommand

PARAMS = [
    Param("can_interface", "socketcan", "python-can interface: socketcan (hardware), udp_multicast "
          "(emulator in another process), virtual (one process).", choices=("socketcan", "udp_multicast", "virtual")),
    Param("can_channel", "can0", "CAN channel (socketcan: can0; udp_multicast: the multicast group)."),
    Param("can_port", 0, "udp_multicast port (0 = python-can's default).", 0, 65535),
    Param("model", "AK80-64", "AK motor model (selects the MIT-mode scaling table).", choices=tuple(MOTOR_MODELS)),
    Param("motor_id", 1, "CAN id of the motor.", 0, 0x7FF),
    Param("master_id", 0, "CAN id the motor replies with.", 0, 0x7FF),
    Param("direction", 1, "+1 or -1: motor positive sense -> knee flexion.", -1, 1),
    Param("zero_offset_rad", 0.0, "Motor position at a straight knee, rad.", -12.5, 12.5),
    Param("set_zero_on_start", False, "Send 'set zero' at start-up (only with the knee held straight!)."),
    Param("torque_limit_nm", 100.0, "Largest |torque| ever sent, N m (also capped by the model).", 0.1, 200.0),
    Param("rate_hz", contract.DEFAULT_CONTROL_RATE_HZ, "Command/feedback rate, Hz.", 1.0, 1000.0),
    Param("silent_timeout_s", 0.05, "No valid reply for this long -> the motor is reported silent, s.", 0.001, 10.0),
    Param("max_velocity_rad_s", 8.0, "Replies above this |velocity| are rejected, rad/s.", 0.1, 100.0),
    Param("angle_min_rad", -0.5, "Replies below this knee angle are rejected, rad.", -12.5, 12.5),
    Param("angle_max_rad", 2.5, "Replies above this knee angle are rejected, rad.", -12.5, 12.5),
    trust.secret_param("command_key_file"),
    *trust.guard_params(),
]


class ActuatorDriver(Node):
    def __init__(self) -> None:
        super().__init__("actuator_driver")
        self.p = p = declare_all(self, PARAMS)
        if p["direction"] == 0:
            raise ParameterError("parameter 'direction' must be +1 or -1, got 0")
        try:
            self.core = ActuatorCore(ActuatorConfig(
                model=p["model"], motor_id=p["motor_id"], direction=p["direction"],
                zero_offset_rad=p["zero_offset_rad"], torque_limit_nm=p["torque_limit_nm"],
                max_velocity_rad_s=p["max_velocity_rad_s"],
                angle_min_rad=p["angle_min_rad"], angle_max_rad=p["angle_max_rad"]))
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        self.refusal_log = trust.LogThrottle(1.0)  # a flood of foreign commands costs one check each
        self.guard = trust.make_guard(p, contract.KNEE_JOINT)
        self._lock = threading.Lock()  # the guard is fed from the executor (commands) and the CAN reader (angles)
        try:
            self.bus = open_can_bus(p["can_interface"], p["can_channel"], p["can_port"])
        except OSError as exc:
            raise ParameterError(str(exc)) from None
        self.health = DeviceHealth(f"{self.get_name()} (motor {p['motor_id']})", p["silent_timeout_s"])
        self.started_s = time.monotonic()
        self.published = 0
        self.send_errors = 0

        self.pub_joint = self.create_publisher(JointState, contract.JOINT_STATES.name, qos_profile(contract.JOINT_STATES))
        self.pub_thigh = self.create_publisher(WrenchStamped, contract.INTERACTION_THIGH.name,
                                               qos_profile(contract.INTERACTION_THIGH))
        self.pub_shank = self.create_publisher(WrenchStamped, contract.INTERACTION_SHANK.name,
                                               qos_profile(contract.INTERACTION_SHANK))
        self.pub_diag = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS_TOPIC.name,
                                              qos_profile(contract.DIAGNOSTICS_TOPIC))
        self.create_subscription(TorqueCommand, contract.TORQUE_COMMAND.name, self._on_command,
                                 qos_profile(contract.TORQUE_COMMAND, reader=True))
        # Sent by the first tick, not here: the motor answers every frame and each reply is a joint_states
        # sample, so start-up replies sent before the loop runs would be followed by a gap (the rest of
        # the node's start-up, tens of ms) that the safety monitor's 50 ms timeout sees as a stale knee.
        self._startup_frames = self.core.startup_frames(p["set_zero_on_start"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="can-reader", daemon=True)
        self._thread.start()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / p["rate_hz"], self._tick, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f"{p['model']} id {p['motor_id']} on {p['can_interface']}:{p['can_channel']} at {p['rate_hz']:g} Hz; "
            f"|torque| <= {self.core.torque_limit_nm:g} N m (guard: user cap {self.guard.limits.torque_cap_nm:g} N m, "
            f"slew {self.guard.limits.max_slew_rate_nm_per_s:g} N m/s); zero torque after "
            f"{self.guard.limits.max_command_age_s} s without an authenticated torque_command")

    def _send(self, data: bytes) -> None:
        import can

        try:
            self.bus.send(can.Message(arbitration_id=self.p["motor_id"], data=data, is_extended_id=False))
        except (can.CanError, OSError) as exc:
            self.send_errors += 1
            if self.send_errors in (1, 10) or self.send_errors % 1000 == 0:
                self.get_logger().error(f"CAN send failed ({self.send_errors} time(s)): {exc}")

    def _now_s(self) -> float:
        """This host's clock, the one the joint_states stamps (and so the monitor's commands) are taken from, s."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_command(self, msg: TorqueCommand) -> None:
        with self._lock:
            refused = trust.apply_command(self.guard, self._now_s(), msg)
        if refused is not None and self.refusal_log.due(time.monotonic()):
            self.get_logger().warning(
                f"torque_command refused ({refused}; {self.guard.refused_total()} so far): {self.guard.last_refusal}")

    def _tick(self) -> None:
        if self._startup_frames:  # first tick: enter motor mode (set zero), zero torque; the loop follows at once
            frames, self._startup_frames = self._startup_frames, []
            for frame in frames:
                self._send(frame)
            return
        now = time.monotonic()
        with self._lock:
            applied = self.guard.apply(self._now_s())
        frame, line = self.core.command_frame(applied.torque_nm, commanded=applied.commanded_nm is not None)
        if line:
            self.get_logger().warning(line) if self.core.command_lost else self.get_logger().info(line)
        self._send(frame)
        line = self.health.check(now)
        if line:
            self.get_logger().warning(line)
        rejected = dict(self.core.rejected_replies)
        line = self.health.garbage_line(now, rejected, 0)
        if line:
            self.get_logger().warning(line)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.bus.recv(timeout=0.05)
            except Exception as exc:  # noqa: BLE001 - a failing bus must not kill the reader silently
                self.get_logger().error(f"CAN receive failed: {exc}", throttle_duration_sec=1.0)
                self._stop.wait(0.05)
                continue
            if msg is None or msg.arbitration_id != self.p["master_id"] or msg.is_extended_id:
                continue
            state = self.core.on_reply(bytes(msg.data))
            if state is None:
                continue
            now = time.monotonic()
            line = self.health.frame(now)
            if line:
                self.get_logger().info(line)
            now_ros = self.get_clock().now()
            stamp = now_ros.to_msg()
            with self._lock:
                self.guard.on_angle(now_ros.nanoseconds * 1e-9, state.angle_rad)
            for pub, frame_id in ((self.pub_thigh, "thigh_strap"), (self.pub_shank, "shank_strap")):
                w = WrenchStamped()
                w.header.stamp, w.header.frame_id = stamp, frame_id
                w.wrench.torque.y = state.torque_nm
                pub.publish(w)
            js = JointState(name=[contract.KNEE_JOINT], position=[state.angle_rad],
                            velocity=[state.velocity_rad_s], effort=[state.torque_nm])
            js.header.stamp = stamp
            self.pub_joint.publish(js)  # last: the safety monitor decides a step on joint_states
            self.published += 1

    def _publish_diagnostics(self) -> None:
        h = self.health
        values = {"frames": str(h.frames), "published": str(self.published), "silences": str(h.silences),
                  "command_timeouts": str(self.core.timeouts), "accepted_commands": str(self.guard.accepted),
                  "refused_commands": str(self.guard.refused_total()),
                  **{f"refused_commands.{k}": str(v) for k, v in self.guard.refused.items()},
                  "sent_torque_nm": f"{self.core.sent_torque_nm:.3f}", "send_errors": str(self.send_errors),
                  **{f"rejected_replies.{k}": str(v) for k, v in self.core.rejected_replies.items()}}
        level = DiagnosticStatus.OK if h.frames and not h.silent else DiagnosticStatus.ERROR
        status = DiagnosticStatus(level=level, name=f"{self.get_namespace().rstrip('/')}/{self.get_name()}",
                                  message="silent" if h.silent else ("no reply yet" if not h.frames else "ok"),
                                  hardware_id=f"{self.p['can_interface']}:{self.p['can_channel']}#{self.p['motor_id']}",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def on_shutdown(self) -> None:
        """Zero torque, exit motor mode, close the bus (node_main calls it on SIGINT/SIGTERM)."""
        for frame in self.core.shutdown_frames():
            self._send(frame)
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.get_logger().info(f"shutdown: zero torque and exit motor mode sent; {self.published} sample(s) published")
        with contextlib.suppress(Exception):  # a bus that failed may fail to close too
            self.bus.shutdown()


def main(args: list[str] | None = None) -> None:
    run(ActuatorDriver, args)


if __name__ == "__main__":
    main()
