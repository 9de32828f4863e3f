"""A simulated user's voluntary drive on top of the spastic reflex, with intent labels.

The user alternates *hold* (relaxed, small tonic co-contraction) and movements
(*extend* / *flex*) with an intended knee speed. The voluntary drive of the moving
group is proportional to that speed (the subject's ``drive_per_speed``, -/(rad/s)),
rises and falls with a 50-150 ms ramp, and fluctuates by about 10 % (slow noise).
A session starts with a scripted **calibration segment** (rest, extend, rest, flex,
rest; 2 s each at drive 0.5), the standard MVC-style normalisation step of
myoelectric control; the estimator normalises EMG amplitude by it.

Labels (per control step): class index into :data:`CLASSES` (the class switches at
the start of the onset ramp) and the intended knee velocity, rad/s (+ = flexion;
extension is negative), which follows the ramp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Intent classes, as published in IntentEstimate.class_names.
CLASSES: tuple[str, ...] = ("hold", "extend", "flex")
HOLD, EXTEND, FLEX = 0, 1, 2
#: The calibration protocol: (class, duration s, drive -).
CALIBRATION: tuple[tuple[int, float, float], ...] = (
    (HOLD, 2.0, 0.0), (EXTEND, 2.0, 0.5), (HOLD, 2.0, 0.0), (FLEX, 2.0, 0.5), (HOLD, 2.0, 0.0),
)
CALIBRATION_S = sum(c[1] for c in CALIBRATION)


@dataclass(frozen=True)
class DriveCommand:
    """The user's drive and intent for one control step.

    Attributes:
        flexor: voluntary drive of the knee flexors (-, [0, 1]).
        extensor: voluntary drive of the knee extensors (-, [0, 1]).
        intent: class index into :data:`CLASSES`.
        velocity_rad_s: intended knee velocity, rad/s (+ = flexion).
    """

    flexor: float
    extensor: float
    intent: int
    velocity_rad_s: float


class VoluntaryUser:
    """A seeded user producing a :class:`DriveCommand` per control step.

    Args:
        seed: the user's seed (drive gain, tonic level, segment sequence).
        calibration: start with the calibration segment (:data:`CALIBRATION`).
        hold_s: range of hold durations, s.
        move_s: range of movement durations, s.
        speed_rad_s: range of intended speeds, rad/s.
    """

    def __init__(self, seed: int, calibration: bool = True, hold_s: tuple[float, float] = (0.8, 2.5),
                 move_s: tuple[float, float] = (0.5, 1.8), speed_rad_s: tuple[float, float] = (0.3, 1.5)) -> None:
        self.rng = np.random.default_rng([seed, 7])
        self.drive_per_speed = float(self.rng.uniform(0.15, 0.35))
        self.tonic = float(self.rng.uniform(0.0, 0.03))
        self.hold_s, self.move_s, self.speed_rad_s = hold_s, move_s, speed_rad_s
        self.script: list[tuple[int, float, float]] = list(CALIBRATION) if calibration else []
        self.t_s = 0.0
        self.segment_end_s = 0.0
        self.intent, self.drive, self.ramp_s, self.speed = HOLD, 0.0, 0.1, 0.0
        self.level = 0.0  # current ramp fraction of the moving drive, 0-1
        self.fluct = 0.0
        self.hold_next = True

    def _next_segment(self, knee_angle_rad: float) -> None:
        r = self.rng
        self.ramp_s = float(r.uniform(0.05, 0.15))
        if self.script:
            self.intent, duration, drive = self.script.pop(0)
            if self.intent != HOLD:  # a hold keeps the last drive for its ramp down
                self.drive, self.speed = drive, drive / self.drive_per_speed
        elif self.hold_next:
            self.intent, duration = HOLD, float(r.uniform(*self.hold_s))
        else:
            if knee_angle_rad > 1.75:
                self.intent = EXTEND
            elif knee_angle_rad < 0.5:
                self.intent = FLEX
            else:
                self.intent = EXTEND if r.random() < 0.5 else FLEX
            duration = float(r.uniform(*self.move_s))
            self.speed = float(r.uniform(*self.speed_rad_s))
            self.drive = min(1.0, self.speed * self.drive_per_speed)
        self.hold_next = self.intent != HOLD
        self.segment_end_s = self.t_s + duration
        self.level = 0.0 if self.intent != HOLD else self.level

    def step(self, dt_s: float, knee_angle_rad: float) -> DriveCommand:
        """The drive to apply during the next ``dt_s`` seconds, given the current knee angle (rad)."""
        if self.t_s >= self.segment_end_s - 1e-9:
            self._next_segment(knee_angle_rad)
        self.t_s += dt_s
        if self.intent == HOLD:
            self.level = max(0.0, self.level - dt_s / self.ramp_s)
        else:
            self.level = min(1.0, self.level + dt_s / self.ramp_s)
        # slow multiplicative fluctuation (first-order, 0.3 s)
        self.fluct += dt_s / 0.3 * (-self.fluct) + 0.1 * np.sqrt(2 * dt_s / 0.3) * float(self.rng.standard_normal())
        drive = float(np.clip(self.drive * self.level * (1.0 + self.fluct), 0.0, 1.0))
        tonic = self.tonic * (1.0 + 0.5 * self.fluct)
        flexor = extensor = max(0.0, tonic)
        if self.intent == EXTEND or (self.intent == HOLD and self._last_moving == EXTEND):
            extensor += drive
        elif self.intent == FLEX or (self.intent == HOLD and self._last_moving == FLEX):
            flexor += drive
        if self.intent != HOLD:
            self._last_moving = self.intent
        velocity = 0.0
        if self.intent == EXTEND:
            velocity = -self.speed * self.level
        elif self.intent == FLEX:
            velocity = self.speed * self.level
        return DriveCommand(min(flexor, 1.0), min(extensor, 1.0), self.intent, velocity)

    _last_moving = HOLD
