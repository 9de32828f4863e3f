"""SAC training of the exo torque policy in the digital twin (SBX or Stable-Baselines3).

``exo train --algo sac --twin reduced --steps N --seed S --out DIR`` calls :func:`train`.
Read top to bottom: the env factory, the model, the callbacks, the run folder, the loop.

What is trained (the paper's set-up, numbers in ``config/sac.yaml``):

- Learner: ``learner`` (:mod:`exo.learn.learners`): SBX's ``SAC`` (JAX, the default: 3-4x faster here) or
  SB3's (torch, what the committed policies were trained with); the same algorithm, loop and files.
- Policy: ``SAC`` with an MLP actor and twin critics ``net_arch`` = [64, 64],
  exact GELU (``activation_fn=torch.nn.GELU``), a tanh-squashed Gaussian over the
  1-D action (exo torque / 100 N m).
- Data: ``n_envs`` copies of :class:`~exo.envs.knee_extension.KneeExtensionEnv`
  (the training task: 512-step episodes, unsafe stop on) in a ``DummyVecEnv`` or
  ``SubprocVecEnv``. Domain randomisation: every episode draws a spasticity level
  uniformly from ``levels`` (all four: the env's own ``level=None``) and a new
  subject (10 % Gaussian noise on each level parameter, ``subject_noise``).
  Truncation at the episode length is a time limit, not a terminal state (SB3's
  ``handle_timeout_termination``); the observation carries ``time_fraction``.
- Updates: every ``train_freq`` env steps per env, ``utd_ratio * train_freq * n_envs``
  gradient steps of batch ``batch_size``, after ``learning_starts`` random transitions.

Determinism: :meth:`SAC.__init__` seeds python, numpy, torch, the action space and
the envs (env ``i`` gets ``seed + i``; each reset then draws level, subject and
start from the env's generator; SBX also seeds its JAX key and the numpy exploration
noise). With one thread (``torch_threads`` = 1; XLA single-threaded), two runs with the
same seed and configuration produce identical transitions and weights, with either
learner (``test/learn``). Step counts are transitions summed over envs.

Run folder (``--out``)::

    run.json                    what ran: twin, seed, steps, configuration and sources, git, versions, segments
    progress.csv                SB3 logger rows (rollout/, train/, time/) + eval/ columns; kept across resumes
    evaluations.csv             one row per evaluation and level (LOGGED_METRICS of exo.learn.evaluation)
    checkpoints/latest.json     the newest consistent checkpoint (model + replay buffer + wall time)
    checkpoints/model_<steps>.zip, replay_buffer_<steps>.pkl
    best/model.zip, best/eval.json      highest mean return on the fixed evaluation subjects
    final/model.zip, final/eval.json    at the end of the run
    tb/                         TensorBoard events, only if ``tensorboard`` is installed

Resume (``--resume``): loads ``checkpoints/latest.json`` (model, optimisers, entropy
coefficient, replay buffer, step count) and continues to ``--steps``; the envs start
new episodes with seed ``seed + steps`` (deterministic, but not bit-identical to an
uninterrupted run, whose episodes would have continued). progress.csv rows logged
after the checkpoint are dropped so the file stays monotonic.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from exo.control import load_controller_params
from exo.control.residual import ResidualSpec
from exo.control.sac import SacController
from exo.envs.knee_extension import KneeExtensionEnv
from exo.envs.residual import ResidualActionWrapper
from exo.learn.actor import numpy_actor
from exo.learn.config import SacConfig, load_sac_config
from exo.learn.evaluation import LOGGED_METRICS, PolicyEvaluation, evaluate_controller
from exo.learn.learners import library_versions, load_model, policy_kwargs, run_learner, sac_class
from exo.learn.rundir import RunDir, write_atomic
from exo.records import git_info, versions

ALL_LEVELS = (0, 1, 2, 3)
TWINS = ("reduced", "full")

# ----------------------------------------------------------------------------- environments


class LevelSubset(gym.Wrapper):
    """Draw the level of each episode uniformly from ``levels`` (when training on a subset of 0-3)."""

    def __init__(self, env: gym.Env, levels: tuple[int, ...]) -> None:
        super().__init__(env)
        self.levels = tuple(levels)
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        level = self.levels[int(self._rng.integers(len(self.levels)))]
        return self.env.reset(seed=seed, options={**(options or {}), "level": level})


def make_env(twin: str, levels: tuple[int, ...], subject_noise: bool, env_overrides: dict[str, Any],
             residual: ResidualSpec | None = None) -> gym.Env:
    """One training env: the knee-extension task with random level and subject per episode, in a Monitor.

    With ``residual``, the policy's action is a correction added to that base controller
    (:class:`exo.envs.residual.ResidualActionWrapper`).
    """
    env: gym.Env = KneeExtensionEnv(
        twin=twin,
        level=levels[0] if len(levels) == 1 else None,  # None: uniform over 0-3, drawn by the env
        twin_overrides={"subject_noise": subject_noise},
        **env_overrides,
    )
    if 1 < len(levels) < len(ALL_LEVELS):
        env = LevelSubset(env, levels)
    if residual is not None:
        env = ResidualActionWrapper(env, residual)
    return Monitor(env)


def make_vec_env(twin: str, cfg: SacConfig) -> VecEnv:
    """``cfg.n_envs`` training envs in a DummyVecEnv or SubprocVecEnv (factories are picklable partials)."""
    factory = partial(make_env, twin, tuple(cfg.levels), cfg.subject_noise, dict(cfg.env_overrides), cfg.residual())
    fns = [factory] * cfg.n_envs
    if cfg.vec_env == "subproc":
        return SubprocVecEnv(fns, start_method="forkserver")
    return DummyVecEnv(fns)


# ----------------------------------------------------------------------------- model


def build_model(cfg: SacConfig, venv: VecEnv, seed: int, total_steps: int) -> Any:
    """A fresh SAC of ``cfg.learner`` (SB3 or SBX) with the configuration's hyperparameters
    (buffer capped at ``total_steps``)."""
    buffer_size = max(cfg.batch_size, cfg.n_envs, min(cfg.buffer_size, total_steps))
    return sac_class(cfg.learner)(
        "MlpPolicy",
        venv,
        learning_rate=cfg.learning_rate,
        buffer_size=buffer_size,
        learning_starts=cfg.learning_starts,
        batch_size=cfg.batch_size,
        tau=cfg.tau,
        gamma=cfg.gamma,
        train_freq=(cfg.train_freq, "step"),
        gradient_steps=cfg.gradient_steps(),
        ent_coef=cfg.ent_coef,
        target_entropy=cfg.target_entropy,
        policy_kwargs=policy_kwargs(cfg.learner, cfg.net_arch),
        seed=seed,
        device="cpu",
        verbose=0,
    )


# ----------------------------------------------------------------------------- logging


class ResumableCSV(CSVOutputFormat):
    """SB3's CSV writer that keeps the rows of earlier segments (up to ``keep_until_step``) on resume."""

    STEP_KEY = "time/total_timesteps"

    def __init__(self, filename: str, keep_until_step: int | None = None) -> None:
        old = Path(filename).read_text() if keep_until_step is not None and Path(filename).is_file() else ""
        super().__init__(filename)
        if old:
            rows = list(csv.reader(io.StringIO(old)))
            if rows:
                header = rows[0]
                step_col = header.index(self.STEP_KEY) if self.STEP_KEY in header else None
                kept = [r for r in rows[1:] if step_col is None or not r[step_col] or float(r[step_col]) <= keep_until_step]
                writer = csv.writer(self.file, lineterminator="\n")
                writer.writerow(header)
                writer.writerows(kept)
                self.keys = header
                self.file.flush()


