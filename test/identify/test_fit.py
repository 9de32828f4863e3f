"""Identification on the reduced twin (small settings): known parameters recovered, the level, the result."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from identify_helpers import SHORT, relative_error

from exo.identify.fit import IdentifySettings, correlation_factor, identify, load_model_error
from exo.identify.result import IdentificationResult
from exo.identify.simulate import simulate_assessment
from exo.params import ConfigError
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
    # the protocol stretches to 10 deg, the level-1 extension-side threshold: a_ext is seen too
    assert set(result.identified) == {"a_ext_deg", "v_lim_rad_s", "l_vel", "k_vel_s_per_rad"}
    for name, tol in (("v_lim_rad_s", 0.03), ("l_vel", 0.03), ("k_vel_s_per_rad", 0.10)):
        value, true = result.params[name], getattr(truth, name)
        assert relative_error(value, true) < tol, (name, value, true)
        # the level's nominal alone would miss by more than the tolerance: the fit did the work
        assert relative_error(getattr(NOMINAL[1], name), true) > tol
    for name in result.identified:
        # the 95 % interval holds the truth, and is narrower than the generator's (the data inform it)
        lo, hi = result.ci[name]
        assert lo <= getattr(truth, name) <= hi, (name, lo, hi, getattr(truth, name))
        assert hi - lo < 2 * 1.96 * 0.1 * abs(getattr(NOMINAL[1], name)) * 0.5, name
    assert result.residual_nm < 2.0


def test_the_model_error_widens_the_intervals_by_its_root_sum_of_squares(level1, reduced_twin):
    truth, plain = level1
    rec, _ = simulate_assessment(reduced_twin, 1, 1, SHORT, subject=truth)
    wider = identify(rec, settings=IdentifySettings(twin="reduced", workers=1, model_error={1: {"l_vel": 1.0}}))
    assert wider.params == plain.params and wider.ci["v_lim_rad_s"] == plain.ci["v_lim_rad_s"]
    sd = 0.1 * NOMINAL[1].l_vel
    ratio = plain.posterior_sd_ratio["l_vel"]
    lo, hi = wider.ci["l_vel"]
    assert hi - lo == pytest.approx(2 * 1.96 * sd * math.hypot(ratio, 1.0))
    assert (hi - lo) > 5 * (plain.ci["l_vel"][1] - plain.ci["l_vel"][0])


def test_says_what_the_protocol_does_not_identify_and_why(level1):
    _, result = level1
    reasons = result.not_identifiable
    assert set(reasons) == {"a_flex_deg", "l_ang", "k_ang_per_deg"}
    assert re.search(r"threshold at 125 deg knee flexion; the recording reaches 8[34] deg", reasons["a_flex_deg"])
    assert re.search(r"the angle terms stay below 0\.\d+ drive over the recorded range \(1[0-3]-8[34] deg\)",
                     reasons["l_ang"])
    # not identified: the generator's interval at the level, around the nominal
    lo, hi = result.ci["l_ang"]
    assert lo == pytest.approx(0.2 - 1.96 * 0.02) and hi == pytest.approx(0.2 + 1.96 * 0.02)


def test_recovers_a_level2_subject(reduced_twin):
    truth = replace(NOMINAL[2], v_lim_rad_s=0.45, l_vel=0.345)
    rec, _ = simulate_assessment(reduced_twin, 2, 2, SHORT, subject=truth)
    result = identify(rec, twin="reduced", workers=1)
    assert result.mas_level == 2
    for name in ("v_lim_rad_s", "l_vel"):
        assert name in result.identified
        # two repetitions of two speeds on the reduced twin: within 7 %, where the level's nominal misses by > 10 %
        assert relative_error(result.params[name], getattr(truth, name)) < 0.07
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
    with pytest.raises(ValueError, match="restart_sds must be distances > 0"):
        IdentifySettings(restart_sds=())
    with pytest.raises(ValueError, match="restart_sds must be distances > 0"):
        IdentifySettings(restart_sds=(1.0, -2.0))
    with pytest.raises(ValueError, match="twin must be one of"):
        IdentifySettings(twin="myoleg")
    with pytest.raises(ValueError, match="workers"):
        IdentifySettings(workers=0)
    with pytest.raises(ValueError, match="refit_above_nm"):
        IdentifySettings(refit_above_nm=0.0)
    with pytest.raises(ValueError, match="restarts must be >= 0"):
        IdentifySettings(restarts=-1)
    with pytest.raises(ValueError, match="model_error of level 1: l_velocity"):
        IdentifySettings(model_error={1: {"l_velocity": 1.0}})
    with pytest.raises(ValueError, match="model_error of level 3: l_vel = -1"):
        IdentifySettings(model_error={3: {"l_vel": -1.0}})


@pytest.mark.parametrize("text, problem", [
    ("identification: {model_error_sd: {level_1: {l_vel: .nan}}}", "l_vel = nan"),
    ("identification: {model_error_sd: {one: {}}}", "'one' is not level_<L>"),
    ("identification: {}", "model_error_sd"),
    ("identification: {model_error_sd: {level_2: {x: 1}}}", "x = 1.0"),
    ("[1, 2", "identification.model_error_sd"),
])
def test_a_bad_model_error_file_is_an_error_naming_it(tmp_path, text, problem):
    path = tmp_path / "identification.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(problem)) as err:
        load_model_error(path)
    assert str(path) in str(err.value)


def test_the_committed_model_error_loads():
    table = load_model_error()
    assert set(table) == {1, 2, 3}
    assert all(set(per) <= set(NOISY_PARAMETERS) for per in table.values())


def test_correlation_factor_counts_correlated_samples_once():
    rng = np.random.default_rng(0)
    white = [rng.standard_normal(4000) for _ in range(3)]
    assert correlation_factor(white, 5) == pytest.approx(1.0, abs=0.1)
    # AR(1) with rho 0.8: the Bartlett sum up to lag 5 gives 1 + 2 sum (1 - l/6) 0.8^l
    ar = []
    for _ in range(3):
        e = rng.standard_normal(20000)
        x = np.empty_like(e)
        x[0] = e[0]
        for i in range(1, len(e)):
            x[i] = 0.8 * x[i - 1] + 0.6 * e[i]
        ar.append(x)
    expected = 1 + 2 * sum((1 - lag / 6) * 0.8**lag for lag in range(1, 6))
    assert correlation_factor(ar, 5) == pytest.approx(expected, rel=0.05)
    # blocks are not joined: two constant blocks of opposite sign are not anti-correlated
    assert correlation_factor([np.ones(50), -np.ones(50)], 5) > 1.0
    assert correlation_factor(ar, 0) == 1.0 and correlation_factor([np.zeros(10)], 5) == 1.0


def test_a_fit_that_ends_on_a_bound_is_run_again_with_that_parameter_held(monkeypatch):
    """The restarts' logic (the fits they catch are in docs/identification.md, section 4)."""
    import exo.identify.fit as fit_module

    space = fit_module.LevelSpace.of(NOMINAL[1], 0.1, 12.0)
    j = space.names.index("l_ang")
    calls = []
    refit = {"objective": 80.0, "rms": 0.1}

    def fake_fit(sim, space_, settings, z0, frozen):
        calls.append((z0.copy(), frozen.copy()))
        z = np.array(z0, dtype=float)
        if not frozen.any() and not z0.any():
            z[j] = space_.upper[j]  # the first fit runs aground on l_ang's bound
            return fit_module.LevelFit(1, space_.subject(z), z, space_.names, objective=500.0, misfit=356.0,
                                       feature_rms_nm=0.1, residual_nm=4.0)
        return fit_module.LevelFit(1, space_.subject(z), z, space_.names, objective=refit["objective"],
                                   misfit=refit["objective"], feature_rms_nm=refit["rms"], residual_nm=1.0)

    monkeypatch.setattr(fit_module, "_fit_from", fake_fit)
    better = fit_module.fit_level(None, space, IdentifySettings(workers=1))
    assert len(calls) == 2 and not calls[0][1].any() and np.flatnonzero(calls[1][1]).tolist() == [j]
    assert not calls[1][0].any() and better.objective == 80.0 and better.z[j] == 0.0
    # a refit that is worse keeps the first (a person can be far from the nominal)
    calls.clear()
    refit["objective"] = 900.0
    kept = fit_module.fit_level(None, space, IdentifySettings(workers=1))
    assert len(calls) == 2 and kept.objective == 500.0 and kept.z[j] == space.upper[j]
    # a fit inside its bounds is not run again
    assert fit_module.at_bounds(np.zeros(len(space.names)), space).sum() == 0


