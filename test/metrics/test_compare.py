"""``exo compare``: per-level % changes between two real ``exo eval`` outputs, recomputable by hand."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exo.cli.main import app
from exo.compare import CompareError, compare, load_evaluation


def _eval(out: Path, *extra: str) -> Path:
    args = ["eval", "--twin", "reduced", "--levels", "1", "3", "--trials", "3", "--seed", "3",
            "--workers", "1", "--max-steps", "150", "--out", str(out), *extra]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    pid = _eval(root / "pid", "--controller", "pid")
    soft = _eval(root / "soft", "--controller", "pid", "-p", "kp=150", "-p", "ki=500")
    return pid, soft


def _column(folder: Path, level: int, key: str) -> np.ndarray:
    with (folder / "trials.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["level"]) == level]
    values = np.array([float(r[key]) for r in rows])
    return values[np.isfinite(values)]


def test_changes_match_the_trials_by_hand(evals: tuple[Path, Path], tmp_path: Path) -> None:
    pid, soft = evals
    result = CliRunner().invoke(app, ["compare", str(pid), str(soft), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert set(doc["levels"]) == {"1", "3"}
    for level in (1, 3):
        for key in ("peak_torque_nm", "rms_torque_nm", "final_error_deg"):
            a, b = _column(pid, level, key), _column(soft, level, key)
            expected = 100.0 * (b.mean() - a.mean()) / abs(a.mean())
            entry = doc["levels"][str(level)][key]
            assert entry["change_pct"] == pytest.approx(expected, rel=1e-9)
            lo, hi = entry["ci95_pct"]
            assert lo <= entry["change_pct"] <= hi
    # the softer PID really is softer: lower peak torque at level 1
    assert doc["levels"]["1"]["peak_torque_nm"]["change_pct"] < 0
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert "| 1 | peak interaction torque" in (tmp_path / "compare.md").read_text()


def test_a_comparison_with_itself_is_zero(evals: tuple[Path, Path]) -> None:
    pid, _ = evals
    comp = compare(load_evaluation(pid), load_evaluation(pid))
    assert comp.levels
    for changes in comp.levels.values():
        # the torques are never zero: their change is a number, and it is 0 (a NaN would pass silently)
        assert changes["peak_torque_nm"].change_pct == 0.0 and changes["rms_torque_nm"].change_pct == 0.0
        for c in changes.values():
            assert c.change_pct == 0.0 or np.isnan(c.change_pct)  # NaN only where the metric itself is 0


def test_bad_folders_are_named(evals: tuple[Path, Path], tmp_path: Path) -> None:
    pid, _ = evals
    with pytest.raises(CompareError, match="no summary.json"):
        load_evaluation(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(pid, broken)
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(CompareError, match="not valid JSON"):
        load_evaluation(broken)
    result = CliRunner().invoke(app, ["compare", str(pid), str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no summary.json" in result.output
