"""Replay a recorded bag through the graph (ROS 2 installs).

    ros2 launch exo_bringup replay.launch.py bag:=bags/sim_level3_pid rate:=0.0 record:=true

The bag player publishes the recorded sensor topics with /clock (rate 0 = lockstep,
as fast as the graph answers; 1.0 = as recorded); the controller and the safety
monitor run on them as they did live, and the launch ends when the bag does.
Arguments: bag, rate, controller, policy, record, record_dir, user_id, session_info,
use_sim_time, namespace, params_file, log_level, live, console (`--show-args`). `exo replay` is the
pip equivalent and also compares the new torque_command stream with the recorded one.
"""

from exo.ros.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("replay")
