"""Helpers of the identification tests: a short protocol and assessment bags written as the graph records them."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from exo import contract
from exo.assessment.protocol import AssessmentProtocol
from exo.identify.recording import AssessmentRecording

#: A short protocol (about 11 s): two speeds, two repetitions; the tests' replays stay fast.
SHORT = AssessmentProtocol(velocities_deg_s=(60.0, 180.0), repetitions=2, hold_s=0.5, settle_s=1.0)


def write_assessment_bag(recording: AssessmentRecording, path: Path, *, controller: str = "assessment",
                         skip_topics: tuple[str, ...] = (), nan_at: int | None = None,
                         namespace: str = contract.DEFAULT_NAMESPACE, t_offset_s: float = 0.0,
                         drop_joint: tuple[int, ...] = ()) -> Path:
    """Write ``recording`` as the graph would record it: joint_states, torque_command and both interaction
    topics per step (stamps from ``t_offset_s``; the command of step k is the torque applied after sample k,
    i.e. the effort of sample k + 1). ``drop_joint``: joint_states samples lost."""
    from rclpy.serialization import serialize_message

    from exo.bags.writer import BagWriter, SessionMetadata
    from exo.ros import convert
    from exo.ros.types import interface_class

    meta = SessionMetadata(user_id="p01", mode="sim", controller=controller, namespace=namespace,
                           extra={"protocol": json.dumps(recording.protocol.to_dict())})
    joint_t = contract.JOINT_STATES
    command_cls = interface_class(contract.TORQUE_COMMAND.msg_type)
    joint_cls = interface_class(joint_t.msg_type)
    with BagWriter(path, meta, namespace=namespace) as w:
        for k in range(recording.n):
            t = t_offset_s + float(recording.time_s[k])
            angle = math.nan if nan_at == k else float(recording.angle_rad[k])
            js = joint_cls(header=convert.header(t, ""), name=[contract.KNEE_JOINT], position=[angle],
                           velocity=[float(recording.velocity_rad_s[k])], effort=[float(recording.motor_torque_nm[k])])
            msgs = [(joint_t, js)]
            for topic in (contract.INTERACTION_SHANK, contract.INTERACTION_THIGH):
                msgs.append((topic, convert.wrench_msg(t, "strap", float(recording.interaction_torque_nm[k]))))
            cmd = command_cls(header=convert.header(t, contract.KNEE_JOINT), joint=contract.KNEE_JOINT,
                              torque=float(recording.motor_torque_nm[min(k + 1, recording.n - 1)]),
                              source=controller, seq=k + 1)
            msgs.append((contract.TORQUE_COMMAND, cmd))
            for topic, msg in msgs:
                if topic.name in skip_topics or (topic is joint_t and k in drop_joint):
                    continue
                w.write(topic.resolved(namespace), topic.msg_type, time.time_ns(), serialize_message(msg))
    return path


def relative_error(a: float, b: float) -> float:
    return abs(a - b) / abs(b)

