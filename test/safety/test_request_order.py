"""The safety_monitor node judges a torque request against the sample it answers, whatever the DDS order.

On hardware time stamps the joint_states samples come 10-13 ms apart, and the controller's answer
to sample k (a second publisher) may be delivered to the monitor before sample k itself. Judged on
arrival, against sample k-1, a request 13 ms ahead is beyond the request timeout (12 ms) and was
refused as "stamped in the future": a FALLBACK episode in an otherwise healthy run
(docs/drivers.md, "Timing"). The node now holds such a request until its sample arrives.
"""

from __future__ import annotations

import time

import pytest

from exo import contract
from exo.paths import config_file
from exo.ros.convert import to_time_msg
from exo.safety import SafetyLimits

pytestmark = pytest.mark.ros

LIMITS = SafetyLimits.from_yaml(config_file("safety.yaml"))


def test_a_request_delivered_before_its_sample_is_judged_with_that_sample(processes, probe):
    from geometry_msgs.msg import WrenchStamped
    from sensor_msgs.msg import Imu, JointState

    from exo_msgs.msg import TorqueCommand

    # use_sim_time: the node's wall-clock allowances become the simulation's (request deadline 2 s, stall
    # grace 3 s), so a busy test machine delaying this probe cannot be mistaken for a late controller
    processes.graph("real", only=("safety_monitor",), use_sim_time="true")
    commands = probe.subscribe(contract.TORQUE_COMMAND)
    status = probe.subscribe(contract.SAFETY_STATUS)
    request_pub = probe.publisher(contract.TORQUE_REQUEST)
    joint_pub = probe.publisher(contract.JOINT_STATES)
    others = [(probe.publisher(topic), topic) for topic in (contract.INTERACTION_THIGH, contract.INTERACTION_SHANK,
                                                             contract.IMU_THIGH, contract.IMU_SHANK)]
    probe.wait_for_nodes(["safety_monitor"], timeout_s=60.0)
    for pub in [request_pub, joint_pub, *(p for p, _ in others)]:
        probe.wait_for_subscribers(pub, timeout_s=30.0)

    step_s = 0.013  # hardware jitter: more than the request timeout (1 period + 2 ms) between samples
    assert step_s > LIMITS.request_timeout_s
    t0, steps = time.time(), 150
    for k in range(steps):
        stamp = to_time_msg(t0 + k * step_s)
        # the controller's answer first ...
        request = TorqueCommand(joint=contract.KNEE_JOINT, torque=1.0, source="probe", seq=k + 1)
        request.header.stamp = stamp
        request_pub.publish(request)
        probe.spin_for(0.003)
        # ... then the samples it answers (joint_states last, as the actuator driver publishes)
        for pub, topic in others:
            if topic.msg_type.endswith("Imu"):
                msg = Imu()
            else:
                msg = WrenchStamped()
                msg.wrench.torque.y = 1.0
            msg.header.stamp = stamp
            pub.publish(msg)
        js = JointState(name=[contract.KNEE_JOINT], position=[1.0], velocity=[0.0], effort=[1.0])
        js.header.stamp = stamp
        joint_pub.publish(js)
        probe.spin_for(step_s - 0.003)
    probe.spin_for(0.5)
    assert len(commands) >= steps // 2, f"only {len(commands)} commands for {steps} samples"
    sources = {c.source for c in commands}
    assert sources == {"probe"}, f"command sources {sources}; last status: {status[-1].reason if status else '-'}"
    assert status and status[-1].rejected_requests == 0, status[-1].reason
