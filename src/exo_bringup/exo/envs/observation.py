"""The policy's observation: a pure function of exoskeleton measurements (sim and hardware alike).

:func:`build_observation` turns one :class:`~exo.twin.interface.Measurements`
sample plus the task context (target, last action, time, optional intent
estimate) into the float32 vector the policy sees. It needs nothing from the
simulator, so the ROS controller node calls it on live sensor data; ground
truth (human knee angle, spasticity level, activations) never enters it.

Layout (:data:`OBS_LAYOUT`, one scalar per entry unless noted) and scaling
``obs = value / OBS_SCALE[key]``:

==========================  =======================================  ==========
key                         value                                    scale
==========================  =======================================  ==========
exo_knee_angle              exo encoder angle, rad (+ = flexion)     1 rad
exo_knee_velocity           exo encoder velocity, rad/s              1 rad/s
exo_motor_torque            applied motor torque, N m (+ = flexion)  100 N m
thigh_pitch                 thigh IMU sagittal pitch, rad            1 rad
shank_pitch                 shank IMU sagittal pitch, rad            1 rad
thigh_angular_velocity      thigh IMU pitch rate, rad/s              1 rad/s
shank_angular_velocity      shank IMU pitch rate, rad/s              1 rad/s
interaction_torque          strap torque on the knee, N m            100 N m
last_action                 previous action (torque / 100 N m)       1
target_error                target - exo knee angle, rad             1 rad
time_fraction               time_s / episode_duration_s, in [0, 1]   1
intent (3)                  intended velocity rad/s, intended        1 rad/s,
                            torque N m, confidence [0, 1];           100 N m, 1
                            zeros when no estimate is given
==========================  =======================================  ==========

Every element is clipped to [:data:`OBS_LOW`, :data:`OBS_HIGH`] (generous
physical bounds: |angle| <= 2 pi rad, |velocity| <= 100 rad/s, |torque| <= 2000 N m),
which also bounds the env's observation space. Angles, velocities and the target error stay in SI (rad, rad/s) so that
controllers reading single entries (:func:`exo.control.base.obs_field`) get SI
values; torques are divided by the 100 N m motor limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exo.twin.interface import Measurements

#: Entries of the observation vector (name -> slice).
OBS_LAYOUT: dict[str, slice] = {
    "exo_knee_angle": slice(0, 1),
    "exo_knee_velocity": slice(1, 2),
    "exo_motor_torque": slice(2, 3),
    "thigh_pitch": slice(3, 4),
    "shank_pitch": slice(4, 5),
    "thigh_angular_velocity": slice(5, 6),
    "shank_angular_velocity": slice(6, 7),
    "interaction_torque": slice(7, 8),
    "last_action": slice(8, 9),
    "target_error": slice(9, 10),
    "time_fraction": slice(10, 11),
    "intent": slice(11, 14),
}
#: Length of the observation vector.
OBS_DIM = 14
#: SI units per observation unit (``obs = value / scale``); intent has one scale per element.
OBS_SCALE: dict[str, float | tuple[float, ...]] = {
    "exo_knee_angle": 1.0,
    "exo_knee_velocity": 1.0,
    "exo_motor_torque": 100.0,
    "thigh_pitch": 1.0,
    "shank_pitch": 1.0,
    "thigh_angular_velocity": 1.0,
    "shank_angular_velocity": 1.0,
    "interaction_torque": 100.0,
    "last_action": 1.0,
    "target_error": 1.0,
    "time_fraction": 1.0,
    "intent": (1.0, 100.0, 1.0),
}
_TWO_PI = 2.0 * np.pi
#: Lower/upper bounds of each element (observation units).
OBS_LOW = np.array([-_TWO_PI, -100, -20, -_TWO_PI, -_TWO_PI, -100, -100, -20, -1, -_TWO_PI, 0, -100, -20, 0], dtype=np.float32)
OBS_HIGH = np.array([_TWO_PI, 100, 20, _TWO_PI, _TWO_PI, 100, 100, 20, 1, _TWO_PI, 1, 100, 20, 1], dtype=np.float32)
#: Meaning of the three intent elements (from exo_msgs/IntentEstimate).
INTENT_FIELDS = ("predicted_knee_velocity_rad_s", "predicted_knee_torque_nm", "confidence")
#: Default episode duration used for ``time_fraction``, s (512 control steps of 10 ms).
DEFAULT_EPISODE_DURATION_S = 5.12

_TORQUE_SCALE = 100.0


def build_observation(
    m: Measurements,
    target_rad: float,
    last_action: float,
    time_s: float,
    intent: Sequence[float] | np.ndarray | None = None,
    *,
    episode_duration_s: float = DEFAULT_EPISODE_DURATION_S,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The observation vector (float32, length :data:`OBS_DIM`) from sensor data only.

    Args:
        m: exoskeleton measurements (SI, + = flexion).
        target_rad: target knee angle, rad.
        last_action: the previous action in [-1, 1] (exo torque / 100 N m).
        time_s: time since the start of the movement, s.
        intent: optional (intended velocity rad/s, intended torque N m, confidence);
            None gives zeros.
        episode_duration_s: normalisation of ``time_fraction``, s.
        out: optional float32 array of length :data:`OBS_DIM` to fill (no allocation).

    Raises:
        ValueError: ``intent`` has the wrong length, or ``out`` the wrong shape/dtype.
    """
    if out is None:
        out = np.empty(OBS_DIM, dtype=np.float32)
    elif out.shape != (OBS_DIM,) or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape ({OBS_DIM},), got {out.dtype} {out.shape}")
    angle = m.exo_knee_angle_rad
    frac = time_s / episode_duration_s
    out[0] = angle
    out[1] = m.exo_knee_velocity_rad_s
    out[2] = m.exo_motor_torque_nm / _TORQUE_SCALE
    out[3] = m.thigh_pitch_rad
    out[4] = m.shank_pitch_rad
    out[5] = m.thigh_angular_velocity_rad_s
    out[6] = m.shank_angular_velocity_rad_s
    out[7] = m.interaction_torque_nm / _TORQUE_SCALE
    out[8] = last_action
    out[9] = target_rad - angle
    out[10] = 0.0 if frac < 0.0 else 1.0 if frac > 1.0 else frac
    if intent is None:
        out[11] = out[12] = out[13] = 0.0
    else:
        if len(intent) != 3:
            raise ValueError(f"intent must have 3 elements {INTENT_FIELDS}, got {len(intent)}")
        out[11] = intent[0]
        out[12] = intent[1] / _TORQUE_SCALE
        out[13] = intent[2]
    np.minimum(out, OBS_HIGH, out=out)  # clip without np.clip's Python overhead
    np.maximum(out, OBS_LOW, out=out)
    return out


def observation_value(obs: np.ndarray, key: str) -> float | np.ndarray:
    """An entry of an observation back in SI units (scalar, or an array for ``intent``)."""
    part = np.asarray(obs, dtype=float)[OBS_LAYOUT[key]] * np.asarray(OBS_SCALE[key])
    return float(part[0]) if part.size == 1 else part


def is_finite_observation(obs: np.ndarray) -> bool:
    """True if every element is finite (for the controller node's input checks)."""
    return bool(np.isfinite(obs).all())
