"""Frame codecs, stream framing and device health of the drivers (pure, no ROS, no hardware)."""

from __future__ import annotations

import math
import struct

import pytest

from exo.drivers import ak_mit, foot_pressure, openbci_cyton, witmotion
from exo.drivers.actuator import ActuatorConfig, ActuatorCore
from exo.drivers.health import DeviceHealth

# --- CubeMars AK, MIT mode ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ak_mit.MOTOR_MODELS))
def test_mit_command_round_trip_within_one_quantisation_step(name):
    model = ak_mit.MOTOR_MODELS[name]
    cmd = ak_mit.MitCommand(position_rad=1.234, velocity_rad_s=-0.5 * model.v_max_rad_s, kp=120.0, kd=1.5,
                            torque_nm=0.37 * model.t_max_nm)
    data = ak_mit.encode_command(cmd, model)
    assert len(data) == 8
    back = ak_mit.decode_command(data, model)
    assert abs(back.position_rad - cmd.position_rad) <= 25.0 / 65535 + 1e-12
    assert abs(back.velocity_rad_s - cmd.velocity_rad_s) <= 2 * model.v_max_rad_s / 4095 + 1e-12
    assert abs(back.kp - cmd.kp) <= 500.0 / 4095 + 1e-12
    assert abs(back.kd - cmd.kd) <= 5.0 / 4095 + 1e-12
    assert abs(back.torque_nm - cmd.torque_nm) <= ak_mit.torque_resolution_nm(model) + 1e-12


def test_mit_packing_matches_the_bit_layout_of_the_protocol():
    model = ak_mit.MOTOR_MODELS["AK80-9"]
    # full-scale values: every field at its maximum code
    data = ak_mit.encode_command(ak_mit.MitCommand(12.5, 50.0, 500.0, 5.0, 18.0), model)
    assert data == bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    data = ak_mit.encode_command(ak_mit.MitCommand(-12.5, -50.0, 0.0, 0.0, -18.0), model)
    assert data == bytes(8)
    # out-of-range values are clamped, not wrapped
    assert ak_mit.encode_command(ak_mit.MitCommand(torque_nm=1e6), model)[6:] == bytes([0x0F, 0xFF])
    assert ak_mit.ENTER_MOTOR_MODE.hex() == "fffffffffffffffc"
    assert ak_mit.EXIT_MOTOR_MODE.hex() == "fffffffffffffffd"
    assert ak_mit.SET_ZERO.hex() == "fffffffffffffffe"


def test_mit_feedback_decodes_and_validates_length_and_id():
    model = ak_mit.MOTOR_MODELS["AK80-64"]
    fb = ak_mit.MitFeedback(1, 0.8, -1.2, 40.0, 31.0, 0)
    data = ak_mit.encode_feedback(fb, model)
    back = ak_mit.decode_feedback(data, model, expected_motor_id=1)
    assert abs(back.position_rad - 0.8) < 1e-3 and abs(back.velocity_rad_s + 1.2) < 0.01
    assert abs(back.torque_nm - 40.0) < 0.1 and back.temperature_c == 31.0 and back.error_code == 0
    old = ak_mit.decode_feedback(data[:6], model)  # older firmware: no temperature/error bytes
    assert old.temperature_c is None and old.position_rad == back.position_rad
    with pytest.raises(ak_mit.FrameError, match="6 or 8 data bytes, got 5"):
        ak_mit.decode_feedback(data[:5], model)
    with pytest.raises(ak_mit.FrameError, match="motor id 1, expected 2"):
        ak_mit.decode_feedback(data, model, expected_motor_id=2)
    with pytest.raises(ValueError, match="unknown AK motor model 'AK99'"):
        ak_mit.motor_model("AK99")


def test_zero_torque_frame_is_zero_within_half_a_step():
    for model in ak_mit.MOTOR_MODELS.values():
        cmd = ak_mit.decode_command(ak_mit.zero_torque_command(model), model)
        assert cmd.kp == 0.0 and cmd.kd == 0.0
        assert abs(cmd.torque_nm) <= ak_mit.torque_resolution_nm(model) / 2 + 1e-9


