"""intent_estimator: EMG packets (+ knee kinematics) -> ``intent`` (IntentEstimate), one per 20 ms frame.

A thin rclpy shell around :class:`exo.intent.online.IntentEstimatorCore`: it subscribes to
``emg`` (and ``joint_states`` when the model uses kinematics), hands every packet to the
core and publishes each estimate on ``intent`` stamped with the end of its EMG window.
With 50 Hz packets of 20 ms it publishes at 50 Hz. A bad packet (wrong rate, channels or
length, NaN/inf samples) is dropped, counted per reason and named in a warning (at the
1st, 10th, 100th and every 1000th of each reason); ``rejected_packets`` totals them in the
node's log at shutdown.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState

from exo import contract
from exo.intent.drive import CALIBRATION_S
from exo.intent.model import NumpyIntentModel
from exo.intent.online import IntentEstimatorCore, PacketError
from exo.paths import models_dir
from exo.ros import convert
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo_msgs.msg import EmgPacket, IntentEstimate

#: The committed model used when the ``model`` parameter is empty.
DEFAULT_MODEL = "intent/lstm-reduced"

PARAMS = [
    Param("model", "", "Folder of an exported intent model (model.npz + card.json); empty = the committed "
          f"models/{DEFAULT_MODEL}."),
    Param("calibration_s", CALIBRATION_S, "Length of the user's calibration segment at the start of the EMG "
          "stream (rest/extend/rest/flex/rest), s; estimates have confidence 0 until it ends.", 0.0, 600.0),
    Param("max_gap_s", 0.05, "Largest gap between consecutive EMG packets before the filters and the model "
          "state restart, s.", 0.0, 10.0),
]


def resolve_model(path: str) -> Path:
    """The model folder of the ``model`` parameter (empty = the committed default)."""
    return Path(path) if path else models_dir() / DEFAULT_MODEL


class IntentEstimatorNode(Node):
    def __init__(self) -> None:
        super().__init__("intent_estimator")
        self.p = declare_all(self, PARAMS)
        try:
            self.model = NumpyIntentModel(resolve_model(self.p["model"]))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise ParameterError(f"cannot load the intent model: {exc}") from exc
        self.core = IntentEstimatorCore(self.model, self.p["calibration_s"], self.p["max_gap_s"])
        self.rejected: Counter[str] = Counter()
        self.knee: tuple[float, float] | None = None
        self.published = 0
        self.pub = self.create_publisher(IntentEstimate, contract.INTENT.name, qos_profile(contract.INTENT))
        self.create_subscription(EmgPacket, contract.EMG.name, self._on_emg, qos_profile(contract.EMG))
        if self.model.kinematics:
            self.create_subscription(JointState, contract.JOINT_STATES.name, self._on_joint,
                                     qos_profile(contract.JOINT_STATES))
        self.get_logger().info(f"model={self.model.model_id} kinematics={self.model.kinematics} "
                               f"calibrated={self.model.calibrated} calibration_s={self.core.calibration_s}")

    def _on_joint(self, msg: JointState) -> None:
        try:
            angle, velocity, _ = convert.knee_from_joint_state(msg)
        except ValueError:
            return
        self.knee = (angle, velocity)

    def _on_emg(self, msg: EmgPacket) -> None:
        try:
            estimates = self.core.push(convert.from_time_msg(msg.header.stamp), msg.sample_rate_hz,
                                       list(msg.channel_names), int(msg.num_samples),
                                       np.asarray(msg.samples, dtype=np.float32), self.knee)
        except PacketError as exc:
            self.rejected[exc.reason] += 1
            count = self.rejected[exc.reason]
            if count in (1, 10, 100) or count % 1000 == 0:  # per reason, independent of the (sim) clock
                self.get_logger().warning(f"EMG packet rejected ({exc}); {count} '{exc.reason}' rejection(s) so far")
            return
        for e in estimates:
            out = IntentEstimate(header=convert.header(e.time_s, msg.header.frame_id or "emg"))
            out.class_names = list(self.model.classes)
            out.probabilities = [float(p) for p in e.probabilities]
            out.predicted_class = e.predicted_class
            out.predicted_knee_velocity = e.velocity_rad_s
            out.predicted_knee_torque = 0.0  # not estimated by this model
            out.confidence = e.confidence
            out.model_id = self.model.model_id
            self.pub.publish(out)
            self.published += 1

    def destroy_node(self) -> None:
        if self.rejected:
            self.get_logger().info(f"rejected_packets: {dict(self.rejected)}")
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    run(IntentEstimatorNode, args)


if __name__ == "__main__":
    main()
