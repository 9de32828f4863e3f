"""OpenBCI Cyton (ADS1299, 8 channels) serial stream: the 33-byte packet format.

Packet (OpenBCI Cyton data format, 115200 baud, 250 Hz):

| byte | content |
|---|---|
| 0 | header 0xA0 |
| 1 | sample number 0-255 (wraps) |
| 2-25 | 8 channels x 24-bit signed, big-endian, two's complement |
| 26-31 | aux data: 3 x 16-bit signed big-endian (accelerometer in the standard stop byte) |
| 32 | stop byte 0xC0-0xC6 (0xC0 = standard aux data) |

No checksum: a packet is valid when the header and stop byte sit 32 bytes apart.
Scale: volts = count * 4.5 V / gain / (2^23 - 1) (ADS1299 reference 4.5 V; gain 24 is
the Cyton's default). The Cyton samples at **250 Hz**, below the contract's 1-2 kHz EMG:
the driver publishes the true ``sample_rate_hz`` in every EmgPacket and consumers resample
(see docs/drivers.md). Gaps in the sample number are counted as lost samples and start a
new packet, so that sample i of a packet is always at stamp + i / rate.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from exo.drivers.serial_link import BadFrame, Incomplete, StreamFramer

HEADER = 0xA0
STOP_BYTES = frozenset(range(0xC0, 0xC7))
PACKET_LEN = 33
N_CHANNELS = 8
SAMPLE_RATE_HZ = 250.0
VREF_V = 4.5
FULL_SCALE_COUNTS = 2**23 - 1


def volts_per_count(gain: float = 24.0) -> float:
    """Scale factor of the ADS1299 at ``gain``, V per count (gain 24: 2.235e-8 V)."""
    return VREF_V / gain / FULL_SCALE_COUNTS


@dataclass(frozen=True)
class CytonSample:
    """One decoded packet: sample number, 8 raw channel counts, 3 aux values, stop byte."""

    sample_number: int
    counts: tuple[int, ...]
    aux: tuple[int, int, int]
    stop_byte: int


def _int24(b: bytes) -> int:
    value = (b[0] << 16) | (b[1] << 8) | b[2]
    return value - (1 << 24) if value & 0x800000 else value


def try_frame(buf: bytes) -> tuple[CytonSample, int]:
    if len(buf) < PACKET_LEN:
        raise Incomplete
    if buf[32] not in STOP_BYTES:
        raise BadFrame("stop byte", f"0x{buf[32]:02X} at offset 32")
    counts = tuple(_int24(buf[2 + 3 * i: 5 + 3 * i]) for i in range(N_CHANNELS))
    aux = struct.unpack(">3h", buf[26:32])
    return CytonSample(buf[1], counts, aux, buf[32]), PACKET_LEN


def framer() -> StreamFramer:
    return StreamFramer(bytes([HEADER]), try_frame)


def encode_packet(sample_number: int, counts: tuple[int, ...], aux: tuple[int, int, int] = (0, 0, 0),
                  stop_byte: int = 0xC0) -> bytes:
    """The 33 bytes the board sends (emulator); counts are clipped to the 24-bit range."""
    if len(counts) != N_CHANNELS:
        raise ValueError(f"Cyton packets carry {N_CHANNELS} channels, got {len(counts)}")
    out = bytearray([HEADER, sample_number & 0xFF])
    for c in counts:
        c = max(-(2**23), min(2**23 - 1, int(c)))
        out += (c & 0xFFFFFF).to_bytes(3, "big")
    out += struct.pack(">3h", *aux)
    out.append(stop_byte)
    return bytes(out)


class EmgPacketizer:
    """Groups consecutive samples into packets of ``samples_per_packet`` rows (volts).

    Args:
        samples_per_packet: rows per EmgPacket (5 at 250 Hz = 50 packets/s, the contract's rate).
        gain: ADS1299 gain the board is configured with (scale factor).
        sample_rate_hz: the board's sampling rate.

    ``add(sample, t_rx)`` returns ``(t_first_s, rows)`` when a packet is full, where
    ``t_first_s`` is the acquisition time of its first row estimated from the host
    receive time of the last one. A gap in sample numbers discards the partial packet
    (``lost_samples`` counts the gap), so rows are always contiguous.
    """

    def __init__(self, samples_per_packet: int = 5, gain: float = 24.0,
                 sample_rate_hz: float = SAMPLE_RATE_HZ) -> None:
        if samples_per_packet < 1:
            raise ValueError(f"samples_per_packet must be >= 1, got {samples_per_packet}")
        self.n = samples_per_packet
        self.scale = volts_per_count(gain)
        self.rate = sample_rate_hz
        self.rows: list[list[float]] = []
        self.last_number: int | None = None
        self.lost_samples = 0
        self.railed_samples = 0

    def add(self, sample: CytonSample, t_rx_s: float) -> tuple[float, list[list[float]]] | None:
        if self.last_number is not None:
            gap = (sample.sample_number - self.last_number - 1) % 256
            if gap:
                self.lost_samples += gap
                self.rows = []
        self.last_number = sample.sample_number
        if any(c in (-(2**23), 2**23 - 1) for c in sample.counts):
            self.railed_samples += 1  # kept (a railed channel is data, not a framing error), counted
        self.rows.append([c * self.scale for c in sample.counts])
        if len(self.rows) < self.n:
            return None
        rows, self.rows = self.rows, []
        return t_rx_s - (len(rows) - 1) / self.rate, rows
