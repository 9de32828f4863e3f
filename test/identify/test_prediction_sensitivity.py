"""scripts/prediction_sensitivity.py: errors along the line from the true to the identified parameters."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from exo.evaluate import subject_seed
from exo.twin.config import load_twin_config
from exo.twin.reflex import NOISY_PARAMETERS


def _load_script(monkeypatch: pytest.MonkeyPatch):
    path = Path(__file__).resolve().parents[2] / "scripts" / "prediction_sensitivity.py"
    spec = importlib.util.spec_from_file_location("prediction_sensitivity_script", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _row(level: int, seed: int) -> dict:
    truth = load_twin_config().spasticity.subject(level, seed)
    params = {n: 1.15 * getattr(truth, n) for n in NOISY_PARAMETERS}
    return {"level": level, "trial": 0, "subject_seed": seed, "truth": asdict(truth), "params": params}


def test_the_truth_predicts_exactly_and_the_identified_parameters_do_not(monkeypatch, tmp_path):
    script = _load_script(monkeypatch)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(_row(2, subject_seed(0, 2, 0))) + "\n")
    out = tmp_path / "out.json"
    assert script.main([str(rows), "--levels", "2", "--fractions", "0", "1", "--replay", "--workers", "1",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    subject = result["subjects"][0]
    assert subject["rms_nm"][0] == 0.0 and subject["rms_nm"][1] > 0.5
    assert subject["median_relative_error"] == pytest.approx([0.0, 0.15])
    # the replay of its own recording: the true parameters reproduce it better than 15 % wrong ones
    assert subject["replay_feature_rms_nm"][0] < subject["replay_feature_rms_nm"][1]
    assert result["summary"]["levels"]["2"]["replay_fit_beats_truth"] == 0.0


def test_a_row_whose_subject_cannot_be_regenerated_is_named(monkeypatch, tmp_path):
    script = _load_script(monkeypatch)
    row = _row(1, 7)
    row["subject_seed"] = 8  # not the seed its truth was drawn with
    with pytest.raises(ValueError, match="level 1 trial 0: the regenerated subject differs"):
        script.along_line(row, (0.0,), True, None)


def test_bad_input_is_refused_with_the_reason(monkeypatch, tmp_path, capsys):
    script = _load_script(monkeypatch)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{not json\n")
    with pytest.raises(SystemExit):
        script.main([str(rows)])
    assert "rows.jsonl:1: not JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "missing.jsonl")])
    assert "no such file" in capsys.readouterr().err