def test_a_wrong_scaling_table_misreads_by_the_ratio_of_the_ranges_and_is_caught_when_implausible():
    motor, assumed = ak_mit.MOTOR_MODELS["AK80-64"], ak_mit.MOTOR_MODELS["AK80-9"]
    data = ak_mit.encode_feedback(ak_mit.MitFeedback(1, 0.5, 3.0, 60.0), motor)
    wrong = ak_mit.decode_feedback(data, assumed)
    assert wrong.velocity_rad_s == pytest.approx(3.0 * assumed.v_max_rad_s / motor.v_max_rad_s, rel=0.01)
    assert wrong.torque_nm == pytest.approx(60.0 * assumed.t_max_nm / motor.t_max_nm, rel=0.01)
    # the driver configured for the wrong model rejects the implausible velocity (18.75 rad/s > 8)
    core = ActuatorCore(ActuatorConfig(model="AK80-9", max_velocity_rad_s=8.0))
    assert core.on_reply(data) is None
    assert core.rejected_replies == {"velocity out of range": 1}


# --- the actuator core ----------------------------------------------------------------------


def test_actuator_frames_send_the_guards_torque_and_report_the_watchdog():
    """Which torque is sent is the actuator guard's (test/safety/test_actuator_guard.py); the core encodes it,
    clamps it to the hardware's ceiling and reports the watchdog's changes."""
    core = ActuatorCore(ActuatorConfig(model="AK80-64", torque_limit_nm=100.0))
    model = ak_mit.MOTOR_MODELS["AK80-64"]
    frame, line = core.command_frame(0.0, commanded=False)
    assert abs(ak_mit.decode_command(frame, model).torque_nm) < 0.1 and line is None  # nothing received yet
    frame, line = core.command_frame(25.0)
    assert ak_mit.decode_command(frame, model).torque_nm == pytest.approx(25.0, abs=0.1)
    assert line == "torque_command received: applying commands"
    frame, line = core.command_frame(0.0, commanded=False)
    assert abs(ak_mit.decode_command(frame, model).torque_nm) < 0.1
    assert "torque_command lost" in line and core.timeouts == 1
    frame, _ = core.command_frame(math.nan)
    assert abs(ak_mit.decode_command(frame, model).torque_nm) < 0.1  # never a NaN on the bus
    frame, _ = core.command_frame(1e4)
    assert ak_mit.decode_command(frame, model).torque_nm == pytest.approx(100.0, abs=0.1)  # clamped
    zero, exit_ = core.shutdown_frames()
    assert abs(ak_mit.decode_command(zero, model).torque_nm) < 0.1 and exit_ == ak_mit.EXIT_MOTOR_MODE


def test_actuator_direction_and_offset_map_the_motor_onto_the_knee():
    core = ActuatorCore(ActuatorConfig(model="AK80-64", direction=-1, zero_offset_rad=2.0))
    model = ak_mit.MOTOR_MODELS["AK80-64"]
    state = core.on_reply(ak_mit.encode_feedback(ak_mit.MitFeedback(1, 1.0, -0.5, -10.0), model))
    assert state.angle_rad == pytest.approx(1.0, abs=1e-3)  # -(1.0 - 2.0)
    assert state.velocity_rad_s == pytest.approx(0.5, abs=0.01)
    assert state.torque_nm == pytest.approx(10.0, abs=0.1)
    frame, _ = core.command_frame(5.0)
    assert ak_mit.decode_command(frame, model).torque_nm == pytest.approx(-5.0, abs=0.1)
    with pytest.raises(ValueError, match="direction must be"):
        ActuatorConfig(direction=0)


def test_actuator_rejects_bad_replies_and_counts_them_by_reason():
    model = ak_mit.MOTOR_MODELS["AK80-64"]
    core = ActuatorCore(ActuatorConfig(model="AK80-64"))
    good = ak_mit.encode_feedback(ak_mit.MitFeedback(1, 1.0, 0.0, 0.0), model)
    assert core.on_reply(good) is not None
    assert core.on_reply(good[:5]) is None
    assert core.on_reply(ak_mit.encode_feedback(ak_mit.MitFeedback(2, 1.0, 0.0, 0.0), model)) is None
    assert core.on_reply(ak_mit.encode_feedback(ak_mit.MitFeedback(1, 1.0, 0.0, 0.0, 30.0, 7), model)) is None
    assert core.on_reply(ak_mit.encode_feedback(ak_mit.MitFeedback(1, 5.0, 0.0, 0.0), model)) is None
    assert core.rejected_replies == {"length": 1, "motor id": 1, "error code 7": 1, "angle out of range": 1}


