"""End to end: ``exo eval`` on the reduced twin writes a summary recomputable from trials.csv.

Also the evaluation protocol: trials run their full length through the env's
unsafe state, which is recorded per trial (unsafe_event, unsafe_time_s, ...)
instead of ending the trial; ``terminate_on_unsafe=True`` reproduces the
training env's early stop.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exo.cli.main import app
from exo.control import ControllerSpec
from exo.evaluate import SAFETY_NAMES, EvalConfig, evaluate, safety_events, subject_seed
from exo.metrics import METRIC_NAMES


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    args = ["eval", "--controller", "pid", "--twin", "reduced", "--levels", "0", "2", "--trials", "2",
            "--seed", "7", "--workers", "2", "--max-steps", "200", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_outputs_exist(eval_dir: Path) -> None:
    for name in ("summary.json", "trials.csv", "timeseries.npz", "timeseries.png", "boxplots.png"):
        assert (eval_dir / name).is_file(), name
    with np.load(eval_dir / "timeseries.npz") as data:
        assert data["level2_human_knee_angle_rad"].shape == (2, 201)  # 2 kept trials, reset + 200 steps
        assert data["level0_time_s"][0, 0] == 0.0
        # the env's flags are recorded per sample; level 0 passes the unsafe state and goes on
        assert data["level0_unsafe"].shape == (2, 201) and np.all(np.isfinite(data["level0_unsafe"]))
        assert data["level0_unsafe"].max() == 1.0 and data["level0_unsafe"][:, 0].max() == 0.0


def test_summary_is_recomputable_from_trials_csv(eval_dir: Path) -> None:
    summary = _strict_json(eval_dir / "summary.json")
    with open(eval_dir / "trials.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 4
    assert summary["twin"] == "reduced"
    assert summary["parameters"]["seed"] == 7 and summary["parameters"]["levels"] == [0, 2]
    assert summary["controller"]["name"] == "pid" and summary["controller"]["params"]["kp"] > 0.0
    assert "commit" in summary["git"] and "mujoco" in summary["versions"]
    for level in ("0", "2"):
        level_rows = [r for r in rows if r["level"] == level]
        assert summary["levels"][level]["trials"]["count"] == 2
        assert [int(r["subject_seed"]) for r in level_rows] == [
            subject_seed(7, int(level), t) for t in (0, 1)
        ]
        for metric in METRIC_NAMES:
            values = np.array([float(r[metric]) for r in level_rows])
            finite = values[np.isfinite(values)]
            stats = summary["levels"][level][metric]
            assert stats["count"] == finite.size
            if finite.size == 0:
                assert stats["mean"] is None
                continue
            assert stats["mean"] == pytest.approx(np.mean(finite))
            assert stats["median"] == pytest.approx(np.median(finite))
            expected_std = np.std(finite, ddof=1) if finite.size > 1 else 0.0
            assert stats["std"] == pytest.approx(expected_std)
        settled = np.mean([r["settled"] == "True" for r in level_rows])
        assert summary["levels"][level]["settled"]["fraction"] == pytest.approx(settled)
        unsafe = np.mean([r["unsafe_event"] == "True" for r in level_rows])
        assert summary["levels"][level]["unsafe"]["fraction"] == pytest.approx(unsafe)
        out_of_range = np.mean([float(r["out_of_range_s"]) > 0.0 for r in level_rows])
        assert summary["levels"][level]["out_of_range"]["fraction"] == pytest.approx(out_of_range)
        for name in SAFETY_NAMES:
            values = np.array([float(r[name]) for r in level_rows])
            finite = values[np.isfinite(values)]
            stats = summary["levels"][level][name]
            assert stats["count"] == finite.size
            if finite.size:
                assert stats["mean"] == pytest.approx(np.mean(finite))


def test_trials_run_full_length_and_record_unsafe_events(eval_dir: Path) -> None:
    summary = _strict_json(eval_dir / "summary.json")
    assert summary["protocol"]["terminate_on_unsafe"] is False
    assert summary["protocol"]["safe_range_rad"] == [0.0, 1.57]
    assert summary["protocol"]["interaction_threshold_nm"] == 50.0
    with open(eval_dir / "trials.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        assert int(row["steps"]) == 200 and row["terminated"] == "False"  # nobody is stopped early
        event = row["unsafe_event"] == "True"
        assert math.isfinite(float(row["unsafe_time_s"])) == event
        assert (float(row["unsafe_duration_s"]) > 0.0) == event
        assert float(row["out_of_range_s"]) >= float(row["unsafe_duration_s"])  # unsafe implies out of range
        assert (float(row["max_range_excess_deg"]) > 0.0) == (float(row["out_of_range_s"]) > 0.0)
    # the PID drives the level-0 knee through 0 rad with the strap loaded (the known early stop)
    level0 = [r for r in rows if r["level"] == "0"]
    assert all(r["unsafe_event"] == "True" for r in level0)
    assert all(0.0 < float(r["unsafe_time_s"]) < 1.0 for r in level0)
    assert summary["levels"]["0"]["unsafe"]["fraction"] == 1.0
    assert summary["levels"]["0"]["terminated"]["fraction"] == 0.0


def test_terminate_on_unsafe_reproduces_the_training_stop(eval_dir: Path) -> None:
    with open(eval_dir / "trials.csv", newline="") as stream:
        full = next(r for r in csv.DictReader(stream) if r["level"] == "0")
    spec = ControllerSpec("pid", _strict_json(eval_dir / "summary.json")["controller"]["params"])
    config = EvalConfig(
        twin="reduced", levels=(0,), trials=1, seed=7, workers=1, max_steps=200, terminate_on_unsafe=True
    )
    (trial,) = evaluate(spec, config).trials
    assert trial.terminated and trial.safety.unsafe_event
    # stopped at the first unsafe sample: the same instant the full-length trial recorded
    assert trial.steps * 0.01 == pytest.approx(float(full["unsafe_time_s"]))
    assert trial.safety.unsafe_time_s == pytest.approx(float(full["unsafe_time_s"]))


def test_safety_events_definitions() -> None:
    t = np.arange(6) * 0.01
    angle = np.array([1.5, 1.0, 0.1, -0.02, -0.05, 0.1])
    out = angle < 0.0
    unsafe = np.array([False, False, False, False, True, False])
    events = safety_events(t, angle, out, unsafe, (0.0, 1.57))
    assert events.unsafe_event and events.unsafe_time_s == pytest.approx(0.04)
    assert events.unsafe_duration_s == pytest.approx(0.01) and events.out_of_range_s == pytest.approx(0.02)
    assert events.max_range_excess_deg == pytest.approx(math.degrees(0.05))
    none = safety_events(t, np.full(6, 0.5), np.zeros(6, bool), np.zeros(6, bool), (0.0, 1.57))
    assert not none.unsafe_event and math.isnan(none.unsafe_time_s)
    assert none.unsafe_duration_s == 0.0 and none.out_of_range_s == 0.0 and none.max_range_excess_deg == 0.0


def test_results_do_not_depend_on_workers(eval_dir: Path) -> None:
    summary = _strict_json(eval_dir / "summary.json")
    spec = ControllerSpec("pid", summary["controller"]["params"])
    report = evaluate(
        spec, EvalConfig(twin="reduced", levels=(0, 2), trials=2, seed=7, workers=1, max_steps=200)
    )
    with open(eval_dir / "trials.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    for trial, row in zip(report.trials, rows, strict=True):
        for metric in METRIC_NAMES:
            a, b = getattr(trial.metrics, metric), float(row[metric])
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)
        for name in SAFETY_NAMES:
            a, b = getattr(trial.safety, name), float(row[name])
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)
        assert str(trial.safety.unsafe_event) == row["unsafe_event"]


def test_bad_levels_are_rejected() -> None:
    result = CliRunner().invoke(app, ["eval", "--levels", "0", "5", "--trials", "1"])
    assert result.exit_code != 0