def make_logger(run_dir: Path, resume_from_step: int | None) -> tuple[Logger, list[str]]:
    """progress.csv (kept across resumes) and, if the package is installed, TensorBoard under tb/."""
    formats: list[KVWriter] = [ResumableCSV(str(run_dir / "progress.csv"), resume_from_step)]
    names = ["csv"]
    try:  # optional dependency, probed when a run starts (not installed everywhere, slow to import)
        import tensorboard  # noqa: F401
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        formats.append(TensorBoardOutputFormat(str(run_dir / "tb")))
        names.append("tensorboard")
    except ImportError:
        pass
    return Logger(str(run_dir), formats), names


# ----------------------------------------------------------------------------- run folder (exo.learn.rundir)


def _save_model_atomic(model: Any, path: Path) -> None:
    tmp = path.with_name(f".tmp_{path.name}")
    model.save(str(tmp))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- callbacks


def _due(num_timesteps: int, every: int, last: int) -> bool:
    """True when ``num_timesteps`` crossed a multiple of ``every`` since ``last``."""
    return num_timesteps // every > last // every


class EvaluationCallback(BaseCallback):
    """Every ``eval_every_steps``: evaluate on the fixed subjects, log, keep the best model."""

    def __init__(self, run: RunDir, twin: str, cfg: SacConfig, echo: Callable[[str], None],
                 state: dict[str, Any]) -> None:
        super().__init__()
        self.run, self.twin, self.cfg, self.echo, self.state = run, twin, cfg, echo, state
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self.cfg.eval_every_steps, self._last):
            self._last = self.num_timesteps
            self.evaluate()
        return True

    def evaluate(self) -> PolicyEvaluation:
        started = time.perf_counter()
        controller = SacController.from_actor(numpy_actor(self.model), residual=self.cfg.residual())
        result = evaluate_controller(controller, self.twin, tuple(self.cfg.levels), self.cfg.eval_trials_per_level,
                                     self.cfg.eval_seed, dict(self.cfg.env_overrides))
        elapsed = time.perf_counter() - started
        steps = int(self.model.num_timesteps)
        per_level = result.per_level()
        self.logger.record("time/total_timesteps", steps)
        self.logger.record("eval/mean_return", result.mean_return)
        self.logger.record("eval/wall_time_s", round(elapsed, 3))
        for level, values in per_level.items():
            for name, value in values.items():
                self.logger.record(f"eval/L{level}/{name}", value)
        _append_evaluations(self.run.root / "evaluations.csv", steps, per_level)
        document = {"steps": steps, "time_utc": _now(), **result.to_dict()}
        self.state["last_eval"] = document
        best = self.state.get("best")
        if best is None or result.mean_return > best["mean_return"]:
            (self.run.root / "best").mkdir(exist_ok=True)
            _save_model_atomic(self.model, self.run.root / "best" / "model.zip")
            write_atomic(self.run.root / "best" / "eval.json", json.dumps(document, indent=2) + "\n")
            self.state["best"] = {"steps": steps, "mean_return": result.mean_return}
        self.echo(_eval_line(steps, result.mean_return, per_level, elapsed, self.state["best"]))
        return result


