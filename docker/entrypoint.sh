#!/usr/bin/env bash
# Source ROS and the workspace; then `ray ...` (a Ray node), `exo ...` or `python3 ...` run as they are,
# anything else is passed to the sim graph's launch file as launch arguments.
set -e
source /opt/ros/kilted/setup.bash
source /ws/install/setup.bash
case "${1:-}" in
    ray|python3) exec "$@" ;;
    exo) shift; exec python3 -m exo.cli.main "$@" ;;
esac
exec ros2 launch exo_bringup sim.launch.py "$@"
