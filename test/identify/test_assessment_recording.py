"""Assessment recordings: simulated, saved, written as a bag and read back; bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from identify_helpers import SHORT, write_assessment_bag

from exo.identify.recording import AssessmentRecording, RecordingError
from exo.identify.simulate import SensorNoise, simulate_assessment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorded(reduced_twin):
    return simulate_assessment(reduced_twin, 2, 7, SHORT)


def test_simulation_follows_the_protocol_and_hides_the_truth(recorded, reduced_twin):
    rec, truth = recorded
    from exo.twin.config import load_twin_config

    assert truth == load_twin_config().spasticity.subject(2, 7)
    assert rec.n == int(round(SHORT.duration_s / 0.01)) + 1
    assert rec.time_s[0] == 0.0 and rec.time_s[-1] == pytest.approx(SHORT.duration_s, abs=0.01)
    assert rec.protocol == SHORT
    assert "truth" not in rec.metadata and "l_vel" not in str(rec.metadata)
    # the exo moved the knee through the protocol's range with bounded torque
    assert rec.angle_rad.max() > 1.4 and rec.angle_rad.min() < 0.9
    assert np.abs(rec.motor_torque_nm).max() <= 70.0 + 1.0
    # applied torque in the joint_states convention: sample k + 1 holds the command answering sample k
    assert rec.motor_torque_nm[0] == pytest.approx(0.0, abs=1.0)


def test_sensor_noise_is_added_with_the_stated_sizes(reduced_twin):
    exact, _ = simulate_assessment(reduced_twin, 1, 3, SHORT, SensorNoise.none())
    noisy, _ = simulate_assessment(reduced_twin, 1, 3, SHORT, SensorNoise(0.0, 0.0, 0.0, 2.0))
    # only the recorded interaction torque differs (the controller does not read it)
    np.testing.assert_array_equal(noisy.angle_rad, exact.angle_rad)
    d = noisy.interaction_torque_nm - exact.interaction_torque_nm
    assert 1.7 < np.std(d) < 2.3 and abs(np.mean(d)) < 0.3
    with pytest.raises(ValueError, match="angle_sd_rad"):
        SensorNoise(angle_sd_rad=-1.0)


def test_npz_round_trip(recorded, tmp_path: Path):
    rec, _ = recorded
    back = AssessmentRecording.load_npz(rec.save_npz(tmp_path / "r.npz"))
    for name in ("time_s", "angle_rad", "velocity_rad_s", "motor_torque_nm", "interaction_torque_nm"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name))
    assert back.protocol == rec.protocol and back.metadata == rec.metadata


def test_bag_round_trip_aligns_the_protocol_start(recorded, tmp_path: Path):
    rec, _ = recorded
    bag = write_assessment_bag(rec, tmp_path / "assess", namespace="/exo_test", t_offset_s=3.0)
    back = AssessmentRecording.from_bag(bag)
    assert back.n == rec.n
    np.testing.assert_allclose(back.time_s, rec.time_s, atol=1e-9)
    for name in ("angle_rad", "velocity_rad_s", "motor_torque_nm", "interaction_torque_nm"):
        np.testing.assert_allclose(getattr(back, name), getattr(rec, name), atol=1e-12)
    assert back.protocol == SHORT
    assert back.metadata["controller"] == "assessment" and back.source == str(bag)


def test_a_few_lost_samples_are_filled_and_a_long_gap_is_an_error(recorded, tmp_path: Path):
    rec, _ = recorded
    back = AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "ok", drop_joint=(300, 301, 302)))
    assert back.n == rec.n
    np.testing.assert_allclose(back.angle_rad[300:303], rec.angle_rad[300:303], atol=0.01)
    assert back.angle_rad[301] == pytest.approx(0.5 * (rec.angle_rad[299] + rec.angle_rad[303]))
    with pytest.raises(RecordingError, match="10 consecutive joint_states samples are missing from t = 3.00 s"):
        AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "gap", drop_joint=tuple(range(300, 310))))
    with pytest.raises(RecordingError, match="no interaction/shank or interaction/thigh"):
        AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "noint",
                                                          skip_topics=("interaction/shank", "interaction/thigh")))


def test_a_recording_that_lost_its_first_samples_starts_later_within_the_settling_hold(recorded, tmp_path: Path):
    """A recorder that matched joint_states after the first command: the lost start of the settling hold is
    cropped (time still from the first command); a loss reaching into the stretches is an error."""
    rec, _ = recorded
    back = AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "late", drop_joint=tuple(range(30))))
    assert back.n == rec.n - 30 and back.time_s[0] == pytest.approx(0.30)
    np.testing.assert_allclose(back.time_s, rec.time_s[30:], atol=1e-9)
    np.testing.assert_allclose(back.angle_rad, rec.angle_rad[30:], atol=1e-12)
    assert back.metadata["cropped_start_s"] == "0.30"
    assert "cropped_start_s" not in AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "all")).metadata
    with pytest.raises(RecordingError, match=r"lacks the first 0.60 s of the assessment .* at most 0.50 s"):
        AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "later", drop_joint=tuple(range(60))))


def test_bad_bags_give_one_clear_error(recorded, tmp_path: Path):
    rec, _ = recorded
    with pytest.raises(RecordingError, match="not an assessment recording: the session's controller is 'pid'"):
        AssessmentRecording.from_bag(REPO / "bags" / "sim_level0_pid")
    with pytest.raises(RecordingError, match="joint_states holds NaN"):
        AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "nan", nan_at=200))
    with pytest.raises(RecordingError, match="no torque_command"):
        AssessmentRecording.from_bag(write_assessment_bag(rec, tmp_path / "nocmd", skip_topics=("torque_command",)))
    with pytest.raises(FileNotFoundError):
        AssessmentRecording.from_bag(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordingError, match="not a bag"):
        AssessmentRecording.from_bag(empty)


def test_recording_checks_its_arrays(recorded):
    rec, _ = recorded
    bad = rec.interaction_torque_nm.copy()
    bad[50] = math.nan
    with pytest.raises(RecordingError, match="interaction_torque_nm holds 1 NaN"):
        AssessmentRecording(rec.time_s, rec.angle_rad, rec.velocity_rad_s, rec.motor_torque_nm, bad)
    with pytest.raises(RecordingError, match="shape"):
        AssessmentRecording(rec.time_s, rec.angle_rad[:-1], rec.velocity_rad_s, rec.motor_torque_nm, bad)
    with pytest.raises(RecordingError, match="not 10 ms apart"):
        AssessmentRecording(rec.time_s * 2, rec.angle_rad, rec.velocity_rad_s, rec.motor_torque_nm,
                            rec.interaction_torque_nm)
