"""Replay a recorded assessment on a twin with candidate reflex parameters, and the features compared.

The replay (why this formulation: ``docs/identification.md``). The twin is driven, step by step, by
the motor torque the exo applied in the recording (feedforward) plus a PD correction towards the
recorded exo angle and velocity::

    u_k = motor_torque[k + 1] + kp (q_ref[k] - q_sim[k]) + kd (qd_ref[k] - qd_sim[k])

(``motor_torque[k + 1]`` is the torque applied from sample k on, see
:mod:`exo.identify.recording`; ``q_ref``/``qd_ref`` are the recorded angle and velocity, zero-phase
low-passed at ``reference_hz`` against sensor noise). With the person's parameters the simulated
knee follows the recording and the PD correction stays near zero; with wrong ones the knee resists
differently, the simulated exo lags or leads and the correction shows up in the simulated
interaction torque and angle. The replay is a stable, deterministic function of the parameters,
unlike a closed-loop re-run of the assessment: the spastic reflex is a delayed high-gain velocity
feedback that makes the closed-loop twin chaotic at levels 2-3 (a 1e-6 rad perturbation of the measured
angle changes a closed-loop run of the reduced twin by 0.8-1.6 N m RMS), while the replay is
deterministic and insensitive to such perturbations (docs/identification.md).

Features (:class:`FeatureLayout`). Both the simulated and the recorded interaction torque (N m) and
exo angle (rad, times ``angle_weight_nm_rad`` to be in N m) are zero-phase low-passed at
``lowpass_hz`` and sampled every ``feature_period_s``: over the settling hold (after ``skip_s``) and,
per trial (speed), over each repetition's window from the trial's start to the next trial's start.
The fit compares the windows averaged over the repetitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from exo.assessment.protocol import EXTEND
from exo.identify.recording import AssessmentRecording, RecordingError
from exo.twin.reflex import SpasticityLevel


@dataclass(frozen=True)
class ReplaySettings:
    """How the recording is replayed and compared (units in the names).

    Attributes:
        kp_nm_rad: PD correction's position gain, N m/rad.
        kd_nm_s_rad: its velocity gain, N m s/rad.
        reference_hz: low-pass cut-off of the recorded angle/velocity the PD tracks, Hz.
        lowpass_hz: low-pass cut-off of the compared signals, Hz.
        feature_period_s: spacing of the compared samples, s.
        skip_s: start-up time left out of the comparison (activation transients of the reset), s.
        angle_weight_nm_rad: weight of an angle difference, N m per rad (0.01 rad counts as 1 N m).
    """

    kp_nm_rad: float = 300.0
    kd_nm_s_rad: float = 5.0
    reference_hz: float = 20.0
    lowpass_hz: float = 2.0
    feature_period_s: float = 0.1
    skip_s: float = 0.5
    angle_weight_nm_rad: float = 100.0


def lowpass(x: np.ndarray, cutoff_hz: float, fs_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth low-pass of ``x`` (sample rate ``fs_hz``), same length."""
    from scipy.signal import butter, filtfilt

    if cutoff_hz >= 0.5 * fs_hz:
        return np.asarray(x, dtype=float).copy()
    b, a = butter(2, cutoff_hz / (0.5 * fs_hz))
    return filtfilt(b, a, np.asarray(x, dtype=float))


