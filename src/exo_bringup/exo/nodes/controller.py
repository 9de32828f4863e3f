"""controller: policy inference, from the latest sensor messages to ``torque_request``.

A thin rclpy shell around the controllers of :mod:`exo.control` ("pid",
"zero", "sac", ...): it rebuilds :class:`~exo.twin.interface.Measurements`
from the sensor topics, builds the observation with the very function the
gymnasium env uses (:func:`exo.envs.observation.build_observation`), asks the
controller for a torque (N m) and publishes it on ``torque_request`` stamped
with the sensor sample's stamp, ``source`` = the controller's name, numbered and
signed with the run's request key (the safety monitor accepts nothing else:
:mod:`exo.ros.trust`).

Inputs are synchronised per control step: the step of ``joint_states`` stamp
t_k is computed once the other observed streams (IMUs, strap torque) have a
sample stamped >= t_k, or after ``sync_timeout_s`` of wall time with whatever
is latest (``sync_inputs: latest`` skips the wait, for hardware whose streams
run at different rates). Controller-specific parameters are declared from the
controller's constructor (``<controller>.<argument>``, e.g. ``pid.kp``) and set
from ``config/controllers.yaml``.
"""

from __future__ import annotations

import inspect
import math
import time
import typing
from typing import Any

import numpy as np
from geometry_msgs.msg import WrenchStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState

from exo import contract
from exo.control import CONTROLLERS, make_controller
from exo.envs.observation import build_observation, is_finite_observation
from exo.ros import convert, trust
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.security import REQUEST_PURPOSE, MessageSigner
from exo_msgs.msg import IntentEstimate, TorqueCommand

PARAMS = [
    Param("controller", "pid", "Controller producing torque_request.", choices=tuple(CONTROLLERS)),
    Param("policy", "", "Exported policy file for learned controllers (empty = the default model)."),
    Param("target_knee_angle_rad", 0.2, "Target knee flexion of the task, rad.", 0.0, 2.0),
    Param("episode_duration_s", 5.12, "Duration normalising the observation's time entry, s.", 0.01, 3600.0),
    Param("sync_inputs", "exact", "'exact': wait for every observed stream's sample of the step (sim, bags); "
          "'latest': use the latest of each (hardware).", choices=("exact", "latest")),
    Param("sync_timeout_s", 0.005, "Wall seconds to wait for the other streams of a step, s.", 0.0, 1.0),
    Param("use_intent", False, "Fill the observation's intent slot from the intent topic."),
    Param("assistance", 1.0, "Assist-as-needed level: the controller's torque is multiplied by it before it is "
          "requested (1 = full help; set from the user's profile by user:=ID).", 0.0, 1.0),
    trust.secret_param("request_key_file"),
]


def _controller_params(name: str) -> list[Param]:
    """One ROS parameter ``<name>.<argument>`` per constructor argument with a simple default."""
    from exo.control import _resolve  # noqa: PLC0415 - registry internals, kept in one place

    factory = _resolve(name)
    hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    params = []
    for arg in inspect.signature(factory).parameters.values():
        default = arg.default
        required = default is inspect.Parameter.empty
        if required:  # a required number: NaN until the parameter file sets it
            if hints.get(arg.name) not in (float, int):
                continue
            default = math.nan
        if not isinstance(default, (bool, int, float, str)):
            continue
        what = "required argument" if required else "argument"
        params.append(Param(f"{name}.{arg.name}", default,
                            f"{what} '{arg.name}' of {getattr(factory, '__name__', name)} (see its docstring)."))
    return params


