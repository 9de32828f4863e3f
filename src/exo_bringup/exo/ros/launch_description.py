"""Build a ``launch`` description of the graph from the graph spec (ROS 2 installs only).

``launch/sim.launch.py``, ``real.launch.py`` and ``replay.launch.py`` are thin
wrappers around :func:`graph_launch_description`; the pip runner
(:mod:`exo.runner`) builds its processes from the same spec and the same
argument parsing (:func:`exo.graph.resolve_arguments`), so both start the same
nodes with the same parameters.

``launch`` and ``launch_ros`` are imported inside the function: they are not
installable from PyPI, and nothing else in exo needs them.
"""

from __future__ import annotations

from exo.graph import active_nodes, arguments_for, overrides_file, resolve_arguments
from exo.paths import share_dir
from exo.runner import node_overrides
from exo.security.keys import RunSecrets


def graph_launch_description(mode: str):
    """``LaunchDescription`` declaring the mode's arguments and starting its nodes.

    Arguments are validated by the same code as ``exo sim`` (a bad ``level:=7``
    stops the launch with a message naming the argument). A required node that
    exits shuts the whole launch down, like the pip runner does. Like the runner,
    the launch creates the run's secrets (:class:`exo.security.keys.RunSecrets`)
    and hands each node only its own; they are deleted when the launch shuts down.
    """
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
    from launch.event_handlers import OnShutdown
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    declared = arguments_for(mode)

    def make_nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in declared}
        args = resolve_arguments(mode, values)
        config_dir = share_dir() / "config"
        secrets = RunSecrets.create(str(args["namespace"]))
        actions: list = [RegisterEventHandler(OnShutdown(on_shutdown=lambda event, ctx: secrets.remove()))]
        for spec in active_nodes(mode, args):
            parameters: list = [str(config_dir / f) for f in spec.param_files]
            if args["params_file"]:
                parameters.append(str(args["params_file"]))
            # a file keyed by the node's full name, not a dictionary (launch_ros files a dictionary under
            # /**, which the /**/<node> entries of config/*.yaml beat): exo.graph.overrides_file
            parameters.append(str(overrides_file(spec, args, node_overrides(spec, args, secrets), secrets.folder)))
            actions.append(
                Node(
                    package="exo_bringup",
                    executable=spec.executable,
                    name=spec.name,
                    namespace=str(args["namespace"]),
                    parameters=parameters,
                    arguments=["--ros-args", "--log-level", str(args["log_level"])],
                    ros_arguments=(["--enclave", f"{str(args['enclave_prefix']).rstrip('/')}/{spec.name}"]
                                   if args["enclave_prefix"] else None),
                    output="screen",
                    emulate_tty=True,
                    on_exit=Shutdown(reason=f"required node {spec.name} exited") if spec.required else None,
                )
            )
        return actions

    return LaunchDescription(
        [
            DeclareLaunchArgument(
                name, default_value=arg.default, description=arg.description, choices=list(arg.choices) or None
            )
            for name, arg in declared.items()
        ]
        + [OpaqueFunction(function=make_nodes)]
    )
