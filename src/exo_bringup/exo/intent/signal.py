"""Myoelectric signal processing (scipy.signal), streaming and offline with the same code.

Conventional surface-EMG conditioning:

1. band-pass 20-450 Hz (4th-order Butterworth, second-order sections): removes motion
   artefacts and DC below, and noise above the EMG band (450 Hz is capped at 0.45 fs);
2. notch at the mains frequency (50 or 60 Hz, Q = 30);
3. full-wave rectification and a low-pass envelope (2nd-order Butterworth, 5 Hz) for display
   and analysis (:func:`envelope`); the intent model uses windowed features instead
   (:mod:`exo.intent.features`).

:class:`EmgFilter` keeps the filter states between calls, so filtering a signal in packets
gives exactly the samples of filtering it at once (tested).
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def design_filter(sample_rate_hz: float, band_hz: tuple[float, float] = (20.0, 450.0),
                  notch_hz: float = 50.0, notch_q: float = 30.0) -> np.ndarray:
    """Second-order sections of band-pass then notch (``notch_hz`` 0 = no notch).

    Raises:
        ValueError: a band outside (0, fs/2), or a notch above fs/2.
    """
    fs = float(sample_rate_hz)
    low, high = band_hz[0], min(band_hz[1], 0.45 * fs)
    if not 0.0 < low < high < fs / 2:
        raise ValueError(f"band-pass {band_hz} Hz does not fit a sample rate of {fs} Hz")
    sos = signal.butter(4, (low, high), btype="bandpass", fs=fs, output="sos")
    if notch_hz:
        if not 0.0 < notch_hz < fs / 2:
            raise ValueError(f"notch {notch_hz} Hz outside (0, {fs / 2}) Hz")
        b, a = signal.iirnotch(notch_hz, notch_q, fs=fs)
        sos = np.vstack([sos, signal.tf2sos(b, a)])
    return sos


class EmgFilter:
    """Streaming band-pass + notch for ``n_channels`` channels (samples x channels, V).

    Args:
        sample_rate_hz: sampling rate, Hz.
        n_channels: number of channels.
        band_hz: band-pass corners, Hz.
        notch_hz: mains frequency, Hz (0 = none).
    """

    def __init__(self, sample_rate_hz: float, n_channels: int, band_hz: tuple[float, float] = (20.0, 450.0),
                 notch_hz: float = 50.0) -> None:
        self.sos = design_filter(sample_rate_hz, band_hz, notch_hz)
        self.zi = np.zeros((self.sos.shape[0], 2, n_channels))

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        out, self.zi = signal.sosfilt(self.sos, np.asarray(samples, dtype=float), axis=0, zi=self.zi)
        return out

    def reset(self) -> None:
        self.zi[:] = 0.0


def envelope(filtered: np.ndarray, sample_rate_hz: float, cutoff_hz: float = 5.0) -> np.ndarray:
    """Linear envelope: full-wave rectification then a zero-phase 2nd-order low-pass (offline), V."""
    sos = signal.butter(2, cutoff_hz, btype="lowpass", fs=sample_rate_hz, output="sos")
    return signal.sosfiltfilt(sos, np.abs(filtered), axis=0)
