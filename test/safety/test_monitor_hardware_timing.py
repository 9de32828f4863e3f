"""The safety_monitor node on hardware timing (real mode): the orders in which samples and requests come.

1. A torque request is judged against the sample it answers, whatever the DDS delivery order. On hardware time stamps the joint_states samples come 10-13 ms apart, and the controller's answer
to sample k (a second publisher) may be delivered to the monitor before sample k itself. Judged on
arrival, against sample k-1, a request 13 ms ahead is beyond the request timeout (12 ms) and was
refused as "stamped in the future": a FALLBACK episode in an otherwise healthy run
(docs/drivers.md, "Timing"). The node now holds such a request until its sample arrives.

3. Samples that come in a burst after a gap (a late host, a USB-CAN adapter batching frames;
seen in the emulated real graph as 4-5 joint_states samples stamped within 2 ms after a 50 ms
gap) give the controller no time to answer the earlier ones. The old node took each superseded
sample for a step the controller missed and decided the newest at once, with the request from
before the gap: FALLBACK, held 0.5 s, while the controller was on time.

2. The start-up grace (no command until the controller's first request) runs from the first
joint_states sample: in the real graph the IMUs stream for seconds before the actuator driver
starts the control loop, and a grace counted from the first IMU sample had expired by then (the
first steps went to the fallback while the controller was still discovering the actuator driver).
"""

from __future__ import annotations

import time

import pytest

from exo import contract
from exo.paths import config_file
from exo.ros.convert import to_time_msg
from exo.safety import SafetyLimits
from exo.testing.trusted import TrustedController

pytestmark = pytest.mark.ros

LIMITS = SafetyLimits.from_yaml(config_file("safety.yaml"))


class FakeDevices:
    """The probe plays the drivers and the controller towards a lone safety_monitor node."""

    def __init__(self, processes, probe, **arguments) -> None:
        # use_sim_time (with the monitor's default paced_source): the node's wall-clock allowances become the
        # simulation's (request deadline 2 s, stall grace 3 s), so a busy test machine delaying this probe cannot
        # be mistaken for a late controller
        graph = processes.graph("real", only=("safety_monitor",), use_sim_time="true", **arguments)
        self.probe = probe
        self.commands = probe.subscribe(contract.TORQUE_COMMAND)
        self.status = probe.subscribe(contract.SAFETY_STATUS)
        self.request_pub = probe.publisher(contract.TORQUE_REQUEST)
        self.trusted = TrustedController(graph)  # the probe plays the controller, with the run's request key
        self.joint_pub = probe.publisher(contract.JOINT_STATES)
        self.others = {topic.name: probe.publisher(topic) for topic in (
            contract.INTERACTION_THIGH, contract.INTERACTION_SHANK, contract.IMU_THIGH, contract.IMU_SHANK)}
        probe.wait_for_nodes(["safety_monitor"], timeout_s=60.0, graph=graph)
        for pub in [self.request_pub, self.joint_pub, *self.others.values()]:
            probe.wait_for_subscribers(pub, timeout_s=30.0)

    def request(self, t: float, seq: int) -> None:
        from exo_msgs.msg import TorqueCommand

        msg = TorqueCommand(joint=contract.KNEE_JOINT, torque=1.0, source="probe")
        msg.header.stamp = to_time_msg(t)
        self.request_pub.publish(self.trusted.sign(msg))

    def samples(self, t: float, joint: bool = True, imu_only: bool = False) -> None:
        """Every watched sensor's sample stamped ``t`` (joint_states last, as the actuator driver publishes)."""
        from geometry_msgs.msg import WrenchStamped
        from sensor_msgs.msg import JointState

        from exo.ros.convert import imu_msg

        stamp = to_time_msg(t)
        for name, pub in self.others.items():
            if name.startswith("imu"):  # the IMUs agree with the knee angle of 1 rad (thigh 0, shank -1 rad)
                msg = imu_msg(t, name.replace("/", "_"), -1.0 if name.endswith("shank") else 0.0, 0.0)
            elif imu_only:
                continue
            else:
                msg = WrenchStamped()
                msg.wrench.torque.y = 1.0
            msg.header.stamp = stamp
            pub.publish(msg)
        if not imu_only:
            js = JointState(name=[contract.KNEE_JOINT], position=[1.0], velocity=[0.0], effort=[1.0])
            js.header.stamp = stamp
            self.joint_pub.publish(js)


