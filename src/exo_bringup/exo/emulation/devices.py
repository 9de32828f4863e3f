"""Emulated devices for tests and ``exo real --emulate``: the real protocols, no hardware.

- :class:`AkMotorEmulator`: an AK actuator on a python-can bus (``virtual`` in one
  process, ``udp_multicast`` across processes). It answers every frame as the motor does
  (enter/exit motor mode, set zero, MIT command -> one reply), and applies the MIT law
  ``tau = kp (p_des - p) + kd (v_des - v) + t_ff`` to a plant.
- :class:`PtyDevice`: a serial device on a pseudo-terminal; the driver opens
  :attr:`PtyDevice.port` like a USB serial adapter.
- :class:`EmulatedRig`: the knee behind them: the reduced digital twin, stepped in real
  time at its control period, driving the motor, two WitMotion IMUs (100 Hz), an OpenBCI
  Cyton (250 Hz) and a foot-pressure insole (100 Hz).

Faults (for the fault tests, :class:`Fault`): ``silent`` (the device stops sending after
``at_s``), ``garbage`` (from ``at_s`` on, every 5th frame is corrupted and random bytes are
inserted), ``disconnect`` (the pty closes at ``at_s``, like an unplugged USB adapter),
``scaling`` (the motor replies with another model's table). The last wire bytes written
by the rig's motor are kept (:attr:`AkMotorEmulator.log`) so tests can check that the
driver's last frames were zero torque then exit motor mode.

Run standalone (what ``exo real --emulate`` starts)::

    python -m exo.emulation.devices --ports-file ports.json --can-port 43200 [--fault imu_thigh:silent:3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from exo.drivers import ak_mit, foot_pressure, openbci_cyton, witmotion
from exo.drivers.can_bus import open_can_bus

#: Default multicast group of python-can's udp_multicast bus (IPv4).
CAN_MULTICAST_GROUP = "239.74.163.2"
DEVICES = ("actuator", "imu_thigh", "imu_shank", "emg", "insole")
#: Driver node of each emulated serial device.
DRIVER_OF = {"imu_thigh": "imu_thigh_driver", "imu_shank": "imu_shank_driver", "emg": "emg_driver",
             "insole": "foot_pressure_driver"}
FAULT_KINDS = ("silent", "garbage", "disconnect", "scaling")


@dataclass(frozen=True)
class Fault:
    """A fault of one emulated device: ``kind`` from ``at_s`` (s after the rig started)."""

    device: str
    kind: str
    at_s: float = 0.0
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``device:kind[:at_s[:value]]``, e.g. ``imu_thigh:silent:3`` or ``actuator:scaling:0:AK80-9``."""
        parts = text.split(":")
        if len(parts) < 2 or parts[0] not in DEVICES or parts[1] not in FAULT_KINDS:
            raise ValueError(f"fault {text!r}: expected device:kind[:at_s[:value]] with device in "
                             f"{', '.join(DEVICES)} and kind in {', '.join(FAULT_KINDS)}")
        try:
            at = float(parts[2]) if len(parts) > 2 and parts[2] else 0.0
        except ValueError:
            raise ValueError(f"fault {text!r}: at_s {parts[2]!r} is not a number") from None
        return cls(parts[0], parts[1], at, parts[3] if len(parts) > 3 else "")


class MotorPlant:
    """What the emulated motor moves: ``state() -> (position rad, velocity rad/s)``; set ``torque_nm``."""

    def __init__(self) -> None:
        self.position_rad = 0.0
        self.velocity_rad_s = 0.0
        self.torque_nm = 0.0
        self.lock = threading.Lock()


