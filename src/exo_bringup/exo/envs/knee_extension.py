"""Gymnasium env: seated knee extension of a spastic knee with a knee exoskeleton.

One episode: a subject of Modified Ashworth level 0-3 (``level=None``: uniform per
episode, as in the paper) sits with the knee at about 90 deg flexion
(1.544 rad); the policy commands the exo torque at 100 Hz for ``control_steps``
steps (default 512 = 5.12 s) to bring the knee to 0.2 rad.

- Action: shape (1,), in [-1, 1] = exo torque / 100 N m (+ = flexion); values
  outside are clipped (the twin clips the torque again to +-100 N m).
- Observation: :func:`exo.envs.observation.build_observation` of the twin's
  :class:`~exo.twin.interface.Measurements` only (see ``OBS_LAYOUT``).
- Reward: :func:`weighted_reward`, ``sum_k weights[k] * terms[k]`` over the named terms of
  :func:`compute_reward` (weights and term parameters in ``config/env.yaml``); the terms are evaluated on
  the human knee (ground truth of the simulation: the task is to move the
  person's knee), the components are in ``info["reward_terms"]``.
- ``terminated``: the human knee left ``safe_range_rad`` while the interaction
  torque exceeds ``interaction_torque_nm`` (unsafe), or the simulation diverged.
  ``truncated``: the step limit was reached. The unsafe stop is a training
  device (charged ``unsafe_stop_penalty_per_step`` per step left, so that it never
  pays); ``terminate_on_unsafe=False`` (what the evaluator uses) keeps the
  episode running to its full length and only reports the condition.
- Safety flags in ``info`` at every step, whether or not they terminate:
  ``out_of_range`` (human knee outside ``safe_range_rad``) and ``unsafe``
  (out of range while ``|interaction torque| > interaction_torque_nm``).
- ``info``: ground truth (human knee angle/velocity, level, spasticity
  coefficient, activations, muscle torque, strap slide, subject parameters and
  seed) and the reward terms. Never part of the observation.
- Seeding: ``reset(seed=...)`` seeds ``self.np_random``, which draws the level
  (when random), the subject seed and the start-angle perturbation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import gymnasium as gym
import numpy as np

from exo.envs.config import EnvConfig, RewardConfig, load_env_config
from exo.envs.observation import OBS_DIM, OBS_HIGH, OBS_LOW, build_observation
from exo.twin.interface import KneeTwin, TwinState


def compute_reward(
    cfg: RewardConfig,
    *,
    knee_angle_rad: float,
    knee_velocity_rad_s: float,
    target_rad: float,
    interaction_torque_nm: float,
    action: float,
    previous_action: float,
    acceleration_change_rad_s2: float,
    steps_in_band: int,
    running_peak_nm: float = 0.0,
) -> dict[str, float]:
    """The unweighted reward terms of one control step.

    - ``pose = kernel(e) - |e| + bonus_per_step * steps_in_band`` with ``e = knee - target``
      (rad) and ``kernel = exp(-|e| / (2 sigma^2))`` (``abs``, the facts' literal form) or
      ``exp(-e^2 / (2 sigma^2))`` (``squared``);
    - ``interaction``: ``-(tau / scale)^2`` (``facts``) or ``-|tau| / scale - (max(0, |tau| - q)
      / scale)^2`` (``paper``: linear normalisation, quadratic above q = 75 N m);
    - ``smoothness = -(a_t - a_{t-1})^2`` (actions in [-1, 1]);
    - ``acceleration = -(delta knee acceleration / scale)^2``;
    - ``range = -1`` while the knee is outside ``safe_range_rad``, else 0;
    - ``peak = -min(1, max(0, |tau| - peak_above_nm) / peak_span_nm)^2`` (``peak_form: band``), a
      bounded penalty of torques near the peak, or ``-max(0, |tau| - max(M, peak_above_nm)) /
      peak_span_nm`` (``running_max``, M = ``running_peak_nm``, the largest |tau| of the episode's
      earlier steps): its episode sum is ``-max(0, peak - peak_above_nm) / peak_span_nm``. Weight 0
      in the paper's reward; the peak-aware variants set it.

    ``steps_in_band`` counts consecutive steps (this one included) with |e| and |v| in the bonus band;
    ``running_peak_nm`` is the largest |interaction torque| of the episode's earlier steps, N m.
    """
    e = knee_angle_rad - target_rad
    two_s2 = 2.0 * cfg.pose_sigma_rad * cfg.pose_sigma_rad
    kernel = math.exp(-abs(e) / two_s2) if cfg.pose_kernel == "abs" else math.exp(-e * e / two_s2)
    pose = kernel - abs(e) + cfg.bonus_per_step * steps_in_band
    tau = abs(interaction_torque_nm) / cfg.interaction_scale_nm
    if cfg.interaction_form == "facts":
        interaction = -tau * tau
    else:
        over = max(0.0, abs(interaction_torque_nm) - cfg.interaction_quadratic_above_nm) / cfg.interaction_scale_nm
        interaction = -tau - over * over
    da = action - previous_action
    acc = acceleration_change_rad_s2 / cfg.acceleration_scale_rad_s2
    lo, hi = cfg.safe_range_rad
    return {
        "pose": pose,
        "interaction": interaction,
        "smoothness": -da * da,
        "acceleration": -acc * acc,
        "range": 0.0 if lo <= knee_angle_rad <= hi else -1.0,
        "peak": _peak_term(cfg, abs(interaction_torque_nm), running_peak_nm),
    }


def weighted_reward(weights: Mapping[str, float], terms: Mapping[str, float]) -> float:
    """The step's reward: ``sum_k weights[k] * terms[k]`` over the names of :data:`RewardConfig.TERMS`.

    Added left to right in ``TERMS`` order, not with :func:`sum` (whose float summation is
    compensated from Python 3.12), so a return is the same to the bit on every Python.
    """
    total = -0.0  # the exact identity of float addition (0.0 + -0.0 would be +0.0)
    for name in RewardConfig.TERMS:
        total += weights[name] * terms[name]
    return total


def _peak_term(cfg: RewardConfig, tau_nm: float, running_peak_nm: float) -> float:
    if cfg.peak_form == "running_max":
        return -max(0.0, tau_nm - max(running_peak_nm, cfg.peak_above_nm)) / cfg.peak_span_nm
    return -min(1.0, max(0.0, tau_nm - cfg.peak_above_nm) / cfg.peak_span_nm) ** 2


class KneeExtensionEnv(gym.Env[np.ndarray, np.ndarray]):
    """Seated knee extension with a spastic-knee twin (see the module docstring).

    Args:
        twin: "full", "reduced", or a ready :class:`~exo.twin.interface.KneeTwin`.
        level: MAS level 0-3, or None for a uniformly random level per episode.
        config: the task configuration (default ``config/env.yaml``).
        twin_overrides: overrides passed to :func:`exo.twin.make_twin`.
        terminate_on_unsafe: end the episode (``terminated``) on the unsafe
            condition (default, training); False runs every episode to
            ``control_steps`` and only flags it in ``info["unsafe"]`` (evaluation).
        **overrides: overrides of the task configuration (e.g. ``control_steps=256``,
            ``reward__pose_kernel="squared"``).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        twin: str | KneeTwin = "reduced",
        level: int | None = None,
        config: EnvConfig | None = None,
        twin_overrides: dict[str, Any] | None = None,
        terminate_on_unsafe: bool = True,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if level is not None and level not in (0, 1, 2, 3):
            raise ValueError(f"level must be None or 0-3, got {level!r}")
        cfg = config if config is not None else load_env_config()
        self.config = cfg.with_overrides(**overrides) if overrides else cfg
        if isinstance(twin, str):
            from exo.twin import make_twin

            self.twin: KneeTwin = make_twin(twin, **(twin_overrides or {}))
        else:
            if twin_overrides:
                raise ValueError("twin_overrides only apply when twin is a kind name")
            self.twin = twin
        self.level = level
        self.terminate_on_unsafe = bool(terminate_on_unsafe)
        self.observation_space = gym.spaces.Box(OBS_LOW, OBS_HIGH, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._dt = float(self.twin.control_timestep_s)
        self._torque_scale = float(self.twin.max_exo_torque_nm)
        self._duration_s = self.config.control_steps * self._dt
        self._target = float(self.config.target_knee_angle_rad)
        self._reset_episode_vars()

    def _reset_episode_vars(self) -> None:
        self._steps = 0
        self._action = 0.0
        self._prev_velocity = 0.0
        self._prev_accel = 0.0
        self._in_band = 0
        self._running_peak = 0.0  # largest |interaction torque| of the episode so far, N m
        self._subject: dict[str, float] = {}
        self._subject_seed = 0

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode. ``options`` may set ``level``, ``initial_knee_angle_rad`` and ``subject``.

        ``subject`` (a :class:`~exo.twin.reflex.SpasticityLevel`, e.g. a person's identified twin) runs
        these reflex parameters instead of a generated subject; its level is the episode's level.
        """
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        subject = options.get("subject")
        level = subject.level if subject is not None else options.get("level", self.level)
        level = int(rng.integers(0, 4)) if level is None else int(level)
        self._subject_seed = int(rng.integers(0, 2**63 - 1))
        angle = float(options.get("initial_knee_angle_rad", self.config.initial_knee_angle_rad))
        noise = self.config.initial_angle_noise_rad
        if noise > 0.0:
            angle += float(rng.uniform(-noise, noise))
        state = self.twin.reset(level=level, seed=self._subject_seed, initial_knee_angle_rad=angle, subject=subject)
        seed_of_subject = self._subject_seed
        self._reset_episode_vars()
        self._subject_seed = seed_of_subject
        subject = getattr(self.twin, "subject", None)
        self._subject = asdict(subject) if subject is not None else {}
        self._prev_velocity = state.human_knee_velocity_rad_s
        obs = build_observation(state.measurements, self._target, 0.0, 0.0, episode_duration_s=self._duration_s)
        info = self._info(state, None)
        info["out_of_range"], info["unsafe"] = self._safety_flags(
            state.human_knee_angle_rad, state.measurements.interaction_torque_nm
        )
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if not math.isfinite(a):
            raise ValueError(f"action must be finite, got {action!r}")
        a = 1.0 if a > 1.0 else -1.0 if a < -1.0 else a
        state = self.twin.step(a * self._torque_scale)
        self._steps += 1
        knee = state.human_knee_angle_rad
        vel = state.human_knee_velocity_rad_s
        accel = (vel - self._prev_velocity) / self._dt
        daccel = accel - self._prev_accel if self._steps > 1 else 0.0
        self._prev_velocity, self._prev_accel = vel, accel
        rcfg = self.config.reward
        e = knee - self._target
        self._in_band = self._in_band + 1 if abs(e) < rcfg.bonus_angle_band_rad and abs(vel) < rcfg.bonus_velocity_band_rad_s else 0
        m = state.measurements
        terms = compute_reward(
            rcfg,
            knee_angle_rad=knee,
            knee_velocity_rad_s=vel,
            target_rad=self._target,
            interaction_torque_nm=m.interaction_torque_nm,
            action=a,
            previous_action=self._action,
            acceleration_change_rad_s2=daccel,
            steps_in_band=self._in_band,
            running_peak_nm=self._running_peak,
        )
        tau_abs = abs(m.interaction_torque_nm)
        if tau_abs > self._running_peak:
            self._running_peak = tau_abs
        reward = weighted_reward(rcfg.weights, terms)
        self._action = a
        diverged = not (math.isfinite(knee) and math.isfinite(vel) and math.isfinite(m.interaction_torque_nm))
        out_of_range, unsafe = self._safety_flags(knee, m.interaction_torque_nm)
        stop_unsafe = unsafe and self.terminate_on_unsafe
        terminated = diverged or stop_unsafe
        truncated = (not terminated) and self._steps >= self.config.control_steps
        obs = build_observation(m, self._target, a, self._steps * self._dt, episode_duration_s=self._duration_s)
        if diverged:
            obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
            reward = -self.config.reward.weights["range"]
        if terminated:
            # Stopping early must never beat finishing the trial (see RewardConfig).
            reward -= rcfg.unsafe_stop_penalty_per_step * (self.config.control_steps - self._steps)
        info = self._info(state, terms)
        info["out_of_range"] = out_of_range
        info["unsafe"] = unsafe
        info["termination"] = "diverged" if diverged else "unsafe" if stop_unsafe else ""
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ helpers

    def _safety_flags(self, knee_angle_rad: float, interaction_torque_nm: float) -> tuple[bool, bool]:
        """(out_of_range, unsafe) of a human knee angle (rad) and interaction torque (N m)."""
        lo, hi = self.config.safe_range_rad
        out_of_range = not lo <= knee_angle_rad <= hi
        unsafe = out_of_range and abs(interaction_torque_nm) > self.config.termination_interaction_nm
        return out_of_range, unsafe

    def _info(self, state: TwinState, terms: dict[str, float] | None) -> dict[str, Any]:
        m = state.measurements
        return {
            "human_knee_angle_rad": state.human_knee_angle_rad,
            "human_knee_velocity_rad_s": state.human_knee_velocity_rad_s,
            "target_knee_angle_rad": self._target,
            "spasticity_level": state.spasticity_level,
            "spasticity_coefficient": state.spasticity_coefficient,
            "muscle_names": state.muscle_names,
            "muscle_activations": state.muscle_activations,
            "muscle_knee_torque_nm": state.muscle_knee_torque_nm,
            "strap_slide_m": state.strap_slide_m,
            "interaction_torque_nm": m.interaction_torque_nm,
            "exo_torque_nm": m.exo_motor_torque_nm,
            "time_s": m.time_s,
            "subject": dict(self._subject),
            "subject_seed": self._subject_seed,
            "reward_terms": terms if terms is not None else {},
            "measurements": m,
        }


from exo.envs import register_envs as _register_envs  # noqa: E402 - after the class it registers

_register_envs()
