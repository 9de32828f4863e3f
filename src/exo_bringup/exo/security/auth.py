"""Authenticated torque messages: HMAC-SHA256 over what the receiver acts on, and replay protection.

A torque message (``exo_msgs/TorqueCommand`` on ``torque_request`` or ``torque_command``) is
authentic when its ``mac`` field equals ``HMAC-SHA256(key, purpose | stamp_ns | seq | joint |
torque | source)``. The *purpose* separates the two uses: a request signed with the request key
can never pass as a command (different key and different purpose), and a command recorded in a
bag cannot be replayed into another run (different per-run key), nor into the same run (its
sequence number is not newer than the last one accepted).

The byte layout is fixed (little-endian): ``purpose`` UTF-8 and a NUL, ``stamp_ns`` as int64,
``seq`` as uint64, ``torque`` as IEEE-754 float64 (the exact bits, so a NaN or -0.0 is signed as
sent), then ``joint`` and ``source`` UTF-8, each NUL-terminated.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from enum import Enum

#: Purpose label of torque_command (safety monitor -> actuator side).
COMMAND_PURPOSE = "exo/torque_command/v1"
#: Purpose label of torque_request (controller -> safety monitor).
REQUEST_PURPOSE = "exo/torque_request/v1"
#: Length of a MAC, bytes (HMAC-SHA256).
MAC_BYTES = 32

_NUMBERS = struct.Struct("<qQd")


def _payload(purpose: str, stamp_ns: int, seq: int, joint: str, torque_nm: float, source: str) -> bytes:
    return b"".join((purpose.encode(), b"\0", _NUMBERS.pack(stamp_ns, seq, torque_nm),
                     joint.encode(), b"\0", source.encode(), b"\0"))


def sign(key: bytes, purpose: str, stamp_ns: int, seq: int, joint: str, torque_nm: float, source: str) -> bytes:
    """The 32-byte MAC of one torque message (see the module docstring for what it covers)."""
    return hmac.digest(key, _payload(purpose, stamp_ns, seq, joint, torque_nm, source), hashlib.sha256)


class Verdict(str, Enum):
    """What :meth:`MessageVerifier.check` found."""

    OK = "ok"  #: authentic and newer than every message accepted before
    DUPLICATE = "duplicate"  #: the very message accepted last, delivered again (harmless: idempotent)
    UNAUTHENTICATED = "unauthenticated"  #: no MAC at all (a foreign or misconfigured publisher)
    BAD_MAC = "bad_mac"  #: a MAC that does not match (another key, or altered contents)
    REPLAYED = "replayed"  #: authentic, but its sequence number is not newer than the last accepted


class MessageVerifier:
    """Checks the MAC and the sequence of one stream of torque messages.

    Args:
        key: the stream's secret key (:func:`exo.security.keys.load_secret`).
        purpose: :data:`COMMAND_PURPOSE` or :data:`REQUEST_PURPOSE`.

    Sequence numbers must strictly increase; the message accepted last may be delivered again
    (a re-offered lockstep step is answered with the same message), which returns
    :attr:`Verdict.DUPLICATE`. Only :attr:`Verdict.OK` advances the sequence.
    """

    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) < 16:
            raise ValueError(f"a message key must have at least 16 bytes, got {len(key)}")
        self._key = key
        self.purpose = purpose
        self.last_seq: int | None = None
        self._last_mac = b""

    def check(self, stamp_ns: int, seq: int, joint: str, torque_nm: float, source: str, mac: bytes) -> Verdict:
        """Verify one message; updates the sequence on :attr:`Verdict.OK` only."""
        if not mac:
            return Verdict.UNAUTHENTICATED
        try:
            expected = sign(self._key, self.purpose, stamp_ns, seq, joint, torque_nm, source)
        except (struct.error, OverflowError, UnicodeEncodeError):
            return Verdict.BAD_MAC  # a stamp or sequence number outside the signed ranges
        if not hmac.compare_digest(expected, bytes(mac)):
            return Verdict.BAD_MAC
        if self.last_seq is not None and seq <= self.last_seq:
            if seq == self.last_seq and hmac.compare_digest(expected, self._last_mac):
                return Verdict.DUPLICATE
            return Verdict.REPLAYED
        self.last_seq, self._last_mac = seq, expected
        return Verdict.OK


class MessageSigner:
    """Numbers and signs the messages of one stream (the publishing side of :class:`MessageVerifier`).

    Args:
        key: the stream's secret key.
        purpose: :data:`COMMAND_PURPOSE` or :data:`REQUEST_PURPOSE`.
    """

    def __init__(self, key: bytes, purpose: str) -> None:
        if len(key) < 16:
            raise ValueError(f"a message key must have at least 16 bytes, got {len(key)}")
        self._key = key
        self.purpose = purpose
        self.seq = 0

    def next(self, stamp_ns: int, joint: str, torque_nm: float, source: str) -> tuple[int, bytes]:
        """(sequence number, MAC) of the next message: numbers start at 1 and increase by one."""
        self.seq += 1
        return self.seq, sign(self._key, self.purpose, stamp_ns, self.seq, joint, torque_nm, source)
