"""Hardware drivers' pure cores: frame codecs, stream framing, device health, emulators.

No rclpy import anywhere in this package: the ROS nodes (:mod:`exo.nodes.actuator_driver`,
``imu_*_driver``, ``emg_driver``, ``foot_pressure_driver``) are thin shells around these,
and the tests exercise them without ROS against emulated devices (python-can's virtual
bus, pseudo-terminals).
"""
