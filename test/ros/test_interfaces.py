"""exo_msgs across processes: every custom type survives a round trip through another node."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def _samples():
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from exo_msgs.msg import EmgPacket, FootPressure, IntentEstimate, KneeTruth, SafetyStatus, TorqueCommand

    # float32 fields use values exact in float32, so the comparison can be exact
    header = Header(stamp=Time(sec=12, nanosec=345_000_000), frame_id="exo_knee")
    emg = EmgPacket(header=header, sample_rate_hz=2000.0, channel_names=["vastus_lateralis", "biceps_femoris"],
                    num_samples=3)
    emg.samples = np.arange(6, dtype=np.float32) * 1e-4
    return {
        "emg": ("exo_msgs/msg/EmgPacket", emg),
        "foot": ("exo_msgs/msg/FootPressure", FootPressure(
            header=header, cell_names=["heel", "hallux"], pressure_pa=[1.5e4, float("nan")], total_force_n=312.5)),
        "intent": ("exo_msgs/msg/IntentEstimate", IntentEstimate(
            header=header, class_names=["hold", "extend", "flex"], probabilities=[0.125, 0.625, 0.25],
            predicted_class=1, predicted_knee_velocity=-0.8, predicted_knee_torque=-4.25, confidence=0.625,
            model_id="lstm-v1")),
        "torque": ("exo_msgs/msg/TorqueCommand", TorqueCommand(
            header=header, joint="exo_knee", torque=-12.5, source="pid", seq=2**40 + 7)),
        "status": ("exo_msgs/msg/SafetyStatus", SafetyStatus(
            header=header, state=SafetyStatus.STATE_LIMITING, state_name="LIMITING",
            active_limits=["torque_cap", "slew_rate"], reason="request -120.0 N m above cap 40.0 N m",
            requested_torque=-120.0, commanded_torque=-40.0, rejected_requests=3, invalid_sensor_samples=1,
            transitions=5)),
        "truth": ("exo_msgs/msg/KneeTruth", KneeTruth(
            header=header, human_knee_angle=1.2, human_knee_velocity=-0.3, exo_knee_angle=1.21,
            target_knee_angle=0.2, interaction_torque=3.5, spasticity_level=3, subject_seed=99,
            muscle_names=["vasmed_r"], muscle_activations=[0.25])),
    }


def _fields(msg) -> dict:
    out = {}
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        if hasattr(value, "get_fields_and_field_types"):
            value = _fields(value)
        elif isinstance(value, (np.ndarray, list, tuple)) or type(value).__name__ == "array":
            value = [float(v) if isinstance(v, (float, np.floating)) else v for v in value]
        out[name] = value
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def test_every_exo_msgs_type_round_trips_through_another_process(processes, probe):
    samples = _samples()
    processes.module("exo.testing.echo_node", *(f"/t/{k}:{t}" for k, (t, _) in samples.items()), name="echo")
    pubs, boxes = {}, {}
    for key, (type_name, _) in samples.items():
        boxes[key] = probe.subscribe(f"/t/{key}/echo", type_name)
        pubs[key] = probe.publisher(f"/t/{key}", type_name)
    for pub in pubs.values():
        probe.wait_for_subscribers(pub, timeout_s=20.0)
    # wait until the echo's publishers are matched to our subscriptions too
    probe.wait_for(lambda: all(probe.node.count_publishers(f"/t/{k}/echo") >= 1 for k in samples), 20.0,
                   "echo publishers")
    # discovery is not symmetric: a publisher both sides list may still drop a first message the other side
    # has not matched yet (volatile QoS), so each sample is sent again until its echo is back
    deadline = time.monotonic() + 20.0
    while not all(boxes[k] for k in samples):
        assert time.monotonic() < deadline, f"no echo of {[k for k in samples if not boxes[k]]} within 20 s"
        for key, (_, msg) in samples.items():
            if not boxes[key]:
                pubs[key].publish(msg)
        probe.spin_for(0.5)
    for key, (_, sent) in samples.items():
        got = boxes[key][0]
        assert type(got) is type(sent)
        assert _same(_fields(sent), _fields(got)), f"{key}: {_fields(got)} != {_fields(sent)}"
    # float32 payloads keep their values bit-exactly
    np.testing.assert_array_equal(np.asarray(boxes["emg"][0].samples, dtype=np.float32),
                                  np.arange(6, dtype=np.float32) * 1e-4)
