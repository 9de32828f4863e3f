"""Typed configuration of the knee-extension task (``config/env.yaml``): episode, termination, reward.

The file is a ROS 2 parameter file read like ``config/twin.yaml`` (every number
``{value, unit, source}``, checked by :class:`exo.config_entries.EntryReader`;
errors are :class:`exo.params.ConfigError` naming the file and the key).
:class:`RewardConfig` names the reward terms and their weights
(:data:`RewardConfig.TERMS`); :func:`exo.envs.knee_extension.compute_reward`
computes the terms and :func:`exo.envs.knee_extension.weighted_reward` sums them
by name. :meth:`EnvConfig.with_overrides` takes ``field=value`` (env or reward
field) or ``reward__field=value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from exo.config_entries import EntryReader, apply_overrides, check, check_finite, read_node_file, validated
from exo.params import ConfigError
from exo.twin.config import TWIN_NODE

#: Node whose parameters hold the task settings in the ROS shell: the sim bridge, as for the twin.
ENV_NODE = TWIN_NODE

# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RewardConfig:
    """Reward terms of the knee-extension task (see :func:`exo.envs.knee_extension.compute_reward`).

    Attributes:
        weights: weight of each named term (pose, interaction, smoothness, acceleration, range, peak).
        pose_sigma_rad: width sigma of the pose kernel exp(-e / (2 sigma^2)), rad.
        pose_kernel: "abs" (e = |error|, as in the facts) or "squared" (e = error^2).
        bonus_per_step: bonus growth per consecutive in-band step (-).
        bonus_angle_band_rad: |error| band of the bonus, rad.
        bonus_velocity_band_rad_s: |velocity| band of the bonus, rad/s.
        interaction_form: "facts" (-(tau / scale)^2) or "paper" (linear normalisation plus a
            quadratic penalty above ``interaction_quadratic_above_nm``).
        interaction_scale_nm: torque normalisation, N m (1 N m = the facts' raw N m^2 penalty).
        interaction_quadratic_above_nm: threshold of the paper's quadratic penalty, N m.
        acceleration_scale_rad_s2: normalisation of the knee-acceleration change, rad/s^2.
        safe_range_rad: human knee range outside which the range penalty applies, rad.
        peak_above_nm: interaction torque at which the peak term starts, N m.
        peak_span_nm: torque above ``peak_above_nm`` at which the peak term reaches its floor
            of -1 (it is ``-min(1, max(0, |tau| - peak_above_nm) / peak_span_nm)^2``), N m.
            The term targets the peak-torque metric, which a per-step linear penalty barely
            sees; its weight is 0 in the paper's reward (config/env.yaml).
        peak_form: "band" (the bounded per-step penalty above) or "running_max": the step's
            increase of the episode's running maximum of |tau| above ``peak_above_nm``, in units
            of ``peak_span_nm`` (``-max(0, |tau| - max(M, peak_above_nm)) / peak_span_nm``, M = the
            largest |tau| of the earlier steps). Summed over an episode it is exactly
            ``-max(0, peak - peak_above_nm) / peak_span_nm``: the peak metric itself, and holding a
            torque below the peak reached costs nothing.
        unsafe_stop_penalty_per_step: charged once per control step left in the episode when a
            training episode ends on the unsafe condition (-), so that stopping early never
            pays more than finishing the trial; it must exceed the largest per-step loss of
            the other terms (range term excluded).
    """

    weights: Mapping[str, float]
    pose_sigma_rad: float
    pose_kernel: str
    bonus_per_step: float
    bonus_angle_band_rad: float
    bonus_velocity_band_rad_s: float
    interaction_form: str
    interaction_scale_nm: float
    interaction_quadratic_above_nm: float
    acceleration_scale_rad_s2: float
    safe_range_rad: tuple[float, float]
    unsafe_stop_penalty_per_step: float = 0.0
    peak_above_nm: float = 70.0
    peak_span_nm: float = 30.0
    peak_form: str = "band"

    TERMS: ClassVar[tuple[str, ...]] = ("pose", "interaction", "smoothness", "acceleration", "range", "peak")

    def __post_init__(self) -> None:
        check(set(self.weights) == set(self.TERMS), f"reward.weights must name exactly {list(self.TERMS)}, got {sorted(self.weights)}")
        for k, w in self.weights.items():
            check_finite(f"reward.weights.{k}", w, 0.0)
        check_finite("reward.pose_sigma_rad", self.pose_sigma_rad, 0.0, strict_lo=True)
        check(self.pose_kernel in ("abs", "squared"), f"reward.pose_kernel must be 'abs' or 'squared', got {self.pose_kernel!r}")
        check(self.interaction_form in ("facts", "paper"), f"reward.interaction_form must be 'facts' or 'paper', got {self.interaction_form!r}")
        for name in ("bonus_per_step", "bonus_angle_band_rad", "bonus_velocity_band_rad_s", "interaction_quadratic_above_nm", "unsafe_stop_penalty_per_step"):
            check_finite(f"reward.{name}", getattr(self, name), 0.0)
        check_finite("reward.peak_above_nm", self.peak_above_nm, 0.0)
        check(self.peak_form in ("band", "running_max"), f"reward.peak_form must be 'band' or 'running_max', got {self.peak_form!r}")
        for name in ("interaction_scale_nm", "acceleration_scale_rad_s2", "peak_span_nm"):
            check_finite(f"reward.{name}", getattr(self, name), 0.0, strict_lo=True)
        check(self.safe_range_rad[0] < self.safe_range_rad[1], "reward.safe_range_rad must be increasing")


@dataclass(frozen=True)
class EnvConfig:
    """The seated knee-extension episode.

    Attributes:
        control_steps: episode length in control steps (truncation), -.
        initial_knee_angle_rad: start angle, rad (+ = flexion).
        initial_angle_noise_rad: half-width of a uniform start-angle perturbation, rad.
        target_knee_angle_rad: target angle, rad.
        safe_range_rad: termination range of the human knee, rad.
        termination_interaction_nm: |interaction torque| above which leaving the range terminates, N m.
        reward: the reward terms.
    """

    control_steps: int
    initial_knee_angle_rad: float
    initial_angle_noise_rad: float
    target_knee_angle_rad: float
    safe_range_rad: tuple[float, float]
    termination_interaction_nm: float
    reward: RewardConfig
    source_path: str = ""

    def __post_init__(self) -> None:
        check(isinstance(self.control_steps, int) and self.control_steps >= 1, f"episode.control_steps must be an integer >= 1, got {self.control_steps!r}")
        check_finite("episode.initial_knee_angle_rad", self.initial_knee_angle_rad, 0.0, 2.0944)
        check_finite("episode.initial_angle_noise_rad", self.initial_angle_noise_rad, 0.0, 0.5)
        check_finite("episode.target_knee_angle_rad", self.target_knee_angle_rad, 0.0, 2.0944)
        check(self.safe_range_rad[0] < self.safe_range_rad[1], "termination.safe_range_rad must be increasing")
        check_finite("termination.interaction_torque_nm", self.termination_interaction_nm, 0.0)

    def with_overrides(self, **overrides: Any) -> EnvConfig:
        """A copy with ``field=value`` (env or reward field) or ``reward__field=value`` replaced."""
        return apply_overrides(self, overrides, ("reward",))


# ----------------------------------------------------------------------------- YAML parsing


def parse_env_config(params: Mapping[str, Any], path: str = "<dict>") -> EnvConfig:
    """Build an :class:`EnvConfig` from the ``ros__parameters`` mapping of ``env.yaml``."""
    root = EntryReader(params, path).section("knee_extension")

    def build() -> EnvConfig:
        ep = root.section("episode")
        term = root.section("termination")
        rw = root.section("reward")
        wr = rw.section("weights")
        weights = {k: wr.number(k, "1") for k in RewardConfig.TERMS}
        unknown = sorted(set(wr.child_keys()) - set(RewardConfig.TERMS))
        if unknown:
            raise ConfigError(f"{path}: knee_extension.reward.weights has unknown term(s) {unknown}")
        reward = RewardConfig(
            weights=weights,
            pose_sigma_rad=rw.number("pose_sigma_rad", "rad"),
            pose_kernel=rw.choice("pose_kernel", ("abs", "squared")),
            bonus_per_step=rw.number("bonus_per_step", "1"),
            bonus_angle_band_rad=rw.number("bonus_angle_band_rad", "rad"),
            bonus_velocity_band_rad_s=rw.number("bonus_velocity_band_rad_s", "rad/s"),
            interaction_form=rw.choice("interaction_form", ("facts", "paper")),
            interaction_scale_nm=rw.number("interaction_scale_nm", "N m"),
            interaction_quadratic_above_nm=rw.number("interaction_quadratic_above_nm", "N m"),
            acceleration_scale_rad_s2=rw.number("acceleration_scale_rad_s2", "rad/s^2"),
            safe_range_rad=rw.vector("safe_range_rad", "rad", 2),  # type: ignore[arg-type]
            unsafe_stop_penalty_per_step=rw.number("unsafe_stop_penalty_per_step", "1"),
            peak_above_nm=rw.number("peak_above_nm", "N m"),
            peak_span_nm=rw.number("peak_span_nm", "N m"),
            peak_form=rw.choice("peak_form", ("band", "running_max")),
        )
        return EnvConfig(
            control_steps=ep.integer("control_steps", "1"),
            initial_knee_angle_rad=ep.number("initial_knee_angle_rad", "rad"),
            initial_angle_noise_rad=ep.number("initial_angle_noise_rad", "rad"),
            target_knee_angle_rad=ep.number("target_knee_angle_rad", "rad"),
            safe_range_rad=term.vector("safe_range_rad", "rad", 2),  # type: ignore[arg-type]
            termination_interaction_nm=term.number("interaction_torque_nm", "N m"),
            reward=reward,
            source_path=path,
        )

    return validated(path, build)


def load_env_config(path: Path | str | None = None) -> EnvConfig:
    """Load ``config/env.yaml`` (or ``path``); raises :class:`ConfigError` naming file and key."""
    params, where = read_node_file(path, "env.yaml", ENV_NODE)
    return parse_env_config(params, where)
