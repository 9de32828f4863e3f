"""The ``main()`` every exo node shares: init, spin, clean shutdown, clear start-up errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from exo.params import ConfigError
from exo.ros.parameters import ParameterError


def make_executor():
    """SingleThreadedExecutor, or rclpy's EventsExecutor with ``EXO_EXECUTOR=events``.

    The EventsExecutor halves the nodes' CPU and a plain round trip here (bench/bench_graph.py);
    its ``spin()`` busy-loops in rclpy 9.1.2, so :func:`run` spins with bounded ``spin_once``
    calls. It must be spun from the main thread.
    """
    if os.environ.get("EXO_EXECUTOR", "single") == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:
            pass
    return SingleThreadedExecutor()


def run(node_factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """Create the node, spin it until Ctrl-C / shutdown, and exit with a useful code.

    A node whose parameters or configuration are invalid exits with code 2 and
    one line naming the problem (the pip runner and launch show it).
    """
    try:
        with rclpy.init(args=args if args is not None else sys.argv):
            try:
                node = node_factory()
            except (ParameterError, ConfigError, FileNotFoundError, InvalidParameterValueException,
                    InvalidParameterTypeException) as exc:
                print(f"[fatal] cannot start: {exc}", file=sys.stderr, flush=True)
                sys.exit(2)
            executor = make_executor()
            executor.add_node(node)
            try:
                # rclpy 9.1.2's EventsExecutor.spin() waits on "the end of time" and that wait does not
                # block (100 % CPU, no callbacks); bounded spin_once calls work for both executors.
                while rclpy.ok():
                    executor.spin_once(timeout_sec=0.1)
            finally:
                on_shutdown = getattr(node, "on_shutdown", None)
                if on_shutdown is not None:
                    on_shutdown()
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
