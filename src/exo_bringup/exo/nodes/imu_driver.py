"""imu_thigh_driver / imu_shank_driver: a WitMotion IMU on a serial port -> ``imu/thigh`` or ``imu/shank``.

One sensor_msgs/Imu per complete accel + gyro + quaternion set (:class:`exo.drivers.witmotion.ImuAssembler`),
stamped with the host receipt time of the set's last frame, in frame ``<segment>_imu``
(conventions of :mod:`exo.ros.convert`). Corrupt frames and incomplete sets are dropped
and counted; a silent sensor publishes nothing (the safety monitor's timeout sees it).
"""

from __future__ import annotations

from sensor_msgs.msg import Imu

from exo import contract
from exo.drivers import witmotion
from exo.ros.driver_base import SerialDriverNode
from exo.ros.node_main import run
from exo.ros.parameters import Param
from exo.ros.qos import qos_profile

PARAMS = [
    Param("segment", "thigh", "Which cuff the IMU is on: thigh -> imu/thigh, shank -> imu/shank.",
          choices=("thigh", "shank")),
]


class ImuDriver(SerialDriverNode):
    def __init__(self) -> None:
        self.assembler = witmotion.ImuAssembler()
        super().__init__("imu_driver", PARAMS)
        topic = contract.IMU_THIGH if self.p["segment"] == "thigh" else contract.IMU_SHANK
        self.frame_id = f"{self.p['segment']}_imu"
        self.pub = self.create_publisher(Imu, topic.name, qos_profile(topic))
        self.start_reading()

    def make_framer(self):
        return witmotion.framer()

    def assembler_rejected(self) -> dict[str, int]:
        return dict(self.assembler.rejected)

    def on_frame(self, frame, stamp, now_s: float) -> None:
        kind, raw = frame
        sample = self.assembler.add(kind, raw)
        if sample is None:
            return
        msg = Imu()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        w, x, y, z = sample.quaternion_wxyz
        msg.orientation.w, msg.orientation.x, msg.orientation.y, msg.orientation.z = w, x, y, z
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = sample.gyro_rad_s
        a = sample.accel_m_s2
        msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = a
        self.pub.publish(msg)
        self.published += 1


def main(args: list[str] | None = None) -> None:
    run(ImuDriver, args)


if __name__ == "__main__":
    main()
