"""WitMotion IMUs (WT901, HWT905, ...): the 0x55 serial protocol.

Every output frame is 11 bytes: ``0x55``, a type byte, 8 data bytes (four little-endian
int16), and a checksum = the low byte of the sum of the first 10 bytes. Types used here
(WitMotion "WIT standard protocol"):

| type | content | scale |
|---|---|---|
| 0x51 | acceleration x, y, z, temperature | a = raw / 32768 * 16 g; T = raw / 100 deg C |
| 0x52 | angular velocity x, y, z, voltage | w = raw / 32768 * 2000 deg/s |
| 0x53 | roll, pitch, yaw, version | angle = raw / 32768 * 180 deg |
| 0x59 | quaternion q0 (w), q1, q2, q3 | q = raw / 32768 |

The sensor sends one frame of each enabled type per output period, in type order.
:class:`ImuAssembler` joins one 0x51 + 0x52 + 0x59 set into an :class:`ImuSample` and emits
it when the set is complete (a set with a missing or corrupt member is dropped, never
completed with an older value). Output is SI: m/s^2, rad/s, unit quaternion (w, x, y, z).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from exo.drivers.serial_link import BadFrame, Incomplete, StreamFramer

HEADER = 0x55
FRAME_LEN = 11
ACCEL, GYRO, ANGLE, QUATERNION = 0x51, 0x52, 0x53, 0x59
KNOWN_TYPES = {0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A}
GRAVITY_M_S2 = 9.80665
ACCEL_RANGE_G = 16.0
GYRO_RANGE_DEG_S = 2000.0


def checksum(frame10: bytes) -> int:
    return sum(frame10) & 0xFF


def encode_frame(kind: int, values: tuple[int, int, int, int]) -> bytes:
    """An 11-byte frame of type ``kind`` carrying four raw int16 values (clipped to int16)."""
    vals = [max(-32768, min(32767, int(v))) for v in values]
    body = bytes([HEADER, kind]) + struct.pack("<4h", *vals)
    return body + bytes([checksum(body)])


def try_frame(buf: bytes) -> tuple[tuple[int, tuple[int, int, int, int]], int]:
    """Validate one frame at the start of ``buf`` (see :class:`~exo.drivers.serial_link.StreamFramer`)."""
    if len(buf) < 2:
        raise Incomplete
    if buf[1] not in KNOWN_TYPES:
        raise BadFrame("unknown type", f"0x{buf[1]:02X}")
    if len(buf) < FRAME_LEN:
        raise Incomplete
    if checksum(buf[:10]) != buf[10]:
        raise BadFrame("checksum", f"got 0x{buf[10]:02X}, computed 0x{checksum(buf[:10]):02X}")
    return (buf[1], struct.unpack("<4h", buf[2:10])), FRAME_LEN


def framer() -> StreamFramer:
    return StreamFramer(bytes([HEADER]), try_frame)


@dataclass(frozen=True)
class ImuSample:
    """One complete IMU sample in the sensor frame (SI units).

    Attributes:
        accel_m_s2: specific force (gravity included), m/s^2.
        gyro_rad_s: angular velocity, rad/s.
        quaternion_wxyz: orientation, unit quaternion (w, x, y, z).
        temperature_c: sensor temperature, deg C.
    """

    accel_m_s2: tuple[float, float, float]
    gyro_rad_s: tuple[float, float, float]
    quaternion_wxyz: tuple[float, float, float, float]
    temperature_c: float


def accel_raw(a_m_s2: tuple[float, float, float], temperature_c: float = 25.0) -> tuple[int, int, int, int]:
    k = 32768.0 / (ACCEL_RANGE_G * GRAVITY_M_S2)
    return (round(a_m_s2[0] * k), round(a_m_s2[1] * k), round(a_m_s2[2] * k), round(temperature_c * 100))


def gyro_raw(w_rad_s: tuple[float, float, float]) -> tuple[int, int, int, int]:
    k = 32768.0 / math.radians(GYRO_RANGE_DEG_S)
    return (round(w_rad_s[0] * k), round(w_rad_s[1] * k), round(w_rad_s[2] * k), 0)


def quaternion_raw(q_wxyz: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    return tuple(round(c * 32768.0) for c in q_wxyz)  # type: ignore[return-value]


class ImuAssembler:
    """Joins accel + gyro + quaternion frames of one output period into an :class:`ImuSample`.

    Args:
        max_accel_m_s2, max_gyro_rad_s: plausibility ranges (the sensor's own full scale);
            a set outside them, or with a quaternion whose norm is off by more than
            ``quaternion_norm_tolerance``, is rejected (``rejected`` counts by reason).
    """

    def __init__(self, max_accel_m_s2: float = ACCEL_RANGE_G * GRAVITY_M_S2,
                 max_gyro_rad_s: float = math.radians(GYRO_RANGE_DEG_S),
                 quaternion_norm_tolerance: float = 0.05) -> None:
        self.max_accel = max_accel_m_s2
        self.max_gyro = max_gyro_rad_s
        self.q_tol = quaternion_norm_tolerance
        self._parts: dict[int, tuple[int, int, int, int]] = {}
        self.rejected: dict[str, int] = {}

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._parts.clear()

    def add(self, kind: int, raw: tuple[int, int, int, int]) -> ImuSample | None:
        """Feed one validated frame; returns a sample when a set completes (on the quaternion frame)."""
        if kind == ACCEL:
            if self._parts:
                self._reject("incomplete set")  # a new period started before the last completed
            self._parts = {ACCEL: raw}
            return None
        if kind == GYRO:
            if ACCEL not in self._parts or GYRO in self._parts:
                self._reject("incomplete set")
                return None
            self._parts[GYRO] = raw
            return None
        if kind != QUATERNION:
            return None  # angle, magnetometer, ...: not used
        if ACCEL not in self._parts or GYRO not in self._parts:
            self._reject("incomplete set")
            return None
        a_raw, g_raw = self._parts[ACCEL], self._parts[GYRO]
        self._parts = {}
        ka = ACCEL_RANGE_G * GRAVITY_M_S2 / 32768.0
        kg = math.radians(GYRO_RANGE_DEG_S) / 32768.0
        accel = (a_raw[0] * ka, a_raw[1] * ka, a_raw[2] * ka)
        gyro = (g_raw[0] * kg, g_raw[1] * kg, g_raw[2] * kg)
        q = tuple(c / 32768.0 for c in raw)
        norm = math.sqrt(sum(c * c for c in q))
        if abs(norm - 1.0) > self.q_tol:
            self._reject("quaternion norm")
            return None
        if max(abs(c) for c in accel) > self.max_accel or max(abs(c) for c in gyro) > self.max_gyro:
            self._reject("out of range")
            return None
        q = tuple(c / norm for c in q)
        return ImuSample(accel, gyro, q, a_raw[3] / 100.0)  # type: ignore[arg-type]


def sample_frames(sample: ImuSample) -> bytes:
    """The 33 bytes (0x51, 0x52, 0x59 frames) a WitMotion sensor sends for ``sample`` (emulator)."""
    return (encode_frame(ACCEL, accel_raw(sample.accel_m_s2, sample.temperature_c))
            + encode_frame(GYRO, gyro_raw(sample.gyro_rad_s))
            + encode_frame(QUATERNION, quaternion_raw(sample.quaternion_wxyz)))
