"""KneeExtensionEnv: gymnasium API, seeding, observation purity, reward terms, termination."""

from __future__ import annotations

import dataclasses
import inspect
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import exo.envs
from exo.envs.config import load_env_config
from exo.envs.knee_extension import KneeExtensionEnv, compute_reward
from exo.envs.observation import OBS_DIM, OBS_LAYOUT, build_observation, observation_value
from exo.twin.interface import Measurements

KINDS = ("full", "reduced")


@pytest.fixture(scope="module")
def envs() -> dict[str, KneeExtensionEnv]:
    return {kind: KneeExtensionEnv(kind, control_steps=40) for kind in KINDS}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_check_env(envs: dict[str, KneeExtensionEnv], kind: str) -> None:
    check_env(envs[kind], skip_render_check=True)


def test_registered_ids() -> None:
    exo.envs.register_envs()
    assert set(exo.envs.ENV_IDS.values()) <= set(gym.registry)
    env = gym.make("exo/KneeExtension-Reduced-v0", level=2, control_steps=5)
    obs, info = env.reset(seed=0)
    assert obs.shape == (OBS_DIM,) and info["spasticity_level"] == 2
    for _ in range(5):  # zero torque: a random action may legitimately end the trial as unsafe
        obs, r, term, trunc, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert trunc and not term
    env.close()
    assert gym.spec("exo/KneeExtension-Full-v0").kwargs["twin"] == "full"


@pytest.mark.parametrize("kind", KINDS)
def test_determinism_given_seed(kind: str) -> None:
    def rollout(env: KneeExtensionEnv, seed: int) -> tuple[list[np.ndarray], list[float], dict]:
        obs, info = env.reset(seed=seed)
        out, rewards = [obs], []
        actions = np.random.default_rng(seed).uniform(-1, 1, (25, 1)).astype(np.float32)
        for a in actions:
            obs, r, *_ = env.step(a)
            out.append(obs)
            rewards.append(r)
        return out, rewards, info

    e1, e2 = KneeExtensionEnv(kind), KneeExtensionEnv(kind)
    o1, r1, i1 = rollout(e1, 123)
    o2, r2, i2 = rollout(e2, 123)
    assert all(np.array_equal(a, b) for a, b in zip(o1, o2, strict=True)) and r1 == r2
    assert i1["subject"] == i2["subject"] and i1["spasticity_level"] == i2["spasticity_level"]
    o3, _, i3 = rollout(e1, 124)
    assert not all(np.array_equal(a, b) for a, b in zip(o1, o3, strict=True)) or i3["subject"] != i1["subject"]


def test_random_level_is_uniform_over_0_to_3() -> None:
    env = KneeExtensionEnv("reduced")
    levels = [env.reset(seed=s)[1]["spasticity_level"] for s in range(200)]
    counts = np.bincount(levels, minlength=4)
    assert counts.sum() == 200 and counts.min() > 30


@pytest.mark.parametrize("kind", KINDS)
def test_observation_is_built_only_from_measurements(envs: dict[str, KneeExtensionEnv], kind: str) -> None:
    env = envs[kind]
    obs, info = env.reset(seed=1)
    assert np.array_equal(obs, build_observation(info["measurements"], 0.2, 0.0, 0.0, episode_duration_s=0.4))
    for k in range(1, 6):
        obs, _, _, _, info = env.step(np.array([-0.5], dtype=np.float32))
        expected = build_observation(info["measurements"], 0.2, -0.5, k * 0.01, episode_duration_s=0.4)
        assert np.array_equal(obs, expected)


def test_observation_has_no_ground_truth() -> None:
    params = inspect.signature(build_observation).parameters
    assert list(params)[:5] == ["m", "target_rad", "last_action", "time_s", "intent"]
    assert {f.name for f in dataclasses.fields(Measurements)}.isdisjoint({"human_knee_angle_rad", "spasticity_level"})
    m = Measurements(1.0, 0.9, -0.3, -20.0, 0.01, -0.89, 0.0, 0.3, -15.0)
    # different subjects (level 0 vs 3) with identical measurements give identical observations
    obs0, info0 = KneeExtensionEnv("reduced", level=0).reset(seed=0)
    obs3, info3 = KneeExtensionEnv("reduced", level=3).reset(seed=0)
    assert info0["spasticity_level"] != info3["spasticity_level"]
    assert info0["spasticity_coefficient"] != info3["spasticity_coefficient"]
    assert info0["measurements"] == info3["measurements"] and np.array_equal(obs0, obs3)
    obs = build_observation(m, 0.2, 0.1, 1.0, intent=(0.5, 10.0, 0.9))
    assert observation_value(obs, "exo_knee_angle") == pytest.approx(0.9)
    assert observation_value(obs, "interaction_torque") == pytest.approx(-15.0, rel=1e-6)
    assert observation_value(obs, "target_error") == pytest.approx(0.2 - 0.9, rel=1e-6)
    np.testing.assert_allclose(observation_value(obs, "intent"), [0.5, 10.0, 0.9], rtol=1e-6)
    assert np.all(build_observation(m, 0.2, 0.1, 1.0)[OBS_LAYOUT["intent"]] == 0.0)
    assert obs.dtype == np.float32 and obs.shape == (OBS_DIM,)
    buf = np.zeros(OBS_DIM, dtype=np.float32)
    assert build_observation(m, 0.2, 0.1, 1.0, out=buf) is buf
    with pytest.raises(ValueError):
        build_observation(m, 0.2, 0.1, 1.0, intent=(1.0,))


