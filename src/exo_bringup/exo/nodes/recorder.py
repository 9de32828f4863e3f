"""recorder: write every contract topic of the graph into a rosbag2 MCAP session.

Subscribes to every topic of :mod:`exo.contract` under the graph's namespace,
in raw mode (CDR bytes as they came off the wire: no deserialisation cost, the
bag holds exactly what the nodes exchanged), and hands them to
:class:`exo.bags.writer.BagWriter` with the receive time (wall clock) as the
log time, like ``ros2 bag record``.

QoS: each subscription asks for what the contract offers, with a deep queue
(``queue_depth``) and no deadline: best effort for the sensor streams (a
reliable subscription would not match a best-effort publisher), reliable for
commands, transient local for the latched safety status (so the state at the
recorder's start is in the bag).

Start: a sim bridge or bag player launched with ``record:=true`` holds its first step until this
recorder says, through ``source/recorder_ready``, that it has matched every publisher it discovered
(:mod:`exo.ros.start_gate`): the bag then starts with the run's first sample.

Shutdown (SIGINT/SIGTERM) first drains the subscriptions: a recorder behind a lockstep graph
that runs faster than it writes holds a backlog in its queues when the graph stops, and it
writes it before it closes (until nothing arrived for ``drain_quiet_s``, at most
``drain_timeout_s``). Then it closes the bag (summary, footer, metadata.yaml). A SIGKILL loses at
most the last ``flush_period_s`` of messages (see :mod:`exo.bags.writer`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node
from std_srvs.srv import Trigger

from exo import contract
from exo.bags.writer import BagWriter, SessionMetadata, current_commit
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class

PARAMS = [
    Param("bag_dir", "", "Session folder to create; '' = runs/bags/<UTC date-time>."),
    Param("user_id", "", "Pseudonymous id of the user (session metadata)."),
    Param("controller", "", "Controller of the graph (session metadata)."),
    Param("policy", "", "Policy version or path for learned controllers (session metadata)."),
    Param("session_info", "", "More session metadata as 'key=value' pairs separated by commas "
          "(mode, twin, level, subject_seed, device, source_bag, ...)."),
    Param("split_size_mb", 0.0, "Start a new bag of the session after this many MB of messages (0 = never), MB.",
          0.0, 1e6),
    Param("split_duration_s", 0.0, "Start a new bag after this many seconds of recording (0 = never), s.", 0.0, 1e7),
    Param("flush_period_s", 0.5, "Write buffered messages to disk at least this often (bounds the loss on a "
          "crash), s; 0 = every 1 MiB only.", 0.0, 60.0),
    Param("queue_depth", 1000, "Subscription queue depth per topic (messages).", 1, 100000),
    Param("drain_quiet_s", 0.2, "On a stop signal, go on taking the messages the subscriptions still hold "
          "until none arrived for this long, s; 0 = close at once.", 0.0, 10.0),
    Param("drain_timeout_s", 2.0, "The longest the recorder drains its queues after a stop signal (a graph "
          "still running keeps it busy until then), s.", 0.0, 60.0),
    Param("announce_ready_s", 60.0, "Wall seconds from the start during which the recorder tells a sensor source "
          "that awaits it (record:=true) when its subscriptions have matched every publisher it discovered "
          "(source/recorder_ready), s; 0 = never.", 0.0, 600.0),
]


def parse_session_info(text: str) -> dict[str, str]:
    """``"mode=sim, level=3"`` -> ``{"mode": "sim", "level": "3"}``; ParameterError naming a bad pair."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter 'session_info': {part!r} is not a key=value pair")
        out[key.strip()] = value.strip()
    return out


