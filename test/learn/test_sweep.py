"""`exo sweep`: the plan (names, combinations, refused plans), a sweep killed mid-run that continues where it
stopped when the same command runs again, and the same numbers on the local and the Ray backend.

Runs are tiny real SAC runs on the reduced twin (a few hundred transitions, batch 64)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exo.cli.main import app
from exo.learn.sweep import SweepPlan, check_plan, open_sweep, run_name
from exo.params import ConfigError

EXO = Path(sys.executable).parent / "exo"
TINY = {"batch_size": 64, "learning_starts": 100, "train_freq": 16, "eval_every_steps": 100000,
        "checkpoint_every_steps": 200, "eval_trials_per_level": 1}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


def test_the_plan_names_every_combination_of_variant_grid_point_and_seed():
    plan = SweepPlan(twin="reduced", steps=300, seeds=(0, 1),
                     variants={"paper": {}, "res": {"residual_controller": "pid"}},
                     grid={"learning_rate": (1e-4, 3e-4)}, common={"batch_size": 64})
    runs = check_plan(plan)
    assert [r.name for r in runs][:3] == ["paper__learning_rate=0.0001__seed0", "paper__learning_rate=0.0001__seed1",
                                          "paper__learning_rate=0.0003__seed0"]
    assert len(runs) == 8 and len({r.name for r in runs}) == 8
    last = runs[-1]
    assert last.overrides == {"batch_size": 64, "residual_controller": "pid", "learning_rate": 3e-4}
    assert last.configuration == "res__learning_rate=0.0003"
    assert run_name("a", {"env_overrides": {"x": 1}}, 2) == "a__env_overrides=x_1__seed2"
    assert SweepPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seeds": (0, 0)}, "seeds must be distinct"),
    ({"grid": {"batch_size": (64, 128)}, "common": {"batch_size": 64}}, "batch_size is both swept"),
    ({"variants": {"a/b": {}}}, "variant name 'a/b'"),
    ({"grid": {"learning_rate": ()}}, "--grid learning_rate: give distinct values"),
])
def test_a_plan_that_cannot_run_is_refused_with_its_problem(kwargs: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        SweepPlan(**{"twin": "reduced", "steps": 10, "seeds": (0,), **kwargs})


def test_an_unknown_setting_fails_before_any_run_and_another_plan_in_the_same_folder_is_refused(tmp_path: Path):
    bad = SweepPlan(twin="reduced", steps=10, seeds=(0,), grid={"no_such_setting": (1, 2)})
    with pytest.raises(ConfigError, match="sweep run base__no_such_setting=1__seed0: unknown SAC setting"):
        check_plan(bad)
    plan = SweepPlan(twin="reduced", steps=10, seeds=(0,))
    assert open_sweep(tmp_path, plan) == plan and open_sweep(tmp_path, None) == plan
    with pytest.raises(ConfigError, match="holds another sweep .*differs in steps"):
        open_sweep(tmp_path, SweepPlan(twin="reduced", steps=20, seeds=(0,)))


def _sweep_args(out: Path, steps: int, *extra: str) -> list[str]:
    return ["sweep", "--out", str(out), "--twin", "reduced", "--steps", str(steps), "--seeds", "0,1", *TINY_ARGS,
            *extra]


def _record(out: Path, name: str) -> dict:
    return json.loads((out / name / "run.json").read_text())


@pytest.mark.slow
def test_a_sweep_killed_mid_run_continues_where_it_stopped(tmp_path: Path):
    out = tmp_path / "sweep"
    args = _sweep_args(out, 1000)
    first = out / "base__seed0"
    proc = subprocess.Popen([str(EXO), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (first / "checkpoints" / "latest.json").is_file():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = json.loads((first / "checkpoints" / "latest.json").read_text())["steps"]
    assert not _record(out, "base__seed0")["finished"] and 200 <= killed_at < 1000
    assert not (out / "base__seed1").exists() and not (out / "summary.json").exists()

    result = CliRunner().invoke(app, args)  # the same command again
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    statuses = {r["run"]: r["status"] for r in summary["runs"]}
    assert statuses == {"base__seed0": "resumed", "base__seed1": "trained"}
    segments = _record(out, "base__seed0")["segments"]
    assert [s["resumed"] for s in segments] == [False, True] and segments[1]["start_steps"] == killed_at
    assert all(_record(out, n)["finished"] and r["steps"] >= 1000
               for n, r in zip(statuses, summary["runs"], strict=True))
    assert summary["configurations"][0]["runs"] == 2 and summary["configurations"][0]["finished"] == 2

    again = CliRunner().invoke(app, ["sweep", "--out", str(out), "--resume"])
    assert again.exit_code == 0, again.output
    assert {r["status"] for r in json.loads((out / "summary.json").read_text())["runs"]} == {"already finished"}
    assert len(_record(out, "base__seed0")["segments"]) == 2  # nothing trained again


@pytest.mark.slow
def test_a_sweep_on_ray_trains_the_runs_of_the_local_backend_to_the_same_numbers(tmp_path: Path):
    local = CliRunner().invoke(app, _sweep_args(tmp_path / "local", 300, "--grid", "learning_rate=1e-3"))
    assert local.exit_code == 0, local.output
    on_ray = CliRunner().invoke(app, _sweep_args(tmp_path / "ray", 300, "--grid", "learning_rate=1e-3",
                                                 "--backend", "ray", "--workers", "2"))
    assert on_ray.exit_code == 0, on_ray.output
    a = json.loads((tmp_path / "local" / "summary.json").read_text())
    b = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert b["backend"]["name"] == "ray" and [r["status"] for r in b["runs"]] == ["trained", "trained"]
    keys = ("run", "steps", "final_mean_return", "best_mean_return", "final_error_deg", "peak_torque_nm")
    assert [[r[k] for k in keys] for r in a["runs"]] == [[r[k] for k in keys] for r in b["runs"]]


def test_a_run_that_fails_is_reported_and_the_others_still_train(tmp_path: Path):
    """A run folder that holds a run of another twin (train refuses to resume it): that run is ``failed`` with
    the reason, the other run trains, the command exits 1 naming the failed run."""
    out = tmp_path / "sweep"
    stray = out / "base__seed0"
    (stray / "checkpoints").mkdir(parents=True)
    (stray / "run.json").write_text(json.dumps({"twin": "full", "seed": 0, "finished": False, "config": {}}))
    (stray / "checkpoints" / "latest.json").write_text(json.dumps({"steps": 100, "model": "model.zip"}))
    result = CliRunner().invoke(app, _sweep_args(out, 300))
    assert result.exit_code == 1, result.output
    runs = {r["run"]: r for r in json.loads((out / "summary.json").read_text())["runs"]}
    assert runs["base__seed0"]["status"] == "failed"
    assert "ValueError" in runs["base__seed0"]["error"] and "twin=full" in runs["base__seed0"]["error"]
    assert runs["base__seed1"]["status"] == "trained" and _record(out, "base__seed1")["finished"]
    assert "1 run(s) failed" in result.output and "base__seed0" in result.output
