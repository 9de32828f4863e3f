"""What the ``live_view`` node forwards to Foxglove, and how often (pure: no rclpy, no foxglove import).

- :data:`FORWARDED`: the contract topics served as they are (CDR bytes with their ``ros2msg`` definition,
  so Foxglove decodes the exact messages of the graph), each with its rate policy: streams at the control
  rate are capped (:class:`RateLimiter`), the safety monitor's state and events never are (a dropped
  transition would hide the one thing a viewer must see).
- :class:`RateLimiter`: at most one message per ``1 / max_rate_hz`` bin of the messages' **own stamps**
  (sim time under lockstep, so a lockstep run flat out is decimated like a real-time one).
- :class:`EmgEnvelope`: the 1-2 kHz EMG as an envelope: band-pass + mains notch (:class:`exo.intent.signal.EmgFilter`),
  then the RMS over consecutive windows of ``1 / rate_hz`` s, one value per channel and window (V).
- :func:`cdr_stamp_ns`: the ``header.stamp`` of a serialized message, read without deserializing it.
- :func:`session_info`: the run's session (the user's pseudonym only, never a name).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exo import contract
from exo.contract import Topic
from exo.intent.signal import EmgFilter

#: Control-rate streams are capped at this rate by default, Hz: every other control step of a 100 Hz graph (smooth
#: plots; the live view's cost halves, bench/bench_live.py); ``max_rate_hz`` 100 shows every step.
DEFAULT_MAX_RATE_HZ = contract.DEFAULT_CONTROL_RATE_HZ / 2
#: Default rate of the EMG envelope, Hz (one RMS window of 20 ms per value).
DEFAULT_EMG_ENVELOPE_RATE_HZ = 50.0
#: Suffix of the live view's own channels (``<namespace>/live/...``): not ROS topics, Foxglove channels only.
LIVE_PREFIX = "live"


@dataclass(frozen=True)
class Forward:
    """One contract topic the live view serves.

    Attributes:
        topic: the contract entry (name, type, QoS).
        capped: True = at most ``max_rate_hz`` messages per second of stamp time; False = every message.
    """

    topic: Topic
    capped: bool = True


#: The topics served to Foxglove: knee angle, torques (request, command, interaction), intent, safety state and
#: events, and the twin's truth in sim (absent elsewhere: its channel simply stays empty).
FORWARDED: tuple[Forward, ...] = (
    Forward(contract.JOINT_STATES),
    Forward(contract.TORQUE_REQUEST),
    Forward(contract.TORQUE_COMMAND),
    Forward(contract.INTERACTION_THIGH),
    Forward(contract.INTERACTION_SHANK),
    Forward(contract.INTENT),
    Forward(contract.SIM_TRUTH),
    Forward(contract.SAFETY_STATUS, capped=False),
    Forward(contract.SAFETY_EVENTS, capped=False),
)


def live_channel(namespace: str, name: str) -> str:
    """Foxglove channel of the live view's own data ``name`` under the graph's namespace (``/exo/live/session``)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{LIVE_PREFIX}/{name}"


#: The live view's own channels, by short name.
EMG_ENVELOPE = "emg_envelope"
SESSION = "session"


