"""Run an exo node (or the echo node) on rclpy's EventsExecutor *without* calling its ``spin()``.

Demonstrates the proposed fix for ``EXO_EXECUTOR=events`` without touching the node files:
``exo.ros.node_main.make_executor`` is replaced, before the node module is imported, by one
returning :class:`LoopedEventsExecutor`, whose ``spin()`` loops ``spin_once(timeout_sec=0.1)``.

Why: in rclpy 9.1.2 (PyPI wheel) ``EventsExecutor.spin()`` (no timeout) runs its event queue
until ``std::chrono::steady_clock::time_point::max()``; in this build the condition-variable
wait on that deadline does not block, so the spinning thread busy-loops (100 % CPU) on the
queue's mutex, and no callback, timer or discovery work gets through; SIGINT/SIGTERM are not
acted on. It happens with no timer at all, so the steady clock is not the cause.
``spin_once(timeout)`` uses a finite deadline and works (callbacks, timers on any clock,
signals), see ``bench/bench_graph.py --only events``.

    python bench/events_shim.py exo.nodes.controller --ros-args ...
    python bench/events_shim.py echo /topic:pkg/msg/Type --ros-args ...
"""

from __future__ import annotations

import importlib
import sys

import rclpy
from rclpy.experimental import EventsExecutor


class LoopedEventsExecutor:
    """The EventsExecutor, spun with a finite timeout (the part of its API that works in 9.1.2)."""

    def __init__(self, timeout_s: float = 0.1) -> None:
        self.ex = EventsExecutor()
        self.timeout_s = timeout_s

    def add_node(self, node) -> None:
        self.ex.add_node(node)

    def spin(self) -> None:
        while rclpy.ok():
            self.ex.spin_once(timeout_sec=self.timeout_s)

    def shutdown(self) -> None:
        self.ex.shutdown()


def main() -> None:
    target = sys.argv[1]
    args = [sys.argv[0], *sys.argv[2:]]
    if target == "echo":
        from rclpy.executors import ExternalShutdownException

        from exo.testing.echo_node import EchoNode

        topics = [tuple(x.split(":", 1)) for x in rclpy.utilities.remove_ros_args(args)[1:]]
        try:
            with rclpy.init(args=args):
                ex = LoopedEventsExecutor()
                ex.add_node(EchoNode(topics))
                ex.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return
    import exo.ros.node_main as node_main

    node_main.make_executor = LoopedEventsExecutor
    module = importlib.import_module(target)
    module.main(args)


if __name__ == "__main__":
    main()
