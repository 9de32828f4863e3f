"""The in-process rclpy probe for tests and benchmarks; it lives in :mod:`exo.ros.probe` (``exo sim`` watches a
running graph with it too)."""

from exo.ros.probe import RosProbe

__all__ = ["RosProbe"]
