"""The environment that isolates one graph's processes: its DDS domain, localhost discovery, its log folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def ros_environment(domain_id: int, log_dir: Path | str) -> dict[str, str]:
    """Variables that isolate a graph: its own DDS domain, localhost-only discovery, own log dir.

    Kilted ignores ``ROS_LOCALHOST_ONLY``; ``ROS_AUTOMATIC_DISCOVERY_RANGE`` must be the
    same in every process of the graph (mixed values: no traffic).
    """
    if not 0 <= domain_id <= 101:
        raise ValueError(f"ROS_DOMAIN_ID must be in 0..101 for the default port mapping, got {domain_id}")
    env = {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(log_dir),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }
    if "AMENT_PREFIX_PATH" not in os.environ:
        env["AMENT_PREFIX_PATH"] = sys.prefix  # the wheels do not set it; ament_index needs it
    return env