class AkMotorEmulator:
    """An AK actuator in MIT mode on ``bus``, answering from a :class:`MotorPlant`.

    Args:
        bus: python-can bus.
        model: the motor's own scaling table.
        motor_id: its CAN id; replies go to ``master_id``.
        reply_model: table used for the replies (a ``scaling`` fault sets another model's).
    """

    def __init__(self, bus, model: str, plant: MotorPlant, motor_id: int = 1, master_id: int = 0) -> None:
        self.bus = bus
        self.model = ak_mit.motor_model(model)
        self.reply_model = self.model
        self.plant = plant
        self.motor_id = motor_id
        self.master_id = master_id
        self.enabled = False
        self.zero_offset_rad = 0.0
        self.silent = False
        self.corrupt_every = 0
        self.command = ak_mit.MitCommand()
        self.log: deque[bytes] = deque(maxlen=64)  # data bytes received, newest last
        self.commands_received = 0
        self.replies_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ak-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.bus.recv(timeout=0.05)
            if msg is not None:
                self.handle(msg)

    def handle(self, msg) -> None:
        """React to one received frame as the motor does."""
        if msg.arbitration_id != self.motor_id or msg.is_extended_id:
            return
        data = bytes(msg.data)
        self.log.append(data)
        if data == ak_mit.ENTER_MOTOR_MODE:
            self.enabled = True
        elif data == ak_mit.EXIT_MOTOR_MODE:
            self.enabled = False
            self.command = ak_mit.MitCommand()
        elif data == ak_mit.SET_ZERO:
            with self.plant.lock:
                self.zero_offset_rad = self.plant.position_rad
        else:
            try:
                self.command = ak_mit.decode_command(data, self.model)
            except ak_mit.FrameError:
                return
            self.commands_received += 1
        with self.plant.lock:
            self.plant.torque_nm = self.applied_torque_unlocked()
        self.reply()

    def applied_torque_unlocked(self) -> float:
        if not self.enabled:
            return 0.0
        c = self.command
        p, v = self.plant.position_rad - self.zero_offset_rad, self.plant.velocity_rad_s
        tau = c.kp * (c.position_rad - p) + c.kd * (c.velocity_rad_s - v) + c.torque_nm
        return max(-self.model.t_max_nm, min(self.model.t_max_nm, tau))

    def reply(self) -> None:
        if self.silent:
            return
        import can

        with self.plant.lock:
            fb = ak_mit.MitFeedback(self.motor_id, self.plant.position_rad - self.zero_offset_rad,
                                    self.plant.velocity_rad_s, self.plant.torque_nm, 30.0, 0)
        data = ak_mit.encode_feedback(fb, self.reply_model)
        self.replies_sent += 1
        if self.corrupt_every and self.replies_sent % self.corrupt_every == 0:
            data = data[:5]  # a truncated frame
        with contextlib.suppress(can.CanError):
            self.bus.send(can.Message(arbitration_id=self.master_id, data=data, is_extended_id=False))


class PtyDevice:
    """A serial device behind a pseudo-terminal (raw mode): write bytes, the driver reads them.

    Attributes:
        port: the path the driver opens (``/dev/pts/N``).
    """

    def __init__(self, name: str) -> None:
        import tty

        self.name = name
        self.master_fd, slave_fd = os.openpty()
        tty.setraw(slave_fd)
        os.set_blocking(self.master_fd, False)  # a full buffer drops bytes (as a UART does), never blocks
        self.port = os.ttyname(slave_fd)
        self._slave_fd = slave_fd  # kept open so that writes before the driver opens do not fail
        self.closed = False
        self.frames_written = 0

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            os.write(self.master_fd, data)
            self.frames_written += 1
        except OSError:
            pass  # nobody reading and the buffer is full: a real UART drops bytes too

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for fd in (self.master_fd, self._slave_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    """A frame with one byte flipped, preceded by a few random bytes (line noise)."""
    b = bytearray(frame)
    i = rng.randrange(1, len(b))
    b[i] ^= 0x5A
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6))) + bytes(b)