class Recorder(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.p = declare_all(self, PARAMS)
        info = parse_session_info(self.p["session_info"])
        namespace = self.get_namespace()
        meta = SessionMetadata.from_dict({
            "user_id": self.p["user_id"], "controller": self.p["controller"], "policy_version": self.p["policy"],
            "commit": current_commit(), "namespace": namespace, **info,
        })
        path = Path(self.p["bag_dir"] or f"runs/bags/{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        try:
            self.writer = BagWriter(path, meta, split_size_bytes=int(self.p["split_size_mb"] * 1e6),
                                    split_duration_s=self.p["split_duration_s"],
                                    flush_period_s=self.p["flush_period_s"], namespace=namespace)
        except FileExistsError as exc:
            raise ParameterError(f"parameter 'bag_dir': {exc}") from None
        self.subscriptions_by_topic = {}
        for topic in contract.TOPICS.values():
            qos = qos_profile(topic)
            qos.depth = self.p["queue_depth"]
            qos.deadline = Duration()
            name = topic.resolved(namespace)
            self.subscriptions_by_topic[name] = self.create_subscription(
                interface_class(topic.msg_type), topic.name, self._writer_for(name, topic.msg_type), qos, raw=True)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.p["flush_period_s"] > 0:
            self.create_timer(self.p["flush_period_s"] / 2, self.writer.flush_if_due, clock=steady)
        self.started_at = time.monotonic()
        self.ready_client = self.create_client(Trigger, contract.RECORDER_READY_SERVICE)
        self.ready_call = None
        self.ready_timer = (self.create_timer(0.05, self._announce_ready, clock=steady)
                            if self.p["announce_ready_s"] > 0 else None)
        self.get_logger().info(f"recording {len(contract.TOPICS)} topics under {namespace} into {path}")

    def matched_every_publisher(self) -> bool:
        """The joint_states subscription has a publisher, and each subscription has matched every publisher of
        its topic this node has discovered (a publisher can count this subscriber before this side has matched,
        and until then what it sends is dropped here)."""
        joint = self.subscriptions_by_topic[contract.JOINT_STATES.resolved(self.get_namespace())]
        if joint.get_publisher_count() == 0:
            return False
        return all(sub.get_publisher_count() >= self.count_publishers(name)
                   for name, sub in self.subscriptions_by_topic.items())

    def _announce_ready(self) -> None:
        """Call source/recorder_ready once, when matched and a source offers it (within announce_ready_s)."""
        if self.ready_call is not None:
            if self.ready_call.done():
                self.destroy_timer(self.ready_timer)
                self.get_logger().info("told the sensor source: recording from its first sample")
            return
        if time.monotonic() - self.started_at > self.p["announce_ready_s"]:
            self.destroy_timer(self.ready_timer)  # no source awaits this recorder (hardware graph, or it started)
            return
        if self.matched_every_publisher() and self.ready_client.service_is_ready():
            self.ready_call = self.ready_client.call_async(Trigger.Request())

    def _writer_for(self, name: str, msg_type: str):
        write = self.writer.write

        def callback(data: bytes) -> None:
            write(name, msg_type, time.time_ns(), data)

        return callback

    def drain(self, spin_once) -> None:
        """After a stop signal: take what the subscriptions still hold (see the module docstring).

        ``spin_once(timeout_s)`` runs at most one callback of this node's executor.
        """
        quiet_s, limit_s = self.p["drain_quiet_s"], self.p["drain_timeout_s"]
        if quiet_s <= 0.0 or limit_s <= 0.0:
            return
        start = last_change = time.monotonic()
        first = count = self.writer.message_count
        now = start
        while now - start < limit_s and now - last_change < quiet_s:
            spin_once(min(0.02, quiet_s))
            now = time.monotonic()
            if self.writer.message_count != count:
                count, last_change = self.writer.message_count, now
        if count > first:
            self.get_logger().info(f"wrote {count - first} queued messages after the stop signal "
                                   f"({now - start:.2f} s)")

    def on_shutdown(self) -> None:
        self.writer.close()
        self.get_logger().info(f"closed {self.writer.path}: {self.writer.message_count} messages "
                               f"in {len(self.writer.bags)} bag(s)")


def main(args: list[str] | None = None) -> None:
    run(Recorder, args)


if __name__ == "__main__":
    main()
