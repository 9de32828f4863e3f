"""Turn the contract's plain-data QoS specs into rclpy QoS profiles."""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from exo.contract import Durability, QosSpec, Reliability, Topic


def qos_profile(spec: QosSpec | Topic, reader: bool = False) -> QoSProfile:
    """The rclpy ``QoSProfile`` of a contract QoS spec (or of a topic's spec).

    ``reader=True``: the profile of a subscriber that must see every message (its queue is
    ``reader_depth`` deep, see :class:`exo.contract.QosSpec`).
    """
    if isinstance(spec, Topic):
        spec = spec.qos
    profile = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.reader_depth if reader and spec.reader_depth else spec.depth,
        reliability=(
            ReliabilityPolicy.RELIABLE if spec.reliability is Reliability.RELIABLE else ReliabilityPolicy.BEST_EFFORT
        ),
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL
            if spec.durability is Durability.TRANSIENT_LOCAL
            else DurabilityPolicy.VOLATILE
        ),
    )
    if spec.deadline_s > 0:
        profile.deadline = Duration(nanoseconds=int(spec.deadline_s * 1e9))
    return profile
