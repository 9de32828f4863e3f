"""Run the assessment offline on a generated subject: the recording plus the subject's hidden parameters.

:func:`simulate_assessment` builds a twin, generates the subject of (level, seed) with the same
generator the evaluator uses (:meth:`exo.twin.config.SpasticityConfig.subject`), and runs the
assessment controller (:class:`exo.control.assessment.AssessmentController`, parameters from
``config/controllers.yaml`` if it has an ``assessment`` entry) on it for the protocol's duration,
exactly as the graph does: one control step per 10 ms, the controller sees the exo's measurements
only. The controller already keeps its requests within the safety monitor's cap (70 N m) and slew
rate (400 N m/s), so the monitor would pass them unchanged and is not simulated.

Sensor noise. Neither twin nor the sim bridge adds any: the twin's measurements are exact. A real
exo's are not, so :class:`SensorNoise` adds independent zero-mean Gaussian noise per sample to what
the controller sees *and* to what is recorded (the same noisy samples):

==========================  =========  ===============================================================
signal                      default sd  why
==========================  =========  ===============================================================
exo knee angle              0.001 rad   a 14-16 bit absolute encoder behind the gearbox plus backlash
exo knee velocity           0.02 rad/s  the drive's velocity estimate (12-bit field, differentiated)
motor torque                0.1 N m     current-based estimate (12-bit torque field: 0.07 N m steps)
interaction torque          1.0 N m     strap load cells (or the motor estimate without them)
==========================  =========  ===============================================================

The subject's true parameters (a :class:`~exo.twin.reflex.SpasticityLevel`) are returned next to the
recording, never inside it: the identifier sees the recording only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from exo.assessment.protocol import AssessmentProtocol
from exo.identify.recording import CONTROL_PERIOD_S, AssessmentRecording
from exo.twin.interface import Measurements
from exo.twin.reflex import SpasticityLevel


@dataclass(frozen=True)
class SensorNoise:
    """Standard deviations of the Gaussian sensor noise (see the module docstring); 0 = exact.

    Attributes:
        angle_sd_rad: exo knee angle, rad.
        velocity_sd_rad_s: exo knee velocity, rad/s.
        motor_torque_sd_nm: measured motor torque, N m.
        interaction_torque_sd_nm: interaction torque, N m.
    """

    angle_sd_rad: float = 0.001
    velocity_sd_rad_s: float = 0.02
    motor_torque_sd_nm: float = 0.1
    interaction_torque_sd_nm: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and value >= 0.0):
                raise ValueError(f"SensorNoise.{name} must be finite and >= 0, got {value}")

    @classmethod
    def none(cls) -> SensorNoise:
        """No noise (the twin's exact measurements)."""
        return cls(0.0, 0.0, 0.0, 0.0)

    def draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` rows of noise: angle (rad), velocity (rad/s), motor torque and interaction torque (N m)."""
        sd = np.array([self.angle_sd_rad, self.velocity_sd_rad_s, self.motor_torque_sd_nm, self.interaction_torque_sd_nm])
        return rng.standard_normal((n, 4)) * sd

    @staticmethod
    def add(m: Measurements, draw: np.ndarray) -> Measurements:
        """``m`` with one row of :meth:`draws` added to its exo angle, velocity, motor and interaction torque."""
        a, v, tm, ti = draw
        return replace(m, exo_knee_angle_rad=m.exo_knee_angle_rad + a, exo_knee_velocity_rad_s=m.exo_knee_velocity_rad_s + v,
                       exo_motor_torque_nm=m.exo_motor_torque_nm + tm, interaction_torque_nm=m.interaction_torque_nm + ti)


def assessment_controller(protocol: AssessmentProtocol, **overrides: Any):
    """The assessment controller running ``protocol`` (gains from config/controllers.yaml, else its defaults)."""
    from exo.control import load_controller_params
    from exo.control.assessment import AssessmentController

    params: dict[str, Any] = {}
    try:
        params.update(load_controller_params("assessment"))
    except (OSError, ValueError):
        params = {}
    p = protocol.to_dict()
    params.update(flexed_angle_rad=p["flexed_angle_rad"], extended_angle_rad=p["extended_angle_rad"],
                  velocities_deg_s=",".join(repr(float(v)) for v in p["velocities_deg_s"]),
                  repetitions=p["repetitions"], hold_s=p["hold_s"], settle_s=p["settle_s"],
                  accel_rad_s2=p["accel_rad_s2"], dt=CONTROL_PERIOD_S)
    params.update(overrides)
    return AssessmentController(**params)


def simulate_assessment(
    twin_kind: str | Any,
    level: int,
    seed: int | None,
    protocol: AssessmentProtocol | None = None,
    sensor_noise: SensorNoise | None = None,
    *,
    noise_seed: int | None = None,
    subject: SpasticityLevel | None = None,
    initial_knee_angle_rad: float | None = None,
) -> tuple[AssessmentRecording, SpasticityLevel]:
    """Run the assessment on a generated subject; return (recording, the subject's true parameters).

    Args:
        twin_kind: "reduced", "full", or a built twin (reused: building the full twin takes a while).
        level: the subject's MAS level, 0-3.
        seed: subject seed (:meth:`exo.twin.config.SpasticityConfig.subject`).
        protocol: the protocol (default :class:`AssessmentProtocol`).
        sensor_noise: sensor noise model (default :class:`SensorNoise` defaults; :meth:`SensorNoise.none`
            for exact measurements).
        noise_seed: seed of the noise draws (default: derived from ``seed``).
        subject: run these parameters instead of generating the subject (``level`` must match).
        initial_knee_angle_rad: start angle, rad (default: the protocol's flexed angle, where it begins).

    Returns:
        The recording (``time_s`` from the protocol's start, one sample per control step plus the
        initial one) and the subject's parameters.
    """
    from exo.envs.observation import build_observation

    protocol = protocol if protocol is not None else AssessmentProtocol()
    noise = sensor_noise if sensor_noise is not None else SensorNoise()
    if isinstance(twin_kind, str):
        from exo.twin import make_twin

        twin = make_twin(twin_kind)
        kind = twin_kind
    else:
        twin, kind = twin_kind, str(getattr(twin_kind, "kind", "custom"))
    start = protocol.flexed_angle_rad if initial_knee_angle_rad is None else float(initial_knee_angle_rad)
    state = twin.reset(level, seed=seed, initial_knee_angle_rad=start, subject=subject)
    truth = twin.subject if subject is None else subject  # type: ignore[attr-defined]
    if truth is None:
        raise RuntimeError("the twin did not report its subject's parameters")
    rng = np.random.default_rng(np.random.SeedSequence([0 if seed is None else int(seed) % 2**63, int(level), 7])
                                if noise_seed is None else noise_seed)
    controller = assessment_controller(protocol)
    controller.reset()
    steps = int(round(protocol.duration_s / CONTROL_PERIOD_S))
    n = steps + 1
    rows = np.empty((n, 5))
    draws = noise.draws(rng, n)
    t0 = state.measurements.time_s
    u = 0.0
    for k in range(n):
        m = state.measurements
        noisy = SensorNoise.add(m, draws[k])
        rows[k] = (m.time_s - t0, noisy.exo_knee_angle_rad, noisy.exo_knee_velocity_rad_s, noisy.exo_motor_torque_nm,
                   noisy.interaction_torque_nm)
        if k == steps:
            break
        # the assessment controller reads the exo angle and velocity only; the target entry is unused
        obs = build_observation(noisy, float(protocol.extended_angle_rad), u / twin.max_exo_torque_nm, m.time_s - t0)
        u = controller.act(obs)
        state = twin.step(u)
    rows[:, 0] = np.round(rows[:, 0] / CONTROL_PERIOD_S) * CONTROL_PERIOD_S
    meta = {"mode": "simulation", "twin": kind, "level": str(level), "subject_seed": str(seed),
            "sensor_noise": json.dumps(asdict(noise)), "controller": "assessment"}
    rec = AssessmentRecording(time_s=rows[:, 0], angle_rad=rows[:, 1], velocity_rad_s=rows[:, 2],
                              motor_torque_nm=rows[:, 3], interaction_torque_nm=rows[:, 4], protocol=protocol,
                              source=f"simulation: {kind} twin, level {level}, subject seed {seed}", metadata=meta)
    return rec, truth

