"""The user's own contribution to a session, measured from the EMG the session recorded.

Assist-as-needed (:mod:`exo.users.assistance`) lowers the help only when the user did their share: the
contribution is the user's knee-extensor drive, as a fraction of a maximal contraction. A session that
runs the intent pipeline starts with the calibration protocol (:data:`exo.intent.drive.CALIBRATION`: rest,
extend at drive 0.5, rest, flex at drive 0.5, rest; the standard MVC-style normalisation of myoelectric
control), so every recorded EMG stream carries its own scale:

1. the extensor channels (:data:`exo.intent.emg_synth.CHANNELS` of group ``extensors``, by name), each
   with its mean removed per window, RMS over ``window_s`` windows, averaged over the channels, V;
2. the rest level: the RMS over the calibration's rest segments (amplifier noise, mains, tone), V;
3. the activity of a window: ``sqrt(max(0, rms^2 - rest^2))`` (noise and activity add in power), V;
4. the scale: the calibration's *extend* segment is drive 0.5, so ``drive = 0.5 * activity / activity_ext``;
5. the contribution: the mean drive over the windows after the calibration, clipped to [0, 1].

The edges of every calibration segment (``edge_s``) are left out: the drive ramps there. The measure is the
user's mean extensor drive over the session; in the knee-extension task that is the user's effort to extend.
It includes any reflex activity of the extensors (EMG cannot separate them), which is why the therapist's
``contribution_target`` is a schedule parameter, not a constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exo.intent.drive import CALIBRATION, EXTEND, HOLD
from exo.intent.emg_synth import CHANNELS

#: Names of the knee-extensor electrodes.
EXTENSOR_NAMES: tuple[str, ...] = tuple(c[0] for c in CHANNELS if c[2] == "extensors")
#: Drive of the calibration's extend segment (-).
CALIBRATION_DRIVE = max(drive for cls, _, drive in CALIBRATION if cls == EXTEND)


@dataclass(frozen=True)
class ContributionEstimate:
    """The user's contribution to a session and the levels it was scaled by.

    Attributes:
        contribution: mean knee-extensor drive after the calibration, fraction of a maximal contraction (0-1).
        rest_rms_v: extensor RMS at rest in the calibration, V.
        calibration_activity_v: extensor activity during the calibration's extend segment (drive 0.5), V.
        session_s: EMG time after the calibration the mean was taken over, s.
        channels: the extensor channels used.
    """

    contribution: float
    rest_rms_v: float
    calibration_activity_v: float
    session_s: float
    channels: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"contribution": self.contribution, "rest_rms_v": self.rest_rms_v,
                "calibration_activity_v": self.calibration_activity_v, "session_s": self.session_s,
                "channels": list(self.channels)}


def _segments(kind: int, edge_s: float) -> list[tuple[float, float]]:
    """(start, end) s of the calibration's segments of class ``kind``, without their ramping edges."""
    out, t = [], 0.0
    for cls, duration, _ in CALIBRATION:
        if cls == kind and duration > 2 * edge_s:
            out.append((t + edge_s, t + duration - edge_s))
        t += duration
    return out


def emg_contribution(t_s: np.ndarray, samples: np.ndarray, channel_names: Sequence[str], *, window_s: float = 0.1,
                     edge_s: float = 0.5) -> ContributionEstimate:
    """The contribution of one EMG stream that starts with the calibration protocol (module docstring).

    Args:
        t_s: sample times, s, increasing (the stream's start is the calibration's start).
        samples: (n, channels) EMG, V.
        channel_names: names of the columns.
        window_s: RMS window, s.
        edge_s: left out at both ends of each calibration segment, s.

    Raises:
        ValueError: no extensor channel, shapes that disagree, a stream too short to hold the calibration
            and some session after it, or a calibration without extensor activity.
    """
    t = np.asarray(t_s, dtype=float)
    x = np.asarray(samples, dtype=float)
    if x.ndim != 2 or len(t) != len(x) or x.shape[1] != len(channel_names):
        raise ValueError(f"samples {x.shape} do not match {len(t)} times and {len(channel_names)} channel names")
    columns = [i for i, name in enumerate(channel_names) if name in EXTENSOR_NAMES]
    if not columns:
        raise ValueError(f"no knee-extensor channel among {list(channel_names)} (expected one of "
                         f"{list(EXTENSOR_NAMES)})")
    calibration_s = sum(d for _, d, _ in CALIBRATION)
    if len(t) < 2 or t[-1] - t[0] < calibration_s + window_s:
        raise ValueError(f"{t[-1] - t[0] if len(t) else 0.0:.1f} s of EMG: the contribution needs the "
                         f"{calibration_s:.0f} s calibration and some session after it")
    rel = t - t[0]
    edges = np.arange(0.0, rel[-1] + window_s, window_s)
    index = np.searchsorted(rel, edges)
    rms, centre = [], []
    for a, b in zip(index[:-1], index[1:], strict=True):
        if b - a < 4:
            continue
        w = x[a:b][:, columns]
        w = w - w.mean(axis=0)
        rms.append(float(np.mean(np.sqrt(np.mean(w * w, axis=0)))))
        centre.append(0.5 * (rel[a] + rel[b - 1]))
    r, c = np.array(rms), np.array(centre)

    def within(spans: list[tuple[float, float]]) -> np.ndarray:
        return np.any([(c >= lo) & (c <= hi) for lo, hi in spans], axis=0)

    rest = float(np.sqrt(np.mean(r[within(_segments(HOLD, edge_s))] ** 2)))
    activity = np.sqrt(np.maximum(0.0, r * r - rest * rest))
    reference = float(np.mean(activity[within(_segments(EXTEND, edge_s))]))
    if not (math.isfinite(reference) and reference > rest):  # a drive-0.5 contraction stands far above the noise
        raise ValueError("the calibration's extend segment shows no extensor activity above rest: "
                         "was the calibration protocol run at the start of this stream?")
    after = c >= calibration_s
    drive = CALIBRATION_DRIVE * activity[after] / reference
    return ContributionEstimate(contribution=float(np.clip(np.mean(drive), 0.0, 1.0)), rest_rms_v=rest,
                                calibration_activity_v=reference, session_s=float(np.sum(after) * window_s),
                                channels=tuple(channel_names[i] for i in columns))


