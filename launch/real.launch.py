"""Launch the exo graph on the real exoskeleton (ROS 2 installs).

    ros2 launch exo_bringup real.launch.py controller:=pid params_file:=/path/to/my_rig.yaml

The hardware drivers (actuator on CAN, IMUs, EMG, foot pressure; config/drivers.yaml)
replace the sim bridge; the controller and safety monitor are the same as in simulation.
Arguments: controller, policy, sync_inputs, use_sim_time (false), namespace, params_file,
log_level; live and console (docs/live.md). The nodes and arguments come from the graph spec (exo/graph.py), shared with
`exo real`.
"""

from exo.ros.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("real")
