"""Byte-stream framing shared by the serial drivers: resynchronise, validate, count garbage.

A serial device sends frames back to back, and a real line loses bytes, flips bits and
starts mid-frame. :class:`StreamFramer` keeps a buffer, looks for the protocol's sync
bytes, asks the protocol's ``try_frame`` to validate a candidate, and on a bad candidate
drops one byte and searches again. Every dropped byte and every rejected frame is counted
by reason, so the node can log "dropped 11 bytes: checksum mismatch" and publish counts.

:func:`open_serial` opens a pyserial port (a real device or an emulator's pseudo-terminal)
with an error that names the port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

F = TypeVar("F")


class Incomplete(Exception):
    """The buffer holds the start of a frame but not all of it yet."""


class BadFrame(ValueError):
    """A candidate frame failed validation; ``reason`` is a short label for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class StreamFramer(Generic[F]):
    """Split a byte stream into validated frames.

    Args:
        sync: the byte sequence every frame starts with.
        try_frame: ``try_frame(buffer) -> (frame, length)`` for a buffer starting with ``sync``;
            raises :class:`Incomplete` if more bytes are needed, :class:`BadFrame` if invalid.
        max_buffer: bytes kept at most while waiting (older ones are dropped as garbage).
    """

    sync: bytes
    try_frame: Callable[[bytes], tuple[F, int]]
    max_buffer: int = 4096
    buffer: bytearray = field(default_factory=bytearray)
    frames_ok: int = 0
    bytes_dropped: int = 0
    rejected: Counter = field(default_factory=Counter)

    def feed(self, data: bytes) -> list[F]:
        """Add received bytes; return every complete valid frame now available, in order."""
        self.buffer += data
        out: list[F] = []
        while True:
            start = self.buffer.find(self.sync)
            if start < 0:
                keep = len(self.sync) - 1  # a sync split across reads
                drop = max(0, len(self.buffer) - keep)
                self._drop(drop)
                break
            if start:
                self._drop(start)
            try:
                frame, length = self.try_frame(bytes(self.buffer))
            except Incomplete:
                if len(self.buffer) > self.max_buffer:
                    self._drop(len(self.buffer) - self.max_buffer)
                break
            except BadFrame as exc:
                self.rejected[exc.reason] += 1
                self._drop(1)  # resynchronise on the next sync byte
                continue
            del self.buffer[:length]
            self.frames_ok += 1
            out.append(frame)
        return out

    def _drop(self, n: int) -> None:
        """Discard ``n`` bytes from the front of the buffer (garbage, or the first byte of a bad frame)."""
        if n > 0:
            del self.buffer[:n]
            self.bytes_dropped += n

    @property
    def frames_rejected(self) -> int:
        return sum(self.rejected.values())


def open_serial(port: str, baudrate: int, timeout_s: float = 0.05):
    """A pyserial ``Serial`` on ``port``; ``OSError`` naming the port if it cannot be opened."""
    import serial

    try:
        return serial.Serial(port, baudrate=baudrate, timeout=timeout_s)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise OSError(f"cannot open serial port {port!r} at {baudrate} baud: {exc}") from exc
