"""The live view as a developer uses it: a sim graph with live:=true, a Foxglove WebSocket client, and the
bag of the same run to check what the client got (values byte for byte, rates, the EMG envelope).

Real parts only: the graph's node processes over DDS (exo.runner), foxglove-sdk's server in the live_view
process, a websockets client speaking the Foxglove protocol, the recorder's MCAP bag.
"""

from __future__ import annotations

import json
import socket
import struct

import numpy as np
import pytest

from exo import contract
from exo.bags.reader import open_session
from exo.live import forward
from exo.ros.convert import from_time_msg
from exo.testing.foxglove_client import FoxgloveClient

pytestmark = pytest.mark.ros

PERIOD_NS = 10_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def test_live_view_serves_the_runs_messages_rate_limited_and_read_only(processes, probe, tmp_path):
    from rclpy.serialization import serialize_message

    from exo_msgs.msg import TorqueCommand

    port = _free_port()
    params = tmp_path / "live.yaml"
    params.write_text("/**/live_view:\n  ros__parameters:\n    max_rate_hz: 50.0\n")  # half the control rate
    bag = tmp_path / "bag"
    graph = processes.graph("sim", start=False, controller="pid", level="1", lockstep="true", live="true",
                            live_port=str(port), record="true", record_dir=str(bag), params_file=str(params))
    joint = probe.subscribe(contract.JOINT_STATES)
    status = probe.subscribe(contract.SAFETY_STATUS)
    graph.start([n.name for n in graph.nodes if n.name != "sim_bridge"])
    probe.wait_for_nodes(["live_view", "recorder", "controller", "safety_monitor"], timeout_s=90.0, graph=graph)
    ns = probe.namespace
    capped = [contract.JOINT_STATES, contract.TORQUE_COMMAND, contract.TORQUE_REQUEST, contract.INTERACTION_THIGH]
    envelope, session = forward.live_channel(ns, forward.EMG_ENVELOPE), forward.live_channel(ns, forward.SESSION)
    wanted = [t.resolved(ns) for t in capped] + [contract.SAFETY_STATUS.resolved(ns), envelope, session]
    client = FoxgloveClient(f"ws://127.0.0.1:{port}")
    try:
        # read only: no capability at all (no client publishing, services, parameters)
        assert client.server_info["capabilities"] == []
        client.wait_for_channels(wanted)
        cmd_channel = client.channels[contract.TORQUE_COMMAND.resolved(ns)]
        assert (cmd_channel["encoding"], cmd_channel["schemaEncoding"], cmd_channel["schemaName"]) == \
            ("cdr", "ros2msg", contract.TORQUE_COMMAND.msg_type)
        assert cmd_channel["schema"].startswith("std_msgs/Header header")
        client.subscribe(wanted)
        # a client that tries to write into the graph: a forged request, a parameter (and no service is offered)
        forged = TorqueCommand(joint=contract.KNEE_JOINT, torque=60.0, source="foxglove")
        client.send({"op": "advertise", "channels": [{"id": 1, "topic": contract.TORQUE_REQUEST.resolved(ns),
                                                      "encoding": "cdr", "schemaName": contract.TORQUE_REQUEST.msg_type}]})
        client.send(b"\x01" + struct.pack("<I", 1) + serialize_message(forged))
        client.send({"op": "setParameters", "id": "p", "parameters": [
            {"name": f"{ns}/safety_monitor.user_torque_cap_nm", "value": 100.0}]})
        graph.start(["sim_bridge"])
        probe.wait_for(lambda: joint and from_time_msg(joint[-1].header.stamp) >= 3.0, 120.0, "3 s of sim time")
        probe.spin_for(0.5)
        graph.check()
        # nothing of the client's reached the graph: one publisher of torque_request (the controller), and the
        # safety monitor saw no foreign request
        requests_topic = contract.TORQUE_REQUEST.resolved(ns)
        assert probe.node.count_publishers(requests_topic) == 1
        assert status[-1].rejected_requests == 0 and status[-1].security_events == 0
        refusals = " | ".join(s["message"] for s in client.statuses)
        assert "clientPublish" in refusals and "Unknown channel" in refusals
        assert "parameters capability" in refusals, refusals
    finally:
        processes.close()  # the recorder closes the bag
        client.close()

    # stamp -> every recorded message with that stamp: at the end of a run the safety monitor's safe stop
    # carries the same graph time as the controller's last command (the sim clock no longer advances)
    recorded: dict[str, dict[int, list[bytes]]] = {}
    emg = []
    for m in open_session(bag).messages(keep_raw=True):
        if m.topic == contract.EMG.resolved(ns):
            emg.append(m.msg)
        if hasattr(m.msg, "header"):
            recorded.setdefault(m.topic, {}).setdefault(_stamp(m.msg), []).append(m.raw)
    # every request the graph saw is the controller's (the forged one never reached it)
    requests = list(open_session(bag).messages({contract.TORQUE_REQUEST.resolved(ns)}))
    assert requests and {m.msg.source for m in requests} == {"pid"}

    # capped streams: byte for byte the recorded messages, at the cap (50 Hz of sim time) while the bag has 100 Hz
    for topic in capped:
        name = topic.resolved(ns)
        frames = client.of(name)
        assert len(frames) > 50, f"{name}: {len(frames)} messages"
        # (the recorder stops first at the end: messages after its last one were not recorded)
        last_recorded = max(recorded[name])
        frames = [f for f in frames if f.log_time_ns <= last_recorded]
        for f in frames:
            assert f.log_time_ns in recorded[name], (
                f"{name}: forwarded a message stamped {f.log_time_ns} ns that the bag does not hold "
                f"(bag span {min(recorded[name])}-{last_recorded} ns)")
            assert f.payload in recorded[name][f.log_time_ns], f"{name} at {f.log_time_ns} ns differs from the bag"
        stamps = np.array([f.log_time_ns for f in frames])
        rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) * 1e-9)
        # at most the cap; at least 70 % of it: the lockstep graph runs faster than real time, and on a loaded
        # machine the live view can miss both messages of a 20 ms bin (keep-last QoS, as a live viewer should)
        assert 35.0 <= rate <= 50.5, f"{name}: {rate:.1f} Hz forwarded"
        bins = (stamps + PERIOD_NS) // (2 * PERIOD_NS)  # the limiter's 20 ms bins, centred on multiples of 20 ms
        assert np.all(np.diff(bins) >= 1), f"{name}: two messages in one 20 ms bin"
        in_span = [s for s in recorded[name] if stamps[0] <= s <= stamps[-1]]
        assert len(in_span) >= 1.9 * len(stamps), f"{name}: the bag has {len(in_span)} in the same span"

    # the safety state is never capped: every status the bag has since the first forwarded one was forwarded
    name = contract.SAFETY_STATUS.resolved(ns)
    forwarded = {f.log_time_ns: f.payload for f in client.of(name)}
    assert forwarded
    since = [s for s in recorded[name] if min(forwarded) <= s <= max(forwarded)]
    # every forwarded status is the bag's, byte for byte; on a slow machine a lockstep graph faster than real
    # time can overflow the viewer's queue, so at least 95 % of the bag's statuses in the span, not all
    assert all(forwarded[s] in recorded[name][s] for s in forwarded if s in recorded[name])
    missed = [s for s in since if s not in forwarded]
    assert len(missed) <= 0.05 * len(since), f"{len(missed)} of {len(since)} statuses not forwarded"

    # the EMG envelope: 50 Hz, and exactly what the same core computes from the bag's packets
    # (windows up to the bag's last packet: the bag cannot say what the viewer computed after it)
    last_packet = max(_stamp(p) for p in emg)
    frames = [f for f in client.of(envelope) if f.log_time_ns <= last_packet]
    values = [json.loads(f.payload) for f in frames]
    stamps = np.array([f.log_time_ns for f in frames])
    assert len(values) > 50
    # 50 Hz: consecutive windows 20 ms apart; a lockstep graph faster than real time can lose a best-effort
    # packet on the way to the viewer (the envelope then skips that window), so 90 % of them, not all
    steps = np.diff(stamps)
    assert np.all(steps % 20_000_000 == 0) and np.all(steps > 0), sorted(set(steps.tolist()))
    windows = 1 + (stamps[-1] - stamps[0]) // 20_000_000
    assert len(stamps) >= 0.9 * windows, f"{len(stamps)} of {windows} envelope windows forwarded"
    assert values[0]["channel_names"] == list(emg[0].channel_names)
    first_packet = stamps[0] - 20_000_000
    redo = forward.EmgEnvelope(forward.DEFAULT_EMG_ENVELOPE_RATE_HZ, 50.0)
    expected = {}
    for p in emg:
        if _stamp(p) >= first_packet:
            samples = np.asarray(p.samples, dtype=float).reshape(p.num_samples, len(p.channel_names))
            for v in redo.push(_stamp(p), p.sample_rate_hz, list(p.channel_names), samples):
                expected[v.stamp_ns] = v.rms_v
    gaps = np.flatnonzero(steps != 20_000_000)
    run = 1 + int(gaps[0]) if gaps.size else len(stamps)
    # consecutive windows from the first: a packet lost on the way changes the viewer's filter state from
    # there on, so the exact comparison stops at the first gap (0.5 s of envelope at least)
    assert run >= 25, f"the first gap in the envelope after {run} windows"
    for s, v in zip(stamps[:run], values[:run], strict=True):
        np.testing.assert_allclose(v["rms_v"], expected[int(s)], rtol=1e-9)
    assert max(max(v["rms_v"]) for v in values) > 0

    # the session: the pseudonym only (none here), the controller, graph time elapsed
    sessions = [json.loads(f.payload) for f in client.of(session)]
    assert sessions and sessions[-1]["user"] == "(none)" and sessions[-1]["controller"] == "pid"
    assert sessions[-1]["elapsed_s"] > 0.0 and set(sessions[-1]) == {
        "user", "controller", "namespace", "started_wall_s", "elapsed_s"}
