"""Residual policies: the correction added to the PID in training (env wrapper) is the one deployed (SacController).

One tiny residual run (``exo train --set residual_controller=pid``, 300 transitions) is
exported; the exported controller must apply exactly ``clip(pid / 100 + scale * actor, -1, 1)``
with the PID gains recorded in its card, and drive the twin as the training env did.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exo.cli.main import app
from exo.control import load_controller_params, make_controller
from exo.control.residual import ResidualSpec, combine
from exo.control.sac import SacController
from exo.envs.knee_extension import KneeExtensionEnv
from exo.envs.residual import ResidualActionWrapper

TINY = ["--set", "batch_size=64", "--set", "learning_starts=100", "--set", "train_freq=16",
        "--set", "eval_every_steps=200", "--set", "checkpoint_every_steps=200", "--set", "eval_trials_per_level=1"]

CAPPED_PID = {**load_controller_params("pid"), "torque_limit_nm": 85.0}  # the base of VARIANT=residual-capped


@pytest.fixture(scope="module")
def residual_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("residual")
    args = ["train", "--algo", "sac", "--twin", "reduced", "--steps", "300", "--seed", "5", "--out",
            str(root / "run"), "--no-progress", *TINY, "--set", "residual_controller=pid", "--set", "residual_scale=0.4",
            "--set", "residual_params=" + json.dumps(CAPPED_PID),  # a YAML flow mapping (JSON is YAML)
            "--set", "residual_limit=0.9"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["export-policy", str(root / "run"), "--out", str(root / "policy"),
                                      "--which", "final", "--no-evaluate"])
    assert result.exit_code == 0, result.output
    return root / "policy"


def test_combine_clips_to_the_action_range():
    assert combine(0.3, 0.5, 0.4) == pytest.approx(0.5)
    assert combine(0.9, 1.0, 0.5) == 1.0 and combine(-0.9, -1.0, 0.5) == -1.0
    assert combine(0.7, 0.5, 0.5, limit=0.85) == 0.85 and combine(-0.7, -0.5, 0.5, limit=0.85) == -0.85
    assert combine(0.3, 0.5, 0.4, limit=0.85) == pytest.approx(0.5)  # inside the limit: unchanged


def test_spec_rejects_bad_entries():
    with pytest.raises(ValueError, match="scale"):
        ResidualSpec("pid", {}, 0.0)
    with pytest.raises(ValueError, match="limit"):
        ResidualSpec("pid", {}, 0.5, 1.2)
    with pytest.raises(ValueError, match="limit"):
        ResidualSpec.from_dict({"controller": "pid", "limit": float("nan")})
    assert ResidualSpec.from_dict({"controller": "pid"}).limit == 1.0  # a card from before the limit
    with pytest.raises(ValueError, match="registered controller"):
        ResidualSpec("none")
    with pytest.raises(ValueError, match="mapping"):
        ResidualSpec.from_dict({"controller": "pid", "params": [1, 2]})


def test_card_records_the_pid_gains_of_the_run(residual_policy: Path):
    card = json.loads((residual_policy / "policy.json").read_text())
    assert card["residual"]["controller"] == "pid" and card["residual"]["scale"] == 0.4
    assert card["residual"]["limit"] == 0.9
    assert card["residual"]["params"] == CAPPED_PID
    run = json.loads((residual_policy.parent / "run" / "run.json").read_text())
    assert run["config"]["residual_params"] == card["residual"]["params"]


def test_deployed_controller_applies_what_training_applied(residual_policy: Path):
    controller = SacController(str(residual_policy))
    assert controller.residual is not None and controller.residual.scale == 0.4
    pid = make_controller("pid", **controller.residual.params)
    env = ResidualActionWrapper(KneeExtensionEnv("reduced", level=2, terminate_on_unsafe=False), controller.residual)
    obs, _ = env.reset(seed=11)
    controller.reset()
    pid.reset()
    corrections = []
    for _ in range(120):
        correction = float(controller.action(obs)[0, 0])
        expected = combine(pid.act(obs) / 100.0, correction, 0.4, 0.9)
        torque = controller.act(obs)
        assert torque == pytest.approx(expected * 100.0, abs=1e-9)
        obs, _, _, _, info = env.step(np.array([correction], dtype=np.float32))
        # the training env applied the same action (float32 rounding of the correction only)
        assert info["applied_action"] == pytest.approx(expected, abs=1e-6)
        corrections.append(correction)
    assert np.ptp(corrections) > 0.0  # the policy is not a constant: the check covers a varying correction


def test_reset_clears_the_base_controllers_integral(residual_policy: Path):
    controller = SacController(str(residual_policy))
    from exo.envs.observation import OBS_LAYOUT

    obs, _ = KneeExtensionEnv("reduced", level=1).reset(seed=1)
    obs[OBS_LAYOUT["target_error"]] = 0.02  # a small error: the PID is not saturated
    first = controller.act(obs)
    for _ in range(50):
        controller.act(obs)  # a constant error winds the PID integral up
    assert controller.act(obs) != pytest.approx(first)
    controller.reset()
    assert controller.act(obs) == pytest.approx(first)


def test_bad_residual_entry_in_a_card_names_the_problem(residual_policy: Path, tmp_path: Path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(residual_policy, broken)
    card = json.loads((broken / "policy.json").read_text())
    card["residual"] = {"controller": "pid", "scale": 5.0}
    (broken / "policy.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="residual.*scale"):
        SacController(str(broken))