class RateLimiter:
    """Keeps at most one message per ``1 / max_rate_hz`` s bin of the message stamps.

    The bins are centred on multiples of the period, so a stream stamped on the control grid (10 ms steps,
    stamps a nanosecond either side of the multiple) keeps every message at ``max_rate_hz`` = its rate.
    Stamps that go back in time (a new trial, a bag played again) start afresh. ``max_rate_hz`` 0 keeps all.
    Over any stretch of stamp time T, at most ``T * max_rate_hz + 2`` messages pass (the bins it touches).
    """

    def __init__(self, max_rate_hz: float) -> None:
        if max_rate_hz < 0 or not math.isfinite(max_rate_hz):
            raise ValueError(f"max_rate_hz must be >= 0 and finite, got {max_rate_hz}")
        self.period_ns = round(1e9 / max_rate_hz) if max_rate_hz > 0 else 0
        self.last_bin: int | None = None
        self.last_stamp_ns: int | None = None
        self.passed = 0
        self.dropped = 0

    def accept(self, stamp_ns: int) -> bool:
        """Whether the message stamped ``stamp_ns`` (ns) is forwarded."""
        if self.period_ns == 0:
            self.passed += 1
            return True
        b = (stamp_ns + self.period_ns // 2) // self.period_ns
        if self.last_bin is not None and self.last_stamp_ns is not None and stamp_ns >= self.last_stamp_ns \
                and b <= self.last_bin:
            self.dropped += 1
            return False
        self.last_bin, self.last_stamp_ns = b, stamp_ns
        self.passed += 1
        return True


def cdr_stamp_ns(data: bytes | memoryview) -> int:
    """``header.stamp`` (ns) of a CDR-serialized message whose first field is a ``std_msgs/Header``.

    Raises:
        ValueError: too short, or not a plain CDR encapsulation.
    """
    if len(data) < 12:
        raise ValueError(f"{len(data)} bytes cannot hold a CDR header stamp")
    kind = data[1]
    if data[0] != 0 or kind not in (0, 1):
        raise ValueError(f"encapsulation {bytes(data[:2]).hex()} is not CDR (00 00 or 00 01)")
    sec, nanosec = struct.unpack_from("<iI" if kind == 1 else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass(frozen=True)
class EnvelopeSample:
    """One value of the EMG envelope.

    Attributes:
        stamp_ns: end of the window, ns (stamp of its last sample + one sample period).
        channel_names: one per value.
        rms_v: RMS of the filtered EMG over the window, per channel, V.
        window_s: length of the window, s.
    """

    stamp_ns: int
    channel_names: tuple[str, ...]
    rms_v: tuple[float, ...]
    window_s: float

    def to_json(self) -> dict:
        """The Foxglove JSON message (``timestamp`` as ``{sec, nsec}``, every value in V)."""
        sec, nsec = divmod(self.stamp_ns, 1_000_000_000)
        return {"timestamp": {"sec": sec, "nsec": nsec}, "channel_names": list(self.channel_names),
                "rms_v": list(self.rms_v), "window_s": self.window_s,
                "channels": {n: v for n, v in zip(self.channel_names, self.rms_v, strict=True)}}


class EmgEnvelope:
    """Streaming EMG envelope: band-pass 20-450 Hz + mains notch, then RMS over windows of ``1 / rate_hz`` s.

    Args:
        rate_hz: envelope values per second of EMG, Hz (the window is its period).
        mains_hz: mains frequency notched out, Hz (0 = none).
        max_gap_s: a gap between packets longer than this restarts the filter and the window, s.
    """

    def __init__(self, rate_hz: float = DEFAULT_EMG_ENVELOPE_RATE_HZ, mains_hz: float = 50.0,
                 max_gap_s: float = 0.1) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.mains_hz = float(mains_hz)
        self.max_gap_s = float(max_gap_s)
        self._key: tuple[float, tuple[str, ...]] | None = None
        self._filter: EmgFilter | None = None
        self._next_ns: int | None = None
        self._reset_window()

    def _reset_window(self) -> None:
        self._sumsq: np.ndarray | None = None
        self._count = 0

    def push(self, stamp_ns: int, sample_rate_hz: float, channel_names: Sequence[str],
             samples: np.ndarray) -> list[EnvelopeSample]:
        """Feed one packet (``samples``: num_samples x channels, V; ``stamp_ns`` = its first sample's time).

        Returns the envelope values whose windows this packet completes (usually 0 or 1).

        Raises:
            ValueError: the samples do not have one column per channel name.
        """
        names = tuple(channel_names)
        x = np.asarray(samples, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"EMG packet of shape {x.shape} for {len(names)} channel names")
        period_ns = 1e9 / sample_rate_hz
        key = (float(sample_rate_hz), names)
        gap = self._next_ns is not None and abs(stamp_ns - self._next_ns) > self.max_gap_s * 1e9
        if key != self._key or gap:
            self._key = key
            self._filter = EmgFilter(sample_rate_hz, len(names), notch_hz=self.mains_hz
                                     if 0 < self.mains_hz < sample_rate_hz / 2 else 0.0)
            self._reset_window()
        self._next_ns = stamp_ns + round(x.shape[0] * period_ns)
        filtered = self._filter(x)
        per_window = max(1, round(sample_rate_hz / self.rate_hz))
        out = []
        i = 0
        while i < len(filtered):
            take = min(per_window - self._count, len(filtered) - i)
            chunk = filtered[i:i + take]
            sq = np.sum(chunk * chunk, axis=0)
            self._sumsq = sq if self._sumsq is None else self._sumsq + sq
            self._count += take
            i += take
            if self._count == per_window:
                end_ns = stamp_ns + round(i * period_ns)
                rms = np.sqrt(self._sumsq / self._count)
                out.append(EnvelopeSample(end_ns, names, tuple(float(v) for v in rms), per_window / sample_rate_hz))
                self._reset_window()
        return out


def session_info(*, namespace: str, user: str, controller: str, started_wall_s: float,
                 graph_time_s: float | None, first_graph_time_s: float | None, extra: dict | None = None) -> dict:
    """The session as the live view shows it: the user's pseudonym (never a name), controller, the
    wall-clock start (s since the epoch), and the elapsed graph time since the first sample (s)."""
    elapsed = (graph_time_s - first_graph_time_s) if graph_time_s is not None and first_graph_time_s is not None \
        else 0.0
    info = {"user": user or "(none)", "controller": controller, "namespace": namespace,
            "started_wall_s": started_wall_s, "elapsed_s": elapsed}
    info.update(extra or {})
    return info
