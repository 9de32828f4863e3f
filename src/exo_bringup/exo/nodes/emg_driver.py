"""emg_driver: an OpenBCI Cyton on a serial port -> ``emg`` (exo_msgs/EmgPacket, volts).

The Cyton samples at 250 Hz (8 channels); packets of ``samples_per_packet`` contiguous
samples are published with the TRUE ``sample_rate_hz`` (250), below the contract's
1-2 kHz: consumers resample (docs/drivers.md). ``header.stamp`` is the estimated
acquisition time of the packet's first sample. Lost samples (gaps in the sample
counter) discard the partial packet and are counted.
"""

from __future__ import annotations

from rclpy.time import Time

from exo import contract
from exo.drivers import openbci_cyton
from exo.ros.driver_base import SerialDriverNode
from exo.ros.node_main import run
from exo.ros.parameters import Param
from exo.ros.qos import qos_profile
from exo_msgs.msg import EmgPacket

PARAMS = [
    Param("gain", 24.0, "ADS1299 programmable gain the board is configured with (scale factor).", 1.0, 24.0),
    Param("samples_per_packet", 5, "Samples per EmgPacket (5 at 250 Hz = 50 packets/s).", 1, 250),
    Param("channel_names", "vastus_lateralis,rectus_femoris,vastus_medialis,biceps_femoris,"
          "semitendinosus,gastrocnemius,tibialis_anterior,spare",
          "Comma-separated names of the 8 channels (electrode sites)."),
    Param("frame_id", "openbci_cyton", "header.frame_id: the amplifier."),
]


class EmgDriver(SerialDriverNode):
    def __init__(self) -> None:
        super().__init__("emg_driver", PARAMS)
        names = [n.strip() for n in self.p["channel_names"].split(",")]
        if len(names) != openbci_cyton.N_CHANNELS or not all(names):
            from exo.ros.parameters import ParameterError

            raise ParameterError(f"channel_names must name {openbci_cyton.N_CHANNELS} channels, got {names}")
        self.names = names
        self.packetizer = openbci_cyton.EmgPacketizer(self.p["samples_per_packet"], self.p["gain"])
        self.pub = self.create_publisher(EmgPacket, contract.EMG.name, qos_profile(contract.EMG))
        self.start_reading()

    def make_framer(self):
        return openbci_cyton.framer()

    def extra_diagnostics(self) -> dict[str, str]:
        return {"lost_samples": str(self.packetizer.lost_samples), "railed_samples": str(self.packetizer.railed_samples),
                "sample_rate_hz": str(openbci_cyton.SAMPLE_RATE_HZ)}

    def on_frame(self, frame, stamp, now_s: float) -> None:
        t_rx = stamp.sec + stamp.nanosec * 1e-9
        done = self.packetizer.add(frame, t_rx)
        if done is None:
            return
        t_first, rows = done
        msg = EmgPacket()
        msg.header.stamp = Time(nanoseconds=int(t_first * 1e9)).to_msg()
        msg.header.frame_id = self.p["frame_id"]
        msg.sample_rate_hz = openbci_cyton.SAMPLE_RATE_HZ
        msg.channel_names = self.names
        msg.num_samples = len(rows)
        msg.samples = [v for row in rows for v in row]
        self.pub.publish(msg)
        self.published += 1


def main(args: list[str] | None = None) -> None:
    run(EmgDriver, args)


if __name__ == "__main__":
    main()