def packets_contribution(packets: Sequence[object], **kwargs: float) -> ContributionEstimate:
    """:func:`emg_contribution` of recorded ``exo_msgs/EmgPacket`` messages (header stamp = first sample).

    Raises:
        ValueError: no packets, packets whose channels change, or malformed packets (naming the first).
    """
    if not packets:
        raise ValueError("no EMG packets in the session")
    names = list(packets[0].channel_names)
    times, rows = [], []
    for k, p in enumerate(packets):
        if list(p.channel_names) != names:
            raise ValueError(f"EMG packet {k} has channels {list(p.channel_names)}, the first had {names}")
        n, fs = int(p.num_samples), float(p.sample_rate_hz)
        data = np.asarray(p.samples, dtype=float)
        if n < 1 or fs <= 0.0 or data.size != n * len(names):
            raise ValueError(f"EMG packet {k} is malformed ({data.size} values for {n} samples x {len(names)} "
                             f"channels at {fs} Hz)")
        t0 = p.header.stamp.sec + p.header.stamp.nanosec * 1e-9
        times.append(t0 + np.arange(n) / fs)
        rows.append(data.reshape(n, len(names)))
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return emg_contribution(t[order], np.concatenate(rows)[order], names, **kwargs)


class CalibratedDrive:
    """The same scale, online: extensor RMS values in, the user's drive (0-1) out once the calibration is over.

    Feed it the mean extensor RMS of consecutive windows (any envelope: band-passed or not, the ratio to the
    calibration cancels the scale) with their stamps. During the stream's first ``CALIBRATION`` seconds it
    learns the rest level and the drive-0.5 activity and returns None; after that it returns
    ``0.5 * activity / activity_ext`` clipped to [0, 1]. A stream that goes back in time (a new run) starts
    over. :attr:`calibrated` is False when the stream did not start with the calibration (no activity above
    rest in its extend segment): the caller then has no absolute scale.
    """

    def __init__(self, edge_s: float = 0.5) -> None:
        self.edge_s = float(edge_s)
        self.calibration_s = sum(d for _, d, _ in CALIBRATION)
        self._reset(None)

    def _reset(self, t0: float | None) -> None:
        self.t0, self.last_t = t0, t0
        self._rest_power: list[float] = []
        self._extend_rms: list[float] = []
        self.rest_v: float | None = None
        self.reference_v: float | None = None
        self.calibrated = False

    def push(self, t_s: float, rms_v: float) -> float | None:
        """The drive at ``t_s`` (None during the calibration or without one)."""
        if not (math.isfinite(t_s) and math.isfinite(rms_v)):
            return None
        if self.t0 is None or self.last_t is None or t_s < self.last_t:
            self._reset(t_s)
        self.last_t = t_s
        rel = t_s - self.t0
        if rel < self.calibration_s:
            if any(lo <= rel <= hi for lo, hi in _segments(HOLD, self.edge_s)):
                self._rest_power.append(rms_v * rms_v)
            elif any(lo <= rel <= hi for lo, hi in _segments(EXTEND, self.edge_s)):
                self._extend_rms.append(rms_v)
            return None
        if self.rest_v is None:
            rest = math.sqrt(sum(self._rest_power) / len(self._rest_power)) if self._rest_power else math.inf
            activity = [math.sqrt(max(0.0, r * r - rest * rest)) for r in self._extend_rms]
            reference = sum(activity) / len(activity) if activity else 0.0
            self.rest_v, self.reference_v = rest, reference
            self.calibrated = math.isfinite(rest) and reference > rest
        if not self.calibrated:
            return None
        drive = CALIBRATION_DRIVE * math.sqrt(max(0.0, rms_v * rms_v - self.rest_v ** 2)) / self.reference_v
        return min(1.0, max(0.0, drive))