def _append_evaluations(path: Path, steps: int, per_level: dict[int, dict[str, float]]) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        if new:
            writer.writerow(["steps", "level", *LOGGED_METRICS])
        for level, values in per_level.items():
            writer.writerow([steps, level, *(f"{values[name]:.6g}" for name in LOGGED_METRICS)])


def _eval_line(steps: int, mean_return: float, per_level: dict[int, dict[str, float]], elapsed: float,
               best: dict[str, Any]) -> str:
    parts = []
    for level, v in per_level.items():
        settle = "-" if math.isnan(v["settling_time_s"]) else f"{v['settling_time_s']:.2f}s"
        parts.append(f"L{level} R={v['return']:.0f} err={v['final_error_deg']:.1f}deg settle={settle} "
                     f"peak={v['peak_torque_nm']:.0f}Nm unsafe={v['unsafe_fraction']:.0%}")
    return (f"[eval {steps:,}] mean return {mean_return:.1f} (best {best['mean_return']:.1f} @ {best['steps']:,}, "
            f"{elapsed:.1f} s)\n    " + "\n    ".join(parts))


class ResumableCheckpointCallback(BaseCallback):
    """Every ``checkpoint_every_steps``: model (+ replay buffer), then ``latest.json`` pointing at both.

    ``latest.json`` is what ``--resume`` restarts from (SB3's own ``CheckpointCallback`` writes the
    model files only); older checkpoints beyond ``keep_checkpoints`` are deleted.
    """

    def __init__(self, run: RunDir, cfg: SacConfig, state: dict[str, Any], echo: Callable[[str], None]) -> None:
        super().__init__()
        self.run, self.cfg, self.state, self.echo = run, cfg, state, echo
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if _due(self.num_timesteps, self.cfg.checkpoint_every_steps, self._last):
            self._last = self.num_timesteps
            self.save()
        return True

    def save(self) -> dict[str, Any]:
        folder = self.run.checkpoints
        folder.mkdir(exist_ok=True)
        steps = int(self.model.num_timesteps)
        model_name = f"model_{steps:09d}.zip"
        _save_model_atomic(self.model, folder / model_name)
        buffer_name = None
        if self.cfg.save_replay_buffer:
            buffer_name = f"replay_buffer_{steps:09d}.pkl"
            tmp = folder / f".tmp_{buffer_name}"
            self.model.save_replay_buffer(str(tmp))
            os.replace(tmp, folder / buffer_name)
        latest = {
            "steps": steps,
            "model": model_name,
            "replay_buffer": buffer_name,
            "wall_time_s": round(self.state["wall_offset_s"] + time.perf_counter() - self.state["started"], 2),
            "time_utc": _now(),
            "best": self.state.get("best"),
        }
        write_atomic(folder / "latest.json", json.dumps(latest, indent=2) + "\n")
        models = sorted(folder.glob("model_*.zip"))
        for old in models[: -self.cfg.keep_checkpoints]:
            old.unlink()
        for old in folder.glob("replay_buffer_*.pkl"):
            if old.name != buffer_name:
                old.unlink()
        self.echo(f"[checkpoint {steps:,}] {folder / model_name}")
        return latest