class FeatureLayout:
    """Where the compared samples are: the settling hold, and each trial's window in each repetition.

    Only repetitions whose every trial lies inside the recording are used.

    Raises:
        RecordingError: the recording does not hold one complete repetition of the protocol.
    """

    def __init__(self, recording: AssessmentRecording, settings: ReplaySettings) -> None:
        p = recording.protocol
        dt = recording.dt
        step = max(1, int(round(settings.feature_period_s / dt)))
        first = int(round(settings.skip_s / dt))
        settle_end = int(round(p.settle_s / dt))
        self.settle = np.arange(first, settle_end, step)
        trials = len(p.velocities_deg_s)
        starts = np.zeros((p.repetitions, trials), dtype=int)
        lengths = np.zeros(trials, dtype=int)
        segments = [s for s in p.segments if s.repetition >= 0]
        for s in segments:
            if s.kind == EXTEND:  # every trial starts with its extension
                starts[s.repetition, s.trial] = int(round(s.start_s / dt))
        for tr in range(trials):
            span = sum(s.duration_s for s in segments if s.repetition == 0 and s.trial == tr)
            lengths[tr] = int(round(span / dt))
        complete = [r for r in range(p.repetitions) if all(starts[r, tr] + lengths[tr] <= recording.n for tr in range(trials))]
        if not complete:
            raise RecordingError(f"assessment recording ({recording.source or 'unnamed'}): {recording.duration_s:.1f} s "
                                 f"do not hold one complete repetition of the protocol ({p.duration_s:.1f} s in all)")
        self.repetitions = complete
        self.trial_offsets = [np.arange(0, lengths[tr], step) for tr in range(trials)]
        self.starts = starts
        self.trials = trials

    @cached_property
    def per_repetition(self) -> int:
        """Compared samples per repetition and signal (all trials)."""
        return int(sum(len(o) for o in self.trial_offsets))

    def extract(self, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(settling-hold samples, per-repetition samples of shape (repetitions, per_repetition)) of a signal."""
        reps = np.stack([np.concatenate([signal[self.starts[r, tr] + self.trial_offsets[tr]] for tr in range(self.trials)])
                         for r in self.repetitions])
        return signal[self.settle], reps

    def trial_of_column(self) -> np.ndarray:
        """The trial index of each column of :attr:`Features.reps` (torque columns, then angle columns)."""
        one = np.concatenate([np.full(len(o), tr) for tr, o in enumerate(self.trial_offsets)])
        return np.concatenate([one, one])


@dataclass(frozen=True)
class Features:
    """Compared samples of one signal pair (torque in N m, angle times the angle weight in N m).

    Attributes:
        settle: the settling hold's samples, shape (2 * n_settle,).
        reps: per-repetition samples, shape (repetitions, 2 * per_repetition).
    """

    settle: np.ndarray
    reps: np.ndarray

    def averaged(self) -> np.ndarray:
        """The settle samples followed by the repetition average (what the fit compares)."""
        return np.concatenate([self.settle, self.reps.mean(axis=0)])


class Replay:
    """The replay of one recording on one twin (see the module docstring).

    Args:
        recording: the assessment recording.
        twin: "reduced", "full" or a built twin.
        settings: replay and feature settings.
    """

    def __init__(self, recording: AssessmentRecording, twin: str | Any = "full",
                 settings: ReplaySettings | None = None) -> None:
        self.recording = recording
        self.settings = settings if settings is not None else ReplaySettings()
        if isinstance(twin, str):
            from exo.twin import make_twin

            twin = make_twin(twin)
        self.twin = twin
        s = self.settings
        fs = 1.0 / recording.dt
        self.q_ref = lowpass(recording.angle_rad, s.reference_hz, fs)
        self.qd_ref = lowpass(recording.velocity_rad_s, s.reference_hz, fs)
        torque = recording.motor_torque_nm
        self.feedforward = np.append(torque[1:], torque[-1])
        self.layout = FeatureLayout(recording, s)
        self.recorded = self.features(recording.interaction_torque_nm, recording.angle_rad)

    @property
    def kind(self) -> str:
        return str(getattr(self.twin, "kind", "custom"))

    def simulate(self, subject: SpasticityLevel) -> tuple[np.ndarray, np.ndarray]:
        """Replay with ``subject``'s parameters: (interaction torque N m, exo angle rad) per recorded sample."""
        twin = self.twin
        n = self.recording.n
        start = float(min(max(self.q_ref[0], 0.0), 1.8))
        m = twin.reset(subject.level, initial_knee_angle_rad=start, subject=subject).measurements
        tau = np.empty(n)
        q = np.empty(n)
        tau[0], q[0] = m.interaction_torque_nm, m.exo_knee_angle_rad
        q_ref, qd_ref, ff = self.q_ref, self.qd_ref, self.feedforward
        kp, kd = self.settings.kp_nm_rad, self.settings.kd_nm_s_rad
        limit = float(twin.max_exo_torque_nm)
        for k in range(n - 1):
            u = ff[k] + kp * (q_ref[k] - m.exo_knee_angle_rad) + kd * (qd_ref[k] - m.exo_knee_velocity_rad_s)
            u = limit if u > limit else -limit if u < -limit else u
            m = twin.step(u).measurements
            tau[k + 1], q[k + 1] = m.interaction_torque_nm, m.exo_knee_angle_rad
        if not (np.isfinite(tau).all() and np.isfinite(q).all()):
            tau = np.nan_to_num(tau, nan=1e3, posinf=1e3, neginf=-1e3)
            q = np.nan_to_num(q, nan=10.0, posinf=10.0, neginf=-10.0)
        return tau, q

    def features(self, tau: np.ndarray, q: np.ndarray) -> Features:
        """The compared samples of an interaction torque (N m) and exo angle (rad) series."""
        s = self.settings
        fs = 1.0 / self.recording.dt
        t_settle, t_reps = self.layout.extract(lowpass(tau, s.lowpass_hz, fs))
        q_settle, q_reps = self.layout.extract(lowpass(q, s.lowpass_hz, fs) * s.angle_weight_nm_rad)
        return Features(np.concatenate([t_settle, q_settle]), np.concatenate([t_reps, q_reps], axis=1))

    def evaluate(self, subject: SpasticityLevel) -> tuple[Features, float]:
        """(features of the replay with ``subject``, raw interaction-torque RMS error after skip_s, N m)."""
        tau, q = self.simulate(subject)
        first = int(round(self.settings.skip_s / self.recording.dt))
        rms = float(np.sqrt(np.mean((tau[first:] - self.recording.interaction_torque_nm[first:]) ** 2)))
        return self.features(tau, q), rms
