#!/usr/bin/env bash
# Source ROS and the workspace, then launch the sim graph with any extra launch arguments.
set -e
source /opt/ros/kilted/setup.bash
source /ws/install/setup.bash
exec ros2 launch exo_bringup sim.launch.py "$@"
