"""The pure cores of the live view and the console: rate limits, CDR stamps, EMG envelope, console state,
address checks, and the committed Foxglove layout (no ROS graph, no server)."""

from __future__ import annotations

import json
import math
import socket

import numpy as np
import pytest

from exo import contract
from exo.console.state import EXTENSOR_CHANNELS, ConsoleConfig, ConsoleState
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.live import forward
from exo.live.net import AddressError, bind_socket, check_free, check_host, check_port, is_loopback
from exo.paths import share_dir

NS_PER_S = 1_000_000_000


def test_rate_limiter_keeps_a_stream_at_its_own_rate_and_decimates_faster_ones():
    # the control grid, stamps a nanosecond either side of the multiples (float seconds -> ns)
    grid = [round(k * 0.01 * NS_PER_S) + (-1) ** k for k in range(1000)]
    at_rate = forward.RateLimiter(100.0)
    assert all(at_rate.accept(s) for s in grid)
    half = forward.RateLimiter(50.0)
    kept = [s for s in grid if half.accept(s)]
    assert len(kept) == 500 and half.dropped == 500
    assert np.allclose(np.diff(kept), 0.02 * NS_PER_S, atol=2)
    # a 2 kHz stream with jittered stamps: never more than T * rate + 2 over any stretch
    rng = np.random.default_rng(0)
    stamps = np.sort(np.arange(20000) * 500_000 + rng.integers(-200_000, 200_000, 20000))
    cap = forward.RateLimiter(100.0)
    kept = np.array([s for s in stamps if cap.accept(int(s))])
    span_s = (stamps[-1] - stamps[0]) / NS_PER_S
    assert len(kept) <= span_s * 100 + 2 and len(kept) >= span_s * 100 * 0.95
    for w in range(0, len(kept) - 11, 7):  # any 11 consecutive kept stamps span at least 9 periods
        assert kept[w + 10] - kept[w] >= 9 * 10_000_000


def test_rate_limiter_starts_afresh_when_time_goes_back_and_zero_keeps_everything():
    cap = forward.RateLimiter(10.0)
    assert cap.accept(5 * NS_PER_S) and not cap.accept(5 * NS_PER_S + 1000)
    assert cap.accept(0)  # a new trial / the bag again
    every = forward.RateLimiter(0.0)
    assert all(every.accept(5) for _ in range(10))
    with pytest.raises(ValueError, match="max_rate_hz"):
        forward.RateLimiter(-1.0)


def test_cdr_stamp_is_read_from_the_serialized_bytes_of_every_forwarded_type():
    from rclpy.serialization import serialize_message

    from exo.ros.convert import time_msg_from_ns
    from exo.ros.types import interface_class

    stamp = 1234 * NS_PER_S + 567_890_123
    for item in forward.FORWARDED:
        msg = interface_class(item.topic.msg_type)()
        msg.header.stamp = time_msg_from_ns(stamp)
        assert forward.cdr_stamp_ns(serialize_message(msg)) == stamp, item.topic.name
    with pytest.raises(ValueError, match="bytes"):
        forward.cdr_stamp_ns(b"\x00\x01")
    with pytest.raises(ValueError, match="not CDR"):
        forward.cdr_stamp_ns(b"\x07\x07" + bytes(20))


def test_safety_state_and_events_are_never_rate_limited_and_names_come_from_the_contract():
    uncapped = {f.topic.name for f in forward.FORWARDED if not f.capped}
    assert uncapped == {contract.SAFETY_STATUS.name, contract.SAFETY_EVENTS.name}
    assert all(f.topic in contract.TOPICS.values() for f in forward.FORWARDED)
    assert forward.live_channel("/exo", forward.SESSION) == "/exo/live/session"
    assert forward.live_channel("", forward.EMG_ENVELOPE) == "/live/emg_envelope"


def _packets(signal: np.ndarray, rate: float, packet: int, t0_ns: int = 0):
    for i in range(0, len(signal), packet):
        yield t0_ns + round(i / rate * NS_PER_S), signal[i:i + packet]


