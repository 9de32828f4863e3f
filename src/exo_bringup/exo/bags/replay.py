"""Replay a bag through the graph and compare the new torque commands with the recorded ones.

Pure Python. :func:`replay_steps` turns a session's sensor topics into the
sequence the bag player publishes: one step per distinct sensor stamp, each
with ``/clock`` at that stamp and every sensor message of it (CDR bytes as
recorded, so the nodes receive exactly what they received then). Re-offered
samples (the sim bridge repeats its first sample until the graph answers) are
published once.

:func:`compare_commands` is the regression check: the recorded
``torque_command`` stream against the one the re-run controller and safety
monitor produced, matched by stamp (the stamp of the sensor sample each command
answers). :func:`recorded_completeness` says beforehand whether the recorded
bag can be compared in full: a truncated or damaged bag yields fewer commands
(and fewer sensor samples to replay), and the commands it lost are not compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from exo import contract
from exo.bags.reader import BagMessage, Session, listed_message_counts, stamp_s

#: Relative names of the topics a replay publishes (the sensor streams of the contract).
REPLAYED_TOPICS: tuple[str, ...] = tuple(t.name for t in contract.topics_of_kind(contract.Kind.SENSOR))


@dataclass
class ReplayStep:
    """Everything the player publishes for one sensor stamp.

    Attributes:
        stamp_s: sensor stamp (also the /clock value), s.
        messages: (relative topic name, msgtype, CDR bytes) in recorded order.
    """

    stamp_s: float
    messages: list[tuple[str, str, bytes]] = field(default_factory=list)


def replay_steps(session: Session, namespace: str | None = None) -> list[ReplayStep]:
    """The player's steps for ``session`` (sensor topics of its namespace, by stamp).

    Raises:
        ValueError: the bag has no joint_states (nothing to drive the controller with).
    """
    ns = namespace or session.metadata.namespace or contract.DEFAULT_NAMESPACE
    wanted = {contract.TOPICS[rel].resolved(ns): rel for rel in REPLAYED_TOPICS}
    steps: dict[int, ReplayStep] = {}
    seen: set[tuple[str, int]] = set()
    for m in session.messages(set(wanted), keep_raw=True):
        key_ns = round(stamp_s(m.msg) * 1e9)
        rel = wanted[m.topic]
        if (rel, key_ns) in seen:
            continue  # a re-offered sample
        seen.add((rel, key_ns))
        step = steps.setdefault(key_ns, ReplayStep(key_ns * 1e-9))
        step.messages.append((rel, m.msgtype, m.raw))
    if not any(rel == contract.JOINT_STATES.name for rel, _ in seen):
        raise ValueError(f"{session.path}: no {contract.JOINT_STATES.resolved(ns)} messages to replay")
    return [steps[k] for k in sorted(steps)]


@dataclass
class CommandComparison:
    """Recorded vs replayed torque_command, matched by stamp.

    Attributes:
        matched: stamps present in both streams.
        max_abs_diff_nm: largest |replayed - recorded| torque, N m.
        rms_diff_nm: RMS of the differences, N m.
        first_divergence_s: stamp of the first difference above ``tolerance_nm`` (NaN if none), s.
        tolerance_nm: what counts as a difference, N m.
        only_recorded: stamps with a recorded command but no replayed one.
        only_replayed: stamps with a replayed command but no recorded one.
        source_changes: matched stamps whose command source differs.
    """

    matched: int
    max_abs_diff_nm: float
    rms_diff_nm: float
    first_divergence_s: float
    tolerance_nm: float
    only_recorded: int
    only_replayed: int
    source_changes: int

    @property
    def identical(self) -> bool:
        return self.matched > 0 and math.isnan(self.first_divergence_s) and self.source_changes == 0

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "identical": self.identical}


def _command_map(commands: list[BagMessage]) -> dict[int, tuple[float, str]]:
    """Stamp (ns) -> (torque, source) of the *first* command of each stamp, in receive order.

    The first one is the answer to that sample; a later one with the same stamp is the safety
    monitor's zero-torque frame at shutdown.
    """
    out: dict[int, tuple[float, str]] = {}
    for m in sorted(commands, key=lambda m: m.log_time_ns):
        out.setdefault(round(stamp_s(m.msg) * 1e9), (float(m.msg.torque), str(m.msg.source)))
    return out


def compare_commands(recorded: list[BagMessage], replayed: list[BagMessage],
                     tolerance_nm: float = 1e-9) -> CommandComparison:
    """Compare two torque_command streams (see :class:`CommandComparison`)."""
    a, b = _command_map(recorded), _command_map(replayed)
    common = sorted(set(a) & set(b))
    diff = np.array([b[k][0] - a[k][0] for k in common], dtype=float)
    above = np.flatnonzero(np.abs(diff) > tolerance_nm) if diff.size else np.array([], dtype=int)
    return CommandComparison(
        matched=len(common),
        max_abs_diff_nm=float(np.max(np.abs(diff))) if diff.size else math.nan,
        rms_diff_nm=float(np.sqrt(np.mean(diff**2))) if diff.size else math.nan,
        first_divergence_s=common[above[0]] * 1e-9 if above.size else math.nan,
        tolerance_nm=tolerance_nm,
        only_recorded=len(set(a) - set(b)),
        only_replayed=len(set(b) - set(a)),
        source_changes=sum(1 for k in common if a[k][1] != b[k][1]),
    )


@dataclass
class RecordedCompleteness:
    """How much of a bag's recorded ``torque_command`` stream can be read (and so compared).

    Attributes:
        topic: the absolute torque_command topic.
        readable: torque_command messages the reader could decode.
        listed: torque_command messages the bag's ``metadata.yaml`` lists (None: no metadata).
        problems: what the reader could not read (truncated files, skipped chunks, undecodable
            messages), on the sensor topics the replay publishes and on torque_command.
    """

    topic: str
    readable: int
    listed: int | None
    problems: list[str]

    @property
    def unreadable(self) -> int | None:
        """Recorded commands that cannot be read: listed - readable (None when the count is unknown)."""
        return None if self.listed is None else max(self.listed - self.readable, 0)

    @property
    def damaged(self) -> bool:
        """The reader reported problems or fewer commands than the metadata lists."""
        return bool(self.problems) or bool(self.unreadable)

    def describe(self) -> str:
        """One line: how many recorded commands cannot be compared, and why."""
        if self.unreadable:
            lost = (f"{self.unreadable} of the {self.listed} recorded {self.topic} messages its metadata.yaml lists "
                    f"cannot be read, so they cannot be compared (only {self.readable} can)")
        elif self.listed is None:
            lost = (f"an unknown number of recorded {self.topic} messages cannot be read, so they cannot be "
                    f"compared (no metadata.yaml with message counts; {self.readable} can be)")
        else:
            lost = (f"its {self.readable} recorded {self.topic} messages can be read, but sensor messages the "
                    f"replay needs are lost, so the commands answering them cannot be reproduced")
        why = "; ".join(self.problems) if self.problems else "its files hold fewer messages than it lists"
        return f"the recorded bag is truncated or damaged: {lost}. Reader: {why}"

    def to_dict(self) -> dict[str, object]:
        return {"recorded_readable": self.readable, "recorded_listed": self.listed,
                "recorded_unreadable": self.unreadable, "bag_problems": list(self.problems)}


def recorded_completeness(session: Session, namespace: str | None = None) -> RecordedCompleteness:
    """Read ``session``'s torque_command and replayed sensor topics once and report what is missing."""
    ns = namespace or session.metadata.namespace or contract.DEFAULT_NAMESPACE
    topic = contract.TORQUE_COMMAND.resolved(ns)
    sensors = {contract.TOPICS[rel].resolved(ns) for rel in REPLAYED_TOPICS}
    problems_before = len(session.problems)
    readable = sum(1 for m in session.messages(sensors | {topic}) if m.topic == topic)
    problems = session.problems[problems_before:]
    truncated = [str(p) for p in session.truncated_files()]
    if truncated and not any(str(p) in problem for p in truncated for problem in problems):
        problems = [*problems, *(f"{p}: no footer (the file was cut short)" for p in truncated)]
    return RecordedCompleteness(topic, readable, listed_message_counts(session.path).get(topic), problems)


