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

Shutdown (SIGINT/SIGTERM) closes the bag (summary, footer, metadata.yaml). A
SIGKILL loses at most the last ``flush_period_s`` of messages (see
:mod:`exo.bags.writer`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.node import Node

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
        if self.p["flush_period_s"] > 0:
            steady = Clock(clock_type=ClockType.STEADY_TIME)
            self.create_timer(self.p["flush_period_s"] / 2, self.writer.flush_if_due, clock=steady)
        self.get_logger().info(f"recording {len(contract.TOPICS)} topics under {namespace} into {path}")

    def _writer_for(self, name: str, msg_type: str):
        write = self.writer.write

        def callback(data: bytes) -> None:
            write(name, msg_type, time.time_ns(), data)

        return callback

    def on_shutdown(self) -> None:
        self.writer.close()
        self.get_logger().info(f"closed {self.writer.path}: {self.writer.message_count} messages "
                               f"in {len(self.writer.bags)} bag(s)")


def main(args: list[str] | None = None) -> None:
    run(Recorder, args)


if __name__ == "__main__":
    main()
