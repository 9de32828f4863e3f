"""The ROS shell shared by the serial sensor drivers (IMU, EMG, foot pressure).

:class:`SerialDriverNode` opens the device's port, reads it in a background thread,
feeds a :class:`~exo.drivers.serial_link.StreamFramer`, and calls the subclass's
``on_frame(frame, stamp, now_s)`` for each valid frame, with ``stamp`` the host receipt
time (ROS clock, the drivers' time base) and ``now_s`` the monotonic time. A steady
timer checks the device's health: a silent device gets one warning (and nothing is
published: a driver never republishes an old value), garbage gets one summarising line
per second, a lost port (unplugged adapter) is reopened every ``reopen_interval_s``.
``/diagnostics`` carries the counters.

Publishing from the reader thread is safe in rclpy (publishers are thread-safe), and
it keeps a sample's latency down to the serial read itself.
"""

from __future__ import annotations

import contextlib
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from exo import contract
from exo.drivers.health import DeviceHealth
from exo.drivers.serial_link import StreamFramer, open_serial
from exo.ros.parameters import Param, declare_all
from exo.ros.qos import qos_profile

SERIAL_PARAMS = [
    Param("port", "", "Serial device of the sensor, e.g. /dev/ttyUSB0 (required)."),
    Param("baudrate", 115200, "Baud rate of the serial port, bit/s.", 1200, 4_000_000),
    Param("silent_timeout_s", 0.05, "No valid frame for this long -> the device is reported silent, s.",
          0.001, 10.0),
    Param("reopen_interval_s", 0.5, "Interval between attempts to reopen a lost serial port, s.", 0.01, 60.0),
]


class SerialDriverNode(Node):
    """Base of a serial sensor driver; subclasses set ``framer`` and implement ``on_frame``."""

    def __init__(self, name: str, extra_params: list[Param]) -> None:
        super().__init__(name)
        self.p = declare_all(self, SERIAL_PARAMS + extra_params)
        if not self.p["port"]:
            from exo.ros.parameters import ParameterError

            raise ParameterError(f"{self.get_name()}: parameter 'port' is required (config/drivers.yaml)")
        self.health = DeviceHealth(self.get_name(), self.p["silent_timeout_s"])
        self.framer: StreamFramer | None = None
        self.lock = threading.Lock()
        self.started_s = time.monotonic()
        self.published = 0
        self.port_errors = 0
        self._stop = threading.Event()
        self._serial = None
        self._warned_never = False
        self.pub_diag = self.create_publisher(DiagnosticArray, contract.DIAGNOSTICS_TOPIC.name,
                                              qos_profile(contract.DIAGNOSTICS_TOPIC))
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(min(0.02, self.p["silent_timeout_s"] / 2), self._check_health, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self._thread: threading.Thread | None = None

    def start_reading(self) -> None:
        """Start the reader thread; subclasses call it at the end of their ``__init__``."""
        self.framer = self.make_framer()
        self._thread = threading.Thread(target=self._read_loop, name=f"{self.get_name()}-reader", daemon=True)
        self._thread.start()

    # --- for subclasses ------------------------------------------------------
    def make_framer(self) -> StreamFramer:
        raise NotImplementedError

    def on_frame(self, frame, stamp, now_s: float) -> None:
        raise NotImplementedError

    def extra_diagnostics(self) -> dict[str, str]:
        return {}

    # --- reading -------------------------------------------------------------
    def _open(self) -> bool:
        try:
            self._serial = open_serial(self.p["port"], self.p["baudrate"], timeout_s=0.02)
            self._serial.reset_input_buffer()  # bytes queued before we listened are old: never publish them
            self.get_logger().info(f"opened {self.p['port']} at {self.p['baudrate']} baud")
            return True
        except OSError as exc:
            self.port_errors += 1
            if self.port_errors in (1, 10) or self.port_errors % 100 == 0:
                self.get_logger().error(f"{exc} (attempt {self.port_errors}; retrying every "
                                        f"{self.p['reopen_interval_s']} s)")
            return False

    def _read_loop(self) -> None:
        import serial

        while not self._stop.is_set():
            if self._serial is None and not self._open():
                self._stop.wait(self.p["reopen_interval_s"])
                continue
            try:
                data = self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                self.get_logger().error(f"{self.p['port']} lost: {exc}; reopening")
                self._close_port()
                self.framer.buffer.clear()  # a partial frame from before the loss is not completed later
                continue
            if not data:
                continue
            now_s = time.monotonic()
            stamp = self.get_clock().now().to_msg()
            with self.lock:
                frames = self.framer.feed(data)
            for frame in frames:
                line = self.health.frame(now_s)
                if line:
                    self.get_logger().info(line)
                self.on_frame(frame, stamp, now_s)

    def _close_port(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):  # closing a dead port may fail in many ways
                self._serial.close()
            self._serial = None

    # --- health ----------------------------------------------------------------
    def _check_health(self) -> None:
        if self.framer is None:
            return
        now = time.monotonic()
        line = self.health.check(now)
        if line:
            self.get_logger().warning(line)
        if self.health.never_heard(now, self.started_s) and not self._warned_never and now - self.started_s > 2.0:
            self._warned_never = True
            self.get_logger().warning(f"no valid frame from {self.p['port']} since start-up "
                                      f"({now - self.started_s:.1f} s): check the device and its baud rate")
        with self.lock:
            rejected, dropped = dict(self.framer.rejected), self.framer.bytes_dropped
        rejected.update(self.assembler_rejected())
        line = self.health.garbage_line(now, rejected, dropped)
        if line:
            self.get_logger().warning(line)

    def assembler_rejected(self) -> dict[str, int]:
        """Rejections after framing (incomplete IMU sets, ...), merged into the garbage counters."""
        return {}

    def _publish_diagnostics(self) -> None:
        if self.framer is None:
            return
        h = self.health
        level = DiagnosticStatus.OK if h.frames and not h.silent else DiagnosticStatus.ERROR
        values = {"port": self.p["port"], "frames": str(h.frames), "published": str(self.published),
                  "rejected_frames": str(self.framer.frames_rejected), "bytes_dropped": str(self.framer.bytes_dropped),
                  "silences": str(h.silences), "port_errors": str(self.port_errors), **self.extra_diagnostics()}
        status = DiagnosticStatus(level=level, name=f"{self.get_namespace().rstrip('/')}/{self.get_name()}",
                                  message="silent" if h.silent else ("no data yet" if not h.frames else "ok"),
                                  hardware_id=self.p["port"],
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def on_shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._close_port()
        if self.framer is None:
            return
        self.get_logger().info(
            f"stopped: {self.health.frames} frame(s), {self.published} message(s), "
            f"{self.framer.frames_rejected} invalid frame(s), {self.framer.bytes_dropped} byte(s) dropped")
