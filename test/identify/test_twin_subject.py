"""The twins' ``reset(..., subject=)`` hook: given reflex parameters instead of a generated subject."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest


def _run(twin, steps: int = 60, **reset) -> np.ndarray:
    twin.reset(**reset)
    out = []
    for k in range(steps):
        st = twin.step(-30.0 if k < 30 else 10.0)
        out.append((st.human_knee_angle_rad, st.measurements.interaction_torque_nm, st.spasticity_coefficient))
    return np.array(out)


def test_a_given_subject_runs_exactly_like_the_generated_one(reduced_twin):
    generated = _run(reduced_twin, level=2, seed=11, initial_knee_angle_rad=1.2)
    params = reduced_twin.subject
    given = _run(reduced_twin, level=2, seed=None, initial_knee_angle_rad=1.2, subject=params)
    assert reduced_twin.subject == params
    np.testing.assert_array_equal(given, generated)


def test_other_parameters_change_the_run_and_the_level_must_match(reduced_twin):
    base = _run(reduced_twin, level=3, seed=4, initial_knee_angle_rad=1.2)
    params = reduced_twin.subject
    stronger = _run(reduced_twin, level=3, initial_knee_angle_rad=1.2, subject=replace(params, l_vel=params.l_vel * 1.5))
    assert np.max(np.abs(stronger[:, 2] - base[:, 2])) > 0.05
    with pytest.raises(ValueError, match="level 3, not of the requested level 1"):
        reduced_twin.reset(1, subject=params)


def test_without_subject_reset_is_unchanged(reduced_twin):
    from exo.twin.config import load_twin_config

    reduced_twin.reset(1, seed=5)
    assert reduced_twin.subject == load_twin_config().spasticity.subject(1, 5)
