"""The topic contract: every topic's name, message type, QoS and default rate.

This module is the single source of truth for what flows between the nodes of
the exo graph. Nodes, the pip runner, the launch files, the bag recorder and the
analysis tools all import it; nothing else spells a topic name.

Names are *relative* (no leading slash) so that every topic lives under the
graph's namespace (default ``/exo``): two exoskeletons, or two test runs, can
share a DDS domain. ``/clock`` and ``/diagnostics`` are absolute by ROS
convention.

It is pure Python (no rclpy import): :mod:`exo.ros.qos` turns a
:class:`QosSpec` into an ``rclpy.qos.QoSProfile``, and the bag tools use the
same specs to write the offered QoS into rosbag2 metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Default namespace of the graph.
DEFAULT_NAMESPACE = "/exo"
#: Name of the exoskeleton's knee joint (JointState names, TorqueCommand.joint).
KNEE_JOINT = "exo_knee"
#: Default control rate of the graph, Hz (the twin's control step is 10 ms).
DEFAULT_CONTROL_RATE_HZ = 100.0


class Reliability(str, Enum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(str, Enum):
    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosSpec:
    """A QoS profile as plain data (history is always KEEP_LAST).

    Attributes:
        reliability: reliable (retransmit) or best effort (drop rather than delay).
        durability: volatile, or transient local (late joiners get the last ``depth``).
        depth: queue depth of KEEP_LAST history.
        deadline_s: expected maximum period between messages, s (0 = none);
            publishers and subscribers get deadline-missed events when it passes.
        reader_depth: queue depth of the subscribers that must see every message (0 = ``depth``).
            DDS keeps one history per reader for all writers of an unkeyed topic, so with
            ``depth`` 1 a flood from a foreign writer overwrites a valid sample before the node
            takes it; the safety monitor (requests) and the actuator side (commands) read with
            this deeper queue and authenticate each message (:mod:`exo.security`). The depth is
            the backlog a reader absorbs while it is starved of CPU: ``COMMAND``'s 1000 is 1 s of
            a 1 kHz flood (100 was measured to lose a request in 2 of 4 flooded lockstep runs on a
            2-core machine with two busy processes beside the graph, 1000 in none of 10).
    """

    reliability: Reliability
    durability: Durability = Durability.VOLATILE
    depth: int = 1
    deadline_s: float = 0.0
    reader_depth: int = 0


#: Sensor streams: drop stale samples rather than delay fresh ones (rclpy's qos_profile_sensor_data).
SENSOR_DATA = QosSpec(Reliability.BEST_EFFORT, Durability.VOLATILE, depth=5)
#: Commands: reliable, only the newest matters, deadline two control periods at 100 Hz.
COMMAND = QosSpec(Reliability.RELIABLE, Durability.VOLATILE, depth=1, deadline_s=0.02, reader_depth=1000)
#: Estimates consumed as "latest value".
LATEST_RELIABLE = QosSpec(Reliability.RELIABLE, Durability.VOLATILE, depth=1)
#: State that late joiners must see (safety status).
LATCHED_STATE = QosSpec(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, depth=1)
#: /clock: reliable with a short queue, so that a lockstep run never loses a tick.
CLOCK = QosSpec(Reliability.RELIABLE, Durability.VOLATILE, depth=10)
#: Event logs: every entry reaches every reader, late joiners get the recent ones.
EVENT_LOG = QosSpec(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, depth=100)
#: /diagnostics, as diagnostic_updater publishes it.
DIAGNOSTICS = QosSpec(Reliability.RELIABLE, Durability.VOLATILE, depth=10)


class Kind(str, Enum):
    """What a topic carries, used to select topics for recording, replay and analysis."""

    SENSOR = "sensor"  # measured by hardware or the sim bridge (replayed from bags)
    ESTIMATE = "estimate"  # computed from sensors (intent)
    COMMAND = "command"  # torque requests and commands
    STATUS = "status"  # safety state, diagnostics
    TRUTH = "truth"  # twin ground truth, never read by controllers
    CLOCK = "clock"


@dataclass(frozen=True)
class Topic:
    """One entry of the contract.

    Attributes:
        name: topic name relative to the graph namespace (absolute if it starts with '/').
        msg_type: ROS interface name, ``pkg/msg/Type``.
        qos: QoS both sides use.
        rate_hz: nominal publishing rate, Hz (0 = on change only).
        kind: what it carries (see :class:`Kind`).
        description: units and frames of the payload.
    """

    name: str
    msg_type: str
    qos: QosSpec
    rate_hz: float
    kind: Kind
    description: str

    @property
    def package(self) -> str:
        return self.msg_type.split("/")[0]

    @property
    def type_name(self) -> str:
        return self.msg_type.split("/")[-1]

    def resolved(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        """Fully qualified name under ``namespace`` (absolute names are returned as they are)."""
        if self.name.startswith("/"):
            return self.name
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        return f"{ns}/{self.name}"


JOINT_STATES = Topic(
    "joint_states", "sensor_msgs/msg/JointState", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ, Kind.SENSOR,
    "Exoskeleton knee: position rad (+ = flexion, 0 = straight), velocity rad/s, "
    "effort = measured motor torque N m (+ = flexion). One joint named exo_knee.",
)
IMU_THIGH = Topic(
    "imu/thigh", "sensor_msgs/msg/Imu", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ, Kind.SENSOR,
    "Thigh-cuff IMU in frame thigh_imu: orientation quaternion (world->sensor), "
    "angular velocity rad/s, linear acceleration m/s^2 (gravity included).",
)
IMU_SHANK = Topic(
    "imu/shank", "sensor_msgs/msg/Imu", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ, Kind.SENSOR,
    "Shank-cuff IMU in frame shank_imu, same conventions as imu/thigh.",
)
EMG = Topic(
    "emg", "exo_msgs/msg/EmgPacket", SENSOR_DATA, 50.0, Kind.SENSOR,
    "Surface EMG packets (volts), 1-2 kHz samples in packets at 50-100 Hz.",
)
FOOT_PRESSURE = Topic(
    "foot_pressure", "exo_msgs/msg/FootPressure", SENSOR_DATA, 100.0, Kind.SENSOR,
    "Plantar pressure per insole cell, Pa; total vertical force N.",
)
INTERACTION_THIGH = Topic(
    "interaction/thigh", "geometry_msgs/msg/WrenchStamped", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ,
    Kind.SENSOR,
    "Thigh strap load: force N and torque N m in frame thigh_strap (+y = the knee's flexion axis); "
    "torque.y is the interaction torque about the knee axis (+ = flexing the human knee).",
)
INTERACTION_SHANK = Topic(
    "interaction/shank", "geometry_msgs/msg/WrenchStamped", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ,
    Kind.SENSOR,
    "Shank strap load, same conventions as interaction/thigh.",
)
INTENT = Topic(
    "intent", "exo_msgs/msg/IntentEstimate", LATEST_RELIABLE, 50.0, Kind.ESTIMATE,
    "User intent from EMG: class probabilities, knee velocity rad/s, knee torque N m.",
)
TORQUE_REQUEST = Topic(
    "torque_request", "exo_msgs/msg/TorqueCommand", COMMAND, DEFAULT_CONTROL_RATE_HZ, Kind.COMMAND,
    "Controller output before safety, N m (+ = flexion); header.stamp = stamp of the sensor sample used.",
)
TORQUE_COMMAND = Topic(
    "torque_command", "exo_msgs/msg/TorqueCommand", COMMAND, DEFAULT_CONTROL_RATE_HZ, Kind.COMMAND,
    "Torque after the safety monitor, N m; the actuator (or the sim bridge) applies it.",
)
TORQUE_COMMAND_ARRAY = Topic(
    "torque_command_array", "std_msgs/msg/Float64MultiArray", COMMAND, DEFAULT_CONTROL_RATE_HZ,
    Kind.COMMAND,
    "torque_command as [torque N m] for a ros2_control effort controller.",
)
SAFETY_STATUS = Topic(
    "safety/status", "exo_msgs/msg/SafetyStatus", LATCHED_STATE, 10.0, Kind.STATUS,
    "Safety monitor state, active limits and reason; on every transition and at 10 Hz.",
)
SAFETY_EVENTS = Topic(
    "safety/events", "exo_msgs/msg/SafetyEvent", EVENT_LOG, 0.0, Kind.STATUS,
    "The safety monitor's event log: every e-stop, reset (accepted or refused) and security event.",
)
DIAGNOSTICS_TOPIC = Topic(
    "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", DIAGNOSTICS, 1.0, Kind.STATUS,
    "Standard ROS diagnostics of every exo node.",
)
SIM_TRUTH = Topic(
    "sim/truth", "exo_msgs/msg/KneeTruth", SENSOR_DATA, DEFAULT_CONTROL_RATE_HZ, Kind.TRUTH,
    "Twin ground truth (human knee angle, interaction torque, activations, level); never read by controllers.",
)
CLOCK_TOPIC = Topic(
    "/clock", "rosgraph_msgs/msg/Clock", CLOCK, DEFAULT_CONTROL_RATE_HZ, Kind.CLOCK,
    "Simulation or bag time (use_sim_time).",
)

#: Every topic of the contract, by its relative name.
TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        JOINT_STATES, IMU_THIGH, IMU_SHANK, EMG, FOOT_PRESSURE, INTERACTION_THIGH, INTERACTION_SHANK,
        INTENT, TORQUE_REQUEST, TORQUE_COMMAND, TORQUE_COMMAND_ARRAY, SAFETY_STATUS, SAFETY_EVENTS,
        DIAGNOSTICS_TOPIC,
        SIM_TRUTH, CLOCK_TOPIC,
    )
}

#: Services, relative to the namespace. Stopping is open to every participant (stopping is always
#: safe); resetting a latched stop is not a network service at all: it is a local, deliberate act
#: (``exo reset`` with the run's 0600 token, or the reset button on hardware; docs/safety.md).
ESTOP_SERVICE = "safety/estop"
SIM_RESET_SERVICE = "sim/reset"
#: Starts a sensor source that was launched paused (``paused:=true``): sim bridge and bag player only,
#: never a hardware driver, so it is open like the e-stop.
SOURCE_START_SERVICE = "source/start"
#: The recorder's word to a source that awaits it (``record:=true``): it has matched every publisher it
#: discovered, so it records the run from its first sample.
RECORDER_READY_SERVICE = "source/recorder_ready"
#: name -> (srv type, description).
SERVICES: dict[str, tuple[str, str]] = {
    ESTOP_SERVICE: ("std_srvs/srv/Trigger", "Latch the emergency stop (zero torque until a local reset)."),
    SIM_RESET_SERVICE: ("std_srvs/srv/Trigger", "Start a new trial in the twin (new subject from the seed)."),
    SOURCE_START_SERVICE: ("std_srvs/srv/Trigger", "Start the run of a sim bridge or bag player launched with "
                           "paused:=true (its first step waits for this call)."),
    RECORDER_READY_SERVICE: ("std_srvs/srv/Trigger", "Called by the recorder once it has matched every publisher "
                             "it discovered: a source launched with record:=true leaves its first step then."),
}


def topics_of_kind(*kinds: Kind) -> list[Topic]:
    """The topics carrying any of ``kinds``, in contract order."""
    return [t for t in TOPICS.values() if t.kind in kinds]


def message_types() -> set[str]:
    """Every message type the contract uses (what a bag must embed definitions for)."""
    return {t.msg_type for t in TOPICS.values()}
