"""The replay the fit is built on: it reproduces a recording with the true parameters, deterministically."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from identify_helpers import SHORT

from exo.identify.recording import AssessmentRecording, RecordingError
from exo.identify.replay import Replay
from exo.identify.simulate import SensorNoise, simulate_assessment


@pytest.fixture(scope="module")
def level1(reduced_twin):
    rec, truth = simulate_assessment(reduced_twin, 1, 4, SHORT, SensorNoise.none())
    return rec, truth, Replay(rec, reduced_twin)


def test_true_parameters_reproduce_the_recording_and_wrong_ones_do_not(level1):
    rec, truth, replay = level1
    feats, rms = replay.evaluate(truth)
    diff = feats.averaged() - replay.recorded.averaged()
    assert rms < 0.5 and np.sqrt(np.mean(diff**2)) < 0.2
    wrong, wrong_rms = replay.evaluate(replace(truth, l_vel=truth.l_vel * 1.2))
    assert np.sqrt(np.mean((wrong.averaged() - replay.recorded.averaged()) ** 2)) > 5 * np.sqrt(np.mean(diff**2))
    assert wrong_rms > rms


def test_replay_is_deterministic(level1):
    _, truth, replay = level1
    a, _ = replay.simulate(truth)
    b, _ = replay.simulate(truth)
    np.testing.assert_array_equal(a, b)
    assert replay.recorded.reps.shape == (SHORT.repetitions, 2 * replay.layout.per_repetition)


def test_a_recording_shorter_than_one_repetition_is_refused(level1):
    rec, _, replay = level1
    cut = slice(0, 300)
    short = AssessmentRecording(rec.time_s[cut], rec.angle_rad[cut], rec.velocity_rad_s[cut], rec.motor_torque_nm[cut],
                                rec.interaction_torque_nm[cut], rec.protocol, source="cut")
    with pytest.raises(RecordingError, match="do not hold one complete repetition"):
        Replay(short, replay.twin)
