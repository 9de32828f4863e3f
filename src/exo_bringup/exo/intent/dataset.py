"""Labelled EMG sessions from the twin, and their frames for the intent model.

A *session* is one simulated subject (spasticity level, seed) sitting in the exo in
transparent mode (zero exo torque) for ``duration_s``: the :class:`~exo.intent.drive.VoluntaryUser`
drives the knee muscles on top of the spastic reflex, the twin moves, and
:class:`~exo.intent.emg_synth.EmgSynthesizer` turns the twin's muscle activations into
8-channel surface EMG. The subject's seed draws both its reflex parameters (twin) and
its electrodes (EMG), so subjects of different seeds are different people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exo.intent.drive import CALIBRATION_S, VoluntaryUser
from exo.intent.emg_synth import CHANNEL_NAMES, EmgSynthesizer
from exo.intent.features import Calibration, FeatureConfig, FrameExtractor, model_inputs


@dataclass
class Session:
    """One recorded (or simulated) EMG session.

    Attributes:
        emg_v: (n_samples, channels) raw EMG, V.
        sample_rate_hz: EMG rate, Hz.
        channel_names: one per column.
        step_s: period of the per-step arrays below, s (the twin's control step).
        intent: (n_steps,) class index per step (-1 = unlabelled).
        velocity_rad_s: (n_steps,) intended knee velocity, rad/s (+ = flexion).
        knee_angle_rad: (n_steps,) knee angle at the END of each step, rad.
        knee_velocity_rad_s: (n_steps,) knee velocity at the end of each step, rad/s.
        calibration_s: the first seconds are the calibration segment (0 = none).
        level: spasticity level (-1 = unknown).
        seed: subject seed (-1 = recorded).
    """

    emg_v: np.ndarray
    sample_rate_hz: float
    channel_names: tuple[str, ...]
    step_s: float
    intent: np.ndarray
    velocity_rad_s: np.ndarray
    knee_angle_rad: np.ndarray
    knee_velocity_rad_s: np.ndarray
    calibration_s: float = CALIBRATION_S
    level: int = -1
    seed: int = -1


def simulate_session(level: int, seed: int, duration_s: float = 60.0, twin: object | None = None,
                     sample_rate_hz: float = 1000.0, twin_kind: str = "reduced", controller: str = "zero",
                     target_rad: float = 0.2) -> Session:
    """Simulate one subject (MAS ``level``, ``seed``) for ``duration_s`` seconds.

    ``controller``: the exo's controller ("zero" = transparent; "pid" etc. with the gains of
    ``config/controllers.yaml``, driving the knee to ``target_rad`` as in the extension task).
    """
    from exo.twin import make_twin

    ctrl = None
    if controller != "zero":
        from exo.control import load_controller_params, make_controller
        from exo.envs.observation import build_observation

        ctrl = make_controller(controller, **load_controller_params(controller))
        ctrl.reset()
    last_action = 0.0

    tw = twin if twin is not None else make_twin(twin_kind)
    state = tw.reset(level, seed=seed)
    user = VoluntaryUser(seed)
    synth = EmgSynthesizer(state.muscle_names, sample_rate_hz, seed=seed)
    dt = tw.control_timestep_s
    n = int(round(duration_s / dt))
    intent = np.zeros(n, dtype=np.int64)
    vel = np.zeros(n)
    angle = np.zeros(n)
    knee_v = np.zeros(n)
    acts = np.zeros((n, len(state.muscle_names)))
    for k in range(n):
        cmd = user.step(dt, state.measurements.exo_knee_angle_rad)
        tw.set_voluntary_drive(cmd.flexor, cmd.extensor)
        torque = 0.0
        if ctrl is not None:
            obs = build_observation(state.measurements, target_rad, last_action, k * dt)
            torque = float(ctrl.act(obs))
            last_action = max(-1.0, min(1.0, torque / tw.max_exo_torque_nm))
        state = tw.step(torque)
        intent[k], vel[k] = cmd.intent, cmd.velocity_rad_s
        angle[k] = state.measurements.exo_knee_angle_rad
        knee_v[k] = state.measurements.exo_knee_velocity_rad_s
        acts[k] = state.muscle_activations
    tw.set_voluntary_drive(0.0, 0.0)
    emg = synth.generate_series(acts, dt)
    return Session(emg.astype(np.float32), float(sample_rate_hz), CHANNEL_NAMES, dt, intent, vel, angle, knee_v,
                   CALIBRATION_S, int(level), int(seed))


@dataclass
class Frames:
    """A session as model input rows (one per feature frame) with the frame's labels."""

    x: np.ndarray  # (n_frames, n_inputs) float32
    intent: np.ndarray  # (n_frames,) int64
    velocity_rad_s: np.ndarray  # (n_frames,)
    time_s: np.ndarray  # (n_frames,) end of each frame's window, s from the session start
    level: int
    seed: int
    calibration_s: float = CALIBRATION_S  # frames ending before this are the calibration segment


def session_frames(session: Session, config: FeatureConfig, calibrated: bool = True,
                   kinematics: bool = True, emg: bool = True) -> Frames:
    """Frames of a session (features of the window ending every ``hop_s``), labelled per frame.

    The label of a frame is that of the control step holding its last sample; kinematics
    are the knee state at the end of that step (as joint_states would carry). With
    ``calibrated`` the amplitude scales come from the session's calibration segment.
    ``emg=False`` keeps only the kinematics (the kinematics-only ablation).
    """
    if abs(session.sample_rate_hz - config.sample_rate_hz) > 1e-6:
        raise ValueError(f"session sampled at {session.sample_rate_hz} Hz, model expects {config.sample_rate_hz} Hz")
    c = len(session.channel_names)
    frames = FrameExtractor(config, c).push(session.emg_v)
    ends = (np.arange(len(frames)) + 1) * config.hop  # exclusive end sample of each frame
    per_step = session.step_s * session.sample_rate_hz
    step = np.minimum(((ends - 1) / per_step).astype(int), len(session.intent) - 1)
    t = ends / session.sample_rate_hz
    if calibrated:
        cal_frames = frames[t <= session.calibration_s] if session.calibration_s > 0 else frames
        cal = Calibration.from_frames(cal_frames, c)
    else:
        cal = Calibration.uncalibrated(c)
    kin = np.column_stack([session.knee_angle_rad[step], session.knee_velocity_rad_s[step]]) if kinematics else None
    x = model_inputs(frames, cal, kin)
    if not emg:
        if kin is None:
            raise ValueError("a model needs EMG or kinematics inputs")
        x = x[:, -2:]
    return Frames(x, session.intent[step], session.velocity_rad_s[step], t, session.level, session.seed,
                  session.calibration_s)
