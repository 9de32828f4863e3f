"""The actuator driver's core: torques -> MIT frames, motor replies -> knee state.

Pure (no rclpy, no python-can): the node hands it CAN replies and the torque to send, and sends
the frames it returns. Which torque is sent is decided by the actuator side's guard
(:class:`exo.safety.actuator_guard.ActuatorGuard`, shared with the sim bridge): only the safety
monitor's authenticated, fresh commands, limited again by the guard's own copy of the limits,
else zero torque.

Safety behaviour decided here:

- **Watchdog reporting.** :meth:`ActuatorCore.command_frame` is told whether a fresh command is
  in force; it counts the losses (``timeouts``) and returns a log line on each change.
- **Limits.** |torque| is clamped to ``min(torque_limit_nm, model.t_max_nm)`` (the hardware's
  ceiling, beyond the guard's user cap). A non-finite torque is sent as zero.
- **Shutdown.** :meth:`ActuatorCore.shutdown_frames` = zero-torque command, then exit motor mode.
- **Feedback validation.** Reply length, motor id, error code, and plausibility of the
  position and velocity (a reply decoded with the wrong scaling table shows up as an
  implausible velocity or a jump in position; both are rejected and counted).

Frames and signs: the joint angle is ``direction * (motor position - zero_offset_rad)``
(rad, + = flexion); torque ``+`` flexes the knee; ``direction`` = +1 or -1 maps the motor's
positive sense onto flexion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exo.drivers import ak_mit


@dataclass(frozen=True)
class KneeState:
    """One knee sample decoded from a motor reply (joint frame, SI units)."""

    angle_rad: float
    velocity_rad_s: float
    torque_nm: float
    temperature_c: float | None


@dataclass(frozen=True)
class ActuatorConfig:
    """Settings of the actuator driver (config/drivers.yaml).

    Attributes:
        model: AK model name (selects the scaling table).
        motor_id: CAN id of the motor.
        direction: +1 or -1, motor positive sense -> knee flexion.
        zero_offset_rad: motor position at a straight knee, rad.
        torque_limit_nm: |torque| ever sent, N m (further capped by the model's range).
        max_velocity_rad_s: replies with |velocity| above this are rejected, rad/s.
        angle_min_rad, angle_max_rad: replies outside this joint range are rejected, rad.
        max_jump_rad: replies whose angle jumps more than this from the previous one are rejected, rad.
    """

    model: str = "AK80-64"
    motor_id: int = 1
    direction: int = 1
    zero_offset_rad: float = 0.0
    torque_limit_nm: float = 100.0
    max_velocity_rad_s: float = 8.0
    angle_min_rad: float = -0.5
    angle_max_rad: float = 2.5
    max_jump_rad: float = 0.3

    def __post_init__(self) -> None:
        ak_mit.motor_model(self.model)  # names the known models if unknown
        if self.direction not in (1, -1):
            raise ValueError(f"direction must be +1 or -1, got {self.direction}")
        if not 0 <= self.motor_id <= 0x7FF:
            raise ValueError(f"motor_id must be a CAN id 0..2047, got {self.motor_id}")
        if not self.torque_limit_nm > 0:
            raise ValueError(f"torque_limit_nm must be > 0, got {self.torque_limit_nm}")


class ActuatorCore:
    """Frame encoding, watchdog reporting and reply validation of one AK actuator."""

    def __init__(self, config: ActuatorConfig) -> None:
        self.config = config
        self.model = ak_mit.motor_model(config.model)
        self.torque_limit_nm = min(config.torque_limit_nm, self.model.t_max_nm)
        self.command_lost = True  # no command yet: zero torque
        self.rejected_replies: dict[str, int] = {}
        self.timeouts = 0
        self._last_angle: float | None = None
        self.sent_torque_nm = 0.0

    # --- commands --------------------------------------------------------
    def command_frame(self, torque_nm: float, commanded: bool = True) -> tuple[bytes, str | None]:
        """The MIT frame (pure torque: kp = kd = 0) sending ``torque_nm`` (N m, knee frame), and a
        log line when ``commanded`` (a fresh command is in force) changed, else None."""
        line = None
        if not commanded and not self.command_lost:
            self.command_lost = True
            self.timeouts += 1
            line = "torque_command lost: sending zero torque"
        elif commanded and self.command_lost:
            self.command_lost = False
            line = "torque_command received: applying commands"
        torque = float(torque_nm) if math.isfinite(torque_nm) else 0.0
        torque = max(-self.torque_limit_nm, min(self.torque_limit_nm, torque))
        self.sent_torque_nm = torque
        if torque == 0.0:
            return ak_mit.zero_torque_command(self.model), line
        return ak_mit.encode_command(ak_mit.MitCommand(torque_nm=self.config.direction * torque), self.model), line

    def startup_frames(self, set_zero: bool = False) -> list[bytes]:
        """Enter motor mode (and optionally set the current position as zero), then zero torque."""
        frames = [ak_mit.ENTER_MOTOR_MODE]
        if set_zero:
            frames.append(ak_mit.SET_ZERO)
        frames.append(ak_mit.zero_torque_command(self.model))
        return frames

    def shutdown_frames(self) -> list[bytes]:
        """Zero torque, then exit motor mode (the driver's last frames)."""
        self.sent_torque_nm = 0.0
        return [ak_mit.zero_torque_command(self.model), ak_mit.EXIT_MOTOR_MODE]

    # --- replies ---------------------------------------------------------
    def _reject(self, reason: str) -> None:
        self.rejected_replies[reason] = self.rejected_replies.get(reason, 0) + 1

    def on_reply(self, data: bytes) -> KneeState | None:
        """Decode and validate one reply; None (counted by reason) if it is invalid."""
        cfg = self.config
        try:
            fb = ak_mit.decode_feedback(data, self.model, expected_motor_id=cfg.motor_id)
        except ak_mit.FrameError as exc:
            self._reject("length" if "bytes" in str(exc) else "motor id")
            return None
        if fb.error_code:
            self._reject(f"error code {fb.error_code}")
            return None
        angle = cfg.direction * (fb.position_rad - cfg.zero_offset_rad)
        velocity = cfg.direction * fb.velocity_rad_s
        if abs(velocity) > cfg.max_velocity_rad_s:
            self._reject("velocity out of range")
            return None
        if not cfg.angle_min_rad <= angle <= cfg.angle_max_rad:
            self._reject("angle out of range")
            return None
        if self._last_angle is not None and abs(angle - self._last_angle) > cfg.max_jump_rad:
            self._last_angle = angle  # a real jump is confirmed by the next reply
            self._reject("angle jump")
            return None
        self._last_angle = angle
        return KneeState(angle, velocity, cfg.direction * fb.torque_nm, fb.temperature_c)
