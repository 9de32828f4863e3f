"""Launch the exo graph against the MuJoCo digital twin (ROS 2 installs).

    ros2 launch exo_bringup sim.launch.py controller:=pid level:=1 lockstep:=true

Arguments (see `ros2 launch exo_bringup sim.launch.py --show-args`): twin, controller,
policy, level, subject_seed, lockstep, paused, use_sim_time, namespace, params_file, log_level, intent;
record, record_dir, user_id, session_info for the optional recorder (docs/bags.md).
live, live_host, live_port (Foxglove live view) and console, console_host, console_port (the
therapist's console): docs/live.md.
The nodes and arguments come from the graph spec (exo/graph.py), shared with `exo sim`.
"""

from exo.ros.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim")
