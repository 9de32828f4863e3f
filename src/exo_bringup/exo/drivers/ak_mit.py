"""CubeMars AK-series actuators in "MIT mode" (the Mini-Cheetah CAN protocol): frames and scaling.

Protocol (CubeMars AK series driver manual, MIT/"force control" mode; the same layout as
the MIT Mini Cheetah motor controller firmware):

- Every frame is a standard 11-bit CAN data frame, 8 data bytes, arbitration id =
  the motor's CAN id (host -> motor).
- **Special commands** (data, hex): enter motor mode ``FF FF FF FF FF FF FF FC``,
  exit motor mode ``... FD``, set the current position as zero ``... FE``.
- **Command**: position p (16 bit), velocity v (12 bit), kp (12 bit), kd (12 bit) and
  feed-forward torque t_ff (12 bit), each an unsigned integer mapping linearly
  ``[min, max] -> [0, 2^bits - 1]``, packed big-endian::

      b0 = p[15:8]  b1 = p[7:0]  b2 = v[11:4]  b3 = v[3:0]<<4 | kp[11:8]
      b4 = kp[7:0]  b5 = kd[11:4]  b6 = kd[3:0]<<4 | t[11:8]  b7 = t[7:0]

  The motor applies ``tau = kp (p_des - p) + kd (v_des - v) + t_ff`` (N m at the output).
  A pure torque command is ``kp = kd = 0``.
- **Reply** (motor -> host, one per received frame; arbitration id = the host/master
  id, 0 by default): ``b0`` = motor id, p (16 bit) in b1-b2, v (12 bit) in b3 and the high
  nibble of b4, torque (12 bit, the motor's current scaled to output torque) in the low
  nibble of b4 and b5, ``b6`` temperature (deg C, + 40 offset on firmware that sends it:
  we decode ``b6 - 40``), ``b7`` error code (0 = none). 6-byte replies of older firmware
  (no temperature, no error code) are accepted.

Scaling table (:data:`MOTOR_MODELS`): the ranges of p, v, t, kp, kd per model, as the
CubeMars manual publishes them. Position is at the output shaft, rad; velocity rad/s;
torque N m. Using the wrong model's table reads every value with a wrong scale: the
driver checks the model name against its configured table and the tests show what a
wrong table does (see ``test_drivers_codecs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

ENTER_MOTOR_MODE = bytes([0xFF] * 7 + [0xFC])
EXIT_MOTOR_MODE = bytes([0xFF] * 7 + [0xFD])
SET_ZERO = bytes([0xFF] * 7 + [0xFE])


@dataclass(frozen=True)
class MotorModel:
    """Value ranges of one AK model in MIT mode (the manual's table).

    Attributes:
        name: model name, e.g. "AK80-64".
        p_max_rad: |position| range, rad (output shaft).
        v_max_rad_s: |velocity| range, rad/s.
        t_max_nm: |torque| range, N m (output shaft).
        kp_max: kp range [0, kp_max], N m/rad.
        kd_max: kd range [0, kd_max], N m s/rad.
    """

    name: str
    p_max_rad: float
    v_max_rad_s: float
    t_max_nm: float
    kp_max: float = 500.0
    kd_max: float = 5.0


#: CubeMars AK series, MIT mode parameter ranges (P, V, T symmetric about 0; Kp 0-500, Kd 0-5).
MOTOR_MODELS: dict[str, MotorModel] = {
    m.name: m
    for m in (
        MotorModel("AK10-9", 12.5, 50.0, 65.0),
        MotorModel("AK60-6", 12.5, 45.0, 15.0),
        MotorModel("AK70-10", 12.5, 50.0, 25.0),
        MotorModel("AK80-6", 12.5, 76.0, 12.0),
        MotorModel("AK80-8", 12.5, 37.5, 32.0),
        MotorModel("AK80-9", 12.5, 50.0, 18.0),
        MotorModel("AK80-64", 12.5, 8.0, 144.0),
    )
}


class FrameError(ValueError):
    """A frame failed validation (length, id, range, error code); the message says which."""


def motor_model(name: str) -> MotorModel:
    """The scaling of model ``name``; ValueError naming the known models otherwise."""
    try:
        return MOTOR_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown AK motor model {name!r}: expected one of {', '.join(MOTOR_MODELS)}") from None


def float_to_uint(x: float, x_min: float, x_max: float, bits: int) -> int:
    """Map ``x`` (clamped to [x_min, x_max]) linearly onto [0, 2^bits - 1] (truncation, as the firmware)."""
    span = x_max - x_min
    x = min(max(x, x_min), x_max)
    return int((x - x_min) * ((1 << bits) - 1) / span)


def uint_to_float(u: int, x_min: float, x_max: float, bits: int) -> float:
    """Inverse of :func:`float_to_uint`."""
    return u * (x_max - x_min) / ((1 << bits) - 1) + x_min


@dataclass(frozen=True)
class MitCommand:
    """One MIT-mode command (SI units at the output shaft)."""

    position_rad: float = 0.0
    velocity_rad_s: float = 0.0
    kp: float = 0.0
    kd: float = 0.0
    torque_nm: float = 0.0


def encode_command(cmd: MitCommand, model: MotorModel) -> bytes:
    """The 8 data bytes of ``cmd`` for ``model`` (values outside the ranges are clamped)."""
    p = float_to_uint(cmd.position_rad, -model.p_max_rad, model.p_max_rad, 16)
    v = float_to_uint(cmd.velocity_rad_s, -model.v_max_rad_s, model.v_max_rad_s, 12)
    kp = float_to_uint(cmd.kp, 0.0, model.kp_max, 12)
    kd = float_to_uint(cmd.kd, 0.0, model.kd_max, 12)
    t = float_to_uint(cmd.torque_nm, -model.t_max_nm, model.t_max_nm, 12)
    return bytes([
        p >> 8, p & 0xFF, v >> 4, ((v & 0xF) << 4) | (kp >> 8), kp & 0xFF,
        kd >> 4, ((kd & 0xF) << 4) | (t >> 8), t & 0xFF,
    ])


def decode_command(data: bytes, model: MotorModel) -> MitCommand:
    """Decode a command frame (what the motor, or its emulator, does)."""
    if len(data) != 8:
        raise FrameError(f"MIT command must have 8 data bytes, got {len(data)}")
    p = (data[0] << 8) | data[1]
    v = (data[2] << 4) | (data[3] >> 4)
    kp = ((data[3] & 0xF) << 8) | data[4]
    kd = (data[5] << 4) | (data[6] >> 4)
    t = ((data[6] & 0xF) << 8) | data[7]
    return MitCommand(
        uint_to_float(p, -model.p_max_rad, model.p_max_rad, 16),
        uint_to_float(v, -model.v_max_rad_s, model.v_max_rad_s, 12),
        uint_to_float(kp, 0.0, model.kp_max, 12),
        uint_to_float(kd, 0.0, model.kd_max, 12),
        uint_to_float(t, -model.t_max_nm, model.t_max_nm, 12),
    )


@dataclass(frozen=True)
class MitFeedback:
    """One decoded reply of the motor (output shaft, SI units).

    Attributes:
        motor_id: CAN id of the motor that replied.
        position_rad, velocity_rad_s, torque_nm: state; torque is the current-based estimate.
        temperature_c: driver temperature, deg C (None on 6-byte replies).
        error_code: 0 = no error (None on 6-byte replies).
    """

    motor_id: int
    position_rad: float
    velocity_rad_s: float
    torque_nm: float
    temperature_c: float | None = None
    error_code: int | None = None


def encode_feedback(fb: MitFeedback, model: MotorModel) -> bytes:
    """The reply bytes the motor sends for ``fb`` (8 bytes; what the emulator sends)."""
    p = float_to_uint(fb.position_rad, -model.p_max_rad, model.p_max_rad, 16)
    v = float_to_uint(fb.velocity_rad_s, -model.v_max_rad_s, model.v_max_rad_s, 12)
    t = float_to_uint(fb.torque_nm, -model.t_max_nm, model.t_max_nm, 12)
    temp = int(min(max((fb.temperature_c if fb.temperature_c is not None else 25.0) + 40, 0), 255))
    return bytes([fb.motor_id & 0xFF, p >> 8, p & 0xFF, v >> 4, ((v & 0xF) << 4) | (t >> 8), t & 0xFF,
                  temp, (fb.error_code or 0) & 0xFF])


def decode_feedback(data: bytes, model: MotorModel, expected_motor_id: int | None = None) -> MitFeedback:
    """Decode and validate a reply; :class:`FrameError` names what is wrong.

    Checks: 6 or 8 bytes, the motor id (if given), a special-command echo is not feedback.
    """
    if len(data) not in (6, 8):
        raise FrameError(f"MIT reply must have 6 or 8 data bytes, got {len(data)}")
    if expected_motor_id is not None and data[0] != expected_motor_id:
        raise FrameError(f"MIT reply from motor id {data[0]}, expected {expected_motor_id}")
    p = (data[1] << 8) | data[2]
    v = (data[3] << 4) | (data[4] >> 4)
    t = ((data[4] & 0xF) << 8) | data[5]
    temperature = error = None
    if len(data) == 8:
        temperature, error = float(data[6]) - 40.0, int(data[7])
    return MitFeedback(
        int(data[0]),
        uint_to_float(p, -model.p_max_rad, model.p_max_rad, 16),
        uint_to_float(v, -model.v_max_rad_s, model.v_max_rad_s, 12),
        uint_to_float(t, -model.t_max_nm, model.t_max_nm, 12),
        temperature,
        error,
    )


def torque_resolution_nm(model: MotorModel) -> float:
    """Size of one step of the 12-bit torque field, N m (the finest commandable torque)."""
    return 2 * model.t_max_nm / 4095


def zero_torque_command(model: MotorModel) -> bytes:
    """A command with kp = kd = 0 and the torque field at the code nearest 0 N m.

    With the symmetric 12-bit mapping 0 N m is not exactly representable (code 2047 is
    -t_max/4095 N m); the nearest code is used, i.e. |torque| <= half a step.
    """
    code = round(model.t_max_nm * 4095 / (2 * model.t_max_nm))  # the code nearest 0 N m
    p = float_to_uint(0.0, -model.p_max_rad, model.p_max_rad, 16)
    v = float_to_uint(0.0, -model.v_max_rad_s, model.v_max_rad_s, 12)
    return bytes([p >> 8, p & 0xFF, v >> 4, (v & 0xF) << 4, 0, 0, code >> 8, code & 0xFF])
