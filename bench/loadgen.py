"""Load generator of bench_graph: sensor streams out, commands back, one record per sample.

Runs as its own OS process (started by ``bench/bench_graph.py``, environment = the
bench's isolated ROS domain). Two modes:

- ``graph``: publishes the contract's ``joint_states``, ``imu/thigh``, ``imu/shank``,
  ``interaction/thigh`` and ``interaction/shank`` under ``--namespace`` at ``--rate``
  (same header stamp on all five, see ``--stamp``; ``joint_states`` last, as the sim bridge
  does), with a slowly varying knee
  (1.0 + 0.3 sin(pi t) rad), and receives ``torque_command`` (matched to the sample by
  header stamp) and, as a tap, ``torque_request`` (to split the latency per hop).
- ``echo``: publishes ``sensor_msgs/JointState`` on ``--echo-topic`` (reliable, as
  ``exo.testing.echo_node`` subscribes) and receives ``<topic>/echo``.

Latency of a sample = time at which the command/echo reached this process's callback minus
the sample's stamp, both on the stamps' clock (``--stamp``: wall or monotonic; same machine). rclpy's MessageInfo gives, for each
received message, the publisher's write time (``source_timestamp``) and the DDS reception
time (``received_timestamp``), both system-clock ns, used for the per-hop split.

Pacing: a SingleThreadedExecutor (the same instrument for every run) is spun (``spin_once`` with the time left) until the next
slot; slots missed by more than a period are skipped, not bursted (``skipped`` counts them).

Writes one JSON file (``--out``) with per-sample arrays; bench_graph computes the statistics.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from exo import contract
from exo.ros import convert
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class

NAN = -1  # "no value" in the integer arrays


def _ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class LoadGen(Node):
    def __init__(self, a: argparse.Namespace) -> None:
        super().__init__("bench_loadgen", namespace=a.namespace if a.mode == "graph" else "/")
        self.a = a
        self.period_ns = int(round(1e9 / a.rate))
        # every time here is on the stamps' clock (MessageInfo times are system clock: shifted)
        mono = a.stamp in ("mono", "periodic_mono")
        self.now_ns = time.monotonic_ns if mono else time.time_ns
        self.offset_ns = time.time_ns() - time.monotonic_ns() if mono else 0
        # per-sample records (index = sample number)
        self.stamp_ns: list[int] = []
        self.pub_done_ns: list[int] = []
        self.cmd_recv_ns: list[int] = []
        self.cmd_src_ns: list[int] = []
        self.cmd_rx_ns: list[int] = []
        self.cmd_source: list[str] = []
        self.req_src_ns: list[int] = []
        self.req_recv_ns: list[int] = []
        self.by_us: dict[int, int] = {}
        self.unmatched = 0
        self.unmatched_examples: list[tuple[int, str]] = []
        self.duplicates = 0
        self.first_ok_wall: float | None = None
        self.consecutive_ok = 0
        self.last_torque = 0.0
        if a.mode == "graph":
            def pub(topic: contract.Topic):
                return self.create_publisher(interface_class(topic.msg_type), topic.name, qos_profile(topic))

            self.pub_joint = pub(contract.JOINT_STATES)
            self.pub_imu_thigh = pub(contract.IMU_THIGH)
            self.pub_imu_shank = pub(contract.IMU_SHANK)
            self.pub_int_thigh = pub(contract.INTERACTION_THIGH)
            self.pub_int_shank = pub(contract.INTERACTION_SHANK)
            cmd_type = interface_class(contract.TORQUE_COMMAND.msg_type)
            # the contract's QoS, but a deep reader queue: the bench must see every command the
            # monitor sent even when this process is busy publishing (depth 1 would drop them)
            cmd_qos = qos_profile(contract.TORQUE_COMMAND)
            cmd_qos.depth = 100
            self.sub_cmd = self.create_subscription(cmd_type, contract.TORQUE_COMMAND.name, self._on_command, cmd_qos)
            if not a.no_tap:
                req_qos = qos_profile(contract.TORQUE_REQUEST)
                req_qos.depth = 100
                self.create_subscription(cmd_type, contract.TORQUE_REQUEST.name, self._on_request, req_qos)
            self.expected_subs = 2  # controller and safety_monitor on joint_states
        else:
            qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # what echo_node uses
            self.pub_joint = self.create_publisher(JointState, a.echo_topic, qos)
            self.sub_cmd = self.create_subscription(JointState, a.echo_topic + "/echo", self._on_command, qos)
            self.expected_subs = 1

    # --- matching -------------------------------------------------------------------
    def _index(self, ns: int) -> int | None:
        us = ns // 1000
        for key in (us, us - 1, us + 1):  # nodes re-stamp through float seconds (+-250 ns)
            i = self.by_us.get(key)
            if i is not None and abs(self.stamp_ns[i] - ns) < 1000:
                return i
        return None

    def _on_command(self, msg, info) -> None:
        now = self.now_ns()
        i = self._index(_ns(msg.header.stamp))
        if i is None:
            self.unmatched += 1
            if len(self.unmatched_examples) < 10:
                self.unmatched_examples.append((_ns(msg.header.stamp), getattr(msg, "source", "")))
            return
        if self.cmd_recv_ns[i] != NAN:
            self.duplicates += 1
            return
        self.cmd_recv_ns[i] = now
        self.cmd_src_ns[i] = int(info["source_timestamp"]) - self.offset_ns  # system clock -> stamp clock
        self.cmd_rx_ns[i] = int(info["received_timestamp"]) - self.offset_ns
        source = getattr(msg, "source", "echo")
        self.cmd_source[i] = source
        if self.a.mode == "graph":
            self.last_torque = msg.torque
        if source == self.a.expect_source:
            self.consecutive_ok += 1
            if self.first_ok_wall is None:
                self.first_ok_wall = time.monotonic()
        else:
            self.consecutive_ok = 0

    def _on_request(self, msg, info) -> None:
        now = self.now_ns()
        i = self._index(_ns(msg.header.stamp))
        if i is not None and self.req_recv_ns[i] == NAN:
            self.req_recv_ns[i] = now
            self.req_src_ns[i] = int(info["source_timestamp"]) - self.offset_ns

    # --- one sample ---------------------------------------------------------------------
    def publish_sample(self, t0: float, slot_mono_ns: int, slot_wall_ns: int) -> None:
        stamp_mode = self.a.stamp
        if stamp_mode == "wall":
            t = time.time()
        elif stamp_mode == "mono":
            t = time.monotonic()
        elif stamp_mode == "periodic_wall":
            t = slot_wall_ns * 1e-9
        else:  # periodic_mono
            t = slot_mono_ns * 1e-9
        stamp = convert.to_time_msg(t)  # the contract's way: seconds -> header
        ns = _ns(stamp)
        i = len(self.stamp_ns)
        self.stamp_ns.append(ns)
        self.by_us[ns // 1000] = i
        for arr in (self.cmd_recv_ns, self.cmd_src_ns, self.cmd_rx_ns, self.req_src_ns, self.req_recv_ns):
            arr.append(NAN)
        self.cmd_source.append("")
        tr = t - t0
        angle = 1.0 + 0.3 * math.sin(math.pi * tr)
        velocity = 0.3 * math.pi * math.cos(math.pi * tr)
        joint = JointState(name=[contract.KNEE_JOINT])
        joint.header.stamp = stamp
        joint.position = [angle]
        joint.velocity = [velocity]
        joint.effort = [self.last_torque]
        if self.a.mode == "graph":
            thigh = convert.imu_msg(t, "thigh_imu", 0.0, 0.0)
            shank = convert.imu_msg(t, "shank_imu", -angle, -velocity)
            strap = 5.0 * math.sin(math.pi * tr)
            w_thigh = convert.wrench_msg(t, "thigh_strap", strap)
            w_shank = convert.wrench_msg(t, "shank_strap", strap)
            for m in (thigh, shank, w_thigh, w_shank):
                m.header.stamp = stamp
            self.pub_imu_thigh.publish(thigh)
            self.pub_imu_shank.publish(shank)
            self.pub_int_thigh.publish(w_thigh)
            self.pub_int_shank.publish(w_shank)
        self.pub_joint.publish(joint)
        self.pub_done_ns.append(self.now_ns())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("graph", "echo"), default="graph")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=10.0, help="measured window, s")
    p.add_argument("--warmup", type=float, default=3.0, help="s after the first good command")
    p.add_argument("--namespace", default=contract.DEFAULT_NAMESPACE)
    p.add_argument("--echo-topic", default="/bench/js")
    p.add_argument("--stamp", choices=("wall", "mono", "periodic_wall", "periodic_mono"), default="wall",
                   help="sensor time of a sample: wall = time.time() when it is built; mono = time.monotonic() "
                        "then (a driver clock since boot); periodic_* = the nominal slot time on that clock")
    p.add_argument("--expect-source", default="pid", help="command source meaning 'controller in charge'")
    p.add_argument("--no-tap", action="store_true", help="do not subscribe to torque_request")
    p.add_argument("--settle-timeout", type=float, default=20.0,
                   help="max s after the warm-up to wait for 1 s of commands from the controller")
    p.add_argument("--start-timeout", type=float, default=40.0)
    p.add_argument("--executor", choices=("events", "single"), default="single",
                   help="this process's executor (events: rclpy 9.1.2 raises 'SystemError: null argument' "
                        "on the MessageInfo callbacks used for the per-hop split)")
    p.add_argument("--out", required=True)
    a = p.parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:])
    if a.mode == "echo":
        a.expect_source = "echo"

    rclpy.init()
    node = LoadGen(a)
    if a.executor == "events":
        from rclpy.experimental import EventsExecutor

        ex = EventsExecutor()
    else:
        ex = SingleThreadedExecutor()
    ex.add_node(node)
    result: dict = {"ok": False, "error": "", "rate_hz": a.rate, "mode": a.mode, "stamp": a.stamp}
    try:
        # 1. discovery: both ways matched
        deadline = time.monotonic() + a.start_timeout
        while (node.pub_joint.get_subscription_count() < node.expected_subs
               or node.sub_cmd.get_publisher_count() < 1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"discovery: {node.pub_joint.get_subscription_count()} subscriber(s) on "
                                   f"joint_states, {node.sub_cmd.get_publisher_count()} publisher(s) of commands")
            ex.spin_once(timeout_sec=0.05)
        t_matched = time.monotonic()
        # 2. publish at the rate; warm-up until commands from the controller flow; then measure
        gc.collect()
        period = node.period_ns
        t0 = node.now_ns() * 1e-9
        next_ns = mono0 = time.monotonic_ns()
        wall0 = time.time_ns()
        window: tuple[int, int] | None = None  # sample index range of the measured window
        settled = False
        measure_until = None
        skipped = 0
        while True:
            now = time.monotonic_ns()
            if now >= next_ns:
                if measure_until is not None and now >= measure_until:
                    break
                node.publish_sample(t0, next_ns, wall0 + (next_ns - mono0))
                next_ns += period
                if now - next_ns > period:
                    missed = (now - next_ns) // period
                    skipped += missed
                    next_ns += missed * period
                # window: after the warm-up, once 1 s of commands came from the controller (max 20 s more)
                if window is None and node.first_ok_wall is not None \
                        and time.monotonic() - node.first_ok_wall >= a.warmup \
                        and (node.consecutive_ok >= a.rate
                             or time.monotonic() - node.first_ok_wall >= a.warmup + a.settle_timeout):
                    window = (len(node.stamp_ns), -1)
                    settled = node.consecutive_ok >= a.rate
                    measure_until = time.monotonic_ns() + int(a.duration * 1e9)
                    skipped = 0
                    t_window = time.monotonic()
                if window is None and time.monotonic() - t_matched > a.start_timeout:
                    raise TimeoutError(f"no command with source {a.expect_source!r} within {a.start_timeout} s "
                                       f"(sources seen: {sorted(set(node.cmd_source) - {''})})")
                continue
            ex.spin_once(timeout_sec=(next_ns - now) * 1e-9)
        window = (window[0], len(node.stamp_ns))
        t_end = time.monotonic()
        tail = t_end + 0.3
        while time.monotonic() < tail:  # late commands
            ex.spin_once(timeout_sec=0.01)
        lo, hi = window
        result.update(
            ok=True, settled=settled, window=[lo, hi], window_wall_s=t_end - t_window, skipped_slots=skipped,
            discovery_s=t_matched - (deadline - a.start_timeout), unmatched=node.unmatched,
            duplicates=node.duplicates, unmatched_examples=node.unmatched_examples,
            last_stamps=node.stamp_ns[-3:],
            **{k: getattr(node, k)[lo:hi] for k in ("stamp_ns", "pub_done_ns", "cmd_recv_ns", "cmd_src_ns",
                                                     "cmd_rx_ns", "cmd_source", "req_src_ns", "req_recv_ns")},
        )
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        with open(a.out, "w") as f:
            json.dump(result, f)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