class EmulatedRig:
    """The reduced twin behind emulated devices, stepped in real time.

    Args:
        can_interface, can_channel, can_port: the bus the motor listens on.
        motor_model: AK model of the emulated motor.
        level, seed: spasticity level and seed of the simulated subject.
        faults: faults to inject.
        emg_gain: gain of the emulated Cyton (the driver must be configured alike).
    """

    IMU_RATE_HZ = 100.0
    FOOT_RATE_HZ = 100.0
    EMG_CHANNELS = 8

    def __init__(self, can_interface: str = "udp_multicast", can_channel: str = CAN_MULTICAST_GROUP,
                 can_port: int = 0, motor_model: str = "AK80-64", motor_id: int = 1, level: int = 1,
                 seed: int = 0, faults: tuple[Fault, ...] = (), initial_knee_angle_rad: float = 1.544,
                 foot_calibration: foot_pressure.Calibration | None = None, emg_gain: float = 24.0,
                 can_bus=None) -> None:
        from exo.twin import make_twin

        self.twin = make_twin("reduced")
        self.state = self.twin.reset(level, seed=seed, initial_knee_angle_rad=initial_knee_angle_rad)
        self.period_s = self.twin.control_timestep_s
        self.plant = MotorPlant()
        self._sync_plant()
        self.bus = can_bus if can_bus is not None else open_can_bus(can_interface, can_channel, can_port)
        self.motor = AkMotorEmulator(self.bus, motor_model, self.plant, motor_id)
        self.devices = {name: PtyDevice(name) for name in DRIVER_OF}
        self.faults = tuple(faults)
        self.rng = random.Random(seed)
        self.emg_scale = openbci_cyton.volts_per_count(emg_gain)
        self.foot_cal = foot_calibration or default_foot_calibration()
        self.emg_sample = 0
        self.foot_seq = 0
        self.steps = 0
        self.late_steps = 0  # steps started more than 50 ms late (the host did not run the rig)
        self.worst_late_s = 0.0
        # (monotonic start s, lateness s) of the last hour's steps (see timing())
        self.step_log: deque[tuple[float, float]] = deque(maxlen=360_000)
        self._stop = threading.Event()
        self.t0 = time.monotonic()

    def ports(self) -> dict[str, str]:
        return {name: dev.port for name, dev in self.devices.items()}

    def _sync_plant(self) -> None:
        m = self.state.measurements
        with self.plant.lock:
            self.plant.position_rad = m.exo_knee_angle_rad
            self.plant.velocity_rad_s = m.exo_knee_velocity_rad_s

    def _active(self, device: str, kind: str, t: float) -> Fault | None:
        for f in self.faults:
            if f.device == device and f.kind == kind and t >= f.at_s:
                return f
        return None

    def _send(self, device: str, frames: list[bytes], t: float) -> None:
        dev = self.devices[device]
        if self._active(device, "disconnect", t):
            dev.close()
            return
        if self._active(device, "silent", t):
            return
        garbage = self._active(device, "garbage", t) is not None
        for frame in frames:
            if garbage and self.rng.random() < 0.2:
                frame = _corrupt(frame, self.rng)
            dev.write(frame)

    def step(self) -> None:
        """One control period: apply the motor torque, step the twin, emit the sensors' frames."""
        t = time.monotonic() - self.t0
        self.motor.silent = self._active("actuator", "silent", t) is not None
        scaling = self._active("actuator", "scaling", t)
        if scaling is not None:
            self.motor.reply_model = ak_mit.motor_model(scaling.value or "AK80-9")
        self.motor.corrupt_every = 5 if self._active("actuator", "garbage", t) else 0
        with self.plant.lock:
            torque = self.motor.applied_torque_unlocked()
            self.plant.torque_nm = torque
        self.state = self.twin.step(torque)
        self._sync_plant()
        self.steps += 1
        m = self.state.measurements
        for name, pitch, rate in (("imu_thigh", m.thigh_pitch_rad, m.thigh_angular_velocity_rad_s),
                                  ("imu_shank", m.shank_pitch_rad, m.shank_angular_velocity_rad_s)):
            sample = witmotion.ImuSample(
                (-witmotion.GRAVITY_M_S2 * math.sin(pitch), 0.0, witmotion.GRAVITY_M_S2 * math.cos(pitch)),
                (0.0, rate, 0.0), (math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0), 30.0)
            self._send(name, [witmotion.sample_frames(sample)], t)
        # EMG: every sample due by now (250 Hz: 2-3 per control period, in a burst like a USB adapter)
        due = int((t + self.period_s) * openbci_cyton.SAMPLE_RATE_HZ)
        activity = min(1.0, abs(m.interaction_torque_nm) / 50.0)
        frames = []
        while self.emg_sample < due:
            amp_v = 10e-6 + 200e-6 * activity
            counts = tuple(round(self.rng.gauss(0.0, amp_v) / self.emg_scale) for _ in range(self.EMG_CHANNELS))
            frames.append(openbci_cyton.encode_packet(self.emg_sample % 256, counts))
            self.emg_sample += 1
        self._send("emg", frames, t)
        load = [8000.0 + 500.0 * self.rng.random(), 3000.0, 3000.0, 1000.0]  # Pa, seated
        self.foot_seq = (self.foot_seq + 1) % 256
        self._send("insole", [foot_pressure.encode_frame(self.foot_seq, self.foot_cal.counts_for(load))], t)

    def run(self, duration_s: float = math.inf) -> None:
        """Step in real time (deadline scheduling on the monotonic clock) until stopped."""
        self.motor.start()
        self.t0 = time.monotonic()
        next_t = self.t0
        while not self._stop.is_set() and time.monotonic() - self.t0 < duration_s:
            now = time.monotonic()
            late = now - next_t
            self.step_log.append((now, late))
            self.worst_late_s = max(self.worst_late_s, late)
            self.late_steps += late > 0.05
            self.step()
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < -5 * self.period_s:
                next_t = time.monotonic()  # far behind (a loaded machine): do not burst to catch up
            elif delay > 0:
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()

    def timing(self) -> dict:
        """The steps' start times and lateness, for :func:`lateness_stats`.

        ``start_s``: monotonic clock (system-wide, so other processes can select a window), s;
        ``late_ms``: how late each step started against its deadline, ms. A step late by more
        than a period means every emulated device was silent that long (the host did not run
        the rig); the steps due meanwhile then run back to back.
        """
        return {"period_ms": self.period_s * 1e3, "start_s": [round(t, 4) for t, _ in self.step_log],
                "late_ms": [round(late * 1e3, 3) for _, late in self.step_log]}

    def close(self) -> None:
        self.stop()
        self.motor.stop()
        for dev in self.devices.values():
            dev.close()
        with contextlib.suppress(Exception):
            self.bus.shutdown()


