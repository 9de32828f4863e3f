"""Synthetic surface EMG from the twin's muscle activations (pure numpy/scipy, seeded).

Model of one channel c (volts), sampled at ``fs`` (1-2 kHz)::

    m_c(t)   = gain_c * share_c * a_src(c)(t) * n_c(t)          activation-modulated band-limited noise
    x(t)     = K @ m(t)                                          crosstalk between neighbouring electrodes
    emg_c(t) = x_c(t) + baseline_c(t) + mains_c * sin(2 pi f_mains t + phi_c)

- ``a_src(c)`` is the activation (0-1) of the channel's muscle: the full twin's own
  MyoLeg muscle, or the reduced twin's lumped group ("flexors" / "extensors"), linearly
  interpolated from the 100 Hz control steps to ``fs``;
- ``n_c`` is unit-variance Gaussian noise band-limited by a 4th-order Butterworth band-pass
  whose band (about 30-250 Hz, the bulk of surface-EMG power) shifts per subject (fibre
  conduction velocity, electrode distance);
- ``gain_c`` (V at full activation, about 0.5 mV RMS) varies log-normally between subjects
  (skin impedance, subcutaneous fat), ``share_c`` is the muscle's share of its group's
  drive (log-normal, per subject);
- ``K`` has 1 on the diagonal and the subject's crosstalk coefficients (5-25 %) between
  anatomical neighbours; an *electrode shift* adds to them and moves gain between the
  two neighbours;
- ``baseline_c``: amplifier/skin noise, white band-limited to 10-450 Hz, 2-8 uV RMS;
  mains interference at 50 Hz, 0-20 uV.

All randomness comes from one ``numpy.random.Generator`` seeded per subject, so a seed
reproduces the signal exactly. :class:`EmgSynthesizer` is streaming (filter states are
kept between calls), so the sim bridge and the offline dataset builder produce the same
samples for the same activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

#: The 8 surface electrodes, over the knee extensors (anterior thigh) and flexors (posterior
#: thigh, calf). Each maps to (full-twin MyoLeg muscle, reduced-twin group).
CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("vastus_medialis", "vasmed_r", "extensors"),
    ("rectus_femoris", "recfem_r", "extensors"),
    ("vastus_lateralis", "vaslat_r", "extensors"),
    ("biceps_femoris", "bflh_r", "flexors"),
    ("semitendinosus", "semiten_r", "flexors"),
    ("semimembranosus", "semimem_r", "flexors"),
    ("gastrocnemius_medialis", "gasmed_r", "flexors"),
    ("gastrocnemius_lateralis", "gaslat_r", "flexors"),
)
CHANNEL_NAMES: tuple[str, ...] = tuple(c[0] for c in CHANNELS)
#: Pairs of channels whose electrodes are neighbours (crosstalk), by index into CHANNELS.
NEIGHBOURS: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (6, 7), (3, 7), (5, 6))
#: Extensor / flexor channel indices.
EXTENSOR_CHANNELS = tuple(i for i, c in enumerate(CHANNELS) if c[2] == "extensors")
FLEXOR_CHANNELS = tuple(i for i, c in enumerate(CHANNELS) if c[2] == "flexors")


@dataclass(frozen=True)
class EmgSubject:
    """One subject's electrode/tissue parameters (drawn by :meth:`draw`).

    Attributes:
        gain_v: per-channel EMG RMS at full activation, V.
        share: per-channel share of the group drive reaching the muscle (-).
        crosstalk: (8, 8) mixing matrix K (1 on the diagonal), -.
        band_hz: (low, high) of the EMG band-pass, Hz.
        baseline_v: per-channel RMS of the baseline noise, V.
        mains_v: per-channel amplitude of the mains interference, V.
        mains_phase_rad: its phase per channel, rad.
    """

    gain_v: np.ndarray
    share: np.ndarray
    crosstalk: np.ndarray
    band_hz: tuple[float, float]
    baseline_v: np.ndarray
    mains_v: np.ndarray
    mains_phase_rad: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, electrode_shift: bool = True) -> EmgSubject:
        """A random subject: gains +-30 % (log-normal), crosstalk 5-25 %, an electrode shift."""
        n = len(CHANNELS)
        gain = 0.5e-3 * np.exp(rng.normal(0.0, 0.3, n))
        share = np.exp(rng.normal(0.0, 0.15, n))
        k = np.eye(n)
        for i, j in NEIGHBOURS:
            k[i, j] = rng.uniform(0.05, 0.25)
            k[j, i] = rng.uniform(0.05, 0.25)
        if electrode_shift:
            # one electrode pair displaced towards its neighbour: more crosstalk, less own signal
            i, j = NEIGHBOURS[int(rng.integers(len(NEIGHBOURS)))]
            shift = rng.uniform(0.0, 0.3)
            k[i, j] += shift
            gain[i] *= 1.0 - 0.5 * shift
        shift_hz = rng.uniform(-10.0, 10.0)
        band = (30.0 + shift_hz, 250.0 + 5.0 * shift_hz)
        return cls(
            gain_v=gain, share=share, crosstalk=k, band_hz=band,
            baseline_v=rng.uniform(2e-6, 8e-6, n), mains_v=rng.uniform(0.0, 20e-6, n),
            mains_phase_rad=rng.uniform(0.0, 2 * np.pi, n),
        )


def source_indices(muscle_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Index into ``muscle_names`` of each channel's source muscle (full twin) or group (reduced)."""
    names = list(muscle_names)
    out = []
    for channel, muscle, group in CHANNELS:
        if muscle in names:
            out.append(names.index(muscle))
        elif group in names:
            out.append(names.index(group))
        else:
            raise ValueError(f"EMG channel {channel}: neither muscle {muscle!r} nor group {group!r} in the twin's "
                             f"muscles {names}")
    return np.array(out)