def test_actuator_and_emulated_motor_over_python_can_virtual_bus():
    """The driver core and the emulated motor exchange real CAN frames on python-can's virtual bus."""
    import can

    from exo.emulation.devices import AkMotorEmulator, MotorPlant

    channel = "exo-test-ak"
    host = can.Bus(interface="virtual", channel=channel)
    motor_bus = can.Bus(interface="virtual", channel=channel)
    plant = MotorPlant()
    plant.position_rad, plant.velocity_rad_s = 0.7, 0.2
    motor = AkMotorEmulator(motor_bus, "AK80-64", plant, motor_id=1)
    core = ActuatorCore(ActuatorConfig(model="AK80-64"))
    try:
        def exchange(data: bytes):
            host.send(can.Message(arbitration_id=1, data=data, is_extended_id=False))
            motor.handle(motor_bus.recv(timeout=1.0))
            return host.recv(timeout=1.0)

        for frame in core.startup_frames():
            reply = exchange(frame)
        assert motor.enabled
        frame, _ = core.command_frame(30.0)
        reply = exchange(frame)
        state = core.on_reply(bytes(reply.data))
        assert state.angle_rad == pytest.approx(0.7, abs=1e-3)
        assert state.torque_nm == pytest.approx(30.0, abs=0.1)  # the motor applies and reports it
        assert plant.torque_nm == pytest.approx(30.0, abs=0.1)
        for frame in core.shutdown_frames():
            exchange(frame)
        assert not motor.enabled and plant.torque_nm == 0.0
        assert abs(ak_mit.decode_command(motor.log[-2], motor.model).torque_nm) < 0.1
        assert motor.log[-1] == ak_mit.EXIT_MOTOR_MODE
    finally:
        host.shutdown()
        motor_bus.shutdown()


# --- WitMotion ------------------------------------------------------------------------------


def _imu_bytes(pitch: float, rate: float) -> bytes:
    g = witmotion.GRAVITY_M_S2
    return witmotion.sample_frames(witmotion.ImuSample(
        (-g * math.sin(pitch), 0.0, g * math.cos(pitch)), (0.0, rate, 0.0),
        (math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0), 25.5))


def test_witmotion_frames_decode_to_si_units():
    framer, asm = witmotion.framer(), witmotion.ImuAssembler()
    samples = [asm.add(*f) for f in framer.feed(_imu_bytes(0.3, 1.5))]
    s = samples[-1]
    assert samples[:2] == [None, None] and s is not None
    assert s.gyro_rad_s[1] == pytest.approx(1.5, abs=2e-3)
    assert s.accel_m_s2[2] == pytest.approx(9.80665 * math.cos(0.3), abs=5e-3)
    assert 2 * math.atan2(s.quaternion_wxyz[2], s.quaternion_wxyz[0]) == pytest.approx(0.3, abs=1e-4)
    assert s.temperature_c == pytest.approx(25.5)
    # the documented layout: 0x55 0x51 ax ay az T (int16 LE) checksum
    frame = witmotion.encode_frame(witmotion.ACCEL, (1, -1, 2048, 2500))
    assert frame[:2] == b"\x55\x51" and struct.unpack("<4h", frame[2:10]) == (1, -1, 2048, 2500)
    assert frame[10] == sum(frame[:10]) & 0xFF


def test_witmotion_garbage_is_dropped_counted_and_the_stream_resynchronises():
    framer, asm = witmotion.framer(), witmotion.ImuAssembler()
    good = _imu_bytes(0.2, 0.0)
    bad = bytearray(_imu_bytes(0.25, 0.0))
    bad[15] ^= 0xFF  # corrupt the gyro frame: its checksum fails
    stream = b"\x55\x55\x01garbage" + good + bytes(bad) + b"\x00\x55" + good
    out = [s for f in framer.feed(stream) for s in [asm.add(*f)] if s is not None]
    assert len(out) == 2  # the corrupt set is dropped, never completed with older values
    assert framer.rejected["checksum"] >= 1
    assert framer.bytes_dropped > 0 and asm.rejected.get("incomplete set", 0) >= 1
    # byte by byte gives the same result as in one go
    framer2, asm2 = witmotion.framer(), witmotion.ImuAssembler()
    out2 = [s for b in stream for f in framer2.feed(bytes([b])) for s in [asm2.add(*f)] if s is not None]
    assert out2 == out


# --- OpenBCI Cyton --------------------------------------------------------------------------