def lateness_stats(timing: dict, start_s: float = -math.inf, end_s: float = math.inf) -> dict[str, float | int]:
    """p50 / p99 / max lateness (ms) of the rig's steps started in [start_s, end_s] (monotonic, s),
    and how many were later than one period and than 50 ms (the hardware sensor timeout)."""
    late = sorted(x for t, x in zip(timing["start_s"], timing["late_ms"], strict=True) if start_s <= t <= end_s)
    if not late:
        return {"steps": 0}

    def pct(q: float) -> float:
        return late[min(len(late) - 1, int(q * len(late)))]

    return {"steps": len(late), "lateness_p50_ms": pct(0.5), "lateness_p99_ms": pct(0.99),
            "lateness_max_ms": late[-1], "steps_late_over_period": sum(x > timing["period_ms"] for x in late),
            "steps_late_over_50ms": sum(x > 50.0 for x in late)}


def default_foot_calibration() -> foot_pressure.Calibration:
    """The calibration config/drivers.yaml ships (4 cells: heel, meta1, meta5, hallux)."""
    return foot_pressure.Calibration((100.0,) * 4, (50.0,) * 4, (0.0012, 0.0008, 0.0008, 0.0006))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Emulated exo hardware (motor on CAN, serial sensors on ptys).")
    parser.add_argument("--ports-file", type=Path, required=True, help="JSON file to write the device paths to.")
    parser.add_argument("--can-interface", default="udp_multicast")
    parser.add_argument("--can-channel", default=CAN_MULTICAST_GROUP)
    parser.add_argument("--can-port", type=int, default=0, help="udp_multicast port (0 = python-can's default).")
    parser.add_argument("--motor-model", default="AK80-64")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault", action="append", default=[], help="device:kind[:at_s[:value]] (repeatable).")
    parser.add_argument("--duration", type=float, default=math.inf)
    parser.add_argument("--timing-file", type=Path, help="JSON file to write the steps' lateness to on exit.")
    args = parser.parse_args(argv)
    faults = tuple(Fault.parse(f) for f in args.fault)
    rig = EmulatedRig(args.can_interface, args.can_channel, args.can_port, args.motor_model, level=args.level,
                      seed=args.seed, faults=faults)
    tmp = args.ports_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ports": rig.ports(), "can_interface": args.can_interface,
                               "can_channel": args.can_channel, "can_port": args.can_port,
                               "motor_model": args.motor_model, "pid": os.getpid()}))
    tmp.replace(args.ports_file)  # atomic: a reader never sees half a file
    signal.signal(signal.SIGTERM, lambda *_: rig.stop())
    signal.signal(signal.SIGINT, lambda *_: rig.stop())
    print(f"emulated rig up: {json.dumps(rig.ports())}", flush=True)
    from exo.priority import freeze_startup_heap

    freeze_startup_heap()  # a full collection of the start-up heap stopped every device at once for ~40 ms
    try:
        rig.run(args.duration)
    finally:
        rig.close()
        if args.timing_file is not None:
            args.timing_file.write_text(json.dumps(rig.timing()))
        print(f"emulated rig stopped after {rig.steps} steps ({rig.late_steps} started > 50 ms late, worst "
              f"{rig.worst_late_s * 1e3:.0f} ms); last motor frames: "
              f"{[d.hex() for d in list(rig.motor.log)[-2:]]}", flush=True)