def test_emg_envelope_is_the_rms_of_the_filtered_signal_per_window():
    rate, names = 1000.0, ("a", "b")
    t = np.arange(4000) / rate
    amp = np.where(t < 2.0, 1e-4, 4e-4)  # the contraction quadruples at t = 2 s
    x = np.column_stack([amp * np.sin(2 * math.pi * 120 * t), 1e-3 + 0.0 * t])  # in-band sine; DC only
    env = forward.EmgEnvelope(rate_hz=50.0, mains_hz=50.0)
    out = [v for stamp, chunk in _packets(x, rate, 20) for v in env.push(stamp, rate, names, chunk)]
    assert len(out) == 200 and all(v.window_s == pytest.approx(0.02) for v in out)
    assert np.allclose(np.diff([v.stamp_ns for v in out]), 20_000_000)
    a = np.array([v.rms_v[0] for v in out])
    b = np.array([v.rms_v[1] for v in out])
    assert a[50:95] == pytest.approx(1e-4 / math.sqrt(2), rel=0.05)
    assert a[150:] == pytest.approx(4e-4 / math.sqrt(2), rel=0.05)
    assert np.all(b[50:] < 1e-6)  # DC is not muscle activity (once the filter settled)
    assert out[0].to_json()["channels"] == {"a": out[0].rms_v[0], "b": out[0].rms_v[1]}
    with pytest.raises(ValueError, match="channel names"):
        env.push(0, rate, ("a",), x[:20])


def test_emg_envelope_windows_span_packets_of_any_length():
    rate = 2000.0
    x = np.ones((1000, 1)) * np.sin(2 * math.pi * 200 * np.arange(1000) / rate)[:, None]
    env = forward.EmgEnvelope(rate_hz=100.0)
    out = [v for stamp, chunk in _packets(x, rate, 33) for v in env.push(stamp, rate, ("c",), chunk)]
    assert len(out) == 50  # 1000 samples / 20 per window, however the packets cut them
    assert out[-1].stamp_ns == round(1000 / rate * NS_PER_S)


def _state(**kw) -> ConsoleState:
    return ConsoleState(ConsoleConfig(**{"window_s": 2.0, "plot_rate_hz": 50.0, "target_knee_angle_rad": 0.2, **kw}),
                        user="p07", controller="pid")


def test_console_state_gives_a_page_only_new_points_within_the_window_in_degrees():
    s = _state()
    s.on_command(-12.5, "pid")
    for k in range(400):  # 4 s at 100 Hz
        s.on_knee(k * 0.01, 1.5 - k * 0.001, wall_s=100.0 + k * 0.01)
    snap = s.snapshot(0, wall_s=104.0)
    pts = snap["points"]
    assert len(pts["t"]) == 101 and pts["t"][-1] == pytest.approx(3.99)  # 50 Hz kept, 2 s window
    assert pts["angle_deg"][-1] == pytest.approx(math.degrees(1.5 - 0.399))
    assert pts["target_deg"] == pytest.approx([math.degrees(0.2)] * 101)
    assert set(pts["torque_nm"]) == {-12.5}
    assert snap["live"] and snap["session"] == {"user": "p07", "controller": "pid", "elapsed_s": pytest.approx(3.99),
                                                "graph_time_s": pytest.approx(3.99)}
    assert s.snapshot(snap["seq"], wall_s=104.0)["points"]["t"] == []
    assert not s.snapshot(snap["seq"], wall_s=110.0)["live"]  # no sample for 6 s: the page says so
    s.on_knee(0.0, 1.5, wall_s=110.0)  # a new trial: the plot starts again
    assert s.snapshot(0, wall_s=110.0)["points"]["t"] == [0.0]