def test_a_request_delivered_before_its_sample_is_judged_with_that_sample(processes, probe):
    dev = FakeDevices(processes, probe)
    commands, status = dev.commands, dev.status
    step_s = 0.013  # hardware jitter: more than the request timeout (1 period + 2 ms) between samples
    assert step_s > LIMITS.request_timeout_s
    t0, steps = time.time(), 150
    for k in range(steps):
        dev.request(t0 + k * step_s, k + 1)  # the controller's answer first ...
        probe.spin_for(0.003)
        dev.samples(t0 + k * step_s)  # ... then the samples it answers
        probe.spin_for(step_s - 0.003)
    probe.spin_for(0.5)
    assert len(commands) >= steps // 2, f"only {len(commands)} commands for {steps} samples"
    sources = [c.source for c in commands]
    assert "probe" in sources, f"no request passed: {set(sources)}"
    first = sources.index("probe")
    # before its first decision on a request the monitor may hold the leg with its start-up safe stop (a busy
    # machine delays discovery); from the first accepted request on, every request must pass (the old node
    # refused requests delivered before their sample as "future" and handed over to the fallback)
    assert set(sources[:first]) <= {"safe_stop"}, f"start-up command sources {set(sources[:first])}"
    later = set(sources[first:])
    assert later == {"probe"}, f"command sources {later}; last status: {status[-1].reason if status else '-'}"
    assert status and status[-1].rejected_requests == 0, status[-1].reason


def test_the_start_up_grace_runs_from_the_first_joint_states_sample(processes, probe, tmp_path):
    grace_s = 1.0
    params = tmp_path / "grace.yaml"
    params.write_text(f"/**/safety_monitor:\n  ros__parameters:\n    startup_grace_s: {grace_s}\n")
    dev = FakeDevices(processes, probe, params_file=str(params))
    period, t = 0.01, time.time()
    # the IMU drivers stream for longer than the grace before the actuator driver starts
    end = time.monotonic() + 1.5 * grace_s
    while time.monotonic() < end:
        dev.samples(t, imu_only=True)
        probe.spin_for(period)
        t += period
    # the control loop starts; the controller needs a while to discover the actuator driver
    end = time.monotonic() + 0.3 * grace_s
    while time.monotonic() < end:
        dev.samples(t)
        probe.spin_for(period)
        t += period
    assert not dev.commands, "a command before the controller's first request"
    for k in range(100):  # the controller answers from now on
        dev.samples(t)
        probe.spin_for(0.002)
        dev.request(t, k + 1)
        probe.spin_for(period - 0.002)
        t += period
    probe.spin_for(0.5)
    sources = {c.source for c in dev.commands}
    assert sources == {"probe"}, f"command sources {sources}; status: {[s.reason for s in dev.status][-3:]}"


def test_a_burst_of_samples_after_a_gap_waits_for_the_controllers_answer(processes, probe):
    dev = FakeDevices(processes, probe)
    period, t, seq = 0.01, time.time(), 0

    def step(stamps: list[float]) -> None:
        """The samples of ``stamps`` back to back; the controller answers the newest (latest-sample QoS)."""
        nonlocal seq
        for stamp in stamps:
            dev.samples(stamp)  # back to back (a burst: they come faster than the controller can answer)
        probe.spin_for(0.002)
        seq += 1
        dev.request(stamps[-1], seq)
        probe.spin_for(period - 0.002)

    for _ in range(60):
        step([t])
        t += period
    gap_s = 0.04  # below the hardware joint_states timeout (50 ms): no sensor is stale
    assert gap_s < LIMITS.sensor_timeouts_s["joint_states"] and gap_s > LIMITS.request_timeout_s
    for _ in range(5):
        t += gap_s - period  # t is one period after the last sample: the next one comes gap_s after it
        step([t, t + 0.0005, t + 0.001, t + 0.0015])  # four samples, host receipt stamps 0.5 ms apart
        t += 0.0015 + period
        for _ in range(20):
            step([t])
            t += period
    probe.spin_for(0.5)
    sources = [c.source for c in dev.commands]
    assert "probe" in sources, f"no request passed: {set(sources)}"
    later = set(sources[sources.index("probe"):])
    assert later == {"probe"}, (f"command sources {later}; transitions: "
                                f"{[(s.state_name, s.reason) for s in dev.status if s.state_name != 'OK'][-4:]}")
