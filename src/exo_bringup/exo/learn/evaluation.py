"""Periodic evaluation of a policy on fixed, seeded subjects (the evaluator's protocol, plus returns).

During training, every ``eval_every_steps`` the current actor is copied into a
numpy :class:`~exo.control.sac.SacController` (the deployment code path) and
run on the same subjects every time: subject ``trial`` of level ``L`` has seed
:func:`exo.evaluate.subject_seed` ``(eval_seed, L, trial)``, exactly as
``exo eval --controller sac --seed <eval_seed>`` would draw it. Each trial runs
the full episode without the unsafe stop (``terminate_on_unsafe=False``, the
evaluation protocol), records the same signals as :func:`exo.evaluate.run_trial`,
and turns them into the paper's metrics (:mod:`exo.metrics`) and the safety
events of :mod:`exo.evaluate`. Unlike ``exo eval`` it also sums the env's reward
(the return, which picks the best checkpoint), and runs in this process.

No torch here: the callback in :mod:`exo.learn.sac` hands over plain arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exo.control.base import Controller
from exo.envs.knee_extension import KneeExtensionEnv
from exo.evaluate import EvalConfig, EvalReport, TrialResult, safety_events, subject_seed
from exo.metrics import TrialMetrics, compute_trial_metrics
from exo.records import json_safe

#: Per-level numbers logged to progress.csv / evaluations.csv (``<name>`` = mean over the level's trials).
LOGGED_METRICS: tuple[str, ...] = (
    "return",
    "final_error_deg",
    "settling_time_s",
    "rms_torque_nm",
    "peak_torque_nm",
    "overshoot_deg",
    "settled_fraction",
    "unsafe_fraction",
)


@dataclass
class PolicyEvaluation:
    """Results of :func:`evaluate_controller`.

    Attributes:
        report: per-trial metrics and safety events (``report.levels_summary()`` is
            the same summary as ``exo eval``'s summary.json).
        returns: ``{level: [return of each trial]}`` (undiscounted sum of env rewards).
    """

    report: EvalReport
    returns: dict[int, list[float]] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        """Mean return over all trials of all levels (the best-checkpoint criterion)."""
        values = [r for rs in self.returns.values() for r in rs]
        return float(np.mean(values)) if values else math.nan

    def per_level(self) -> dict[int, dict[str, float]]:
        """``{level: {name: value}}`` for :data:`LOGGED_METRICS` (means; settling over settled trials)."""
        summary = self.report.levels_summary()
        out: dict[int, dict[str, float]] = {}
        for level in self.report.config.levels:
            s = summary[str(level)]
            out[level] = {
                "return": float(np.mean(self.returns[level])),
                "final_error_deg": s["final_error_deg"]["mean"],
                "settling_time_s": s["settling_time_s"]["mean"],
                "rms_torque_nm": s["rms_torque_nm"]["mean"],
                "peak_torque_nm": s["peak_torque_nm"]["mean"],
                "overshoot_deg": s["overshoot_deg"]["mean"],
                "settled_fraction": s["settled"]["fraction"],
                "unsafe_fraction": s["unsafe"]["fraction"],
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record: config, mean return, per-level numbers and the full summary."""
        return json_safe(
            {
                "twin": self.report.config.twin,
                "levels": list(self.report.config.levels),
                "trials_per_level": self.report.config.trials,
                "seed": self.report.config.seed,
                "protocol": "exo.learn.evaluation: fixed subjects, full-length trials, terminate_on_unsafe=False",
                "mean_return": self.mean_return,
                "per_level": {str(k): v for k, v in self.per_level().items()},
                "summary": self.report.levels_summary(),
            }
        )


_ENVS: dict[tuple[str, int, str], Any] = {}


def _env(twin: str, level: int, env_overrides: dict[str, Any]) -> Any:
    key = (twin, level, repr(sorted(env_overrides.items())))
    if key not in _ENVS:
        _ENVS[key] = KneeExtensionEnv(twin=twin, level=level, terminate_on_unsafe=False, **env_overrides)
    return _ENVS[key]


def run_episode(controller: Controller, env: Any, seed: int) -> tuple[TrialResult, float]:
    """One full trial of ``controller`` on the subject of ``seed``; (trial result, return)."""
    controller.reset()
    obs, info = env.reset(seed=seed)
    scale = float(env.twin.max_exo_torque_nm)
    rows = [_signals(info)]
    total, steps, terminated = 0.0, 0, False
    while True:
        torque_nm = controller.act(obs)
        action = np.array([min(1.0, max(-1.0, torque_nm / scale))], dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        rows.append(_signals(info))
        steps += 1
        if terminated or truncated:
            break
    s = {name: np.array([r[i] for r in rows]) for i, name in enumerate(_SIGNALS)}
    try:
        metrics = compute_trial_metrics(s["time_s"], s["angle"], s["target"], s["interaction"], s["exo_torque"])
    except ValueError:  # a diverged simulation leaves NaN in the signals
        nan = math.nan
        metrics = TrialMetrics(nan, nan, nan, nan, nan, nan, settled=False, rms_to_end=True)
    safety = safety_events(s["time_s"], s["angle"], s["out_of_range"], s["unsafe"],
                           tuple(env.config.safe_range_rad))  # type: ignore[arg-type]
    result = TrialResult(level=int(info["spasticity_level"]), trial=-1, subject_seed=seed, steps=steps,
                         terminated=bool(terminated), metrics=metrics, safety=safety)
    return result, total


_SIGNALS = ("time_s", "angle", "target", "interaction", "exo_torque", "out_of_range", "unsafe")


def _signals(info: dict[str, Any]) -> tuple[float, ...]:
    """The signals exo.evaluate records (ground truth from the env's info), in :data:`_SIGNALS` order."""
    return (
        float(info["time_s"]),
        float(info["human_knee_angle_rad"]),
        float(info["target_knee_angle_rad"]),
        float(info["interaction_torque_nm"]),
        float(info["exo_torque_nm"]),
        float(bool(info["out_of_range"])),
        float(bool(info["unsafe"])),
    )


def evaluate_controller(
    controller: Controller,
    twin: str,
    levels: tuple[int, ...] = (0, 1, 2, 3),
    trials: int = 3,
    seed: int = 1000,
    env_overrides: dict[str, Any] | None = None,
) -> PolicyEvaluation:
    """Run ``trials`` fixed subjects per level (seeds ``subject_seed(seed, level, trial)``) in this process."""
    env_overrides = dict(env_overrides or {})
    results: list[TrialResult] = []
    returns: dict[int, list[float]] = {}
    for level in levels:
        env = _env(twin, level, env_overrides)
        for trial in range(trials):
            result, total = run_episode(controller, env, subject_seed(seed, level, trial))
            result.trial = trial
            results.append(result)
            returns.setdefault(level, []).append(total)
    config = EvalConfig(twin=twin, levels=tuple(levels), trials=trials, seed=seed, workers=1,
                        timeseries_per_level=0, env_kwargs=env_overrides)
    params_fn = getattr(controller, "params", None)
    report = EvalReport(config=config, controller_name=str(getattr(controller, "name", "policy")),
                        controller_params=dict(params_fn()) if callable(params_fn) else {}, trials=results)
    return PolicyEvaluation(report=report, returns=returns)
