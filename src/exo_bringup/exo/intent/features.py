"""Windowed time-domain EMG features (Hudgins set) and the model's input vector.

Every ``hop_s`` (20 ms: one estimate per 50 Hz EMG packet) a *frame* is computed over the
last ``window_s`` (200 ms) of band-passed, notch-filtered EMG, per channel:

- MAV, mean absolute value, V;
- RMS, root mean square, V;
- WL, waveform length per sample, mean |x[i+1] - x[i]|, V;
- ZC, zero crossings per sample whose step exceeds ``threshold_v``;
- SSC, slope sign changes per sample whose larger slope exceeds ``threshold_v``.

Model input (:func:`model_inputs`): log of MAV, RMS and WL normalised per channel by the
subject's calibration (95th percentile of MAV / WL over the calibration segment, the
MVC-style normalisation of myoelectric control), ZC and SSC as they are, then kinematics
(knee angle rad, knee velocity / 2 rad/s, from joint_states) when the model uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from exo.intent.signal import EmgFilter

FEATURES: tuple[str, ...] = ("mav", "rms", "wl", "zc", "ssc")


def window_features(windows: np.ndarray, threshold_v: float) -> np.ndarray:
    """Features of windows (n_windows, n_samples, n_channels) -> (n_windows, 5 * n_channels).

    Column order: feature-major (all channels' MAV, then RMS, WL, ZC, SSC).
    """
    x = np.asarray(windows, dtype=float)
    n = x.shape[1]
    mav = np.mean(np.abs(x), axis=1)
    rms = np.sqrt(np.mean(x * x, axis=1))
    d = np.diff(x, axis=1)
    wl = np.mean(np.abs(d), axis=1)
    zc = np.sum((x[:, :-1] * x[:, 1:] < 0) & (np.abs(d) >= threshold_v), axis=1) / n
    s1, s2 = d[:, :-1], d[:, 1:]
    ssc = np.sum((s1 * s2 < 0) & (np.maximum(np.abs(s1), np.abs(s2)) >= threshold_v), axis=1) / n
    return np.concatenate([mav, rms, wl, zc, ssc], axis=1)


@dataclass(frozen=True)
class FeatureConfig:
    """How frames are computed (stored in the model card).

    Attributes:
        sample_rate_hz: EMG rate, Hz.
        window_s: feature window, s.
        hop_s: frame period, s (one frame per EMG packet at 50 Hz).
        band_hz: band-pass, Hz.
        notch_hz: mains notch, Hz.
        threshold_v: ZC/SSC threshold, V.
    """

    sample_rate_hz: float = 1000.0
    window_s: float = 0.2
    hop_s: float = 0.02
    band_hz: tuple[float, float] = (20.0, 450.0)
    notch_hz: float = 50.0
    threshold_v: float = 1e-5

    @property
    def window(self) -> int:
        return int(round(self.window_s * self.sample_rate_hz))

    @property
    def hop(self) -> int:
        return int(round(self.hop_s * self.sample_rate_hz))


class FrameExtractor:
    """Streaming frames: push raw EMG (n, channels) V; get every completed frame's features.

    The first frames, before a full window of history, see zeros before the first sample.
    """

    def __init__(self, config: FeatureConfig, n_channels: int) -> None:
        self.config = config
        self.n_channels = n_channels
        self.filter = EmgFilter(config.sample_rate_hz, n_channels, config.band_hz, config.notch_hz)
        self.buffer = np.zeros((config.window - 1, n_channels))  # history before the new samples
        self.pending = 0  # samples since the last frame

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Features (k, 5 * channels) of the k frames completed by ``samples`` (k may be 0)."""
        x = self.filter(samples)
        data = np.concatenate([self.buffer, x], axis=0)
        w, hop = self.config.window, self.config.hop
        ends = np.arange(hop - self.pending, len(x) + 1, hop)  # frame ends, in samples of x (exclusive)
        ends = ends[ends > 0]
        out = np.zeros((0, 5 * self.n_channels))
        if len(ends):
            windows = sliding_window_view(data, w, axis=0)[ends - 1]  # (k, channels, w)
            out = window_features(np.swapaxes(windows, 1, 2), self.config.threshold_v)
            self.pending = len(x) - int(ends[-1])
        else:
            self.pending += len(x)
        self.buffer = data[-(w - 1):]
        return out

    def reset(self) -> None:
        self.filter.reset()
        self.buffer[:] = 0.0
        self.pending = 0


@dataclass(frozen=True)
class Calibration:
    """Per-channel amplitude scales of one subject, V (from :meth:`from_frames`)."""

    mav_v: np.ndarray
    wl_v: np.ndarray

    @classmethod
    def from_frames(cls, frames: np.ndarray, n_channels: int) -> Calibration:
        """95th percentiles of MAV and WL over the calibration segment's frames."""
        f = np.asarray(frames)
        if len(f) == 0:
            raise ValueError("calibration needs at least one frame")
        return cls(np.percentile(f[:, 0:n_channels], 95, axis=0), np.percentile(f[:, 2 * n_channels:3 * n_channels],
                                                                                95, axis=0))

    @classmethod
    def uncalibrated(cls, n_channels: int, scale_v: float = 1e-4) -> Calibration:
        """The same fixed scale for every channel and subject (the no-calibration ablation)."""
        return cls(np.full(n_channels, scale_v), np.full(n_channels, scale_v / 2))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mav_v": [float(v) for v in self.mav_v], "wl_v": [float(v) for v in self.wl_v]}


def model_inputs(frames: np.ndarray, calibration: Calibration, kinematics: np.ndarray | None) -> np.ndarray:
    """Model input rows (n, 5 * channels [+ 2]) from frames, a calibration and kinematics.

    Args:
        frames: (n, 5 * channels) window features.
        calibration: the subject's scales.
        kinematics: (n, 2) knee angle rad and knee velocity rad/s at each frame's end, or None.
    """
    f = np.asarray(frames, dtype=float)
    c = len(calibration.mav_v)
    eps = 1e-3
    amp = np.concatenate([
        np.log(f[:, 0:c] / calibration.mav_v + eps),
        np.log(f[:, c:2 * c] / calibration.mav_v + eps),
        np.log(f[:, 2 * c:3 * c] / calibration.wl_v + eps),
    ], axis=1)
    parts = [amp, f[:, 3 * c:5 * c] * 4.0]
    if kinematics is not None:
        k = np.asarray(kinematics, dtype=float)
        parts.append(np.column_stack([k[:, 0], k[:, 1] / 2.0]))
    return np.concatenate(parts, axis=1).astype(np.float32)
