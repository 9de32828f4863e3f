"""Helpers shared by the ROS shell (rclpy is imported only below this package and in exo.nodes)."""
