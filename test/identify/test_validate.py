"""The validation of an identification: the PID trial predicted by a twin, and the person's own repeat floor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from exo.identify.simulate import SensorNoise
from exo.identify.validate import pid_episode, prediction_error, repeat_error
from exo.twin.config import load_twin_config

NOMINAL = load_twin_config().spasticity.levels


def test_the_true_parameters_predict_the_noiseless_trial_exactly_and_wrong_ones_do_not(reduced_twin):
    truth = NOMINAL[2]
    assert prediction_error(truth, truth, reduced_twin).rms_nm == 0.0
    wrong = prediction_error(truth, replace(truth, l_vel=1.5 * truth.l_vel), reduced_twin)
    assert wrong.rms_nm > 0.5 and 0.0 < wrong.rms_lowpass_nm <= wrong.rms_nm


def test_a_second_trial_with_new_sensor_noise_is_the_floor_no_model_beats(reduced_twin):
    truth = NOMINAL[1]
    assert repeat_error(truth, reduced_twin, SensorNoise.none()).rms_nm == 0.0
    floor = repeat_error(truth, reduced_twin, SensorNoise())
    assert floor.rms_nm > 0.0
    # the same noise draws give the same trial: the difference is the noise, nothing else
    a = pid_episode(reduced_twin, truth, SensorNoise(), noise_seed=3)
    b = pid_episode(reduced_twin, truth, SensorNoise(), noise_seed=3)
    assert (a["interaction_torque_nm"] == b["interaction_torque_nm"]).all()
    clean = pid_episode(reduced_twin, truth)
    assert len(clean["time_s"]) == len(a["time_s"]) and (clean["interaction_torque_nm"] != a["interaction_torque_nm"]).any()


def test_sensor_noise_is_checked():
    with pytest.raises(ValueError, match="angle_sd_rad"):
        SensorNoise(angle_sd_rad=-1.0)