def test_info_has_ground_truth_and_reward_terms(envs: dict[str, KneeExtensionEnv]) -> None:
    env = envs["reduced"]
    env.reset(seed=2, options={"level": 3})
    _, reward, _, _, info = env.step(np.array([-1.0], dtype=np.float32))
    for key in ("human_knee_angle_rad", "spasticity_level", "spasticity_coefficient", "muscle_activations", "subject", "subject_seed"):
        assert key in info
    assert info["spasticity_level"] == 3 and info["subject"]["level"] == 3
    w = env.config.reward.weights
    assert reward == pytest.approx(sum(w[k] * v for k, v in info["reward_terms"].items()))
    assert set(info["reward_terms"]) == {"pose", "interaction", "smoothness", "acceleration", "range", "peak"}


def test_reward_terms() -> None:
    cfg = load_env_config().reward
    base = dict(knee_angle_rad=0.2, knee_velocity_rad_s=0.0, target_rad=0.2, interaction_torque_nm=0.0,
                action=0.0, previous_action=0.0, acceleration_change_rad_s2=0.0, steps_in_band=0)
    t = compute_reward(cfg, **base)
    assert t == {"pose": 1.0, "interaction": -0.0, "smoothness": -0.0, "acceleration": -0.0, "range": 0.0, "peak": -0.0}
    assert compute_reward(cfg, **{**base, "steps_in_band": 10})["pose"] == pytest.approx(1.1)
    far = compute_reward(cfg, **{**base, "knee_angle_rad": 1.2})["pose"]
    assert far == pytest.approx(math.exp(-1.0 / 0.08) - 1.0)
    assert compute_reward(cfg, **{**base, "interaction_torque_nm": 50.0})["interaction"] == pytest.approx(-0.5)
    assert compute_reward(cfg, **{**base, "interaction_torque_nm": -95.0})["interaction"] == pytest.approx(-0.95 - 0.04)
    assert compute_reward(cfg, **{**base, "action": 0.5, "previous_action": -0.5})["smoothness"] == pytest.approx(-1.0)
    assert compute_reward(cfg, **{**base, "knee_angle_rad": 1.6})["range"] == -1.0
    # peak term: 0 up to peak_above_nm, quadratic over peak_span_nm, floored at -1
    above, span = cfg.peak_above_nm, cfg.peak_span_nm
    assert compute_reward(cfg, **{**base, "interaction_torque_nm": above})["peak"] == 0.0
    assert compute_reward(cfg, **{**base, "interaction_torque_nm": -(above + span / 2)})["peak"] == pytest.approx(-0.25)
    assert compute_reward(cfg, **{**base, "interaction_torque_nm": above + 5 * span})["peak"] == -1.0
    assert cfg.weights["peak"] == 0.0  # the paper's reward does not use it
    # running_max: only increases of the episode's running peak above the threshold cost; the sum is the peak
    rmax = dataclasses.replace(cfg, peak_form="running_max", peak_above_nm=60.0, peak_span_nm=10.0)
    running, total = 0.0, 0.0
    for tau in (20.0, 75.0, 70.0, -90.0, 85.0, 40.0):
        total += compute_reward(rmax, **{**base, "interaction_torque_nm": tau, "running_peak_nm": running})["peak"]
        running = max(running, abs(tau))
    assert total == pytest.approx(-(90.0 - 60.0) / 10.0)
    facts = dataclasses.replace(cfg, interaction_form="facts", interaction_scale_nm=1.0)
    assert compute_reward(facts, **{**base, "interaction_torque_nm": 10.0})["interaction"] == pytest.approx(-100.0)


def test_truncation_and_termination() -> None:
    env = KneeExtensionEnv("reduced", level=0, control_steps=30)
    env.reset(seed=0)
    flags = [env.step(np.array([0.0], dtype=np.float32))[2:4] for _ in range(30)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])
    # push the knee into flexion beyond 1.57 rad with full torque: unsafe with high interaction
    env = KneeExtensionEnv("reduced", level=0, control_steps=200)
    env.reset(seed=0)
    for _ in range(200):
        _, reward, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))
        if term:
            break
    assert term and not trunc and info["termination"] == "unsafe"
    assert info["human_knee_angle_rad"] > 1.57 and abs(info["interaction_torque_nm"]) > 50.0
    assert info["reward_terms"]["range"] == -1.0
    # the unsafe stop is charged for every step left, on top of that step's weighted terms
    weights = env.config.reward.weights
    step_reward = sum(weights[k] * v for k, v in info["reward_terms"].items())
    left = 200 - env._steps
    assert left > 0
    assert reward == pytest.approx(step_reward - env.config.reward.unsafe_stop_penalty_per_step * left)
    assert env.config.reward.unsafe_stop_penalty_per_step >= 9.0
    with pytest.raises(ValueError):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        KneeExtensionEnv("reduced", level=7)