class _QuadraticSim:
    """A stand-in simulator whose misfit is |z - z_true|^2 (features = the standardised point itself)."""

    def __init__(self, space, z_true):
        from exo.identify.replay import Features

        self.space, self.z_true, self.count = space, np.asarray(z_true, dtype=float), 0
        self.recorded = Features(np.zeros(0), np.zeros((1, len(z_true))))
        self._features = Features

    def map(self, subjects):
        out = []
        for subject in subjects:
            z = np.array([(getattr(subject, n) - m) / s for n, m, s in zip(self.space.names, self.space.mean,
                                                                          self.space.sd, strict=True)])
            self.count += 1
            out.append((self._features(np.zeros(0), (z - self.z_true)[None, :] * 0.5), 0.0))
        return out


def test_a_fit_that_does_not_reproduce_the_recording_restarts_from_the_best_candidates(monkeypatch):
    import exo.identify.fit as fit_module

    space = fit_module.LevelSpace.of(NOMINAL[1], 0.1, 12.0)
    n = len(space.names)
    z_true = np.zeros(n)
    z_true[space.names.index("v_lim_rad_s")] = -2.0
    sim = _QuadraticSim(space, z_true)
    starts = []

    def fake_fit(sim_, space_, settings, z0, frozen):
        starts.append(z0.copy())
        if not z0.any():  # from the nominal: stuck far away, the samples not reproduced
            return fit_module.LevelFit(1, space_.subject(z0), z0, space_.names, objective=1e4, misfit=1e4,
                                       feature_rms_nm=3.0, residual_nm=4.0)
        objective = float(np.sum((z0 - z_true) ** 2) + z0 @ z0)
        return fit_module.LevelFit(1, space_.subject(z0), z0, space_.names, objective=objective, misfit=objective,
                                   feature_rms_nm=0.1, residual_nm=1.0)

    monkeypatch.setattr(fit_module, "_fit_from", fake_fit)
    found = fit_module.fit_level(sim, space, IdentifySettings(workers=1, restarts=2))
    # the nominal, then the best of 4 n candidates (+-1 and +-2 sds) by misfit plus prior penalty (-1 sd: 1 + 1,
    # against 0 + 4 at the truth's -2 sd), which reproduces the recording: no second restart
    assert len(starts) == 2 and sim.count == 4 * n
    assert np.allclose(starts[1], -1.0 * np.eye(n)[space.names.index("v_lim_rad_s")])
    assert np.allclose(found.z, starts[1]) and found.feature_rms_nm == 0.1
    # no restart when the samples are reproduced, or when restarts are off
    starts.clear()
    fit_module.fit_level(sim, space, IdentifySettings(workers=1, restarts=0))
    assert len(starts) == 1

    def never_reproduced(sim_, space_, settings, z0, frozen):
        starts.append(z0.copy())
        objective = 1e4 - len(starts)
        return fit_module.LevelFit(1, space_.subject(z0), z0, space_.names, objective=objective, misfit=objective,
                                   feature_rms_nm=3.0, residual_nm=4.0)

    monkeypatch.setattr(fit_module, "_fit_from", never_reproduced)
    starts.clear()
    found = fit_module.fit_level(sim, space, IdentifySettings(workers=1, restarts=3, restart_sds=(2.0,)))
    assert len(starts) == 4 and found.objective == 1e4 - 4  # every restart tried, the smallest objective kept