@dataclass
class RecordedTorques:
    """A controller (:class:`exo.control.base.Controller`) that plays back recorded torques, one per step.

    With it, the evaluator (:func:`exo.evaluate.run_trial`) re-runs a recorded trial open loop on the
    same subject: the twin receives exactly the torques the graph commanded (after the safety monitor),
    so the evaluator's metrics of that run and the bag analysis of the recording must agree.
    Calling the object returns a fresh copy (it is its own controller factory).

    Attributes:
        torques_nm: torque of control step k (the ``torque_command`` stamped with sample k), N m.
    """

    torques_nm: tuple[float, ...]
    name: str = "recorded"
    _k: int = field(default=0, repr=False)

    def reset(self) -> None:
        self._k = 0

    def act(self, obs: np.ndarray) -> float:
        """The next recorded torque (0 N m past the end of the recording)."""
        k, self._k = self._k, self._k + 1
        return self.torques_nm[k] if k < len(self.torques_nm) else 0.0

    def __call__(self) -> RecordedTorques:
        return RecordedTorques(self.torques_nm)


def trial_commands(truth: list[BagMessage], commands: list[BagMessage], trial_start_s: float,
                   steps: int, period_s: float) -> tuple[float, ...]:
    """The commanded torque of each of ``steps`` control steps of the trial starting at ``trial_start_s``.

    Step k answers the sample stamped ``trial_start_s + k * period_s``; a step without a command
    gets 0 N m (what the actuator applies to a missing command).
    """
    by_stamp = _command_map(commands)
    start_ns = round(trial_start_s * 1e9)
    period_ns = round(period_s * 1e9)
    return tuple(by_stamp.get(start_ns + k * period_ns, (0.0, ""))[0] for k in range(steps))
