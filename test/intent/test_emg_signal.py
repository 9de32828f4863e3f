"""Synthetic EMG, filters and features: seeded, streaming = offline, physically sensible."""

from __future__ import annotations

import numpy as np
import pytest

from exo.intent.emg_synth import CHANNEL_NAMES, EXTENSOR_CHANNELS, FLEXOR_CHANNELS, EmgSynthesizer
from exo.intent.features import FeatureConfig, FrameExtractor, window_features
from exo.intent.signal import EmgFilter, design_filter

GROUPS = ("flexors", "extensors")


def _series(level_flex: float, level_ext: float, steps: int = 200) -> np.ndarray:
    return np.tile([level_flex, level_ext], (steps, 1))


def test_same_seed_same_signal_other_seed_other_subject():
    a = EmgSynthesizer(GROUPS, seed=5).generate_series(_series(0.3, 0.1), 0.01)
    b = EmgSynthesizer(GROUPS, seed=5).generate_series(_series(0.3, 0.1), 0.01)
    c = EmgSynthesizer(GROUPS, seed=6).generate_series(_series(0.3, 0.1), 0.01)
    assert a.shape == (2000, len(CHANNEL_NAMES))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.std(a, axis=0), np.std(c, axis=0), rtol=0.05)


def test_streaming_generation_equals_the_batch():
    acts = np.random.default_rng(1).random((60, 2))
    s1, s2 = EmgSynthesizer(GROUPS, seed=3), EmgSynthesizer(GROUPS, seed=3)
    np.testing.assert_array_equal(s1.generate_series(acts, 0.01),
                                  np.concatenate([s2.generate(a, 0.01) for a in acts]))


def test_amplitude_follows_the_activation_of_the_channel_group_with_crosstalk():
    rest = EmgSynthesizer(GROUPS, seed=2).generate_series(_series(0.0, 0.0), 0.01)
    ext = EmgSynthesizer(GROUPS, seed=2).generate_series(_series(0.0, 0.5), 0.01)
    rms_rest, rms_ext = np.std(rest[200:], axis=0), np.std(ext[200:], axis=0)
    assert np.all(rms_rest < 2e-5)  # baseline + mains: tens of microvolts at most
    assert np.all(rms_ext[list(EXTENSOR_CHANNELS)] > 5e-5)  # about 0.5 mV x 0.5 activation
    # flexor electrodes see the extensors only through crosstalk: well below the extensor channels
    assert np.max(rms_ext[list(FLEXOR_CHANNELS)]) < np.min(rms_ext[list(EXTENSOR_CHANNELS)])
    # the rectus femoris' neighbour on the posterior side (biceps femoris) picks some of it up
    assert rms_ext[3] > 1.5 * rms_rest[3]


def test_bad_rates_and_unknown_muscles_are_refused():
    with pytest.raises(ValueError, match="sample_rate_hz"):
        EmgSynthesizer(GROUPS, sample_rate_hz=500.0)
    with pytest.raises(ValueError, match="vastus_medialis"):
        EmgSynthesizer(("soleus_r",))


def test_filter_passes_the_emg_band_and_removes_drift_mains_and_high_frequencies():
    fs = 2000.0
    t = np.arange(int(4 * fs)) / fs

    def gain(f_hz: float) -> float:
        x = np.sin(2 * np.pi * f_hz * t)[:, None]
        y = EmgFilter(fs, 1, notch_hz=50.0)(x)
        return float(np.std(y[int(fs):]) / np.std(x[int(fs):]))

    assert gain(100.0) > 0.9
    assert gain(300.0) > 0.9
    assert gain(2.0) < 0.01
    assert gain(50.0) < 0.05
    assert gain(800.0) < 0.05


def test_streaming_filter_equals_filtering_at_once():
    x = np.random.default_rng(0).normal(size=(1000, 3))
    whole = EmgFilter(1000.0, 3)(x)
    f = EmgFilter(1000.0, 3)
    parts = np.concatenate([f(x[i:i + 37]) for i in range(0, 1000, 37)])
    np.testing.assert_allclose(parts, whole, atol=1e-12)


def test_filter_design_names_a_band_that_does_not_fit():
    with pytest.raises(ValueError, match="sample rate"):
        design_filter(30.0)


def test_features_of_known_signals():
    n = 200
    square = np.where(np.arange(n) % 10 < 5, 1e-3, -1e-3)[None, :, None]  # period 10 samples
    f = window_features(square, threshold_v=1e-5)[0]
    mav, rms, wl, zc, ssc = f
    assert mav == pytest.approx(1e-3)
    assert rms == pytest.approx(1e-3)
    assert zc == pytest.approx(39 / n)  # one crossing every 5 samples
    assert wl == pytest.approx(39 * 2e-3 / 199)
    assert ssc == 0.0  # flat runs between the edges: no slope sign change
    zigzag = window_features((1e-3 * (-1.0) ** np.arange(n))[None, :, None], threshold_v=1e-5)[0]
    assert zigzag[3] == pytest.approx((n - 1) / n)
    assert zigzag[4] == pytest.approx((n - 2) / n)
    quiet = window_features(np.full((1, n, 1), 1e-7) * np.sign(np.sin(np.arange(n)))[None, :, None], 1e-5)[0]
    assert quiet[3] == 0.0 and quiet[4] == 0.0  # below the threshold: no ZC, no SSC


def test_frames_do_not_depend_on_how_the_stream_is_cut():
    cfg = FeatureConfig()
    x = np.random.default_rng(4).normal(0, 1e-4, (3000, 8))
    whole = FrameExtractor(cfg, 8).push(x)
    ex = FrameExtractor(cfg, 8)
    cuts = [0, 7, 20, 33, 400, 1009, 2000, 3000]
    parts = np.concatenate([ex.push(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    assert whole.shape == (3000 // cfg.hop, 40)
    np.testing.assert_allclose(parts, whole, rtol=1e-9, atol=1e-15)
