"""sim_bridge: the digital twin behind the same topics as the hardware drivers.

Publishes ``/clock``, ``joint_states``, ``imu/thigh``, ``imu/shank``,
``interaction/thigh``, ``interaction/shank``, ``sim/truth`` and synthetic surface ``emg``
(:mod:`exo.intent.emg_synth`, from the twin's muscle activations; packets of
``emg.packet_s``, subject seeded by the trial's seed); with ``emg.voluntary: user`` a
simulated user (:class:`exo.intent.drive.VoluntaryUser`) drives the knee muscles on top of
the spastic reflex, starting with the calibration protocol; applies
``torque_command`` to the twin's exo motor; offers ``sim/reset`` and ``source/start``.

Timing modes:

- **lockstep** (default): the bridge publishes the sample of step k and advances
  to k+1 only when the ``torque_command`` stamped with step k's time arrives: as
  fast as the graph can go, deterministic for a seed. Time does not stop for a
  missing command, though: after ``lockstep_timeout_s`` of wall time the bridge
  advances anyway and its actuator applies what a real actuator driver
  would (the last command while younger than ``guard.max_command_age_s``, else zero),
  so the safety monitor's watchdog, which runs on sim time, sees the fault. Step 0 is held
  until the ``joint_states`` subscribers (and, with ``await_recorder``, the recorder) have
  matched (:class:`exo.ros.start_gate.StartGate`).
- **real time**: a steady-clock timer steps the twin at the control rate scaled
  by ``realtime_factor``, applying the latest command through the same actuator guard.

In both, ``start_paused`` (launch argument ``paused:=true``) holds the first step until the
``source/start`` service is called; a paused real-time bridge publishes nothing until then.

**The actuator.** Torque reaches the twin's exo motor only through
:class:`exo.safety.actuator_guard.ActuatorGuard`, the same core as the hardware actuator driver's:
only the safety monitor's authenticated commands (the run's command key), in sequence, not from the
future and not late, limited again by the guard's own copy of the user cap, slew rate and hard range
of motion (``config/actuator_guard.yaml``); anything else is refused, counted (``/diagnostics`` at 1 Hz,
and a summary line at shutdown) and logged, and changes nothing (not even the lockstep pacing).
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from std_srvs.srv import Trigger

from exo import contract
from exo.ros import convert, start_gate, trust
from exo.ros.node_main import run
from exo.ros.parameters import Param, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo_msgs.msg import EmgPacket, KneeTruth, TorqueCommand

PARAMS = [
    Param("twin", "reduced", "Digital twin: 'reduced' (fast 1-DoF) or 'full' (MyoLeg, 40 muscles).",
          choices=("reduced", "full")),
    Param("level", 1, "Modified Ashworth spasticity level of the simulated subject.", 0, 3),
    Param("subject_seed", 0, "Seed of the subject's parameter noise (trial i uses seed + i).", 0, 2**63 - 1),
    Param("lockstep", True, "Advance one step per received torque_command (deterministic) instead of real time."),
    Param("lockstep_timeout_s", 1.0, "Wall seconds to wait for the current step's command before advancing "
          "anyway with the actuator model's torque, s.", 0.001, 30.0),
    *start_gate.PARAMS,
    Param("realtime_factor", 1.0, "Real-time mode: simulated seconds per wall second.", 0.01, 100.0),
    trust.secret_param("command_key_file"),
    *trust.guard_params(),
    Param("initial_knee_angle_rad", 1.544, "Knee flexion at the start of a trial, rad.", 0.0, 2.0),
    Param("target_knee_angle_rad", 0.2, "Target knee flexion of the extension task, rad (reported in sim/truth).",
          0.0, 2.0),
    Param("trial_duration_s", 0.0, "Start a new trial after this many simulated seconds (0 = never), s.",
          0.0, 3600.0),
    Param("publish_truth", True, "Publish sim/truth (ground truth for analysis; never read by controllers)."),
    Param("emg.enabled", True, "Publish synthetic surface EMG on emg (8 channels over the knee muscles)."),
    Param("emg.sample_rate_hz", 1000.0, "EMG sampling rate, Hz.", 1000.0, 2000.0),
    Param("emg.packet_s", 0.02, "EMG packet length, s (a multiple of the 10 ms control step; 0.02 = 50 Hz).",
          0.01, 0.1),
    Param("emg.mains_hz", 50.0, "Mains interference frequency in the synthetic EMG, Hz.", 0.0, 60.0),
    Param("emg.voluntary", "off", "'user': a simulated user drives the knee muscles (calibration protocol, then "
          "hold/extend/flex, seeded by the trial's seed) on top of the reflex; 'off': reflex only.",
          choices=("off", "user")),
]


class SimBridge(Node):
    def __init__(self) -> None:
        super().__init__("sim_bridge")
        from exo.twin import make_twin

        self.p = declare_all(self, PARAMS)
        self.twin = make_twin(self.p["twin"])
        self.trial = 0
        self.refusal_log = trust.LogThrottle(1.0)  # a flood of foreign commands costs one check each
        self.guard = trust.make_guard(self.p, contract.KNEE_JOINT)
        self.lockstep_timeouts = 0

        def pub(topic: contract.Topic):
            return self.create_publisher(interface_class(topic.msg_type), topic.name, qos_profile(topic))

        self.pub_clock = pub(contract.CLOCK_TOPIC)
        self.pub_joint = pub(contract.JOINT_STATES)
        self.pub_imu_thigh = pub(contract.IMU_THIGH)
        self.pub_imu_shank = pub(contract.IMU_SHANK)
        self.pub_int_thigh = pub(contract.INTERACTION_THIGH)
        self.pub_int_shank = pub(contract.INTERACTION_SHANK)
        self.pub_truth = pub(contract.SIM_TRUTH) if self.p["publish_truth"] else None
        self.pub_emg = pub(contract.EMG) if self.p["emg.enabled"] else None
        self.create_subscription(TorqueCommand, contract.TORQUE_COMMAND.name, self._on_command,
                                 qos_profile(contract.TORQUE_COMMAND, reader=True))
        self.create_service(Trigger, contract.SIM_RESET_SERVICE, self._on_reset)
        self.pub_diag = pub(contract.DIAGNOSTICS_TOPIC)

        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0, self._publish_diagnostics, clock=self.steady)
        self.gate = start_gate.StartGate.from_params(self, self.pub_joint, self.p)
        self._reset_trial()
        if self.p["lockstep"]:
            self.awaiting_since = time.monotonic()
            self.started = False
            self.gate.offer_start(on_resume=self._lockstep_watch, on_recorder_ready=self._lockstep_watch)
            self.create_timer(self.p["lockstep_timeout_s"] / 5, self._lockstep_watch, clock=self.steady)
        else:
            self.gate.offer_start(on_resume=self._publish)  # step 0, then the timer's steps
            period = self.twin.control_timestep_s / self.p["realtime_factor"]
            self.create_timer(period, self._realtime_tick, clock=self.steady)
        self.get_logger().info(
            f"twin={self.p['twin']} level={self.p['level']} seed={self.p['subject_seed']} "
            + ("lockstep" if self.p["lockstep"] else f"real-time x{self.p['realtime_factor']:.2f}")
            + f"; guard cap {self.guard.limits.torque_cap_nm:g} N m, "
            f"slew {self.guard.limits.max_slew_rate_nm_per_s:g} N m/s"
        )

    # --- trial management --------------------------------------------------
    def _reset_trial(self) -> None:
        seed = self.p["subject_seed"] + self.trial
        self.state = self.twin.reset(self.p["level"], seed=seed,
                                     initial_knee_angle_rad=self.p["initial_knee_angle_rad"])
        self.time_offset_s = getattr(self, "sim_time_s", 0.0) - self.state.measurements.time_s
        self.trial_start_s = self.state.measurements.time_s + self.time_offset_s
        self.sim_time_s = self.trial_start_s
        self._reset_emg(seed)
        if self.p["lockstep"] or not self.gate.paused:  # real time, paused: not a sample before the start
            self._publish()

    def _reset_emg(self, seed: int) -> None:
        """New subject's electrodes (and voluntary user) for the trial of ``seed``."""
        from exo.intent.drive import VoluntaryUser
        from exo.intent.emg_synth import CHANNEL_NAMES, EmgSynthesizer

        self.user = VoluntaryUser(seed) if self.p["emg.voluntary"] == "user" else None
        if self.user is None:
            self.twin.set_voluntary_drive(0.0, 0.0)
        if self.pub_emg is None:
            return
        self.emg = EmgSynthesizer(self.state.muscle_names, self.p["emg.sample_rate_hz"], seed=seed,
                                  mains_hz=self.p["emg.mains_hz"])
        self.emg_channels = list(CHANNEL_NAMES)
        self.emg_buffer: list = []
        self.emg_start_s = self.sim_time_s
        self.emg_steps = max(1, round(self.p["emg.packet_s"] / self.twin.control_timestep_s))

    def _emg_step(self) -> None:
        """Synthesise the EMG of the step just taken; publish a packet when it is full."""
        import numpy as np

        self.emg_buffer.append(self.emg.generate(self.state.muscle_activations, self.twin.control_timestep_s))
        if len(self.emg_buffer) < self.emg_steps:
            return
        samples = np.concatenate(self.emg_buffer, axis=0)
        msg = EmgPacket(header=convert.header(self.emg_start_s, "emg_amplifier"))
        msg.sample_rate_hz = float(self.p["emg.sample_rate_hz"])
        msg.channel_names = self.emg_channels
        msg.num_samples = samples.shape[0]
        msg.samples = samples.astype(np.float32).ravel().tolist()
        self.pub_emg.publish(msg)
        self.emg_buffer = []
        self.emg_start_s = self.sim_time_s

    def _on_reset(self, request, response):
        self.trial += 1
        self._reset_trial()
        response.success = True
        response.message = f"trial {self.trial}: level {self.p['level']}, seed {self.p['subject_seed'] + self.trial}"
        return response

    # --- stepping --------------------------------------------------------
    def _step(self) -> None:
        self.guard.on_angle(self.sim_time_s, self.state.measurements.exo_knee_angle_rad)
        torque = self.guard.apply(self.sim_time_s).torque_nm
        if self.user is not None:
            drive = self.user.step(self.twin.control_timestep_s, self.state.measurements.exo_knee_angle_rad)
            self.twin.set_voluntary_drive(drive.flexor, drive.extensor)
        self.state = self.twin.step(torque)
        self.sim_time_s = self.state.measurements.time_s + self.time_offset_s
        if self.pub_emg is not None:
            self._emg_step()
        duration = self.p["trial_duration_s"]
        if duration > 0 and self.sim_time_s - self.trial_start_s >= duration - 1e-9:
            self.trial += 1
            self._reset_trial()
            return
        self._publish()

    def _on_command(self, msg: TorqueCommand) -> None:
        refused = trust.apply_command(self.guard, self.sim_time_s, msg)
        if refused is not None:  # a refused command changes nothing, not even the lockstep pacing
            if self.refusal_log.due(time.monotonic()):
                self.get_logger().warning(
                    f"torque_command refused ({refused}; {self.guard.refused_total()} so far): "
                    f"{self.guard.last_refusal}")
            return
        stamp = convert.from_time_msg(msg.header.stamp)
        if self.p["lockstep"] and abs(stamp - self.sim_time_s) < 1e-6:
            if not self.started:
                self.gate.answered()
                if not self.gate.open():
                    return  # held (exo.ros.start_gate): the watch timer starts the run
                self.started = True
            self._step()
            self.awaiting_since = time.monotonic()

    def _lockstep_watch(self) -> None:
        if not self.started:
            if self.gate.open():
                # step 0 was answered while a subscriber was missing, and the graph decides a step once:
                # offer it to the newcomer, then step with the stored command
                self.started = True
                self._publish()
                self._step()
                self.awaiting_since = time.monotonic()
            elif time.monotonic() - self.awaiting_since >= self.p["lockstep_timeout_s"]:
                self._publish()  # the graph is still coming up, or a subscriber is: offer step 0 again
                self.awaiting_since = time.monotonic()
            return
        if time.monotonic() - self.awaiting_since < self.p["lockstep_timeout_s"]:
            return
        self.lockstep_timeouts += 1
        if self.lockstep_timeouts in (1, 10, 100) or self.lockstep_timeouts % 1000 == 0:
            self.get_logger().warning(
                f"no torque_command for t={self.sim_time_s:.3f} s within {self.p['lockstep_timeout_s']} s "
                f"(wall); advancing with the actuator model ({self.lockstep_timeouts} time(s))"
            )
        self._step()
        self.awaiting_since = time.monotonic()

    def _realtime_tick(self) -> None:
        if self.gate.paused:
            return
        self._step()

    # --- publishing --------------------------------------------------------
    def _publish(self) -> None:
        st = self.state
        m = st.measurements
        t = self.sim_time_s
        clock = ClockMsg()
        clock.clock = convert.to_time_msg(t)
        self.pub_clock.publish(clock)
        self.pub_imu_thigh.publish(convert.imu_msg(t, "thigh_imu", m.thigh_pitch_rad, m.thigh_angular_velocity_rad_s))
        self.pub_imu_shank.publish(convert.imu_msg(t, "shank_imu", m.shank_pitch_rad, m.shank_angular_velocity_rad_s))
        self.pub_int_thigh.publish(convert.wrench_msg(t, "thigh_strap", m.thigh_interaction_torque_nm))
        self.pub_int_shank.publish(convert.wrench_msg(t, "shank_strap", m.interaction_torque_nm))
        if self.pub_truth is not None:
            truth = KneeTruth(header=convert.header(t, "world"))
            truth.human_knee_angle = st.human_knee_angle_rad
            truth.human_knee_velocity = st.human_knee_velocity_rad_s
            truth.exo_knee_angle = m.exo_knee_angle_rad
            truth.target_knee_angle = self.p["target_knee_angle_rad"]
            truth.interaction_torque = m.interaction_torque_nm
            truth.spasticity_level = st.spasticity_level
            truth.subject_seed = self.p["subject_seed"] + self.trial
            truth.muscle_names = list(st.muscle_names)
            truth.muscle_activations = [float(a) for a in st.muscle_activations]
            self.pub_truth.publish(truth)
        joint = convert.joint_state_msg(m)
        joint.header.stamp = convert.to_time_msg(t)
        self.pub_joint.publish(joint)


    # --- reporting -------------------------------------------------------
    def _guard_counts(self) -> dict[str, str]:
        g = self.guard
        return {"accepted_commands": str(g.accepted), "refused_commands": str(g.refused_total()),
                **{f"refused_commands.{k}": str(v) for k, v in sorted(g.refused.items())},
                "applied_torque_nm": f"{g.applied_torque_nm:.4f}", "lockstep_timeouts": str(self.lockstep_timeouts)}

    def _publish_diagnostics(self) -> None:
        refused = self.guard.refused_total()
        status = DiagnosticStatus(level=DiagnosticStatus.WARN if refused else DiagnosticStatus.OK,
                                  name=f"{self.get_namespace().rstrip('/')}/{self.get_name()}",
                                  message=f"{refused} torque_command(s) refused" if refused else "ok",
                                  hardware_id="digital_twin",
                                  values=[KeyValue(key=k, value=v) for k, v in self._guard_counts().items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def on_shutdown(self) -> None:
        """One summary line of the actuator guard (node_main calls it on SIGINT/SIGTERM)."""
        counts = self._guard_counts()
        self.get_logger().info("actuator guard: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def main(args: list[str] | None = None) -> None:
    run(SimBridge, args)


if __name__ == "__main__":
    main()
