"""What every knee twin (full MyoLeg or reduced) exposes: its state and its measurements.

Conventions (shared by the twins, the gymnasium env, the nodes and the bags):

- Knee angles in rad, **positive = flexion**, 0 = straight leg. The seated task
  starts near 1.544 rad (about 90 deg flexion) and extends towards 0.2 rad.
- Knee velocities in rad/s (positive = flexing), torques in N m (positive = a
  flexing torque), time in s.
- Segment pitch angles (thigh, shank) in rad in the sagittal plane, measured
  from the horizontal world axis pointing forward, as an IMU on the segment
  would estimate them from gravity and gyro (exo knee angle = thigh - shank
  pitch difference up to strap misalignment).

:class:`Measurements` holds only what a real exoskeleton measures or can
estimate; :class:`TwinState` adds ground truth that only the simulation knows
(never an input of a controller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from exo.twin.reflex import SpasticityLevel


@dataclass(frozen=True)
class Measurements:
    """Sensor readings of the exoskeleton at one control instant (SI units).

    Attributes:
        time_s: time of the sample, s.
        exo_knee_angle_rad: exoskeleton knee encoder angle, rad (+ = flexion).
        exo_knee_velocity_rad_s: exoskeleton knee velocity, rad/s.
        exo_motor_torque_nm: torque the exo motor applied, N m (+ = flexion).
        thigh_pitch_rad: thigh IMU sagittal pitch, rad.
        shank_pitch_rad: shank IMU sagittal pitch, rad.
        thigh_angular_velocity_rad_s: thigh IMU gyro about the knee axis, rad/s.
        shank_angular_velocity_rad_s: shank IMU gyro about the knee axis, rad/s.
        interaction_torque_nm: torque the shank strap transmits to the human
            knee, N m (+ = flexing the human knee); from the shank strap's load
            cell on hardware.
        thigh_interaction_torque_nm: torque the thigh strap transmits to the thigh
            about the exo knee axis, N m, signed so that + flexes the knee (the
            exo frame carries the motor's reaction to the thigh: at rest it equals
            the shank strap's torque; it differs by the exo links' weight and
            inertia, the strap compliance and end-stop loads). NaN when not
            measured.
    """

    time_s: float
    exo_knee_angle_rad: float
    exo_knee_velocity_rad_s: float
    exo_motor_torque_nm: float
    thigh_pitch_rad: float
    shank_pitch_rad: float
    thigh_angular_velocity_rad_s: float
    shank_angular_velocity_rad_s: float
    interaction_torque_nm: float
    thigh_interaction_torque_nm: float = math.nan


@dataclass(frozen=True)
class TwinState:
    """Ground truth of the twin at one control instant.

    Attributes:
        measurements: what the exoskeleton's sensors report.
        human_knee_angle_rad: anatomical knee flexion angle, rad.
        human_knee_velocity_rad_s: anatomical knee velocity, rad/s.
        strap_slide_m: displacement of the thigh strap slide joint, m.
        spasticity_level: Modified Ashworth level 0-3 of the subject.
        spasticity_coefficient: current reflex coefficient c = c_ang + c_vel (-).
        muscle_names: names of the actuated muscles (or muscle groups).
        muscle_activations: their activations in [0, 1].
        muscle_knee_torque_nm: net torque of all muscles about the human knee, N m
            (+ = flexing; passive + active, reduced to the knee DoF).
    """

    measurements: Measurements
    human_knee_angle_rad: float
    human_knee_velocity_rad_s: float
    strap_slide_m: float
    spasticity_level: int
    spasticity_coefficient: float
    muscle_names: tuple[str, ...] = ()
    muscle_activations: np.ndarray = field(default_factory=lambda: np.zeros(0))
    muscle_knee_torque_nm: float = 0.0


class KneeTwin(Protocol):
    """A simulated human knee with spasticity, strapped into a knee exoskeleton.

    One control step is ``physics_steps_per_control`` MuJoCo steps of
    ``physics_timestep_s`` (defaults 10 x 1 ms = 10 ms, i.e. 100 Hz control).
    """

    kind: str  #: "full" or "reduced"
    control_timestep_s: float
    max_exo_torque_nm: float

    def reset(self, level: int, seed: int | None = None, initial_knee_angle_rad: float | None = None,
              *, subject: SpasticityLevel | None = None) -> TwinState:
        """Start a new trial with a newly generated subject of the given MAS level.

        ``seed`` seeds the subject's parameter noise and any initial-state noise;
        the same seed gives the same subject and the same trajectory. ``subject``
        (keyword only) runs these reflex parameters instead of a generated subject
        (e.g. a person's identified parameters); ``level`` must then be ``subject.level``.
        """
        ...

    def step(self, exo_torque_nm: float) -> TwinState:
        """Apply the exo motor torque (clipped to +-max_exo_torque_nm) for one control step."""
        ...

    def set_voluntary_drive(self, flexor: float, extensor: float) -> None:
        """The user's voluntary drive (-, [0, 1]) of the knee flexors / extensors, added to the reflex drive."""
        ...

    @property
    def state(self) -> TwinState: ...
