"""exo: ROS 2 stack for reinforcement-learning control of a knee exoskeleton.

Layers (docs/architecture.md):

- pure cores, no rclpy: :mod:`exo.twin` (digital twin), :mod:`exo.control`
  (controllers), :mod:`exo.safety` (safety monitor), :mod:`exo.metrics`,
  :mod:`exo.contract` (topic contract), :mod:`exo.graph` (node graph);
- the ROS shell: :mod:`exo.nodes` (one small rclpy node per core);
- entry points: :mod:`exo.cli` (the ``exo`` command).

Units are SI everywhere (rad, rad/s, N m, s); degrees only at the user-facing edge.
"""

__version__ = "0.1.0"
