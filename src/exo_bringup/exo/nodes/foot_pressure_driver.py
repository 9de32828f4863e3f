"""foot_pressure_driver: an insole ADC board on a serial port -> ``foot_pressure`` (Pa, N).

Frames: :mod:`exo.drivers.foot_pressure` (sync, seq, cell count, 12-bit counts, CRC-16).
A linear per-cell calibration turns counts into pascal; the total vertical force is the
sum of pressure x cell area. A gap in ``seq`` is counted as lost frames.
"""

from __future__ import annotations

from exo import contract
from exo.drivers import foot_pressure
from exo.ros.driver_base import SerialDriverNode
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError
from exo.ros.qos import qos_profile
from exo_msgs.msg import FootPressure

PARAMS = [
    Param("cell_names", "heel,meta1,meta5,hallux", "Comma-separated names of the insole cells."),
    Param("offset_counts", "100,100,100,100", "ADC count at zero load per cell (comma-separated)."),
    Param("pa_per_count", "50,50,50,50", "Pressure per ADC count above the offset per cell, Pa."),
    Param("cell_area_m2", "0.0012,0.0008,0.0008,0.0006", "Area of each cell, m^2 (for the total force)."),
    Param("frame_id", "left_foot", "header.frame_id: the foot."),
]


def _floats(name: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ParameterError(f"parameter '{name}': {text!r} is not a comma-separated list of numbers") from None


class FootPressureDriver(SerialDriverNode):
    def __init__(self) -> None:
        super().__init__("foot_pressure_driver", PARAMS)
        self.names = [n.strip() for n in self.p["cell_names"].split(",")]
        try:
            self.cal = foot_pressure.Calibration(_floats("offset_counts", self.p["offset_counts"]),
                                                 _floats("pa_per_count", self.p["pa_per_count"]),
                                                 _floats("cell_area_m2", self.p["cell_area_m2"]))
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        if len(self.cal.offset_counts) != len(self.names):
            raise ParameterError(f"{len(self.names)} cell_names but {len(self.cal.offset_counts)} calibration values")
        self.last_seq: int | None = None
        self.lost_frames = 0
        self.pub = self.create_publisher(FootPressure, contract.FOOT_PRESSURE.name, qos_profile(contract.FOOT_PRESSURE))
        self.start_reading()

    def make_framer(self):
        return foot_pressure.framer(len(self.names))

    def extra_diagnostics(self) -> dict[str, str]:
        return {"lost_frames": str(self.lost_frames)}

    def on_frame(self, frame, stamp, now_s: float) -> None:
        if self.last_seq is not None:
            self.lost_frames += (frame.seq - self.last_seq - 1) % 256
        self.last_seq = frame.seq
        pressure = self.cal.pressure_pa(frame.counts)
        msg = FootPressure(cell_names=self.names, pressure_pa=pressure,
                           total_force_n=self.cal.total_force_n(pressure))
        msg.header.stamp = stamp
        msg.header.frame_id = self.p["frame_id"]
        self.pub.publish(msg)
        self.published += 1


def main(args: list[str] | None = None) -> None:
    run(FootPressureDriver, args)


if __name__ == "__main__":
    main()
