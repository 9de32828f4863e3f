"""The README's learning and evaluation commands through the installed command: `exo train` ->
`exo select-checkpoint` -> `exo export-policy --which selected` -> `exo eval --controller sac --policy ...`,
and `exo compare` of the PID with the committed `models/sac-reduced`.

test/learn and test/metrics run the same commands in-process (typer's CliRunner); here they run as a user
runs them, each in a fresh process, with the smallest settings: a 300-transition training run (a few seconds),
one subject per level for the selection, 150 control steps per evaluated trial. The numbers are checked for
consistency between the files the commands write, not for the quality of a policy.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = {"batch_size": 64, "learning_starts": 100, "train_freq": 16, "eval_every_steps": 100000,
        "checkpoint_every_steps": 200, "eval_trials_per_level": 1}
EVAL = ["--trials", "2", "--levels", "1", "3", "--workers", "1", "--max-steps", "150"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_exo_train_select_checkpoint_export_policy_and_eval_the_exported_policy(exo, tmp_path: Path):
    run = tmp_path / "train" / "sac"
    args = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    result = exo("train", "--algo", "sac", "--twin", "reduced", "--steps", "300", "--seed", "0", "--out", str(run),
                 "--no-progress", *args, timeout=300)
    assert result.code == 0, result
    meta = json.loads((run / "run.json").read_text())
    assert (meta["algo"], meta["twin"], meta["seed"], meta["steps"]) == ("sac", "reduced", 0, 300)
    assert meta["config"]["batch_size"] == 64 and meta["config"]["checkpoint_every_steps"] == 200
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("model_*.zip"))
    assert checkpoints[0] == "model_000000200.zip" and len(checkpoints) == 2  # 200 and the end (>= 300)
    assert (run / "final" / "model.zip").is_file() and _rows(run / "progress.csv")

    result = exo("select-checkpoint", str(run), "--trials", "1", timeout=300)
    assert result.code == 0, result
    selection = json.loads((run / "selection.json").read_text())
    assert selection["trials_per_level"] == 1 and len(selection["models"]) == len(checkpoints)
    assert selection["selected"]["shortfall"] == min(m["shortfall"] for m in selection["models"])
    assert {int(k) for k in selection["pid"]["per_level"]} == {0, 1, 2, 3}
    assert f"selected {selection['selected']['model']}" in result.text, result

    policy = tmp_path / "models" / "sac-tiny"
    result = exo("export-policy", str(run), "--out", str(policy), "--which", "selected", "--no-evaluate")
    assert result.code == 0, result
    # numpy, ONNX and TorchScript policies + the JSON card, which names the selected checkpoint
    for name in ("policy.npz", "policy.onnx", "policy.pt", "policy.json"):
        assert (policy / name).stat().st_size > 0, name
    card = json.loads((policy / "policy.json").read_text())
    assert card["training"]["which"] == "selected" and card["training"]["steps"] == selection["selected"]["steps"]
    assert Path(card["training"]["model"]).name == Path(selection["selected"]["model"]).name
    # the three formats agree with the torch actor (the export's own check, printed and in the card)
    assert "max |action - torch| on 1000 random observations" in result.text, result

    out = tmp_path / "eval" / "sac-tiny"
    result = exo("eval", "--controller", "sac", "--policy", str(policy), *EVAL, "--out", str(out))
    assert result.code == 0, result
    summary = json.loads((out / "summary.json").read_text())
    assert summary["controller"]["name"] == "sac"
    assert Path(summary["controller"]["params"]["policy"]).resolve() == (policy / "policy.npz").resolve()
    trials = _rows(out / "trials.csv")
    assert sorted((int(r["level"]), int(r["trial"])) for r in trials) == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert all(int(r["steps"]) == 150 and math.isfinite(float(r["peak_torque_nm"])) for r in trials)


@pytest.fixture(scope="module")
def evals(exo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`exo eval` of the PID and of the committed models/sac-reduced on the same subjects."""
    root = tmp_path_factory.mktemp("eval")
    folders = []
    for name, extra in (("pid", ["--controller", "pid"]),
                        ("sac", ["--controller", "sac", "--policy", "models/sac-reduced"])):
        result = exo("eval", *extra, *EVAL, "--out", str(root / name))
        assert result.code == 0, result
        folders.append(root / name)
    return folders[0], folders[1]


def test_exo_eval_of_the_committed_sac_policy_and_exo_compare_with_the_pid(exo, evals, tmp_path: Path):
    pid, sac = evals
    summary = json.loads((sac / "summary.json").read_text())
    assert summary["controller"]["name"] == "sac"
    assert Path(summary["controller"]["params"]["policy"]).resolve() == (REPO / "models" / "sac-reduced" /
                                                                       "policy.npz").resolve()
    # the same generated subjects for both controllers
    seeds = [[(r["level"], r["trial"], r["subject_seed"]) for r in _rows(f / "trials.csv")] for f in evals]
    assert sorted(seeds[0]) == sorted(seeds[1]) and len(seeds[0]) == 4

    out = tmp_path / "compare"
    result = exo("compare", str(pid), str(sac), "--out", str(out))
    assert result.code == 0, result
    doc = json.loads((out / "compare.json").read_text())
    assert set(doc["levels"]) == {"1", "3"}
    for level in ("1", "3"):
        for key in ("peak_torque_nm", "rms_torque_nm", "final_error_deg"):
            means = []
            for folder in evals:
                values = np.array([float(r[key]) for r in _rows(folder / "trials.csv") if r["level"] == level])
                means.append(values[np.isfinite(values)].mean())
            entry = doc["levels"][level][key]
            assert entry["baseline_mean"] == pytest.approx(means[0]) and entry["candidate_mean"] == pytest.approx(
                means[1])
            assert entry["change_pct"] == pytest.approx(100.0 * (means[1] - means[0]) / abs(means[0]))
            low, high = entry["ci95_pct"]
            assert low <= entry["change_pct"] <= high, (level, key, entry)
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "compare.md").read_text()
    assert "| 1 | peak interaction torque" in table and "| 3 | peak interaction torque" in table
