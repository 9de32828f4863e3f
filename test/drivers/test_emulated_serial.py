"""Emulated serial devices on pseudo-terminals, read through pyserial as a driver does (no ROS)."""

from __future__ import annotations

import time

import pytest

from exo.drivers import foot_pressure, witmotion
from exo.drivers.serial_link import open_serial
from exo.emulation.devices import Fault, PtyDevice


def _read_for(port, seconds: float) -> bytes:
    out = bytearray()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += port.read(max(1, port.in_waiting))
    return bytes(out)


def test_frames_written_to_a_pty_arrive_through_pyserial_and_a_disconnect_is_an_error():
    import serial

    dev = PtyDevice("foot")
    port = open_serial(dev.port, 115200, timeout_s=0.02)
    try:
        frames = [foot_pressure.encode_frame(i, (100 + i, 200, 300, 400)) for i in range(20)]
        for f in frames:
            dev.write(f)
        framer = foot_pressure.framer(4)
        got = framer.feed(_read_for(port, 0.3))
        assert [g.seq for g in got] == list(range(20)) and framer.frames_rejected == 0
        dev.close()  # the adapter is unplugged
        with pytest.raises((serial.SerialException, OSError)):
            for _ in range(50):
                port.read(max(1, port.in_waiting))
    finally:
        port.close()
        dev.close()


def test_open_serial_names_a_missing_port():
    with pytest.raises(OSError, match="cannot open serial port '/dev/does-not-exist'"):
        open_serial("/dev/does-not-exist", 115200)


def test_fault_specs_are_validated_with_a_clear_message():
    assert Fault.parse("imu_thigh:silent:3") == Fault("imu_thigh", "silent", 3.0, "")
    assert Fault.parse("actuator:scaling:0:AK80-9").value == "AK80-9"
    with pytest.raises(ValueError, match="expected device:kind"):
        Fault.parse("imu_knee:silent")
    with pytest.raises(ValueError, match="is not a number"):
        Fault.parse("emg:garbage:soon")


def test_emulated_rig_streams_valid_imu_frames_and_injects_garbage():
    """The rig (reduced twin behind the devices) writes real WitMotion frames; a garbage fault corrupts some."""
    import can

    from exo.emulation.devices import EmulatedRig

    bus = can.Bus(interface="virtual", channel="exo-test-rig")
    rig = EmulatedRig(can_bus=bus, faults=(Fault("imu_shank", "garbage", 0.0),))
    ports = {n: open_serial(p, 115200, timeout_s=0.02) for n, p in rig.ports().items() if n.startswith("imu")}
    try:
        for _ in range(50):
            rig.step()
        results = {}
        for name, port in ports.items():
            framer, asm = witmotion.framer(), witmotion.ImuAssembler()
            samples = [s for f in framer.feed(_read_for(port, 0.2)) for s in [asm.add(*f)] if s is not None]
            results[name] = (samples, framer)
        thigh, thigh_framer = results["imu_thigh"]
        shank, shank_framer = results["imu_shank"]
        assert len(thigh) == 50 and thigh_framer.frames_rejected == 0 and thigh_framer.bytes_dropped == 0
        assert 0 < len(shank) < 50 and shank_framer.frames_rejected + shank_framer.bytes_dropped > 0
        # the knee starts flexed near 88 deg: the shank pitch differs from the thigh's by about that
        q_t, q_s = thigh[0].quaternion_wxyz, shank[0].quaternion_wxyz
        import math

        pitch = [2 * math.atan2(q[2], q[0]) for q in (q_t, q_s)]
        assert abs(abs(pitch[1] - pitch[0]) - 1.544) < 0.2
    finally:
        for port in ports.values():
            port.close()
        rig.close()