class ProgressCallback(BaseCallback):
    """A rich progress bar on a terminal; otherwise a status line every ``every_steps`` (for log files)."""

    def __init__(self, total_steps: int, every_steps: int, echo: Callable[[str], None], bar: bool) -> None:
        super().__init__()
        self.total, self.every, self.echo, self.use_bar = total_steps, every_steps, echo, bar
        self._bar: Any = None
        self._task: Any = None
        self._last_step = 0
        self._last_time = 0.0
        self._last_updates = 0

    def _on_training_start(self) -> None:
        self._last_step = self.num_timesteps
        self._last_time = time.perf_counter()
        self._last_updates = int(getattr(self.model, "_n_updates", 0))
        if self.use_bar:
            self._bar = Progress(TextColumn("sac"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.total, completed=self.num_timesteps, status="")

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.num_timesteps)
        if _due(self.num_timesteps, self.every, self._last_step):
            self._report()
        return True

    def _report(self) -> None:
        now = time.perf_counter()
        updates = int(getattr(self.model, "_n_updates", 0))
        dt = max(now - self._last_time, 1e-9)
        env_rate = (self.num_timesteps - self._last_step) / dt
        grad_rate = (updates - self._last_updates) / dt
        remaining = (self.total - self.num_timesteps) / env_rate if env_rate > 0 else math.inf
        episodes = list(self.model.ep_info_buffer or [])
        ep_return = float(np.mean([e["r"] for e in episodes])) if episodes else math.nan
        ep_length = float(np.mean([e["l"] for e in episodes])) if episodes else math.nan
        ent = self.model.logger.name_to_value.get("train/ent_coef", math.nan)
        status = (f"{env_rate:,.0f} steps/s {grad_rate:,.1f} grad/s | ep return {ep_return:,.1f} "
                  f"len {ep_length:.0f} | ent_coef {ent:.3g}")
        if self._bar is not None:
            self._bar.update(self._task, status=status)
        else:
            eta = "?" if not math.isfinite(remaining) else time.strftime("%H:%M:%S", time.gmtime(remaining))
            self.echo(f"[{_now()}] {self.num_timesteps:,}/{self.total:,} ({self.num_timesteps / self.total:.1%}) "
                      f"{status} | ETA {eta}")
        self._last_step, self._last_time, self._last_updates = self.num_timesteps, now, updates

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    steps: int
    wall_time_s: float
    last_eval: dict[str, Any] | None
    best: dict[str, Any] | None


def _versions(learner: str) -> dict[str, str]:
    return {**versions(), **library_versions(learner)}


