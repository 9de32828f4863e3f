"""Identification on the reduced twin (small settings): known parameters recovered, the level, the result."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from identify_helpers import SHORT, relative_error

from exo.identify.fit import IdentifySettings, identify
from exo.identify.result import IdentificationResult
from exo.identify.simulate import simulate_assessment
from exo.twin.config import load_twin_config
from exo.twin.reflex import NOISY_PARAMETERS

NOMINAL = load_twin_config().spasticity.levels


@pytest.fixture(scope="module")
def level1(reduced_twin):
    """A level-1 subject 1.5-2 sds away from the nominal in the parameters the protocol excites."""
    truth = replace(NOMINAL[1], v_lim_rad_s=1.15, l_vel=0.17, k_vel_s_per_rad=6.0)
    rec, _ = simulate_assessment(reduced_twin, 1, 1, SHORT, subject=truth)
    return truth, identify(rec, twin="reduced", workers=1)


def test_recovers_the_excited_parameters_of_a_level1_subject(level1):
    truth, result = level1
    assert result.mas_level == 1
    assert set(result.identified) == {"v_lim_rad_s", "l_vel", "k_vel_s_per_rad"}
    for name, tol in (("v_lim_rad_s", 0.03), ("l_vel", 0.03), ("k_vel_s_per_rad", 0.10)):
        value, true = result.params[name], getattr(truth, name)
        assert relative_error(value, true) < tol, (name, value, true)
        # the level's nominal alone would miss by more than the tolerance: the fit did the work
        assert relative_error(getattr(NOMINAL[1], name), true) > tol
    # the bootstrap over two repetitions is narrow (it misses model bias): within 2 % of the truth
    lo, hi = result.ci["l_vel"]
    assert lo <= result.params["l_vel"] <= hi and hi - lo < 0.02
    assert 0.98 * lo <= truth.l_vel <= 1.02 * hi
    assert result.residual_nm < 2.0


def test_says_what_the_protocol_does_not_identify_and_why(level1):
    _, result = level1
    reasons = result.not_identifiable
    assert set(reasons) == {"a_flex_deg", "a_ext_deg", "l_ang", "k_ang_per_deg"}
    assert re.search(r"threshold at 1[01] deg knee flexion; the recording extends to 2[01] deg", reasons["a_ext_deg"])
    # not identified: the generator's interval at the level, around the nominal
    lo, hi = result.ci["a_ext_deg"]
    assert lo == pytest.approx(80.0 - 1.96 * 8.0) and hi == pytest.approx(80.0 + 1.96 * 8.0)


def test_recovers_a_level2_subject(reduced_twin):
    truth = replace(NOMINAL[2], v_lim_rad_s=0.45, l_vel=0.345)
    rec, _ = simulate_assessment(reduced_twin, 2, 2, SHORT, subject=truth)
    result = identify(rec, twin="reduced", workers=1)
    assert result.mas_level == 2
    for name in ("v_lim_rad_s", "l_vel"):
        assert name in result.identified
        assert relative_error(result.params[name], getattr(truth, name)) < 0.05
        assert relative_error(getattr(NOMINAL[2], name), getattr(truth, name)) > 0.1


@pytest.mark.parametrize("level", [0, 3])
def test_level_of_generated_subjects(reduced_twin, level):
    rec, _ = simulate_assessment(reduced_twin, level, 5, SHORT)
    result = identify(rec, twin="reduced", workers=1)
    assert result.mas_level == level
    scores = result.level_scores
    assert min(scores, key=lambda lv: scores[lv]["screening_misfit"]) == level
    if level == 0:
        assert result.params["l_ang"] == result.params["l_vel"] == 0.0
        assert set(result.not_identifiable) == set(NOISY_PARAMETERS) - {"l_ang", "l_vel"}
        assert all("no effect at level 0" in why for why in result.not_identifiable.values())


def test_result_json_has_the_promised_shape(level1):
    _, result = level1
    data = json.loads(result.to_json())
    for key in ("mas_level", "params", "ci", "residual_nm", "not_identifiable", "identified", "level_scores"):
        assert key in data
    assert set(data["params"]) == set(NOISY_PARAMETERS) == set(data["ci"])
    assert set(data["not_identifiable"]) <= set(NOISY_PARAMETERS)
    assert IdentificationResult.from_dict(data).subject() == result.subject()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="twin must be one of"):
        IdentifySettings(twin="myoleg")
    with pytest.raises(ValueError, match="workers"):
        IdentifySettings(workers=0)
