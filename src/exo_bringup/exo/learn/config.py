"""Typed SAC training configuration (``config/sac.yaml``), loadable without torch.

The file has one top-level key ``sac`` with sections (``network``, ``algorithm``,
``data``, ``evaluation``, ``checkpoints``, ``runtime``); every entry is::

    batch_size: {value: 512, source: "chosen: why"}

and the loader checks that each entry has a ``value`` and a non-empty
``source`` (``facts``: digital-twin-facts.md section Agent, ``paper``, ``sb3``:
the Stable-Baselines3 default, or ``chosen: why``). Entry names are unique
across sections and are the fields of :class:`SacConfig`; unknown or missing
entries are errors naming the file and key. :meth:`SacConfig.with_overrides`
takes ``field=value`` (what ``exo train --set batch_size=64`` uses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from exo.control.residual import ResidualSpec
from exo.learn.learners import LEARNERS
from exo.params import ConfigError, load_yaml
from exo.paths import config_file

#: Sections of config/sac.yaml, in file order.
SECTIONS = ("network", "algorithm", "residual", "data", "evaluation", "checkpoints", "runtime")


@dataclass(frozen=True)
class SacConfig:
    """Hyperparameters of :func:`exo.learn.sac.train` (meaning and provenance in ``config/sac.yaml``).

    Attributes:
        net_arch: hidden layer widths of the actor and of each critic.
        activation: hidden activation ("gelu": exact erf GELU, torch ``nn.GELU()``).
        learning_rate: Adam learning rate of actor, critics and entropy coefficient.
        batch_size: transitions per gradient step.
        buffer_size: replay capacity, transitions (capped at the run's total steps).
        gamma: discount per control step (10 ms).
        tau: Polyak coefficient of the target critics.
        learning_starts: transitions of uniform random actions before the first update.
        train_freq: env steps per env between two training phases.
        utd_ratio: gradient steps per collected transition (update-to-data ratio).
        ent_coef: "auto" (learned, SB3 ``auto``), "auto_<init>" or a fixed float.
        target_entropy: target policy entropy ("auto" = -action_dim) or a float.
        residual_controller: "none" (the policy commands the torque, as in the paper) or a
            registered controller the policy's action is added to (:mod:`exo.control.residual`).
        residual_params: the base controller's parameters; empty = its entry in
            ``config/controllers.yaml`` when the run starts (then recorded in run.json).
        residual_scale: authority of the policy's correction, fraction of the action range.
        residual_limit: authority of base + correction, fraction of the action range (1.0 = the motor's).
        n_envs: parallel environments.
        vec_env: "dummy" (one process) or "subproc" (one process per env).
        levels: spasticity levels drawn uniformly per episode (all four = the env's ``level=None``).
        subject_noise: draw a new subject (10 % noise on every level parameter) at every reset.
        env_overrides: task overrides of the training env (``KneeExtensionEnv(**env_overrides)``).
        eval_every_steps: transitions between two evaluations on the fixed subjects.
        eval_trials_per_level: fixed subjects per level in each evaluation.
        eval_seed: master seed of the evaluation subjects (``exo.evaluate.subject_seed``).
        checkpoint_every_steps: transitions between two checkpoints.
        keep_checkpoints: model checkpoints kept on disk (older ones are deleted).
        save_replay_buffer: write the replay buffer with each checkpoint (exact resume).
        log_interval_episodes: episodes (summed over envs) between two progress.csv rows.
        torch_threads: torch intra-op threads.
        learner: the SAC implementation, "sb3" (Stable-Baselines3, torch) or "sbx" (SBX, JAX);
            see :mod:`exo.learn.learners`.
    """

    net_arch: tuple[int, ...] = (64, 64)
    activation: str = "gelu"
    learning_rate: float = 3e-4
    batch_size: int = 128
    buffer_size: int = 1_000_000
    gamma: float = 0.99
    tau: float = 0.005
    learning_starts: int = 10_000
    train_freq: int = 16
    utd_ratio: float = 0.5
    ent_coef: str | float = "auto"
    target_entropy: str | float = "auto"
    residual_controller: str = "none"
    residual_params: Mapping[str, Any] = field(default_factory=dict)
    residual_scale: float = 0.5
    residual_limit: float = 1.0
    n_envs: int = 8
    vec_env: str = "dummy"
    levels: tuple[int, ...] = (0, 1, 2, 3)
    subject_noise: bool = True
    env_overrides: Mapping[str, Any] = field(default_factory=dict)
    eval_every_steps: int = 25_000
    eval_trials_per_level: int = 3
    eval_seed: int = 1000
    checkpoint_every_steps: int = 50_000
    keep_checkpoints: int = 3
    save_replay_buffer: bool = True
    log_interval_episodes: int = 4
    torch_threads: int = 1
    learner: str = "sbx"

    def __post_init__(self) -> None:
        def check(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(what)

        check(len(self.net_arch) >= 1 and all(isinstance(w, int) and w > 0 for w in self.net_arch),
              f"net_arch must be a list of positive widths, got {self.net_arch!r}")
        check(self.activation == "gelu", f"activation must be 'gelu' (what exo.control.sac runs), got {self.activation!r}")
        for name in ("learning_rate", "gamma", "tau", "utd_ratio"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                  f"{name} must be a number > 0, got {value!r}")
        check(self.gamma < 1.0 and self.tau <= 1.0, f"gamma must be < 1 and tau <= 1, got {self.gamma}, {self.tau}")
        for name in ("batch_size", "buffer_size", "train_freq", "n_envs", "eval_every_steps",
                     "eval_trials_per_level", "checkpoint_every_steps", "keep_checkpoints",
                     "log_interval_episodes", "torch_threads"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                  f"{name} must be an integer >= 1, got {value!r}")
        check(isinstance(self.learning_starts, int) and self.learning_starts >= 0,
              f"learning_starts must be an integer >= 0, got {self.learning_starts!r}")
        check(isinstance(self.eval_seed, int), f"eval_seed must be an integer, got {self.eval_seed!r}")
        check(self.learner in LEARNERS, f"learner must be one of {', '.join(LEARNERS)}, got {self.learner!r}")
        check(self.vec_env in ("dummy", "subproc"), f"vec_env must be 'dummy' or 'subproc', got {self.vec_env!r}")
        check(len(self.levels) >= 1 and len(set(self.levels)) == len(self.levels)
              and all(level in (0, 1, 2, 3) for level in self.levels),
              f"levels must be distinct MAS levels 0-3, got {self.levels!r}")
        check(isinstance(self.subject_noise, bool) and isinstance(self.save_replay_buffer, bool),
              "subject_noise and save_replay_buffer must be true/false")
        for name in ("ent_coef", "target_entropy"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) or (isinstance(value, str) and value.startswith("auto"))
            check(ok, f"{name} must be 'auto' or a number, got {value!r}")
        check(isinstance(self.env_overrides, Mapping), f"env_overrides must be a mapping, got {self.env_overrides!r}")
        check(isinstance(self.residual_params, Mapping), f"residual_params must be a mapping, got {self.residual_params!r}")
        check(isinstance(self.residual_controller, str) and bool(self.residual_controller),
              f"residual_controller must be 'none' or a controller name, got {self.residual_controller!r}")
        check(isinstance(self.residual_scale, (int, float)) and math.isfinite(self.residual_scale)
              and 0.0 < self.residual_scale <= 2.0, f"residual_scale must be in (0, 2], got {self.residual_scale!r}")
        check(isinstance(self.residual_limit, (int, float)) and math.isfinite(self.residual_limit)
              and 0.0 < self.residual_limit <= 1.0, f"residual_limit must be in (0, 1], got {self.residual_limit!r}")

    def residual(self) -> ResidualSpec | None:
        """The residual base controller, or None for a plain policy (``residual_controller: none``)."""
        if self.residual_controller == "none":
            return None
        return ResidualSpec(self.residual_controller, dict(self.residual_params), float(self.residual_scale),
                            float(self.residual_limit))

    def gradient_steps(self) -> int:
        """Gradient steps per training phase: ``utd_ratio * train_freq * n_envs`` (at least 1)."""
        return max(1, round(self.utd_ratio * self.train_freq * self.n_envs))

    def with_overrides(self, **overrides: Any) -> SacConfig:
        """A validated copy with ``field=value`` replaced (lists become tuples)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown SAC setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return replace(self, **{k: _coerce(k, v) for k, v in overrides.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON friendly)."""
        out = asdict(self)
        out["env_overrides"] = dict(self.env_overrides)
        out["residual_params"] = dict(self.residual_params)
        return out


def _coerce(name: str, value: Any) -> Any:
    """YAML / command-line values to the field's type: lists -> tuples, ints -> floats for float fields."""
    if name in ("net_arch", "levels"):
        if isinstance(value, str):  # "1,3", "1 3" or "[1, 3]" (a --set value)
            try:
                value = [int(part) for part in value.strip().strip("[]").replace(",", " ").split()]
            except ValueError:
                raise ConfigError(f"{name}: expected integers such as 1,3 or [1, 3], got {value!r}") from None
        if isinstance(value, int):
            value = [value]
        return tuple(value)
    if name in ("learning_rate", "gamma", "tau", "utd_ratio", "residual_scale", "residual_limit") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if name in ("env_overrides", "residual_params") and value is None:
        return {}
    return value


def default_config_path() -> Path:
    """``config/sac.yaml`` of the install (see :mod:`exo.paths`)."""
    return config_file("sac.yaml")


def load_sac_config(path: str | Path | None = None) -> tuple[SacConfig, dict[str, str]]:
    """The configuration in ``path`` (default ``config/sac.yaml``) and the ``source`` of every entry.

    Raises:
        exo.params.ConfigError: unreadable file, missing/unknown entry, entry without
            value or source, or an invalid value (the message names the file and key).
    """
    p = Path(path) if path is not None else default_config_path()
    data = load_yaml(p)
    if not isinstance(data, Mapping) or not isinstance(data.get("sac"), Mapping):
        raise ConfigError(f"{p}: expected a top-level 'sac' mapping")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    names = {f.name for f in fields(SacConfig)}
    for section, entries in data["sac"].items():
        if section not in SECTIONS or not isinstance(entries, Mapping):
            raise ConfigError(f"{p}: sac.{section} is not a section (expected {', '.join(SECTIONS)})")
        for key, entry in entries.items():
            where = f"sac.{section}.{key}"
            if key not in names:
                raise ConfigError(f"{p}: unknown entry {where}")
            if key in values:
                raise ConfigError(f"{p}: {key} appears twice")
            if not isinstance(entry, Mapping) or "value" not in entry:
                raise ConfigError(f"{p}: {where} must be {{value: ..., source: ...}}, got {entry!r}")
            source = entry.get("source")
            if not isinstance(source, str) or not source.strip():
                raise ConfigError(f"{p}: {where} needs a 'source' (facts, paper, sb3 or 'chosen: why')")
            values[key] = _coerce(key, entry["value"])
            sources[key] = source.strip()
    missing = sorted(names - set(values))
    if missing:
        raise ConfigError(f"{p}: missing entries {', '.join(missing)}")
    try:
        return SacConfig(**values), sources
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
