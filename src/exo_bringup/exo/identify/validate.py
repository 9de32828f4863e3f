"""Does the identified twin predict another trial of the same person? (the validation of an identification)

The other trial is the knee-extension task under the PID baseline, as the evaluator runs it
(:mod:`exo.envs.knee_extension`, config/env.yaml: start at ``initial_knee_angle_rad``, target
``target_knee_angle_rad``, ``control_steps`` steps; gains of ``pid`` in config/controllers.yaml; the
action clipped to the motor's +-100 N m). :func:`pid_episode` runs it on a twin with given
parameters; :func:`prediction_error` compares the interaction torque of the same episode on the
true subject and on the identified one, sample by sample (RMS, N m) and after a 5 Hz zero-phase
low-pass (the level-3 twin's 17-19 Hz clonus ripple has a phase no model can predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from exo.identify.replay import lowpass
from exo.twin.reflex import SpasticityLevel

if TYPE_CHECKING:
    from exo.identify.simulate import SensorNoise


def pid_episode(twin: Any, subject: SpasticityLevel, noise: SensorNoise | None = None,
                noise_seed: int = 0) -> dict[str, np.ndarray]:
    """One PID knee-extension episode on ``twin`` with ``subject``'s parameters (the evaluator's protocol).

    Args:
        twin: the twin.
        subject: the parameters.
        noise: sensor noise added to what the PID sees (:class:`exo.identify.simulate.SensorNoise`; default
            none, the twin's exact measurements); the returned signals stay the twin's own.
        noise_seed: seed of the noise draws.

    Returns:
        ``time_s`` (s), ``human_knee_angle_rad`` (rad), ``interaction_torque_nm`` and ``exo_torque_nm``
        (N m), one sample after reset and one per control step.
    """
    from exo.control import load_controller_params, make_controller
    from exo.envs.config import load_env_config
    from exo.envs.observation import build_observation

    env = load_env_config()
    controller = make_controller("pid", **load_controller_params("pid"))
    controller.reset()
    dt = float(twin.control_timestep_s)
    scale = float(twin.max_exo_torque_nm)
    duration = env.control_steps * dt
    state = twin.reset(subject.level, initial_knee_angle_rad=env.initial_knee_angle_rad, subject=subject)
    rows = [(state.measurements.time_s, state.human_knee_angle_rad, state.measurements.interaction_torque_nm,
             state.measurements.exo_motor_torque_nm)]
    action = 0.0
    t0 = state.measurements.time_s
    draws = None if noise is None else noise.draws(np.random.default_rng(noise_seed), env.control_steps)
    for k in range(env.control_steps):
        m = state.measurements if draws is None else noise.add(state.measurements, draws[k])  # type: ignore[union-attr]
        obs = build_observation(m, env.target_knee_angle_rad, action, k * dt, episode_duration_s=duration)
        action = float(np.clip(controller.act(obs) / scale, -1.0, 1.0))
        state = twin.step(action * scale)
        rows.append((state.measurements.time_s, state.human_knee_angle_rad, state.measurements.interaction_torque_nm,
                     state.measurements.exo_motor_torque_nm))
    a = np.array(rows)
    return {"time_s": a[:, 0] - t0, "human_knee_angle_rad": a[:, 1], "interaction_torque_nm": a[:, 2],
            "exo_torque_nm": a[:, 3]}


@dataclass(frozen=True)
class PredictionError:
    """Interaction-torque error of a predicted PID episode (N m).

    Attributes:
        rms_nm: RMS over the samples of (predicted - true).
        rms_lowpass_nm: the same after a 5 Hz zero-phase low-pass of both.
        peak_error_nm: |predicted peak| - |true peak| of the interaction torque, signed.
        final_angle_error_deg: predicted - true mean human knee angle over the final 0.5 s, deg.
    """

    rms_nm: float
    rms_lowpass_nm: float
    peak_error_nm: float
    final_angle_error_deg: float


def prediction_error(truth: SpasticityLevel, identified: SpasticityLevel, truth_twin: Any,
                     model_twin: Any | None = None) -> PredictionError:
    """Run the PID episode on the true subject (``truth_twin``) and on the identified one (``model_twin``,
    default the same twin) and compare the interaction torque (see the module docstring)."""
    true_run = pid_episode(truth_twin, truth)
    pred = pid_episode(model_twin if model_twin is not None else truth_twin, identified)
    return compare_episodes(pred, true_run, float(truth_twin.control_timestep_s))


def repeat_error(truth: SpasticityLevel, twin: Any, noise: SensorNoise, seeds: tuple[int, int] = (1, 2)) -> PredictionError:
    """The same person's PID trial twice, the sensor noise the PID sees drawn anew: what no model can predict.

    The floor of :func:`prediction_error`: even the true parameters "predict" a second trial of the same
    person only this well, because the PID acts on noisy measurements and, at level 3, the clonus's phase
    follows every difference.
    """
    first = pid_episode(twin, truth, noise, seeds[0])
    second = pid_episode(twin, truth, noise, seeds[1])
    return compare_episodes(second, first, float(twin.control_timestep_s))


def compare_episodes(pred: dict[str, np.ndarray], true_run: dict[str, np.ndarray], dt: float) -> PredictionError:
    """:class:`PredictionError` of episode ``pred`` against ``true_run`` (both from :func:`pid_episode`)."""
    a, b = pred["interaction_torque_nm"], true_run["interaction_torque_nm"]
    fs = 1.0 / dt
    final = max(1, int(round(0.5 * fs)))
    return PredictionError(
        rms_nm=float(np.sqrt(np.mean((a - b) ** 2))),
        rms_lowpass_nm=float(np.sqrt(np.mean((lowpass(a, 5.0, fs) - lowpass(b, 5.0, fs)) ** 2))),
        peak_error_nm=float(np.max(np.abs(a)) - np.max(np.abs(b))),
        final_angle_error_deg=float(np.degrees(np.mean(pred["human_knee_angle_rad"][-final:])
                                               - np.mean(true_run["human_knee_angle_rad"][-final:]))),
    )
