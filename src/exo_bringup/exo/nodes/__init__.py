"""The ROS shell: one small rclpy node per pure core (twin, controller, safety monitor, ...).

Each module has a ``main()`` (console script ``ros2 run exo_bringup <name>``) and
takes its topics from :mod:`exo.contract`, its parameters from ``config/*.yaml``.
"""
