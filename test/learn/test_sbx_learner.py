"""The SBX (JAX) learner: same run folder, same exported policy format, reproducible given the seed.

One tiny ``exo train --set learner=sbx`` run is shared by the module (300 transitions,
batch 64), as the SB3 pipeline test does for SB3.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exo.cli.main import app
from exo.control.sac import SacController
from exo.envs.observation import OBS_DIM
from exo.learn.actor import deterministic_actor
from exo.learn.config import SacConfig
from exo.learn.learners import load_model, run_learner
from exo.learn.sac import build_model, make_vec_env

TINY = {
    "batch_size": 64,
    "learning_starts": 100,
    "train_freq": 16,
    "eval_every_steps": 200,
    "checkpoint_every_steps": 200,
    "eval_trials_per_level": 1,
    "learner": "sbx",
}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def sbx_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "sbx"
    args = ["train", "--algo", "sac", "--twin", "reduced", "--steps", "300", "--seed", "5", "--out", str(out),
            "--no-progress", *TINY_ARGS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_sbx_run_folder_records_the_learner_and_trains(sbx_run: Path):
    record = json.loads((sbx_run / "run.json").read_text())
    assert record["finished"] and record["config"]["learner"] == "sbx" and run_learner(record["config"]) == "sbx"
    assert {"sbx", "jax", "flax", "torch"} <= set(record["versions"])
    latest = json.loads((sbx_run / "checkpoints" / "latest.json").read_text())
    assert (sbx_run / "checkpoints" / latest["replay_buffer"]).is_file()
    model = load_model(sbx_run / "final" / "model.zip", "sbx")
    assert model._n_updates > 0  # gradient steps ran (200 transitions after learning_starts, 0.5 per transition)
    assert run_learner({}) == "sb3"  # runs recorded before the setting existed


def test_sbx_actor_exports_to_the_same_torch_module_and_policy_files(sbx_run: Path, tmp_path: Path):
    model = load_model(sbx_run / "final" / "model.zip", "sbx")
    module = deterministic_actor(model)
    obs = np.random.default_rng(0).normal(size=(64, OBS_DIM)).astype(np.float32)
    # the JAX actor's deterministic action (tanh of the Gaussian's mean) is the torch module's output
    jax_action = np.asarray(model.policy.actor_state.apply_fn(model.policy.actor_state.params, obs).mode())
    torch_action = module(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(torch_action, jax_action, atol=2e-5)

    out = tmp_path / "policy"
    result = CliRunner().invoke(app, ["export-policy", str(sbx_run), "--out", str(out), "--which", "final"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "policy.json").read_text())
    assert card["training"]["learner"] == "sbx" and card["training"]["library"]
    for key in ("numpy_vs_torch_max_abs", "onnx_vs_torch_max_abs", "torchscript_vs_torch_max_abs"):
        assert card["consistency"][key] < 1e-5
    controller = SacController(str(out))
    np.testing.assert_allclose(controller.action(obs), torch_action, atol=1e-5)


def test_sbx_same_seed_same_transitions_and_weights():
    cfg = SacConfig().with_overrides(**TINY)

    def run(seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        venv = make_vec_env("reduced", cfg)
        model = build_model(cfg, venv, seed=seed, total_steps=400)
        model.learn(240)
        venv.close()
        n = model.replay_buffer.pos
        weights = [np.asarray(x) for x in jax.tree_util.tree_leaves(model.policy.actor_state.params)]
        return model.replay_buffer.actions[:n].copy(), weights

    a1, w1 = run(21)
    a2, w2 = run(21)
    a3, _ = run(22)
    assert np.array_equal(a1, a2)
    assert all(np.array_equal(x, y) for x, y in zip(w1, w2, strict=True))
    assert not np.array_equal(a1, a3)


def test_unknown_learner_is_refused_by_name():
    from exo.params import ConfigError

    with pytest.raises(ConfigError, match="learner must be one of sb3, sbx"):
        SacConfig().with_overrides(learner="jax")
