"""The ``main()`` every exo node shares: init, spin, clean shutdown, clear start-up errors."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import rclpy
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from exo.params import ConfigError
from exo.ros.parameters import ParameterError, use_command_line
from exo.ros.params_file import ParamsFileError, parse_params_file, ros_params_files

#: rclpy's error of a failed rcl call (``rclpy._rclpy_pybind11.RCLError``).
RCLError = rclpy_implementation.RCLError


def make_executor():
    """rclpy's EventsExecutor (default), or the SingleThreadedExecutor with ``EXO_EXECUTOR=single``.

    Measured here (bench/bench_graph.py; reference/ros2-from-pypi.md): the EventsExecutor
    roughly halves the nodes' CPU per control cycle and the inter-process round trip, because
    it does not rebuild a wait set (every subscription, timer, service and QoS event of the
    node) on each wake-up. Its ``spin()`` busy-loops in rclpy 9.1.2, so :func:`run` spins with
    bounded ``spin_once`` calls; it must be spun from the main thread. Falls back to the
    SingleThreadedExecutor where ``rclpy.experimental`` is missing.
    """
    choice = os.environ.get("EXO_EXECUTOR", "events")
    if choice not in ("events", "single"):
        raise ConfigError(f"EXO_EXECUTOR must be 'events' or 'single', got {choice!r}")
    if choice == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:
            pass
    return SingleThreadedExecutor()


def _start_profiler():
    """A running cProfile.Profile when ``EXO_PROFILE`` names a folder (developer aid), else None."""
    if not os.environ.get("EXO_PROFILE"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _stop_profiler(profiler, node_name: str) -> None:
    """Write the profile of the spin loop to ``$EXO_PROFILE/<node>-<pid>.prof`` (pstats format)."""
    profiler.disable()
    folder = os.environ["EXO_PROFILE"]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{node_name}-{os.getpid()}.prof")
    profiler.dump_stats(path)
    print(f"[profile] {path}", file=sys.stderr, flush=True)


class _StopRequest:
    """SIGINT/SIGTERM handler: remembers the first signal; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum


def _fatal(message: str) -> NoReturn:
    """Print one ``[fatal] cannot start: ...`` line and exit with code 2."""
    print(f"[fatal] cannot start: {' '.join(message.split())}", file=sys.stderr, flush=True)
    sys.exit(2)


def _rcl_message(exc: Exception) -> str:
    """An rcl error without the C source locations (``, at /project/src/parse.c:776``)."""
    return re.sub(r",? at [^,]*\.c(pp)?:\d+", "", str(exc)).strip()


def _check_params_files(argv: Sequence[str]) -> None:
    """Exit with one line naming the file (and line) if a ``--params-file`` is unreadable or not YAML.

    rcl would refuse it in ``rclpy.init`` with a traceback and C source locations.
    """
    try:
        for path in ros_params_files(argv):
            parse_params_file(path)
    except ParamsFileError as exc:
        _fatal(str(exc))


def run(node_factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """Create the node, spin it until Ctrl-C / shutdown, and exit with a useful code.

    A node whose parameters, parameter files or configuration are invalid exits with
    code 2 and one line naming the problem (the pip runner and launch show it).
    """
    argv = list(args if args is not None else sys.argv)
    use_command_line(argv)
    _check_params_files(argv)
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        init = rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as exc:  # a params file rcl refuses although it is valid YAML, a bad --ros-args
        _fatal(f"rclpy.init: {_rcl_message(exc)}")
    try:
        # rclpy's own signal handlers are off: a KeyboardInterrupt raised inside the EventsExecutor's
        # wait comes out as "RuntimeError: Unable to convert call argument" (rclpy 9.1.2). SIGINT and
        # SIGTERM set a flag instead; the loop ends within one spin_once, and the node's
        # on_shutdown() runs (an actuator driver's zero-torque frame, a recorder's last chunk).
        with init:
            try:
                executor = make_executor()
                node = node_factory()
            except (ParameterError, ConfigError, FileNotFoundError, InvalidParameterValueException,
                    InvalidParameterTypeException) as exc:
                _fatal(str(exc))
            executor.add_node(node)
            from exo.priority import freeze_startup_heap

            freeze_startup_heap()  # no 20-40 ms full garbage collections of the start-up heap in the loop
            profiler = _start_profiler()
            try:
                # rclpy 9.1.2's EventsExecutor.spin() waits on "the end of time" and that wait does not
                # block (100 % CPU, no callbacks); bounded spin_once calls work for both executors.
                while rclpy.ok() and stop.signum is None:
                    executor.spin_once(timeout_sec=0.1)
                # a node that must not lose what its queues still hold (the recorder) takes it now
                drain = getattr(node, "drain", None)
                if drain is not None and rclpy.ok():
                    drain(lambda timeout_s: executor.spin_once(timeout_sec=timeout_s))
            finally:
                if profiler is not None:
                    _stop_profiler(profiler, node.get_name())
                on_shutdown = getattr(node, "on_shutdown", None)
                if on_shutdown is not None:
                    on_shutdown()
                executor.shutdown()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
