"""The intent estimator's pure core: EMG packets (+ knee kinematics) in, intent estimates out.

The intent_estimator node is a thin shell around :class:`IntentEstimatorCore`. Per packet:

1. **check** it (:meth:`IntentEstimatorCore.check`): sample rate = the model's, channel names
   = the model's, ``len(samples) == num_samples * channels``, every sample finite; a bad
   packet raises :class:`PacketError` naming the reason and changes nothing;
2. **continuity**: a packet that does not start where the previous one ended (more than
   ``max_gap_s`` apart) restarts the filters and the model state (the calibration is kept);
   a packet from the past (a new run, a looping bag) restarts everything;
3. **frames**: every ``hop_s`` of samples completes a feature frame (the same
   :class:`~exo.intent.features.FrameExtractor` as training, so online = offline);
4. **calibration**: for a calibrated model, the frames of the first ``calibration_s``
   seconds (the user's calibration protocol, :data:`exo.intent.drive.CALIBRATION`) are held
   back; at its end the per-channel scales are computed and the model catches up over them.
   Estimates of that period are published with confidence 0 ("no usable estimate");
5. **model step** per frame (stateful LSTM) -> :class:`Estimate` stamped at the frame's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from exo.intent.drive import CALIBRATION_S
from exo.intent.features import Calibration, FrameExtractor, model_inputs
from exo.intent.model import NumpyIntentModel


class PacketError(ValueError):
    """A rejected EMG packet; ``reason`` is a short name for counting (``wrong_rate``, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Estimate:
    """One intent estimate.

    Attributes:
        time_s: end of the EMG window it was computed from, s (stream time).
        probabilities: per class (model's class order).
        predicted_class: index of the most probable class.
        velocity_rad_s: intended knee velocity, rad/s (+ = flexion).
        confidence: max probability; 0 while calibrating.
    """

    time_s: float
    probabilities: np.ndarray
    predicted_class: int
    velocity_rad_s: float
    confidence: float


class IntentEstimatorCore:
    """Streaming intent estimation for one EMG amplifier.

    Args:
        model: the exported model.
        calibration_s: length of the calibration segment at the start of a stream, s.
        max_gap_s: largest tolerated gap between packets before restarting the stream, s.
    """

    def __init__(self, model: NumpyIntentModel, calibration_s: float = CALIBRATION_S, max_gap_s: float = 0.05) -> None:
        if not model.emg:
            raise ValueError("the intent estimator needs a model with EMG inputs (this one uses kinematics only)")
        self.model = model
        self.config = model.feature_config
        self.channels = model.channel_names
        self.calibration_s = float(calibration_s) if model.calibrated else 0.0
        self.max_gap_s = float(max_gap_s)
        self.calibration: Calibration | None = None if model.calibrated else Calibration.uncalibrated(
            len(self.channels))
        self._restart(full=True)

    def _restart(self, full: bool) -> None:
        self.frames = FrameExtractor(self.config, len(self.channels))
        self.model.reset()
        self.next_stamp_s: float | None = None
        self.frame_count = 0
        if full:
            self.start_s: float | None = None
            self.held: list[tuple[float, np.ndarray, tuple[float, float]]] = []
            if self.model.calibrated:
                self.calibration = None
        else:
            self.held = []

    def check(self, sample_rate_hz: float, channel_names: list[str] | tuple[str, ...], num_samples: int,
              samples: np.ndarray) -> np.ndarray:
        """The packet's samples as (num_samples, channels), or :class:`PacketError`."""
        if not math.isclose(sample_rate_hz, self.config.sample_rate_hz, rel_tol=1e-6):
            raise PacketError("wrong_rate", f"sample_rate_hz {sample_rate_hz} Hz, the model expects "
                              f"{self.config.sample_rate_hz} Hz")
        if tuple(channel_names) != self.channels:
            raise PacketError("wrong_channels", f"channels {list(channel_names)}, the model expects "
                              f"{list(self.channels)}")
        samples = np.asarray(samples, dtype=float)
        if num_samples == 0 or samples.size != num_samples * len(self.channels):
            raise PacketError("wrong_length", f"{samples.size} values for num_samples {num_samples} x "
                              f"{len(self.channels)} channels")
        if not np.all(np.isfinite(samples)):
            raise PacketError("non_finite", f"{int(np.sum(~np.isfinite(samples)))} NaN/inf sample(s)")
        return samples.reshape(num_samples, len(self.channels))

    def push(self, stamp_s: float, sample_rate_hz: float, channel_names: list[str] | tuple[str, ...],
             num_samples: int, samples: np.ndarray, knee: tuple[float, float] | None) -> list[Estimate]:
        """Estimates completed by one packet (stamp = time of its first sample, s).

        Args:
            knee: latest (knee angle rad, knee velocity rad/s), required by kinematic models.

        Raises:
            PacketError: a bad packet (nothing changes), or ``no_kinematics`` for a kinematic
                model before any joint state.
        """
        x = self.check(sample_rate_hz, channel_names, num_samples, samples)
        if self.model.kinematics and knee is None:
            raise PacketError("no_kinematics", "the model needs joint_states, none received yet")
        fs = self.config.sample_rate_hz
        if self.next_stamp_s is not None:
            if stamp_s < self.next_stamp_s - self.max_gap_s:
                self._restart(full=True)
            elif stamp_s > self.next_stamp_s + self.max_gap_s:
                self._restart(full=False)
        if self.start_s is None:
            self.start_s = stamp_s
        if self.next_stamp_s is None:
            self.stream_start_s = stamp_s
        self.next_stamp_s = stamp_s + num_samples / fs
        feats = self.frames.push(x)
        out: list[Estimate] = []
        kin = knee if knee is not None else (0.0, 0.0)
        for f in feats:
            self.frame_count += 1
            t = self.stream_start_s + self.frame_count * self.config.hop_s
            if self.calibration is None:
                self.held.append((t, f, kin))
                if t - self.start_s >= self.calibration_s - 1e-9:
                    out.append(self._calibrate())  # the segment's last frame gets a real estimate
                else:
                    out.append(Estimate(t, np.full(len(self.model.classes), 1.0 / len(self.model.classes)), 0,
                                        0.0, 0.0))
                continue
            out.append(self._step(t, f, kin))
        return out

    def _calibrate(self) -> Estimate:
        held = np.array([h[1] for h in self.held])
        self.calibration = Calibration.from_frames(held, len(self.channels))
        for t, f, kin in self.held:  # catch up: the model sees the calibration segment as in training
            last = self._step(t, f, kin)
        self.held = []
        return last

    def _step(self, t: float, frame: np.ndarray, kin: tuple[float, float]) -> Estimate:
        x = model_inputs(frame[None, :], self.calibration,
                         np.array([kin]) if self.model.kinematics else None)[0]
        probs, vel = self.model.step(x)
        k = int(np.argmax(probs))
        return Estimate(t, probs, k, vel, float(probs[k]))
