"""Test support shared by the integration tests and benchmarks (isolated ROS environments, echo node)."""
