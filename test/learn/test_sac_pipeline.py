"""SAC end to end on the reduced twin: train -> checkpoint -> resume -> export -> SacController -> evaluator.

One tiny run (``exo train``, 300 transitions, batch 64) is shared by the module;
everything else reads its folder. Also: determinism given the seed, and that
inference (``exo.control.sac``) never imports torch.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exo.cli.main import app
from exo.control import ControllerSpec, make_controller
from exo.control.sac import SacController, gelu
from exo.envs.observation import OBS_DIM, OBS_LAYOUT
from exo.evaluate import EvalConfig, evaluate, run_trial
from exo.learn.actor import deterministic_actor
from exo.learn.config import SacConfig, load_sac_config
from exo.learn.evaluation import evaluate_controller
from exo.learn.export import check_observations
from exo.learn.sac import build_model, make_vec_env, train
from exo.params import ConfigError

TINY = {  # the SB3 learner, as the committed policies were trained (test_sbx_learner.py: SBX)
    "learner": "sb3",
    "n_envs": 2,
    "batch_size": 64,
    "learning_starts": 100,
    "train_freq": 16,
    "eval_every_steps": 200,
    "checkpoint_every_steps": 200,
    "eval_trials_per_level": 1,
}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "sac"
    args = ["train", "--algo", "sac", "--twin", "reduced", "--steps", "300", "--seed", "3", "--out", str(out),
            "--no-progress", *TINY_ARGS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def policy_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "sac-tiny"
    result = CliRunner().invoke(app, ["export-policy", str(run_dir), "--out", str(out), "--which", "final"])
    assert result.exit_code == 0, result.output
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _actor(run_dir: Path) -> torch.nn.Module:
    from stable_baselines3 import SAC

    return deterministic_actor(SAC.load(str(run_dir / "final" / "model.zip"), device="cpu"))


def test_config_file_documents_every_hyperparameter():
    cfg, sources = load_sac_config()
    assert set(sources) == set(cfg.to_dict())
    assert all(sources.values())
    assert cfg.net_arch == (64, 64) and cfg.activation == "gelu"


def test_run_folder_has_logs_checkpoints_and_evaluations(run_dir: Path):
    record = json.loads((run_dir / "run.json").read_text())
    assert record["finished"] and record["num_timesteps"] >= 300 and record["seed"] == 3
    assert record["config"]["batch_size"] == 64 and record["config_sources"]["batch_size"] == "command line --set"
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert latest["steps"] == record["num_timesteps"]
    assert (run_dir / "checkpoints" / latest["model"]).is_file()
    assert (run_dir / "checkpoints" / latest["replay_buffer"]).is_file()
    for folder in ("best", "final"):
        assert (run_dir / folder / "model.zip").is_file()
        assert json.loads((run_dir / folder / "eval.json").read_text())["per_level"].keys() == {"0", "1", "2", "3"}
    rows = list(_csv(run_dir / "progress.csv"))
    assert rows and "train/actor_loss" in rows[0] and "eval/L3/final_error_deg" in rows[0]
    evals = list(_csv(run_dir / "evaluations.csv"))
    assert {int(r["level"]) for r in evals} == {0, 1, 2, 3} and len(evals) >= 8  # at 200 steps and at the end


def test_resume_continues_the_step_count(run_dir: Path, tmp_path: Path):
    copy = tmp_path / "sac"
    shutil.copytree(run_dir, copy)
    before = json.loads((copy / "checkpoints" / "latest.json").read_text())["steps"]
    with pytest.raises(FileExistsError):
        train(copy, twin="reduced", steps=500, seed=3)
    with pytest.raises(ValueError, match="seed"):
        train(copy, twin="reduced", steps=500, seed=4, resume=True)
    result = CliRunner().invoke(app, ["train", "--twin", "reduced", "--steps", "500", "--seed", "3", "--out",
                                      str(copy), "--resume", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"resuming {copy} at {before:,} steps" in result.output
    record = json.loads((copy / "run.json").read_text())
    assert record["num_timesteps"] >= 500
    assert [s["resumed"] for s in record["segments"]] == [False, True]
    assert record["segments"][1]["start_steps"] == before
    latest = json.loads((copy / "checkpoints" / "latest.json").read_text())
    assert latest["steps"] == record["num_timesteps"]
    steps = [int(r["time/total_timesteps"]) for r in _csv(copy / "progress.csv")]
    assert steps == sorted(steps) and steps[-1] == record["num_timesteps"]


def test_same_seed_same_transitions_and_weights():
    cfg = SacConfig().with_overrides(**TINY)

    def run(seed: int) -> tuple[np.ndarray, np.ndarray, list[torch.Tensor]]:
        venv = make_vec_env("reduced", cfg)
        model = build_model(cfg, venv, seed=seed, total_steps=400)
        model.learn(240)  # 100 random transitions, then the policy, with gradient steps
        venv.close()
        n = model.replay_buffer.pos
        buffer = model.replay_buffer
        return buffer.actions[:n].copy(), buffer.observations[:n].copy(), [p.detach().clone()
                                                                           for p in model.policy.parameters()]

    a1, o1, w1 = run(11)
    a2, o2, w2 = run(11)
    a3, _, _ = run(12)
    assert np.array_equal(a1, a2) and np.array_equal(o1, o2)
    assert all(torch.equal(x, y) for x, y in zip(w1, w2, strict=True))
    assert not np.array_equal(a1, a3)


def test_list_settings_from_the_command_line():
    """--set levels=... as a user writes it: "1,3", "1 3" or "[1, 3]"; anything else names the setting."""
    for text in ("1,3", "1 3", "[1, 3]", " [1,3] "):
        assert SacConfig().with_overrides(levels=text).levels == (1, 3)
    assert SacConfig().with_overrides(net_arch="[64, 64]").net_arch == (64, 64)
    with pytest.raises(ConfigError, match="levels: expected integers such as 1,3 or \\[1, 3\\], got 'one'"):
        SacConfig().with_overrides(levels="one")


def test_numpy_gelu_is_torch_exact_gelu():
    x = np.linspace(-8.0, 8.0, 4001)
    exact = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(gelu(x) - exact)) < 1e-12
    approx = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    assert np.max(np.abs(approx - exact)) > 1e-5  # the tanh form would not reproduce the actor


def test_export_writes_the_card_and_agreeing_formats(policy_dir: Path, run_dir: Path):
    for name in ("policy.npz", "policy.onnx", "policy.pt", "policy.json"):
        assert (policy_dir / name).is_file()
    card = json.loads((policy_dir / "policy.json").read_text())
    assert list(card["observation"]["layout"]) == list(OBS_LAYOUT)
    assert card["observation"]["layout"]["interaction_torque"]["scale"] == 100.0
    assert card["action"]["scale_nm"] == 100.0
    training = card["training"]
    assert training["twin"] == "reduced" and training["seed"] == 3 and training["steps"] >= 300
    assert training["levels"]["levels"] == [0, 1, 2, 3] and "git" in training and training["config"]["batch_size"] == 64
    assert set(card["evaluation"]["per_level"]) == {"0", "1", "2", "3"}
    for key in ("numpy_vs_torch_max_abs", "onnx_vs_torch_max_abs", "torchscript_vs_torch_max_abs"):
        assert card["consistency"][key] < 1e-5
    assert card["consistency"]["numpy_vs_torch_float64_max_abs"] < 1e-12


@pytest.mark.parametrize("backend", ["numpy", "onnx"])
def test_controller_matches_torch(policy_dir: Path, run_dir: Path, backend: str):
    actor = _actor(run_dir)
    obs = check_observations(200, seed=5)
    with torch.no_grad():
        reference = actor(torch.from_numpy(obs)).numpy()[:, 0].astype(np.float64)
    controller = make_controller("sac", policy=str(policy_dir), backend=backend)
    assert isinstance(controller, SacController) and controller.name == "sac"
    torques = np.array([controller.act(o) for o in obs])
    assert np.max(np.abs(torques / 100.0 - reference)) < 1e-5
    assert np.max(np.abs(controller.action(obs)[:, 0] - reference)) < 1e-5
    clipped = SacController(str(policy_dir / "policy.json"), torque_limit_nm=5.0, backend=backend)
    assert max(abs(clipped.act(o)) for o in obs) <= 5.0
    restored = pickle.loads(pickle.dumps(controller))
    assert restored.act(obs[0]) == controller.act(obs[0])


def test_controller_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="policy.npz"):
        SacController(str(tmp_path))
    with pytest.raises(ValueError, match="backend"):
        SacController(str(tmp_path), backend="tflite")


def test_evaluator_runs_the_exported_policy(policy_dir: Path):
    spec = ControllerSpec("sac", {"policy": str(policy_dir)})
    spec = pickle.loads(pickle.dumps(spec))  # what worker processes receive
    report = evaluate(spec, EvalConfig(twin="reduced", levels=(1,), trials=1, seed=0, workers=1))
    assert report.controller_name == "sac" and len(report.trials) == 1
    trial = report.trials[0]
    assert trial.steps == 512 and math.isfinite(trial.metrics.final_error_deg)
    # the training-time evaluation computes the same metrics as exo eval for the same subject
    mine = evaluate_controller(spec(), "reduced", levels=(1,), trials=1, seed=0).report.trials[0]
    reference = run_trial(spec, "reduced", 1, 0, 0)
    assert mine.subject_seed == reference.subject_seed
    assert mine.metrics.to_dict() == pytest.approx(reference.metrics.to_dict(), nan_ok=True)


def test_inference_does_not_import_torch(policy_dir: Path):
    code = (
        "import sys, numpy as np\n"
        "import exo.control, exo.control.sac, exo.learn.config, exo.learn.evaluation\n"
        "from exo.control import make_controller\n"
        f"c = make_controller('sac', policy={str(policy_dir)!r})\n"
        f"print(c.act(np.zeros({OBS_DIM}, dtype=np.float32)))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'stable_baselines3' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert math.isfinite(float(result.stdout.strip()))


def test_shortfall_counts_each_target_in_its_unit():
    from exo.learn.selection import SelectionTargets, shortfall

    pid = {lv: {"peak_torque_nm": 100.0, "rms_torque_nm": 50.0, "final_error_deg": 1.0} for lv in range(4)}
    met = {0: {"peak_torque_nm": 70.0, "rms_torque_nm": 30.0, "final_error_deg": 0.5},
           1: {"peak_torque_nm": 80.0, "rms_torque_nm": 40.0, "final_error_deg": 1.0},
           2: {"peak_torque_nm": 90.0, "rms_torque_nm": 45.0, "final_error_deg": 1.5},
           3: {"peak_torque_nm": 85.0, "rms_torque_nm": 80.0, "final_error_deg": 1.9}}  # level 3 has no RMS target
    score, details = shortfall(met, pid)
    assert score == 0.0 and details["L3/rms_change_pct"] == pytest.approx(60.0)
    # level 1: peak +10 % vs a -12.5 % target = 22.5 points = 2.25 units; final error 6 deg = 2 units
    missed = {**met, 1: {"peak_torque_nm": 110.0, "rms_torque_nm": 40.0, "final_error_deg": 6.0}}
    score, details = shortfall(missed, pid, SelectionTargets())
    assert details["L1/peak_change_pct"] == pytest.approx(10.0)
    assert score == pytest.approx(2.25 + 2.0)
    diverged = {**met, 2: {"peak_torque_nm": math.nan, "rms_torque_nm": 45.0, "final_error_deg": 1.0}}
    assert shortfall(diverged, pid)[0] == pytest.approx(10.0)


def test_select_checkpoint_ranks_every_model_and_exports_the_choice(run_dir: Path, tmp_path: Path):
    from exo.learn.selection import run_models

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = CliRunner().invoke(app, ["select-checkpoint", str(run), "--trials", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads((run / "selection.json").read_text())
    models = run_models(run)
    assert [row["steps"] for row in doc["models"]] == [steps for steps, _ in models] and len(models) >= 1
    assert doc["seed"] == 2000 and doc["trials_per_level"] == 1
    assert doc["selected"]["shortfall"] == min(row["shortfall"] for row in doc["models"])
    assert len(_csv(run / "selection.csv")) == len(models)
    pid = {int(k): v for k, v in doc["pid"]["per_level"].items()}
    assert all(v["peak_torque_nm"] > 0 for v in pid.values())
    out = tmp_path / "policy"
    result = CliRunner().invoke(app, ["export-policy", str(run), "--out", str(out), "--which", "selected",
                                      "--no-evaluate"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "policy.json").read_text())
    assert Path(card["training"]["model"]).name == Path(doc["selected"]["model"]).name
    assert card["training"]["which"] == "selected"


def test_export_and_selection_errors_name_the_problem(run_dir: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    result = CliRunner().invoke(app, ["export-policy", str(run), "--out", str(tmp_path / "p"), "--which", "selected"])
    assert result.exit_code == 1 and "exo select-checkpoint" in result.output
    result = CliRunner().invoke(app, ["export-policy", str(run), "--out", str(tmp_path / "p"), "--which", "123"])
    assert result.exit_code == 1 and "no checkpoint at 123 steps" in result.output
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), "--set", "env_overrides=[1, 2]"])
    assert result.exit_code != 0 and "env_overrides" in result.output
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), "--set", "residual_params=[1, 2]"])
    assert result.exit_code != 0 and "residual_params" in result.output