class ControllerNode(Node):
    def __init__(self) -> None:
        super().__init__("controller")
        self.p = declare_all(self, PARAMS)
        name = self.p["controller"]
        kwargs: dict[str, Any] = {
            k.split(".", 1)[1]: v for k, v in declare_all(self, _controller_params(name)).items()
        }
        missing = [k for k, v in kwargs.items() if isinstance(v, float) and math.isnan(v)]
        if missing:
            raise ParameterError(f"controller {name!r} needs {', '.join(f'{name}.{k}' for k in missing)} "
                                 "(set in config/controllers.yaml or params_file)")
        if self.p["policy"]:
            kwargs["policy"] = self.p["policy"]
        try:
            self.controller = make_controller(name, **kwargs)
        except (TypeError, ValueError, FileNotFoundError) as exc:
            raise ParameterError(f"cannot build controller {name!r}: {exc}") from exc

        self.latest: dict[str, Any] = {"thigh": None, "shank": None, "interaction": None, "intent": None}
        self.pending: JointState | None = None
        self.pending_since = 0.0
        self.t0: float | None = None
        self.last_action = 0.0
        self.signer = MessageSigner(trust.load_key(self.p, "request_key_file"), REQUEST_PURPOSE)
        self.last_request: TorqueCommand | None = None  # the newest request, answered again if its sample is
        self.last_stamp_ns = -1  # stamp of that sample, integer ns
        self.rejected_observations = 0
        self.obs = np.zeros(1, dtype=np.float32)

        self.pub = self.create_publisher(TorqueCommand, contract.TORQUE_REQUEST.name,
                                         qos_profile(contract.TORQUE_REQUEST))
        self.create_subscription(JointState, contract.JOINT_STATES.name, self._on_joint,
                                 qos_profile(contract.JOINT_STATES))
        self.create_subscription(Imu, contract.IMU_THIGH.name, self._store("thigh"), qos_profile(contract.IMU_THIGH))
        self.create_subscription(Imu, contract.IMU_SHANK.name, self._store("shank"), qos_profile(contract.IMU_SHANK))
        self.create_subscription(WrenchStamped, contract.INTERACTION_SHANK.name, self._store("interaction"),
                                 qos_profile(contract.INTERACTION_SHANK))
        self.synced = ("thigh", "shank", "interaction")
        if self.p["use_intent"]:
            self.create_subscription(IntentEstimate, contract.INTENT.name, self._store("intent", sync=False),
                                     qos_profile(contract.INTENT))
        self.create_timer(max(self.p["sync_timeout_s"], 0.001), self._sync_watch,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        policy = getattr(self.controller, "policy_path", None)  # learned controllers: the file actually loaded
        self.get_logger().info(f"controller={name} {kwargs} target={self.p['target_knee_angle_rad']:.3f} rad"
                               + (f" policy={policy}" if policy is not None else "")
                               + (f" assistance={self.p['assistance']:.2f}" if self.p["assistance"] < 1.0 else ""))

    # --- inputs ------------------------------------------------------------------
    def _store(self, key: str, sync: bool = True):
        def callback(msg) -> None:
            self.latest[key] = msg
            if sync and self.pending is not None and self._inputs_ready(self.pending):
                self._compute(self.pending)

        return callback

    def _on_joint(self, msg: JointState) -> None:
        if self.p["sync_inputs"] == "latest" or self._inputs_ready(msg):
            self._compute(msg)
        else:
            self.pending, self.pending_since = msg, time.monotonic()

    def _inputs_ready(self, joint: JointState) -> bool:
        stamp = convert.from_time_msg(joint.header.stamp)
        return all(self.latest[k] is not None and convert.from_time_msg(self.latest[k].header.stamp) >= stamp - 1e-9
                   for k in self.synced)

    def _sync_watch(self) -> None:
        if self.pending is not None and time.monotonic() - self.pending_since >= self.p["sync_timeout_s"]:
            self._compute(self.pending)

    # --- the step ------------------------------------------------------------------
    def _compute(self, joint: JointState) -> None:
        self.pending = None
        stamp_ns = convert.stamp_ns(joint.header.stamp)
        if self.last_request is not None and stamp_ns == self.last_stamp_ns:
            # the same sample offered again (a lockstep sim bridge starting up): answer it again,
            # without stepping the controller twice (its state must not depend on the offers)
            self.pub.publish(self.last_request)
            return
        try:
            m = convert.measurements_from_msgs(joint, self.latest["thigh"], self.latest["shank"],
                                               self.latest["interaction"])
        except ValueError as exc:
            self.rejected_observations += 1
            self.get_logger().warning(f"sample skipped: {exc}", throttle_duration_sec=1.0)
            return
        if self.t0 is None or m.time_s < self.t0:
            self.t0 = m.time_s  # first sample, or time went back (new run / bag loop)
            self.controller.reset()
            self.last_action = 0.0
        intent = None
        if self.p["use_intent"] and self.latest["intent"] is not None:
            est = self.latest["intent"]
            intent = (est.predicted_knee_velocity, est.predicted_knee_torque, est.confidence)
        self.obs = build_observation(m, self.p["target_knee_angle_rad"], self.last_action, m.time_s - self.t0,
                                     intent, episode_duration_s=self.p["episode_duration_s"])
        if not is_finite_observation(self.obs):
            # garbage in: no request, so the safety monitor's watchdog takes over if it persists
            self.rejected_observations += 1
            self.get_logger().warning(f"non-finite observation at t={m.time_s:.3f} s: request withheld "
                                   f"({self.rejected_observations} so far)", throttle_duration_sec=1.0)
            return
        torque = float(self.controller.act(self.obs)) * self.p["assistance"]
        if math.isfinite(torque):
            self.last_action = max(-1.0, min(1.0, torque / 100.0))
        # a non-finite torque is still published: the safety monitor rejects and counts it
        # the request carries the sample's exact stamp (the safety monitor matches it to the step)
        header = convert.header(0.0, contract.KNEE_JOINT)
        header.stamp = joint.header.stamp
        self.last_request = TorqueCommand(header=header, joint=contract.KNEE_JOINT,
                                          torque=torque, source=self.controller.name)
        trust.sign_message(self.signer, self.last_request)
        self.last_stamp_ns = stamp_ns
        self.pub.publish(self.last_request)


def main(args: list[str] | None = None) -> None:
    run(ControllerNode, args)


if __name__ == "__main__":
    main()
