"""Convert between the pure cores' data (Measurements, TwinState) and ROS messages.

Frames and signs (the contract's descriptions point here):

- ``joint_states``: one joint ``exo_knee``; position rad (+ = flexion, 0 = straight),
  velocity rad/s, effort = measured motor torque N m (+ = flexion).
- ``imu/thigh``, ``imu/shank``: sensor frames ``thigh_imu``/``shank_imu`` whose +y axis
  is the knee's flexion axis. The orientation is the rotation about +y by the
  segment's sagittal pitch (rad, see :mod:`exo.twin.interface`); angular_velocity.y
  is the segment's angular velocity about that axis, rad/s.
- ``interaction/thigh``, ``interaction/shank``: strap wrenches in frames
  ``thigh_strap``/``shank_strap`` (+y = flexion axis); ``wrench.torque.y`` is the
  interaction torque about the knee axis, N m (+ = flexing the human knee). In the
  twin both straps carry the same torque about the knee axis (equal and opposite
  on the segments, reported with the knee's sign).

Stamps: :func:`to_time_msg`/:func:`from_time_msg` convert seconds <-> builtin_interfaces/Time.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Header

from exo.contract import KNEE_JOINT
from exo.twin.interface import Measurements

GRAVITY_M_S2 = 9.80665


def to_time_msg(t_s: float) -> Time:
    """Seconds -> builtin_interfaces/Time (nanosecond resolution)."""
    ns = int(round(t_s * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time_msg(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact: for matching and signing stamps)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def time_msg_from_ns(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time (exact)."""
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(t_s: float, frame_id: str) -> Header:
    return Header(stamp=to_time_msg(t_s), frame_id=frame_id)


def joint_state_msg(m: Measurements) -> JointState:
    msg = JointState(header=header(m.time_s, ""), name=[KNEE_JOINT])
    msg.position = [m.exo_knee_angle_rad]
    msg.velocity = [m.exo_knee_velocity_rad_s]
    msg.effort = [m.exo_motor_torque_nm]
    return msg


def imu_msg(t_s: float, frame_id: str, pitch_rad: float, angular_velocity_rad_s: float) -> Imu:
    """An IMU sample of a segment rotating about +y by ``pitch_rad`` (gravity included in acceleration)."""
    msg = Imu(header=header(t_s, frame_id))
    half = 0.5 * pitch_rad
    msg.orientation.w = math.cos(half)
    msg.orientation.y = math.sin(half)
    msg.angular_velocity.y = angular_velocity_rad_s
    # specific force of a static sensor: +g along world z, expressed in the sensor frame
    msg.linear_acceleration.x = -GRAVITY_M_S2 * math.sin(pitch_rad)
    msg.linear_acceleration.z = GRAVITY_M_S2 * math.cos(pitch_rad)
    return msg


def wrench_msg(t_s: float, frame_id: str, torque_nm: float) -> WrenchStamped:
    msg = WrenchStamped(header=header(t_s, frame_id))
    msg.wrench.torque.y = torque_nm
    return msg


def imu_pitch(msg: Imu) -> float:
    """Sagittal pitch (rotation about +y), rad, from an IMU orientation quaternion."""
    q = msg.orientation
    # pitch of a general quaternion (y-axis rotation), robust away from gimbal lock
    sinp = 2.0 * (q.w * q.y - q.z * q.x)
    return math.asin(max(-1.0, min(1.0, sinp))) if abs(q.x) + abs(q.z) > 1e-12 else 2.0 * math.atan2(q.y, q.w)


def knee_from_joint_state(msg: JointState) -> tuple[float, float, float]:
    """(angle rad, velocity rad/s, torque N m) of the exo knee; ValueError if absent or malformed."""
    try:
        i = list(msg.name).index(KNEE_JOINT)
        return float(msg.position[i]), float(msg.velocity[i]), float(msg.effort[i])
    except (ValueError, IndexError):
        raise ValueError(
            f"joint_states lacks a complete '{KNEE_JOINT}' entry (names={list(msg.name)}, "
            f"{len(msg.position)} positions, {len(msg.velocity)} velocities, {len(msg.effort)} efforts)"
        ) from None


def knee_sample(msg: JointState) -> dict[str, float]:
    """The safety monitor's view of a ``joint_states`` sample: ``knee_angle_rad``, ``knee_velocity_rad_s``,
    ``motor_torque_nm``; NaN for all three when the knee entry is missing or malformed (the core rejects
    and counts the sample)."""
    try:
        angle, velocity, torque = knee_from_joint_state(msg)
    except ValueError:
        angle = velocity = torque = float("nan")
    return {"knee_angle_rad": angle, "knee_velocity_rad_s": velocity, "motor_torque_nm": torque}


def interaction_torque(msg: WrenchStamped) -> float:
    """Interaction torque about the knee axis of a strap wrench, N m (+ = flexing the human knee)."""
    return msg.wrench.torque.y


def measurements_from_msgs(
    joint: JointState, thigh: Imu | None, shank: Imu | None, interaction: WrenchStamped | None
) -> Measurements:
    """Rebuild the twin-side :class:`Measurements` from the latest sensor messages.

    Missing optional streams (no IMU, no strap sensor yet) read as 0 for their fields.
    """
    angle, velocity, torque = knee_from_joint_state(joint)
    return Measurements(
        time_s=from_time_msg(joint.header.stamp),
        exo_knee_angle_rad=angle,
        exo_knee_velocity_rad_s=velocity,
        exo_motor_torque_nm=torque,
        thigh_pitch_rad=imu_pitch(thigh) if thigh is not None else 0.0,
        shank_pitch_rad=imu_pitch(shank) if shank is not None else 0.0,
        thigh_angular_velocity_rad_s=thigh.angular_velocity.y if thigh is not None else 0.0,
        shank_angular_velocity_rad_s=shank.angular_velocity.y if shank is not None else 0.0,
        interaction_torque_nm=interaction_torque(interaction) if interaction is not None else 0.0,
    )