def test_cyton_packet_layout_and_scale_factor():
    assert openbci_cyton.volts_per_count(24.0) == pytest.approx(4.5 / 24 / (2**23 - 1))
    assert openbci_cyton.volts_per_count(24.0) * 1e6 == pytest.approx(0.02235, rel=1e-3)
    counts = (1, -1, 2**23 - 1, -(2**23), 0, 123456, -654321, 42)
    pkt = openbci_cyton.encode_packet(7, counts, (1, -2, 3))
    assert len(pkt) == 33 and pkt[0] == 0xA0 and pkt[32] == 0xC0
    assert pkt[2:5] == b"\x00\x00\x01" and pkt[5:8] == b"\xff\xff\xff"
    (sample,) = openbci_cyton.framer().feed(pkt)
    assert sample.sample_number == 7 and sample.counts == counts and sample.aux == (1, -2, 3)


def test_cyton_bad_stop_byte_and_lost_samples():
    framer = openbci_cyton.framer()
    p0 = openbci_cyton.encode_packet(0, (10,) * 8)
    bad = bytearray(openbci_cyton.encode_packet(1, (10,) * 8))
    bad[32] = 0x00
    p2 = openbci_cyton.encode_packet(2, (10,) * 8)
    p5 = openbci_cyton.encode_packet(5, (10,) * 8)
    frames = framer.feed(p0 + bytes(bad) + p2 + p5)
    assert [f.sample_number for f in frames] == [0, 2, 5]
    assert framer.rejected["stop byte"] >= 1
    pk = openbci_cyton.EmgPacketizer(samples_per_packet=2)
    results = [pk.add(f, 1.0 + i * 0.004) for i, f in enumerate(frames)]
    assert results[0] is None and results[1] is None and results[2] is None  # gaps restart the packet
    assert pk.lost_samples == 1 + 2
    pk.add(openbci_cyton.framer().feed(openbci_cyton.encode_packet(6, (100,) * 8))[0], 2.0)
    assert pk.rows == []  # 5, 6: a full packet was emitted
    with pytest.raises(ValueError, match="8 channels"):
        openbci_cyton.encode_packet(0, (1, 2))


# --- foot pressure --------------------------------------------------------------------------


def test_foot_pressure_crc_is_crc16_ccitt_false():
    assert foot_pressure.crc16(b"123456789") == 0x29B1  # the catalogued check value


def test_foot_pressure_frames_validate_length_crc_and_range():
    framer = foot_pressure.framer(4)
    good = foot_pressure.encode_frame(9, (100, 200, 4095, 0))
    bad_crc = bytearray(good)
    bad_crc[5] ^= 1
    wrong_n = foot_pressure.encode_frame(10, (1, 2, 3))
    too_big = foot_pressure.encode_frame(11, (100, 5000, 0, 0))
    frames = framer.feed(bytes(bad_crc) + wrong_n + too_big + good)
    assert [f.seq for f in frames] == [9]
    assert framer.rejected["crc"] == 1 and framer.rejected["cell count"] == 1
    assert framer.rejected["out of range"] == 1
    cal = foot_pressure.Calibration((100.0,) * 4, (50.0,) * 4, (0.001,) * 4)
    pressure = cal.pressure_pa(frames[0].counts)
    assert pressure == [0.0, 5000.0, 199750.0, 0.0]
    assert cal.total_force_n(pressure) == pytest.approx(204.75)
    with pytest.raises(ValueError, match="differ in length"):
        foot_pressure.Calibration((1.0,), (1.0, 2.0), (1.0,))


# --- health ---------------------------------------------------------------------------------


def test_device_health_reports_silence_once_and_recovery():
    h = DeviceHealth("imu_thigh", silent_after_s=0.05)
    assert h.check(0.0) is None and not h.never_heard(0.01, 0.0) and h.never_heard(0.06, 0.0)
    h.frame(1.0)
    assert h.check(1.04) is None
    line = h.check(1.06)
    assert "imu_thigh: silent" in line and h.silent
    assert h.check(1.5) is None  # once per silence
    assert "data again" in h.frame(1.6) and not h.silent and h.silences == 1
    assert h.garbage_line(2.0, {}, 0) is None
    line = h.garbage_line(2.0, {"checksum": 2}, 17)
    assert "dropped 2 invalid frame(s), 17 byte(s)" in line and "checksum: 2" in line
    assert h.garbage_line(2.5, {"checksum": 3}, 20) is None  # at most one line per second
    assert "dropped 1 invalid" in h.garbage_line(3.1, {"checksum": 3}, 20)
