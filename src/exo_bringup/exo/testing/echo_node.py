"""A node that republishes what it receives: ``<topic>`` -> ``<topic>/echo``, same type.

Used by the cross-process interface test: the test publishes each exo_msgs type,
this node (another OS process) deserialises and re-serialises it, and the test
checks every field of what comes back.

    python -m exo.testing.echo_node TOPIC:pkg/msg/Type [...] --ros-args ...
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from exo.ros.types import interface_class


class EchoNode(Node):
    def __init__(self, topics: list[tuple[str, str]]) -> None:
        super().__init__("echo")
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._echo_pubs = {}
        for name, type_name in topics:
            msg_type = interface_class(type_name)
            pub = self.create_publisher(msg_type, f"{name}/echo", qos)
            self._echo_pubs[name] = pub
            self.create_subscription(msg_type, name, pub.publish, qos)
        self.get_logger().info(f"echoing {len(topics)} topic(s)")


def main(args: list[str] | None = None) -> None:
    argv = sys.argv if args is None else args
    user_args = rclpy.utilities.remove_ros_args(argv)[1:]
    topics = [tuple(a.split(":", 1)) for a in user_args]
    if not topics or any(len(t) != 2 for t in topics):
        sys.exit("usage: echo_node TOPIC:pkg/msg/Type [...]")
    from exo.ros.node_main import run

    run(lambda: EchoNode(topics), argv)  # the nodes' executor and shutdown (EXO_EXECUTOR), for a fair comparison


if __name__ == "__main__":
    main()
