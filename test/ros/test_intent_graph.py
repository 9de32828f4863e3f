"""EMG -> intent over DDS: the sim bridge's synthetic EMG, the intent_estimator node, the controller's intent input.

Real node processes (exo.runner, as ``exo sim --intent``) in the test's own DDS domain; the probe
watches ``intent`` and publishes garbage EMG packets to the node running alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from exo import contract
from exo.intent.drive import CALIBRATION_S, CLASSES
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.ros.convert import from_time_msg, to_time_msg

pytestmark = pytest.mark.ros


def _params(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("controller", ["pid", "zero"])
def test_sim_bridge_emg_drives_the_intent_estimator_and_the_controller_reads_it(processes, probe, tmp_path,
                                                                                  controller):
    intents = probe.subscribe(contract.INTENT)
    emg = probe.subscribe(contract.EMG)
    commands = probe.subscribe(contract.TORQUE_REQUEST)
    params = _params(tmp_path, "/**/sim_bridge:\n  ros__parameters:\n    emg:\n      voluntary: user\n"
                               "/**/controller:\n  ros__parameters:\n    use_intent: true\n")
    graph = processes.graph("sim", start=False, controller=controller, level="2", lockstep="true", intent="true",
                            params_file=params)
    # the sim bridge last, once the probe hears the estimator: a lockstep run covers the calibration's
    # seconds of sim time in less wall time than DDS discovery may take, and those estimates are checked
    graph.start(["controller", "safety_monitor", "intent_estimator"])
    probe.wait_for_nodes(["controller", "safety_monitor", "intent_estimator"], timeout_s=60.0, graph=graph)
    probe.wait_for_publishers(contract.INTENT, timeout_s=30.0)
    graph.start()
    probe.wait_for_nodes(["sim_bridge", "controller", "safety_monitor", "intent_estimator"], timeout_s=60.0,
                         graph=graph)
    # the node's calibration starts with the first packet it receives; wait for one second of real
    # estimates after it
    probe.wait_for(lambda: sum(m.confidence > 0.0 for m in intents) >= 50, 240.0, "1 s of calibrated estimates")
    probe.spin_for(1.0)
    end = from_time_msg(intents[-1].header.stamp)
    graph.check()
    # EMG: 50 Hz packets of 20 samples x 8 channels at 1 kHz, contiguous in time
    assert emg[0].sample_rate_hz == 1000.0 and list(emg[0].channel_names) == list(CHANNEL_NAMES)
    assert all(p.num_samples == 20 and len(p.samples) == 160 for p in emg)
    t_emg = np.array([from_time_msg(p.header.stamp) for p in emg])
    assert np.allclose(np.diff(t_emg), 0.02, atol=1e-6)
    # intent: one estimate per packet (50 Hz), stamped at the end of its window
    t = np.array([from_time_msg(m.header.stamp) for m in intents])
    span = t[-1] - t[0]  # from the first estimate received
    assert len(intents) >= 0.9 * 50 * span  # "latest value" QoS (depth 1): a few may be superseded in flight
    assert np.all(np.diff(t) > 0) and np.allclose(t / 0.02, np.round(t / 0.02), atol=1e-4)
    for m in intents:
        assert list(m.class_names) == list(CLASSES)
        assert math.isclose(sum(m.probabilities), 1.0, abs_tol=1e-4)
        assert math.isfinite(m.predicted_knee_velocity)
    # confidence 0 during the calibration (the first CALIBRATION_S s of EMG the node received; it may
    # have joined after the first packets), then real estimates (top probability > 1/3) from then on
    conf = np.array([m.confidence for m in intents])
    switch = int(np.argmax(conf > 0.0))
    assert switch > 0 and t[switch] >= CALIBRATION_S - 1e-6
    assert np.all(conf[:switch] == 0.0) and np.all(conf[switch:] > 0.34)
    # the controller with use_intent on keeps answering every step with finite torques (its answers reach
    # this probe later than the estimates when the machine is loaded: wait for the one of the last estimate)
    probe.wait_for(lambda: from_time_msg(commands[-1].header.stamp) >= end - 0.1, 30.0,
                   f"the controller's answer at t={end:.2f} s (the last estimate's time)")
    assert all(math.isfinite(c.torque) and c.source == controller for c in commands)


def test_garbage_emg_packets_are_rejected_counted_and_named(processes, probe, tmp_path):
    intents = probe.subscribe(contract.INTENT)
    graph = processes.graph("sim", only=("intent_estimator",), intent="true", use_sim_time="false",
                            params_file=_params(tmp_path, "/**/intent_estimator:\n  ros__parameters:\n"
                                                          "    calibration_s: 0.1\n"))
    probe.wait_for_nodes(["intent_estimator"], timeout_s=60.0, graph=graph)
    from sensor_msgs.msg import JointState

    from exo_msgs.msg import EmgPacket

    pub = probe.publisher(contract.EMG)
    pub_joint = probe.publisher(contract.JOINT_STATES)
    probe.wait_for_subscribers(pub)
    probe.wait_for_subscribers(pub_joint)
    js = JointState(name=[contract.KNEE_JOINT], position=[1.0], velocity=[0.0], effort=[0.0])
    rng = np.random.default_rng(0)

    def packet(k: int, n: int = 20, rate: float = 1000.0, values=None) -> EmgPacket:
        msg = EmgPacket()
        msg.header.stamp = to_time_msg(100.0 + 0.02 * k)
        msg.sample_rate_hz = rate
        msg.channel_names = list(CHANNEL_NAMES)
        msg.num_samples = n
        msg.samples = (values if values is not None else rng.normal(0, 1e-4, n * 8)).astype(np.float32).tolist()
        return msg

    for _ in range(5):
        pub_joint.publish(js)
        probe.spin_for(0.05)
    k = 0
    for _ in range(3):
        bad_len = packet(k)
        bad_len.num_samples = 25
        pub.publish(bad_len)
        pub.publish(packet(k, values=np.full(160, np.nan)))
        pub.publish(packet(k, rate=2000.0))
        probe.spin_for(0.05)
    for k in range(20):
        pub.publish(packet(k))
        probe.spin_for(0.05)
    probe.wait_for(lambda: len(intents) >= 15, 30.0, "intent estimates from the good packets")
    graph.check()
    log = processes.logs()
    assert "wrong_length" in log and "non_finite" in log and "wrong_rate" in log
    assert "1 'non_finite' rejection(s) so far" in log
    assert all(math.isfinite(m.predicted_knee_velocity) for m in intents)
    assert from_time_msg(intents[-1].header.stamp) == pytest.approx(100.0 + 0.02 * 20, abs=1e-6)