class EmgSynthesizer:
    """Streaming EMG generator for one subject.

    Args:
        muscle_names: the twin's ``TwinState.muscle_names``.
        sample_rate_hz: EMG sampling rate, Hz (1000-2000).
        seed: subject seed (draws the :class:`EmgSubject` and the noise stream).
        mains_hz: mains frequency, Hz (50 or 60).
        subject: explicit subject parameters (default: drawn from ``seed``).
    """

    def __init__(self, muscle_names: tuple[str, ...] | list[str], sample_rate_hz: float = 1000.0, seed: int = 0,
                 mains_hz: float = 50.0, subject: EmgSubject | None = None) -> None:
        if not 1000.0 <= sample_rate_hz <= 2000.0:
            raise ValueError(f"sample_rate_hz must be in [1000, 2000] Hz, got {sample_rate_hz}")
        self.fs = float(sample_rate_hz)
        self.rng = np.random.default_rng(seed)
        self.subject = subject if subject is not None else EmgSubject.draw(self.rng)
        self.src = source_indices(muscle_names)
        self.mains_hz = float(mains_hz)
        n = len(CHANNELS)
        self._emg_sos = signal.butter(4, self.subject.band_hz, btype="bandpass", fs=self.fs, output="sos")
        self._base_sos = signal.butter(2, (10.0, min(450.0, 0.45 * self.fs)), btype="bandpass", fs=self.fs,
                                       output="sos")
        zi = signal.sosfilt_zi(self._emg_sos)
        self._emg_zi = np.repeat(zi[:, :, None], n, axis=2) * 0.0
        self._base_zi = np.repeat(signal.sosfilt_zi(self._base_sos)[:, :, None], n, axis=2) * 0.0
        # unit-variance gain of the band-pass (white noise of variance 1 in -> this RMS out)
        self._emg_norm = 1.0 / np.sqrt(2 * (self.subject.band_hz[1] - self.subject.band_hz[0]) / self.fs)
        self._base_norm = 1.0 / np.sqrt(2 * (min(450.0, 0.45 * self.fs) - 10.0) / self.fs)
        self._last_activation: np.ndarray | None = None
        self.samples_emitted = 0
        # warm the filters up so that the first samples are stationary
        self._noise(int(self.fs * 0.2))

    def _noise(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        ch = len(CHANNELS)
        wb = self.rng.standard_normal((n, 2 * ch))  # one draw per sample: chunking does not change the stream
        w, self._emg_zi = signal.sosfilt(self._emg_sos, wb[:, :ch], axis=0, zi=self._emg_zi)
        b, self._base_zi = signal.sosfilt(self._base_sos, wb[:, ch:], axis=0, zi=self._base_zi)
        return w * self._emg_norm, b * self._base_norm

    def _emit(self, a: np.ndarray) -> np.ndarray:
        """EMG (n, 8), V, for per-sample channel activations ``a`` (n, 8)."""
        s = self.subject
        n = len(a)
        w, b = self._noise(n)
        muscle = s.gain_v * np.minimum(s.share * a, 1.0) * w
        t = (self.samples_emitted + np.arange(n)) / self.fs
        mains = s.mains_v * np.sin(2 * np.pi * self.mains_hz * t[:, None] + s.mains_phase_rad)
        self.samples_emitted += n
        return muscle @ s.crosstalk.T + s.baseline_v * b + mains

    def _per_sample(self, activations: np.ndarray, n_per_step: int) -> np.ndarray:
        """Channel activations per sample, linear from the previous step's value to each step's."""
        a_end = np.clip(np.asarray(activations, dtype=float)[:, self.src], 0.0, 1.0)  # (steps, 8)
        first = a_end[0] if self._last_activation is None else self._last_activation
        a_start = np.vstack([first[None, :], a_end[:-1]])
        self._last_activation = a_end[-1]
        frac = (np.arange(1, n_per_step + 1) / n_per_step)[None, :, None]
        a = a_start[:, None, :] + (a_end - a_start)[:, None, :] * frac
        return a.reshape(-1, a.shape[-1])

    def generate(self, activations: np.ndarray, duration_s: float) -> np.ndarray:
        """EMG samples (n, 8), V, for the next ``duration_s`` seconds.

        Args:
            activations: the twin's muscle activations (0-1) at the END of the interval,
                shape (n_muscles,); the activation is interpolated linearly from the value
                passed to the previous call (held constant on the first call).
            duration_s: interval, s; ``round(duration_s * fs)`` samples are produced
                (use multiples of 1/fs, e.g. the 10 ms control step).
        """
        n = int(round(duration_s * self.fs))
        return self._emit(self._per_sample(np.asarray(activations, dtype=float)[None, :], n))

    def generate_series(self, activations: np.ndarray, control_dt_s: float) -> np.ndarray:
        """EMG (n_steps * fs * dt, 8), V, for activations (n_steps, n_muscles) at ``control_dt_s`` steps.

        The same samples as calling :meth:`generate` once per step (vectorised).
        """
        n = int(round(control_dt_s * self.fs))
        return self._emit(self._per_sample(np.asarray(activations, dtype=float), n))