def test_a_good_fit_reproduces_its_recording_and_warns_of_nothing(level1):
    _, result = level1
    assert result.reproduces_recording is True and result.reproduce_limit_nm == IdentifySettings().refit_above_nm
    assert result.warnings == [] and json.loads(result.to_json())["warnings"] == []


def test_a_person_who_did_not_stay_relaxed_gets_a_warning_not_a_silent_twin(reduced_twin):
    """Voluntary torque during the passive assessment (+-6 N m at 0.5 Hz): no reflex parameters explain it."""
    from exo.identify.report import format_result

    rec, _ = simulate_assessment(reduced_twin, 1, 1, SHORT, subject=NOMINAL[1])
    voluntary = 6.0 * np.sin(2 * np.pi * 0.5 * rec.time_s)
    result = identify(replace(rec, interaction_torque_nm=rec.interaction_torque_nm + voluntary), twin="reduced",
                      workers=1)
    assert result.reproduces_recording is False
    assert result.residual_lowpass_nm > result.reproduce_limit_nm
    (warning,) = result.warnings
    assert "does not reproduce the recording" in warning and "Repeat the assessment" in warning
    assert f"WARNING: {warning}" in format_result(result)
    back = IdentificationResult.from_dict(json.loads(result.to_json()))
    assert back.reproduces_recording is False and back.warnings == result.warnings