if __name__ == "__main__":
    main()


class EmulatorProcess:
    """The emulated rig as a child process, plus the ROS parameter file pointing the drivers at it.

    Used by ``exo real --emulate`` and the integration tests::

        with EmulatorProcess(folder, can_port=43200 + domain, faults=("imu_thigh:silent:3",)) as emu:
            GraphRunner("real", {"params_file": str(emu.params_file)}, ...)

    Args:
        folder: where the ports file, the parameter file and the rig's log go.
        can_port: udp_multicast port of the emulated CAN bus (one per concurrent run).
        faults: fault specs (:meth:`Fault.parse`).
        level, seed: the simulated subject.
        extra_params: more ``{node: {param: value}}`` for the generated parameter file.
        timing_file: parameter file of the emulation host's timing tolerances merged into the
            generated one (default config/emulate.yaml; None = the hardware timeouts unchanged).
    """

    def __init__(self, folder: Path, can_port: int, faults: tuple[str, ...] = (), level: int = 1, seed: int = 0,
                 motor_model: str = "AK80-64", extra_params: dict[str, dict] | None = None,
                 env: dict[str, str] | None = None, timing_file: Path | str | None = "default") -> None:
        for f in faults:
            Fault.parse(f)  # a bad spec fails here, with its message, not in the child
        self.folder = Path(folder)
        self.can_port = can_port
        self.faults = tuple(faults)
        self.level, self.seed, self.motor_model = level, seed, motor_model
        self.extra_params = extra_params or {}
        self.env = env or {}
        if timing_file == "default":
            from exo.paths import config_file

            timing_file = config_file("emulate.yaml")
        self.timing_file = timing_file
        self.ports_file = self.folder / "emulated_ports.json"
        self.params_file = self.folder / "emulated_devices.yaml"
        self.log_path = self.folder / "emulated_rig.log"
        self.timing_path = self.folder / "emulated_rig_timing.json"
        #: the rig's reset button: the file the safety monitor polls as it polls the GPIO line of the real
        #: one (reads 1 while pressed; ``exo reset --button FILE`` presses it)
        self.reset_button = self.folder / "reset_button"
        self.process = None
        self.ports: dict[str, str] = {}

    def start(self, timeout_s: float = 60.0) -> None:
        import subprocess
        import sys

        import yaml

        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports_file.unlink(missing_ok=True)
        self.timing_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "exo.emulation.devices", "--ports-file", str(self.ports_file),
               "--can-port", str(self.can_port), "--motor-model", self.motor_model,
               "--level", str(self.level), "--seed", str(self.seed), "--timing-file", str(self.timing_path)]
        for f in self.faults:
            cmd += ["--fault", f]
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        log.close()
        deadline = time.monotonic() + timeout_s
        while not self.ports_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulated rig exited with code {self.process.returncode}:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the emulated rig did not start within {timeout_s:.0f} s ({self.log_path})")
            time.sleep(0.05)
        info = json.loads(self.ports_file.read_text())
        self.ports = info["ports"]
        params: dict[str, dict] = {
            "actuator_driver": {"can_interface": "udp_multicast", "can_channel": info["can_channel"],
                                "can_port": self.can_port, "model": self.motor_model},
            **{node: {"port": self.ports[device]} for device, node in DRIVER_OF.items()},
            "safety_monitor": {"reset_button_path": str(self.reset_button)},
        }
        self.reset_button.write_text("0\n")
        if self.timing_file is not None:  # the emulation host's timing tolerances (config/emulate.yaml)
            for key, entry in (yaml.safe_load(Path(self.timing_file).read_text()) or {}).items():
                params.setdefault(key.rsplit("/", 1)[-1], {}).update(entry["ros__parameters"])
        for node, extra in self.extra_params.items():
            params.setdefault(node, {}).update(extra)
        doc = {f"/**/{node}": {"ros__parameters": values} for node, values in params.items()}
        self.params_file.write_text("# generated by exo.emulation.devices.EmulatorProcess: emulated devices\n"
                                    + yaml.safe_dump(doc, sort_keys=True))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (the rig closes its devices), then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        from exo.runner import stop_process_groups

        return stop_process_groups([self.process], timeout_s=5.0, signals=(signal.SIGTERM, signal.SIGKILL))[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def timing(self) -> dict | None:
        """The rig's step times and lateness (:meth:`EmulatedRig.timing`), once it stopped; None before."""
        try:
            return json.loads(self.timing_path.read_text())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
