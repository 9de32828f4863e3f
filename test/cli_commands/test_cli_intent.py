"""`exo train-intent` and `exo eval-intent` through the installed command.

The README's `exo train-intent --out models/intent/lstm-reduced --seed 0` (48+8+16 subjects of
60 s, 40 epochs) takes minutes; here it runs with the smallest settings its --help allows (4
subjects per split, 20 s sessions, 1 epoch, 4 LSTM units: about 8 s), which checks the pipeline
and its outputs, not the model's quality. The committed model's quality is checked with
`exo eval-intent` on 4 held-out subjects.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from exo.intent.drive import CLASSES
from exo.intent.emg_synth import CHANNEL_NAMES

REPO = Path(__file__).resolve().parents[2]
TINY = ["--train-subjects", "4", "--val-subjects", "4", "--test-subjects", "4", "--duration", "20",
        "--epochs", "1", "--hidden", "4"]
METRICS = ("accuracy", "macro_f1", "velocity_rmse_rad_s", "onset_delay_median_s", "onset_delay_p90_s")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated sessions, shared by the module (train-intent writes them, eval-intent reads the test ones)."""
    return tmp_path_factory.mktemp("intent-cache")


@pytest.fixture(scope="module")
def trained(exo, cache: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("intent") / "lstm-tiny"
    result = exo("train-intent", "--out", str(out), "--seed", "0", "--cache", str(cache), *TINY, timeout=300)
    assert result.code == 0, result
    return out, result


def _check_metrics(m: dict, levels: set[str]) -> None:
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    assert 0.0 < m["velocity_rmse_rad_s"] < 10.0
    assert m["onsets"] > 0 and 0 <= m["onset_misses"] <= m["onsets"] and m["frames"] > 0
    assert sum(m["support_per_class"]) == sum(m["predicted_per_class"]) == m["frames"]
    assert set(m["per_level"]) == levels


def test_exo_train_intent_writes_the_model_and_its_card(trained, cache: Path):
    out, result = trained
    assert f"-> {out} (card.json: test_metrics)" in result.text, result
    card = json.loads((out / "card.json").read_text())
    cfg = card["train_config"]
    assert (cfg["train_subjects"], cfg["val_subjects"], cfg["test_subjects"]) == (4, 4, 4)
    assert (cfg["duration_s"], cfg["epochs"], cfg["hidden"], cfg["seed"]) == (20.0, 1, 4, 0)
    assert cfg["twin"] == "reduced" and cfg["controllers"] == ["zero", "pid"]
    assert card["classes"] == list(CLASSES) and card["channel_names"] == list(CHANNEL_NAMES)
    assert card["best_epoch"] == 0 and len(card["history"]) == 1 and math.isfinite(card["history"][0]["loss"])
    # subjects: 4 per split, levels 0-3 in turn, no subject in two splits
    splits = {k: [tuple(s) for s in v] for k, v in card["data"].items()}
    assert {k: [lvl for lvl, _ in v] for k, v in splits.items()} == {k: [0, 1, 2, 3] for k in ("train", "val", "test")}
    seeds = [s for v in splits.values() for _, s in v]
    assert len(set(seeds)) == len(seeds) == 12
    # the held-out metrics: overall, per level and per exo controller
    _check_metrics(card["test_metrics"], {"0", "1", "2", "3"})
    assert set(card["test_metrics_by_controller"]) == {"zero", "pid"}
    for m in card["test_metrics_by_controller"].values():
        _check_metrics(m, {"0", "1", "2", "3"})
    acc = card["test_metrics"]["accuracy"]
    assert f"macro-F1 {card['test_metrics']['macro_f1']:.3f}, accuracy {acc:.3f}" in result.text, result
    # model.npz: the numpy LSTM with 4 units over the card's inputs (4 gates x 4 units, 3 classes + velocity)
    weights = np.load(out / "model.npz")
    n_inputs = len(card["input_layout"])
    assert weights["w_ih"].shape == (16, n_inputs) and weights["w_hh"].shape == (16, 4)
    assert weights["w_out"].shape == (len(CLASSES) + 1, 4)
    assert all(np.all(np.isfinite(weights[k])) for k in weights.files)
    # the sessions were simulated into --cache, one file per subject and controller
    assert len(list(cache.glob("*.npz"))) >= 12


@pytest.mark.parametrize("controller", ["zero", "pid"])
def test_exo_eval_intent_reproduces_the_cards_held_out_metrics(exo, trained, cache: Path, tmp_path: Path,
                                                               controller: str):
    """eval-intent (numpy inference) on the card's test subjects gives the numbers train-intent wrote."""
    model, _ = trained
    out = tmp_path / "eval.json"
    result = exo("eval-intent", str(model), "--subjects", "4", "--duration", "20", "--controller", controller,
                 "--cache", str(cache), "--out", str(out))
    assert result.code == 0, result
    got = json.loads(out.read_text())
    want = json.loads((model / "card.json").read_text())["test_metrics_by_controller"][controller]
    assert got["model"] == str(model)
    for key in METRICS:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    for level in "0123":
        assert got["per_level"][level]["accuracy"] == pytest.approx(want["per_level"][level]["accuracy"], rel=1e-6)


def test_exo_eval_intent_of_the_committed_model(exo, cache: Path, tmp_path: Path):
    """`exo eval-intent` without MODEL: the committed models/intent/lstm-reduced on 4 held-out subjects."""
    out = tmp_path / "eval.json"
    result = exo("eval-intent", "--subjects", "4", "--duration", "20", "--cache", str(cache), "--out", str(out))
    assert result.code == 0, result
    got = json.loads(out.read_text())
    assert got["model"].endswith("models/intent/lstm-reduced")  # the installed committed model
    _check_metrics(got, {"0", "1", "2", "3"})
    # docs/intent.md: about 0.91 accuracy and macro-F1 on 16 subjects x 60 s
    assert got["accuracy"] > 0.8 and got["macro_f1"] > 0.8 and got["velocity_rmse_rad_s"] < 0.5
    assert all(got["per_level"][lvl]["accuracy"] > 0.7 for lvl in "0123")
    assert got["onset_misses"] <= 1
    lat = got["latency_s"]
    assert lat["n"] == 2000 and 0.0 < lat["cpu_p50"] <= lat["cpu_p99"] and lat["cpu_p50"] < 0.005
    assert f"over {lat['n']} windows" in result.text, result


def test_exo_eval_intent_without_model_works_outside_the_repository(exo, cache: Path, tmp_path: Path):
    result = exo("eval-intent", "--subjects", "4", "--duration", "20", "--cache", str(cache), cwd=tmp_path)
    assert result.code == 0, result
