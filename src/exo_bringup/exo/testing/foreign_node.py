"""A hostile or faulty participant on the graph's DDS domain: a separate rclpy process, no keys.

Run by the security tests and ``bench/bench_security.py``
(``python -m exo.testing.foreign_node MODE --namespace /exo --duration 5``); it writes what it sent
to ``--report`` (JSON) so that a test can check the attack really ran. Test tooling: production
code never imports it.

Modes (the rows of the security review):

- ``command``: publishes 100 N m on ``torque_command`` for every ``joint_states`` sample it sees,
  stamped with the sample's stamp, every 10th stamped 5 s ahead, half with a forged MAC.
- ``replay``: records the monitor's genuine (signed) ``torque_command`` messages for 0.5 s, then
  publishes them again and again (authentic, but old sequence numbers), and copies with the torque
  changed to 100 N m (the MAC no longer matches): a recorded bag played on the same domain.
- ``request``: publishes ``torque_request`` with ``source: pid`` stamped for the next step
  (``--torque``), and replays the genuine controller's requests with the torque changed.
- ``joint``: publishes fake ``joint_states`` (``--angle`` rad, stamped from ``/clock``, or the host
  clock with ``--clock wall``) and
  spoofed requests of ``--torque`` N m, at 100 Hz.
- ``flood``: publishes invalid ``torque_request`` messages at ``--rate-hz`` (NaN, inf, 1e9 N m,
  stale and future stamps, forged MACs).

Every mode sends only once its publisher has matched a subscriber of the graph, so that what it counts
as sent was deliverable (DDS discovery is not symmetric).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import time

import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from exo import contract
from exo.ros.convert import from_time_msg, to_time_msg
from exo.ros.qos import qos_profile
from exo_msgs.msg import TorqueCommand


class ForeignNode(Node):
    MATCH_GRACE_S = 0.3
    """Wait after this node's publisher matched the graph's subscribers before sending, s."""
    GRAPH_SUBSCRIBERS = ("safety_monitor", "actuator_driver", "sim_bridge")
    """The graph's nodes that consume torque_request / torque_command / joint_states: the attack's targets."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("foreign_node", namespace=args.namespace)
        self.args = args
        self.sent: dict[str, int] = {}
        self.rng = random.Random(0)
        self.latest_t: float | None = None
        self.genuine: list[TorqueCommand] = []
        self.started = time.monotonic()
        self._matched_since: dict[str, float] = {}
        mode = args.mode
        # only the publishers of the mode's attack (a publisher on a sensor topic is itself detected)
        if mode in ("command", "replay"):
            self.pub_cmd = self.create_publisher(TorqueCommand, contract.TORQUE_COMMAND.name,
                                                 qos_profile(contract.TORQUE_COMMAND))
        if mode in ("request", "joint", "flood"):
            self.pub_req = self.create_publisher(TorqueCommand, contract.TORQUE_REQUEST.name,
                                                 qos_profile(contract.TORQUE_REQUEST))
        if mode == "joint":
            self.pub_joint = self.create_publisher(JointState, contract.JOINT_STATES.name,
                                                   qos_profile(contract.JOINT_STATES))
        if mode in ("command", "request"):
            self.create_subscription(JointState, contract.JOINT_STATES.name, self._on_joint,
                                     qos_profile(contract.JOINT_STATES))
        if mode == "replay":
            self.create_subscription(TorqueCommand, contract.TORQUE_COMMAND.name, self._record,
                                     qos_profile(contract.TORQUE_COMMAND, reader=True))
            self.create_timer(0.002, self._replay)
        if mode == "request":
            self.create_subscription(TorqueCommand, contract.TORQUE_REQUEST.name, self._record,
                                     qos_profile(contract.TORQUE_REQUEST, reader=True))
        if mode == "joint":
            if args.clock == "sim":
                self.create_subscription(Clock, "/clock", self._on_clock, qos_profile(contract.CLOCK_TOPIC))
            self.create_timer(0.01, self._spoof_joint)
        if mode == "flood":
            self.create_subscription(JointState, contract.JOINT_STATES.name, self._track,
                                     qos_profile(contract.JOINT_STATES))
            self.create_timer(1.0 / args.rate_hz, self._flood)

    def _count(self, what: str) -> None:
        self.sent[what] = self.sent.get(what, 0) + 1

    def _msg(self, t: float, torque: float, source: str = "pid", mac: bytes = b"") -> TorqueCommand:
        msg = TorqueCommand(joint=contract.KNEE_JOINT, torque=torque, source=source, seq=10**6 + sum(self.sent.values()))
        msg.header.stamp = to_time_msg(t)
        msg.mac = mac
        return msg

    def _forged(self) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(32))

    def _track(self, msg: JointState) -> None:
        if self.latest_t is None or from_time_msg(msg.header.stamp) > self.latest_t:
            self.latest_t = from_time_msg(msg.header.stamp)

    def _on_clock(self, msg: Clock) -> None:
        self.latest_t = from_time_msg(msg.clock)

    def _record(self, msg: TorqueCommand) -> None:
        if msg.mac and len(self.genuine) < 5000:
            self.genuine.append(msg)

    def _matched(self, pub) -> bool:
        """Whether ``pub`` reaches the graph's subscribers yet.

        DDS discovery is not symmetric (seeing the graph's joint_states does not mean the graph sees this
        publisher) and a publisher also matches this node's own subscription on the same topic (request
        mode records the genuine requests) and the test's probe: so the publisher counts as matched once
        every subscription the graph shows on its topic, one of them a node of the graph other than
        this one, is matched, and then ``MATCH_GRACE_S`` more for the other side to match it back.
        """
        topic = pub.topic_name
        if topic in self._matched_since:
            return time.monotonic() - self._matched_since[topic] >= self.MATCH_GRACE_S
        infos = self.get_subscriptions_info_by_topic(topic)
        me = (self.get_name(), self.get_namespace())
        others = [i for i in infos if (i.node_name, i.node_namespace) != me]
        graph = [i for i in others if i.node_name in self.GRAPH_SUBSCRIBERS]
        if graph and pub.get_subscription_count() >= len(infos):
            self._matched_since[topic] = time.monotonic()
        return False

    def _on_joint(self, msg: JointState) -> None:
        t = from_time_msg(msg.header.stamp)
        if not self._matched(self.pub_cmd if self.args.mode == "command" else self.pub_req):
            return
        if self.args.mode == "command":
            n = sum(self.sent.values())
            stamp = t + 5.0 if n % 10 == 9 else t
            forged = self._forged() if n % 2 else b""
            self.pub_cmd.publish(self._msg(stamp, self.args.torque, "pid", forged))
            self._count("command" + (" forged" if forged else ""))
        else:  # request: stamped for the next step, and tampered copies of the controller's own
            self.pub_req.publish(self._msg(t + 0.01, self.args.torque))
            self._count("request next step")
            self.pub_req.publish(self._msg(t, self.args.torque, "pid", self._forged()))
            self._count("request forged")
            if self.genuine:
                last = self.genuine[-1]
                copy = self._msg(from_time_msg(last.header.stamp) + 0.01, self.args.torque, last.source,
                                 bytes(last.mac))
                copy.seq = last.seq + 1
                self.pub_req.publish(copy)
                self._count("request tampered copy")
                self.pub_req.publish(last)  # the genuine message again: a duplicate, harmless
                self._count("request duplicate")

    def _replay(self) -> None:
        if time.monotonic() - self.started < 0.5 or len(self.genuine) < 10 or not self._matched(self.pub_cmd):
            return
        msg = self.genuine[self.rng.randrange(len(self.genuine) - 5)]  # not the newest: old sequence numbers
        self.pub_cmd.publish(msg)
        self._count("command replayed")
        tampered = self._msg(from_time_msg(msg.header.stamp), 100.0, msg.source, bytes(msg.mac))
        tampered.seq = msg.seq + 10**6
        self.pub_cmd.publish(tampered)
        self._count("command tampered")

    def _spoof_joint(self) -> None:
        if self.args.clock == "wall":
            self.latest_t = time.time()  # hardware stamps: the host clock
        if self.latest_t is None or not (self._matched(self.pub_joint) and self._matched(self.pub_req)):
            return
        js = JointState(name=[contract.KNEE_JOINT], position=[self.args.angle], velocity=[0.0], effort=[0.0])
        js.header.stamp = to_time_msg(self.latest_t)
        self.pub_joint.publish(js)
        self._count("joint sample")
        self.pub_req.publish(self._msg(self.latest_t, self.args.torque))
        self._count("request")

    def _flood(self) -> None:
        if not self._matched(self.pub_req):
            return
        t = self.latest_t if self.latest_t is not None else 0.0
        kind = sum(self.sent.values()) % 6
        msg = [self._msg(t, math.nan), self._msg(t, math.inf), self._msg(t, 1e9), self._msg(t - 10.0, 5.0),
               self._msg(t + 10.0, 5.0), self._msg(t, 5.0, "pid", self._forged())][kind]
        self.pub_req.publish(msg)
        self._count(["nan", "inf", "1e9", "stale", "future", "forged"][kind])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("command", "replay", "request", "joint", "flood"))
    parser.add_argument("--namespace", default=contract.DEFAULT_NAMESPACE)
    parser.add_argument("--duration", type=float, default=5.0, help="stop after this many wall seconds")
    parser.add_argument("--until-sent", type=int, default=0,
                        help="stop earlier, once this many messages were sent (0 = run the whole duration)")
    parser.add_argument("--torque", type=float, default=100.0)
    parser.add_argument("--angle", type=float, default=0.8)
    parser.add_argument("--rate-hz", type=float, default=1000.0)
    parser.add_argument("--report", default="")
    parser.add_argument("--clock", choices=("sim", "wall"), default="sim",
                        help="joint mode: stamp fake samples from /clock (sim) or the host clock (real graph)")
    args = parser.parse_args()
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))  # end the loop, then write the report
    rclpy.init(domain_id=int(os.environ.get("ROS_DOMAIN_ID", "0")), signal_handler_options=SignalHandlerOptions.NO)
    node = ForeignNode(args)
    end = time.monotonic() + args.duration
    while rclpy.ok() and time.monotonic() < end and not stop:
        rclpy.spin_once(node, timeout_sec=0.01)
        if args.until_sent and sum(node.sent.values()) >= args.until_sent:
            break
    if args.report:
        with open(args.report, "w") as f:
            json.dump(node.sent, f)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