def train(
    out: str | Path,
    *,
    twin: str = "reduced",
    steps: int,
    seed: int = 0,
    config: SacConfig | None = None,
    config_sources: dict[str, str] | None = None,
    config_path: str | None = None,
    resume: bool = False,
    progress_bar: bool | None = None,
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) a SAC policy; everything lands in the run folder ``out``.

    Args:
        out: run folder (created; must not hold a run unless ``resume``).
        twin: "reduced" or "full".
        steps: total transitions of the run (summed over envs; a resumed run continues to it).
        seed: master seed (python, numpy, torch, envs).
        config: hyperparameters (default ``config/sac.yaml``); ignored on resume (run.json's are used).
        config_sources: the ``source`` of each entry, recorded in run.json.
        config_path: where the configuration came from (recorded).
        resume: continue from ``checkpoints/latest.json``.
        progress_bar: rich bar (default: when stdout is a terminal); otherwise status lines.
        echo: where status lines go.

    Raises:
        FileExistsError: ``out`` holds a run and ``resume`` is False.
        FileNotFoundError: ``resume`` without a checkpoint.
        ValueError: bad twin/steps, or resume with a different twin/seed.
    """
    if twin not in TWINS:
        raise ValueError(f"twin must be one of {TWINS}, got {twin!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    run = RunDir(Path(out))
    if resume:
        record = run.read_record()
        if record["twin"] != twin or int(record["seed"]) != seed:
            raise ValueError(f"{out} was trained with twin={record['twin']} seed={record['seed']}; "
                             f"resume asked for twin={twin} seed={seed}")
        latest = run.latest()
        if latest is None:
            raise FileNotFoundError(f"{run.checkpoints / 'latest.json'} not found: nothing to resume")
        cfg = SacConfig().with_overrides(**{**record["config"], "learner": run_learner(record["config"])})
    else:
        if run.record_path.exists():
            raise FileExistsError(f"{out} already holds a training run; use --resume or another --out")
        if config is None:
            config, config_sources = load_sac_config()
        cfg = config
        if cfg.residual_controller != "none" and not cfg.residual_params:
            cfg = cfg.with_overrides(residual_params=load_controller_params(cfg.residual_controller))
        record = {
            "algo": "sac",
            "twin": twin,
            "seed": seed,
            "steps": steps,
            "created_utc": _now(),
            "command": " ".join(sys.argv),
            "config": cfg.to_dict(),
            "config_sources": config_sources or {},
            "config_path": config_path,
            "segments": [],
            "finished": False,
        }
        latest = None
    torch.set_num_threads(cfg.torch_threads)
    run.root.mkdir(parents=True, exist_ok=True)
    record.update({"steps": steps, "git": git_info(), "versions": _versions(cfg.learner)})

    venv = make_vec_env(twin, cfg)
    try:
        if latest is not None:
            model = load_model(run.checkpoints / latest["model"], cfg.learner, env=venv)
            if latest.get("replay_buffer"):
                model.load_replay_buffer(str(run.checkpoints / latest["replay_buffer"]))
            model._last_obs = None  # the envs are new: start fresh episodes (SB3 resets them in learn)
            model.set_random_seed(seed + int(model.num_timesteps))
            wall_offset = float(latest.get("wall_time_s", 0.0))
            echo(f"resuming {out} at {model.num_timesteps:,} steps (checkpoint {latest['model']}, "
                 f"replay buffer {'restored' if latest.get('replay_buffer') else 'empty'})")
        else:
            model = build_model(cfg, venv, seed, steps)
            wall_offset = 0.0
        start_steps = int(model.num_timesteps)
        logger, formats = make_logger(run.root, start_steps if resume else None)
        model.set_logger(logger)
        state: dict[str, Any] = {
            "wall_offset_s": wall_offset,
            "started": time.perf_counter(),
            "best": (latest or {}).get("best") or record.get("best"),
            "last_eval": None,
        }
        record["segments"].append({"started_utc": _now(), "start_steps": start_steps, "resumed": bool(resume)})
        record["log_formats"] = formats
        run.write_record(record)

        bar = sys.stdout.isatty() if progress_bar is None else progress_bar
        evaluation = EvaluationCallback(run, twin, cfg, echo, state)
        checkpoint = ResumableCheckpointCallback(run, cfg, state, echo)
        every = max(1_000, min(10_000, steps // 50))
        callbacks = CallbackList([evaluation, checkpoint, ProgressCallback(steps, every, echo, bar)])
        echo(f"training SAC ({cfg.learner}) on the {twin} twin: {start_steps:,} -> {steps:,} steps, seed {seed}, "
             f"{cfg.n_envs} envs ({cfg.vec_env}), batch {cfg.batch_size}, {cfg.gradient_steps()} gradient steps "
             f"every {cfg.train_freq * cfg.n_envs} transitions, torch threads {torch.get_num_threads()} -> {run.root}")
        remaining = steps - start_steps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callbacks, log_interval=cfg.log_interval_episodes,
                        reset_num_timesteps=not resume, progress_bar=False)
        # the end: a last evaluation (if the last one is older) and the final model + checkpoint
        evaluation.init_callback(model)
        if state["last_eval"] is None or state["last_eval"]["steps"] != model.num_timesteps:
            evaluation.evaluate()
        (run.root / "final").mkdir(exist_ok=True)
        _save_model_atomic(model, run.root / "final" / "model.zip")
        write_atomic(run.root / "final" / "eval.json", json.dumps(state["last_eval"], indent=2) + "\n")
        checkpoint.init_callback(model)
        if latest is None or int(latest["steps"]) != model.num_timesteps:
            checkpoint.save()
        logger.dump(int(model.num_timesteps))
        wall = state["wall_offset_s"] + time.perf_counter() - state["started"]
        record["segments"][-1].update({"end_steps": int(model.num_timesteps), "finished_utc": _now(),
                                       "wall_time_s": round(time.perf_counter() - state["started"], 2)})
        record.update({"finished": model.num_timesteps >= steps, "num_timesteps": int(model.num_timesteps),
                       "wall_time_s": round(wall, 2), "best": state["best"]})
        run.write_record(record)
        logger.close()
        return TrainResult(run.root, int(model.num_timesteps), wall, state["last_eval"], state["best"])
    finally:
        venv.close()