def test_console_effort_is_the_extensors_envelope_relative_to_the_session_peak():
    s = _state()
    names = list(CHANNEL_NAMES)
    assert {"vastus_medialis", "rectus_femoris", "vastus_lateralis"} == EXTENSOR_CHANNELS
    assert s.snapshot()["points"]["effort_pct"] == []
    for k, level in enumerate((1.0, 4.0, 2.0)):
        s.on_emg_envelope(names, [level * 1e-4 if n in EXTENSOR_CHANNELS else 9.0 for n in names])
        s.on_knee(k * 0.02, 1.0, wall_s=0.0)
    assert s.snapshot()["points"]["effort_pct"] == [pytest.approx(100.0), pytest.approx(100.0), pytest.approx(50.0)]


def test_console_effort_is_calibrated_when_the_stream_starts_with_the_calibration():
    from exo.intent.drive import CALIBRATION, EXTEND

    s = _state()
    names = list(CHANNEL_NAMES)
    rest, full = 1e-5, 4e-4  # envelope at rest, and the activity of a maximal contraction, V

    def envelope(t: float, drive: float) -> None:
        level = (rest**2 + (drive * full) ** 2) ** 0.5
        s.on_emg_envelope(names, [level if n in EXTENSOR_CHANNELS else 9.0 for n in names], t)

    t = 0.0
    for cls, duration, drive in CALIBRATION:  # the protocol: extend at drive 0.5, the rest relaxed
        for _ in range(round(duration / 0.05)):
            envelope(t, drive if cls == EXTEND else 0.0)
            t += 0.05
    assert s.snapshot()["effort_kind"] == "relative"  # not yet: the calibration has just ended
    envelope(t, 0.25)
    s.on_knee(t, 1.0, wall_s=0.0)
    snap = s.snapshot()
    assert snap["effort_kind"] == "calibrated"
    assert snap["points"]["effort_pct"] == [pytest.approx(25.0, abs=0.5)]  # % of a maximal contraction


def test_console_records_the_stop_press_on_the_graph_clock_and_safety_transitions():
    s = _state()
    assert s.stop_pressed() is None  # no data yet
    s.on_knee(7.25, 1.0, wall_s=1.0)
    s.on_status(7.2, "OK", "", [])
    s.on_status(7.25, "LIMITING", "slew", ["slew_rate"])
    assert s.stop_pressed() == 7.25
    s.stop_answered(True, "e-stop latched")
    s.on_status(7.26, "ESTOP", "e-stop service called", [])
    snap = s.snapshot()
    assert snap["stop"] == {"presses": 2, "graph_time_s": 7.25, "ok": True, "message": "e-stop latched"}
    assert snap["safety"] == {"state": "ESTOP", "reason": "e-stop service called", "limits": [], "since_s": 7.26}
    with pytest.raises(ValueError, match="window_s"):
        ConsoleConfig(window_s=0.0)


def test_hosts_and_ports_are_checked_with_a_message_naming_the_problem():
    assert check_host("127.0.0.1") == "127.0.0.1" and check_host("localhost") == "localhost"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    with pytest.raises(AddressError, match="'exo.example' is not an IP address"):
        check_host("exo.example")
    with pytest.raises(AddressError, match="port 70000 is not a TCP port"):
        check_port(70000)
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        with pytest.raises(AddressError, match=f"port {port} on 127.0.0.1 is taken by another program"):
            check_free("127.0.0.1", port)
    finally:
        held.close()
    sock = bind_socket("127.0.0.1", 0)
    assert sock.getsockname()[1] > 0
    sock.close()


def test_the_committed_foxglove_layout_is_the_one_built_from_the_contract():
    from exo.live.layout import layout_json

    committed = (share_dir() / "config" / "foxglove" / "exo.json").read_text()
    assert committed == layout_json(), "regenerate it: python -m exo.live.layout config/foxglove/exo.json"
    text = json.dumps(json.loads(committed))
    for topic in (contract.JOINT_STATES, contract.TORQUE_REQUEST, contract.TORQUE_COMMAND, contract.INTERACTION_THIGH,
                  contract.INTENT, contract.SAFETY_STATUS, contract.SAFETY_EVENTS):
        assert f'"{topic.resolved()}' in text, topic.name
    assert forward.live_channel("/exo", forward.EMG_ENVELOPE) in text
    assert forward.live_channel("/exo", forward.SESSION) in text
