"""The hand-tuned frontier (exo.frontier): Pareto sets, interpolation, margins, bootstrap verdicts; one tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from exo.frontier import (
    Target,
    bootstrap_margins,
    dominators,
    frontier_margins,
    frontier_x_at_y,
    frontier_y_at_x,
    hypervolume,
    judge,
    pareto_indices,
    target_for_level,
    weighted_means,
)

# hand-tuned configurations: (mean peak N m, mean final error deg)
PEAK_NM = np.array([100.0, 80.0, 60.0, 90.0, 70.0, 80.0, np.nan])
ERROR_DEG = np.array([1.0, 4.0, 10.0, 5.0, 12.0, 4.0, 0.5])


def test_pareto_set_drops_dominated_duplicates_and_nan():
    idx = pareto_indices(PEAK_NM, ERROR_DEG)
    # (90, 5) is dominated by (80, 4); (70, 12) by (60, 10); the second (80, 4) duplicates the first; NaN ignored
    assert idx.tolist() == [2, 1, 0]
    assert np.all(np.diff(PEAK_NM[idx]) > 0) and np.all(np.diff(ERROR_DEG[idx]) < 0)


def test_pareto_set_ties_in_one_coordinate():
    # equal x: only the lower y survives; equal y: only the lower x
    assert pareto_indices([1.0, 1.0, 2.0], [3.0, 2.0, 2.0]).tolist() == [1]
    assert pareto_indices([5.0], [5.0]).tolist() == [0]
    assert pareto_indices([np.nan], [1.0]).tolist() == []


def test_interpolation_inside_and_nearest_end_outside():
    fx, fy = np.array([60.0, 80.0, 100.0]), np.array([10.0, 4.0, 1.0])
    assert frontier_x_at_y(fx, fy, 7.0) == (pytest.approx(70.0), "inside")  # halfway between (60, 10) and (80, 4)
    assert frontier_x_at_y(fx, fy, 2.5) == (pytest.approx(90.0), "inside")
    assert frontier_x_at_y(fx, fy, 0.2) == (100.0, "below")  # more accurate than any config: the most accurate end
    assert frontier_x_at_y(fx, fy, 30.0) == (60.0, "above")
    assert frontier_y_at_x(fx, fy, 70.0) == (pytest.approx(7.0), "inside")
    assert frontier_y_at_x(fx, fy, 50.0) == (10.0, "below")
    assert frontier_y_at_x(fx, fy, 120.0) == (1.0, "above")
    assert frontier_x_at_y(np.array([75.0]), np.array([3.0]), 3.0) == (75.0, "inside")


def test_margins_of_a_point_inside_and_on_the_frontier():
    m = frontier_margins(PEAK_NM, ERROR_DEG, 60.0, 4.0)
    assert m.frontier_x_at_policy_y == pytest.approx(80.0) and m.x_margin == pytest.approx(0.25)
    assert m.frontier_y_at_policy_x == pytest.approx(10.0) and m.y_margin_deg == pytest.approx(6.0)
    on = frontier_margins(PEAK_NM, ERROR_DEG, 80.0, 4.0)
    assert on.x_margin == pytest.approx(0.0) and on.y_margin_deg == pytest.approx(0.0)
    worse = frontier_margins(PEAK_NM, ERROR_DEG, 100.0, 10.0)
    assert worse.x_margin < 0 and worse.y_margin_deg < 0


def _subjects(means: np.ndarray, sd: float, n: int, seed: int) -> np.ndarray:
    """Per-subject values (n_configs, n) around ``means`` with noise ``sd``."""
    rng = np.random.default_rng(seed)
    return np.asarray(means, dtype=float)[:, None] + sd * rng.standard_normal((len(means), n))


def test_bootstrap_inside_by_peak():
    n = 60
    cx, cy = _subjects(PEAK_NM[:6], 1.0, n, 1), _subjects(ERROR_DEG[:6], 0.2, n, 2)
    px, py = _subjects([60.0], 1.0, n, 3)[0], _subjects([4.0], 0.2, n, 4)[0]
    bm = bootstrap_margins(cx, cy, px, py, resamples=400, seed=0)
    assert bm.x_margin.low > 0.15 and bm.x_margin.low <= bm.x_margin.value <= bm.x_margin.high
    v = judge(bm, Target(peak_fraction=0.10, error_deg=1.0))
    assert v.inside and v.peak_test and v.error_test


def test_bootstrap_on_the_frontier_is_not_inside():
    n = 60
    cx, cy = _subjects(PEAK_NM[:6], 1.0, n, 1), _subjects(ERROR_DEG[:6], 0.2, n, 2)
    # the policy is configuration 1 itself (80 N m, 4 deg): margins around 0, CI straddles or sits below 0
    bm = bootstrap_margins(cx, cy, cx[1], cy[1], resamples=400, seed=0)
    assert bm.x_margin.low <= 0.0 and bm.y_margin_deg.low <= 0.0
    assert not judge(bm, target_for_level(1)).inside


def test_ci_direction_and_a_noisy_margin_that_meets_the_size_but_not_the_interval():
    n = 12
    cx, cy = _subjects(PEAK_NM[:6], 0.5, n, 1), _subjects(ERROR_DEG[:6], 0.1, n, 2)
    # a worse policy: both margins negative, intervals below 0
    worse = bootstrap_margins(cx, cy, np.full(n, 100.0), np.full(n, 10.0), resamples=400, seed=0)
    assert worse.x_margin.high < 0 and worse.y_margin_deg.high < 0
    assert not judge(worse, target_for_level(0)).inside
    # mean peak 68 N m at 4 deg (15 % below the frontier's 80) but subjects spread +-60 N m: interval includes 0
    spread = np.where(np.arange(n) % 2 == 0, 8.0, 128.0)
    noisy = bootstrap_margins(cx, cy, spread, np.full(n, 4.0), resamples=400, seed=0)
    assert noisy.x_margin.value >= 0.10 and noisy.x_margin.low < 0.0
    v = judge(noisy, Target(peak_fraction=0.10, error_deg=100.0))
    assert not v.inside and not v.peak_test


def test_level_targets_and_error_test_alone():
    assert target_for_level(0) == Target(0.10, 1.0) and target_for_level(3) == Target(0.10, 2.0)
    n = 40
    cx, cy = _subjects(PEAK_NM[:6], 0.5, n, 1), _subjects(ERROR_DEG[:6], 0.1, n, 2)
    # at 70 N m with 5.5 deg: 1.5 deg below the frontier's 7 deg; at 5.5 deg the frontier's peak is 75 N m (6.7 %)
    bm = bootstrap_margins(cx, cy, _subjects([70.0], 0.5, n, 5)[0], _subjects([5.5], 0.1, n, 6)[0],
                           resamples=400, seed=0)
    assert bm.y_margin_deg.value == pytest.approx(1.5, abs=0.1) and bm.x_margin.value < 0.10
    assert judge(bm, target_for_level(2)).inside  # 1.5 >= 1 deg
    assert not judge(bm, target_for_level(3)).inside  # 1.5 < 2 deg, and the peak margin is < 10 %


def test_bootstrap_is_seeded_and_paired():
    n = 20
    cx, cy = _subjects(PEAK_NM[:6], 2.0, n, 1), _subjects(ERROR_DEG[:6], 0.5, n, 2)
    a = bootstrap_margins(cx, cy, cx[2] - 5, cy[2] - 1, resamples=200, seed=7)
    b = bootstrap_margins(cx, cy, cx[2] - 5, cy[2] - 1, resamples=200, seed=7)
    assert a == b
    # paired: a policy equal to config 2 minus constants has a degenerate interval on the error margin at its peak
    # when its peak is far below the frontier's range (nearest end = config 2's error)
    assert a.y_margin_deg.low == pytest.approx(1.0) and a.y_margin_deg.high == pytest.approx(1.0)


def test_weighted_means_skip_non_finite():
    w = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    assert weighted_means(np.array([1.0, np.nan, 3.0]), w).tolist() == [1.0, 3.0]


def test_dominators_and_hypervolume():
    assert dominators(PEAK_NM, ERROR_DEG, 85.0, 4.5).tolist() == [1, 5]
    assert dominators(PEAK_NM, ERROR_DEG, 80.0, 4.0).tolist() == []  # equal is not dominating
    assert hypervolume([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], 4.0, 4.0) == pytest.approx(7.0)
    assert hypervolume([5.0], [5.0], 4.0, 4.0) == 0.0


def _load_script(monkeypatch: pytest.MonkeyPatch):
    path = Path(__file__).resolve().parents[1] / "scripts" / "frontier.py"
    spec = importlib.util.spec_from_file_location("frontier_script", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_script_end_to_end_on_the_reduced_twin(tmp_path, monkeypatch):
    script = _load_script(monkeypatch)
    out = tmp_path / "trials.jsonl"
    argv = ["--twin", "reduced", "--levels", "1", "--subjects", "1", "--caps-nm", "70", "--velocities-rad-s",
            "--policies", "sac-residual-limited-reduced", "--policy-caps-nm", "100", "--resamples", "20",
            "--no-plots", "--out", str(out)]
    doc = script.main(argv)  # ~0.5 s
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["config"] for x in lines) == ["pid@70", "sac-residual-limited-reduced@100"]
    assert all(x["subject"] == 0 and x["level"] == 1 and math.isfinite(x["peak_torque_nm"]) for x in lines)
    level = doc["levels"]["1"]
    assert level["subjects"] == 1 and level["frontier_peak"] == ["pid@70"]
    assert "inside" in level["policies"]["sac-residual-limited-reduced@100"]["verdict"]
    assert (tmp_path / "summary.md").read_text().startswith("# Hand-tuned frontier")
    # resumable: a second run adds nothing; a torn last line is dropped and re-run
    script.main(argv)
    assert len(out.read_text().splitlines()) == 2
    out.write_text(out.read_text() + '{"config": "pid@7')
    script.main(argv)
    assert len(out.read_text().splitlines()) == 2


def test_the_strap_play_adds_named_reference_configurations(monkeypatch):
    script = _load_script(monkeypatch)
    configs = script.build_configs([60.0, 70.0], [0.5], [], [], strap_play_rad=[0.0, 0.028])
    names = [c.name for c in configs]
    assert names == ["pid@60", "pid@70", "reference_pid@60/v0.5", "reference_pid@70/v0.5",
                     "reference_pid@60/v0.5/p0.028", "reference_pid@70/v0.5/p0.028"]
    played = configs[-1]
    assert played.kind == "reference_pid" and played.strap_play_rad == 0.028
    assert played.params["strap_play_rad"] == 0.028 and configs[2].params["strap_play_rad"] == 0.0
