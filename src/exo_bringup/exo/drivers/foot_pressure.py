"""Foot-pressure insole over serial: the frame format we define, with a CRC.

An insole ADC board (e.g. a microcontroller sampling force-sensitive resistors at 100 Hz)
sends, little-endian::

    0xA5 0x5A | seq (u8) | n (u8, cells) | n x u16 ADC counts | CRC-16 (u16)

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF; ``binascii.crc_hqx(data, 0xFFFF)``)
over ``seq`` through the last count. Counts are 12-bit (0-4095): a larger count, a cell
count other than the configured one, a CRC mismatch or a length byte that does not fit
is a bad frame. Pressure per cell = (count - offset) * pa_per_count (a linear calibration
per insole, in config/drivers.yaml); total vertical force = sum of pressure * cell area.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from exo.drivers.serial_link import BadFrame, Incomplete, StreamFramer

SYNC = b"\xa5\x5a"
MAX_COUNT = 4095
MAX_CELLS = 32


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class PressureFrame:
    seq: int
    counts: tuple[int, ...]


def encode_frame(seq: int, counts: tuple[int, ...]) -> bytes:
    """One frame as the board sends it (emulator)."""
    body = bytes([seq & 0xFF, len(counts)]) + struct.pack(f"<{len(counts)}H", *counts)
    return SYNC + body + struct.pack("<H", crc16(body))


def make_try_frame(n_cells: int):
    """A validator for frames of exactly ``n_cells`` cells."""
    if not 1 <= n_cells <= MAX_CELLS:
        raise ValueError(f"n_cells must be 1..{MAX_CELLS}, got {n_cells}")

    def try_frame(buf: bytes) -> tuple[PressureFrame, int]:
        if len(buf) < 4:
            raise Incomplete
        n = buf[3]
        if n != n_cells:
            raise BadFrame("cell count", f"{n} cells, expected {n_cells}")
        length = 4 + 2 * n + 2
        if len(buf) < length:
            raise Incomplete
        body = buf[2:4 + 2 * n]
        (crc,) = struct.unpack("<H", buf[4 + 2 * n:length])
        if crc != crc16(body):
            raise BadFrame("crc", f"got 0x{crc:04X}, computed 0x{crc16(body):04X}")
        counts = struct.unpack(f"<{n}H", buf[4:4 + 2 * n])
        if max(counts) > MAX_COUNT:
            raise BadFrame("out of range", f"count {max(counts)} > {MAX_COUNT}")
        return PressureFrame(buf[2], counts), length

    return try_frame


def framer(n_cells: int) -> StreamFramer:
    return StreamFramer(SYNC, make_try_frame(n_cells))


@dataclass(frozen=True)
class Calibration:
    """Linear calibration of an insole (one value per cell).

    Attributes:
        offset_counts: ADC count at zero load.
        pa_per_count: pressure per count above the offset, Pa.
        area_m2: cell area, m^2 (for the total force).
    """

    offset_counts: tuple[float, ...]
    pa_per_count: tuple[float, ...]
    area_m2: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.offset_counts)
        if len(self.pa_per_count) != n or len(self.area_m2) != n:
            raise ValueError(f"calibration lists differ in length: {n} offsets, {len(self.pa_per_count)} "
                             f"gains, {len(self.area_m2)} areas")

    def pressure_pa(self, counts: tuple[int, ...]) -> list[float]:
        return [max(0.0, (c - o) * k) for c, o, k in zip(counts, self.offset_counts, self.pa_per_count, strict=True)]

    def total_force_n(self, pressure_pa: list[float]) -> float:
        return float(sum(p * a for p, a in zip(pressure_pa, self.area_m2, strict=True)))

    def counts_for(self, pressure_pa: list[float]) -> tuple[int, ...]:
        """Inverse (emulator): the ADC counts that read as ``pressure_pa``."""
        return tuple(int(min(MAX_COUNT, max(0, round(o + p / k))))
                     for p, o, k in zip(pressure_pa, self.offset_counts, self.pa_per_count, strict=True))
