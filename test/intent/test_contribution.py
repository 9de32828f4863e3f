"""The user's contribution from recorded EMG: the calibration protocol scales it, the synthesizer's known drive
is recovered, and streams that cannot be scaled are refused by name."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from exo.intent.contribution import EXTENSOR_NAMES, emg_contribution, packets_contribution
from exo.intent.drive import CALIBRATION, EXTEND, FLEX
from exo.intent.emg_synth import CHANNEL_NAMES, EmgSynthesizer

DT = 0.01  # control step, s
MUSCLES = ("flexors", "extensors")


def _stream(drive: float, session_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """EMG (t, samples) of the calibration protocol, then ``session_s`` of constant extensor activation ``drive``."""
    steps = []
    for cls, duration, d in CALIBRATION:
        a = np.zeros(2)
        if cls == EXTEND:
            a[1] = d
        elif cls == FLEX:
            a[0] = d
        steps += [a] * round(duration / DT)
    steps += [np.array([0.02, drive])] * round(session_s / DT)
    synth = EmgSynthesizer(MUSCLES, sample_rate_hz=1000.0, seed=seed)
    samples = synth.generate_series(np.array(steps), DT)
    return np.arange(len(samples)) / 1000.0, samples


@pytest.mark.parametrize("drive", [0.1, 0.3, 0.6])
def test_the_synthesizers_drive_is_recovered_from_the_calibration(drive: float):
    t, x = _stream(drive, 8.0, seed=3)
    est = emg_contribution(t, x, CHANNEL_NAMES)
    assert est.contribution == pytest.approx(drive, abs=0.06)
    assert set(est.channels) == set(EXTENSOR_NAMES) and est.session_s == pytest.approx(8.0, abs=0.2)
    assert 0.0 < est.rest_rms_v < est.calibration_activity_v


def test_more_drive_gives_more_contribution_for_every_subject():
    for seed in range(4):
        weak = emg_contribution(*_stream(0.1, 5.0, seed), CHANNEL_NAMES).contribution
        strong = emg_contribution(*_stream(0.4, 5.0, seed), CHANNEL_NAMES).contribution
        assert strong > weak + 0.2, (seed, weak, strong)


def test_packets_give_the_same_estimate_as_the_stream():
    t, x = _stream(0.3, 4.0, seed=1)
    packets = []
    for start in range(0, len(x), 5):  # 5-sample packets, as the EMG driver publishes at 1 kHz / 200 Hz
        block = x[start:start + 5].astype(np.float32)
        sec, frac = divmod(t[start], 1.0)
        packets.append(SimpleNamespace(channel_names=list(CHANNEL_NAMES), num_samples=len(block),
                                       sample_rate_hz=1000.0, samples=block.reshape(-1).tolist(),
                                       header=SimpleNamespace(stamp=SimpleNamespace(sec=int(sec),
                                                                                    nanosec=round(frac * 1e9)))))
    direct = emg_contribution(t, x.astype(np.float32), CHANNEL_NAMES).contribution
    assert packets_contribution(packets).contribution == pytest.approx(direct, abs=1e-3)


def test_streams_that_cannot_be_scaled_are_refused_by_name():
    t, x = _stream(0.3, 4.0, seed=0)
    with pytest.raises(ValueError, match="no knee-extensor channel"):
        emg_contribution(t, x[:, :1], ["biceps_femoris"])
    with pytest.raises(ValueError, match="needs the 10 s calibration"):
        emg_contribution(t[:5000], x[:5000], CHANNEL_NAMES)
    quiet = x.copy()
    quiet[:, [CHANNEL_NAMES.index(n) for n in EXTENSOR_NAMES]] = np.random.default_rng(0).normal(0, 1e-6,
                                                                                                  (len(x), 3))
    with pytest.raises(ValueError, match="no extensor activity above rest"):
        emg_contribution(t, quiet, CHANNEL_NAMES)
    with pytest.raises(ValueError, match="no EMG packets"):
        packets_contribution([])


def test_the_online_drive_matches_the_offline_contribution():
    from exo.intent.contribution import CalibratedDrive

    t, x = _stream(0.3, 6.0, seed=2)
    ext = [CHANNEL_NAMES.index(n) for n in EXTENSOR_NAMES]
    online = CalibratedDrive()
    drives = []
    for start in range(0, len(x) - 100, 100):  # 0.1 s windows, as the offline estimate
        w = x[start:start + 100][:, ext]
        w = w - w.mean(axis=0)
        drive = online.push(t[start + 50], float(np.mean(np.sqrt(np.mean(w * w, axis=0)))))
        if drive is not None:
            drives.append(drive)
    assert online.calibrated and len(drives) > 50
    assert np.mean(drives) == pytest.approx(emg_contribution(t, x, CHANNEL_NAMES).contribution, abs=0.02)
    # a stream without the calibration has no absolute scale
    late = CalibratedDrive()
    assert all(late.push(s, 1e-4) is None for s in np.arange(0.0, 15.0, 0.1)) and not late.calibrated
