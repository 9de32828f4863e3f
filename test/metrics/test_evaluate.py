"""End to end: ``exo eval`` on the reduced twin writes a summary recomputable from trials.csv."""

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
from exo.evaluate import EvalConfig, evaluate, subject_seed
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


def test_bad_levels_are_rejected() -> None:
    result = CliRunner().invoke(app, ["eval", "--levels", "0", "5", "--trials", "1"])
    assert result.exit_code != 0
