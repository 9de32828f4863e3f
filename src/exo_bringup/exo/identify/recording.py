"""An assessment recording: what the exo measured while it ran the assessment protocol.

:class:`AssessmentRecording` holds one uniformly sampled time series (the control period, 10 ms) of
what the exoskeleton itself measures, in SI units, plus the protocol that was run:

- ``time_s``: time from the protocol's start (t = 0 at the first control step), s;
- ``angle_rad``: exo knee encoder angle, rad (+ = flexion, 0 = straight);
- ``velocity_rad_s``: exo knee velocity, rad/s;
- ``motor_torque_nm``: the motor torque the exo applied, N m (+ = flexion). Sample k follows the
  ``joint_states`` convention of :class:`exo.twin.interface.Measurements`: it is the torque applied
  during the control step that *ended* at ``time_s[k]`` (so the torque applied from ``time_s[k]`` on is
  sample k + 1);
- ``interaction_torque_nm``: strap torque on the human knee, N m (+ = flexing the knee).

Two sources: :meth:`AssessmentRecording.from_bag` (a session recorded by the graph: ``joint_states``,
``torque_command`` and ``interaction/shank``, else ``interaction/thigh``, of the session's namespace)
and :func:`exo.identify.simulate.simulate_assessment` (the protocol run offline on a generated
subject). Bad input raises :class:`RecordingError` (a :class:`exo.params.ConfigError`, so the CLI
prints it as one line) naming the problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exo import contract
from exo.assessment.protocol import HOLD, AssessmentProtocol
from exo.params import ConfigError

#: Control period of the graph and of the twins, s.
CONTROL_PERIOD_S = 1.0 / contract.DEFAULT_CONTROL_RATE_HZ
#: The recorded signals (attribute names), all of the same length.
SIGNALS: tuple[str, ...] = ("time_s", "angle_rad", "velocity_rad_s", "motor_torque_nm", "interaction_torque_nm")
#: Longest run of lost samples filled by linear interpolation when reading a bag, samples.
MAX_FILLED_GAP = 5
#: Settling hold a recording must keep when its first samples were lost (a recorder that matched the
#: sensor publishers late): the loss is cropped if it ends this long before the first stretch, s.
MIN_KEPT_SETTLE_S = 0.5
#: Metadata key (session metadata / custom data) that may hold the protocol as JSON.
PROTOCOL_METADATA_KEY = "protocol"


class RecordingError(ConfigError):
    """The input is not a usable assessment recording (the message says why)."""


@dataclass(frozen=True)
class AssessmentRecording:
    """The time series of one assessment as the exo measured it (see the module docstring).

    Attributes:
        time_s: sample times from the protocol's start, s (uniform, :data:`CONTROL_PERIOD_S`).
        angle_rad: exo knee angle, rad.
        velocity_rad_s: exo knee velocity, rad/s.
        motor_torque_nm: applied motor torque of the step ending at each sample, N m.
        interaction_torque_nm: interaction (strap) torque, N m.
        protocol: the protocol that was run.
        source: where it came from ("simulation: ..." or the bag's path).
        metadata: free-form strings (bag session metadata, simulation settings).
    """

    time_s: np.ndarray
    angle_rad: np.ndarray
    velocity_rad_s: np.ndarray
    motor_torque_nm: np.ndarray
    interaction_torque_nm: np.ndarray
    protocol: AssessmentProtocol = field(default_factory=AssessmentProtocol)
    source: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SIGNALS:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        self.validate()

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Raise :class:`RecordingError` for arrays of unequal length, too short, NaN/inf or a non-uniform clock."""
        n = len(self.time_s)
        where = f" ({self.source})" if self.source else ""
        for name in SIGNALS:
            a = getattr(self, name)
            if a.ndim != 1 or len(a) != n:
                raise RecordingError(f"assessment recording{where}: {name} has shape {a.shape}, expected ({n},)")
            bad = ~np.isfinite(a)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise RecordingError(f"assessment recording{where}: {name} holds {int(bad.sum())} NaN/inf value(s) "
                                     f"(first at sample {first}, t = {self.time_s[first] if first < n else math.nan:.2f} s)")
        if n < 100:
            raise RecordingError(f"assessment recording{where}: only {n} samples (need at least 1 s at 100 Hz)")
        dt = np.diff(self.time_s)
        if np.any(np.abs(dt - CONTROL_PERIOD_S) > 1e-6):
            raise RecordingError(f"assessment recording{where}: samples are not {CONTROL_PERIOD_S * 1e3:.0f} ms apart "
                                 f"(intervals {dt.min() * 1e3:.2f}-{dt.max() * 1e3:.2f} ms)")

    # ------------------------------------------------------------------ views

    @property
    def n(self) -> int:
        """Number of samples."""
        return len(self.time_s)

    @property
    def duration_s(self) -> float:
        """Time covered, s."""
        return float(self.time_s[-1] - self.time_s[0])

    @property
    def dt(self) -> float:
        """Sample period, s."""
        return CONTROL_PERIOD_S

    def segment_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per sample: (repetition, trial, kind code) of the protocol segment at its time.

        ``repetition``/``trial`` are -1 in the settling hold and after the protocol's end; kind code 0 =
        hold, 1 = extend, 2 = flex. A motion's hold that follows it (where a lagging knee finishes) keeps
        the repetition and trial of the motion.
        """
        rep = np.full(self.n, -1, dtype=int)
        trial = np.full(self.n, -1, dtype=int)
        kind = np.zeros(self.n, dtype=int)
        codes = {HOLD: 0, "extend": 1, "flex": 2}
        for seg in self.protocol.segments:
            mask = (self.time_s >= seg.start_s - 1e-9) & (self.time_s < seg.end_s - 1e-9)
            rep[mask], trial[mask], kind[mask] = seg.repetition, seg.trial, codes[seg.kind]
        return rep, trial, kind

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists), e.g. for JSON."""
        out: dict[str, Any] = {name: getattr(self, name).tolist() for name in SIGNALS}
        out.update(protocol=self.protocol.to_dict(), source=self.source, metadata=dict(self.metadata))
        return out

    def save_npz(self, path: Path | str) -> Path:
        """Write the recording to an ``.npz`` file (arrays plus protocol/source/metadata as JSON)."""
        path = Path(path)
        extra = json.dumps({"protocol": self.protocol.to_dict(), "source": self.source, "metadata": self.metadata})
        np.savez_compressed(path, **{name: getattr(self, name) for name in SIGNALS}, extra=np.array(extra))
        return path

    @classmethod
    def load_npz(cls, path: Path | str) -> AssessmentRecording:
        """Read a recording written by :meth:`save_npz`."""
        with np.load(Path(path), allow_pickle=False) as data:
            extra = json.loads(str(data["extra"]))
            arrays = {name: np.array(data[name]) for name in SIGNALS}
        return cls(**arrays, protocol=AssessmentProtocol.from_mapping(extra["protocol"]), source=extra["source"],
                   metadata={str(k): str(v) for k, v in extra["metadata"].items()})

    # ------------------------------------------------------------------ bags

    @classmethod
    def from_bag(cls, path: Path | str, protocol: AssessmentProtocol | None = None) -> AssessmentRecording:
        """Read an assessment recorded by the graph (a session folder, a rosbag2 folder or an ``.mcap`` file).

        Topics (resolved in the session's namespace, else found by name suffix and type): ``joint_states``
        (angle, velocity, motor torque), ``torque_command`` (the protocol starts at the stamp of the first
        command, i.e. the first control step) and ``interaction/shank`` (else ``interaction/thigh``,
        ``wrench.torque.y``). Samples are de-duplicated by stamp (the last received wins); up to
        :data:`MAX_FILLED_GAP` consecutive lost samples are filled by linear interpolation. A recording
        whose first sensor samples are missing (its recorder matched a sensor publisher after the first
        command) starts at its first complete sample instead, its time still counted from the first
        command, provided at least :data:`MIN_KEPT_SETTLE_S` of the settling hold is left; the
        metadata's ``cropped_start_s`` says how much was lost.

        Args:
            path: the bag.
            protocol: the protocol that ran (default: the session metadata's ``protocol`` entry, JSON,
                else :class:`AssessmentProtocol` defaults).

        Raises:
            FileNotFoundError: no such path.
            RecordingError: not a bag, not an assessment (another controller drove it), a required topic
                missing, NaN data or a recording with longer gaps.
        """
        from exo.bags.reader import BagError, open_session, stamp_s

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(2, "no such file or folder", str(path))
        try:
            session = open_session(path)
        except BagError as exc:
            raise RecordingError(f"{path}: {exc}") from None
        if not session.files:
            raise RecordingError(f"{path}: not a bag (no .mcap file)")
        meta = session.metadata
        namespace = meta.namespace or contract.DEFAULT_NAMESPACE
        by_topic = session.read_all()
        if not by_topic:
            detail = "; ".join(session.problems[:2])
            raise RecordingError(f"{path}: no readable message" + (f" ({detail})" if detail else ""))

        def find(topic: contract.Topic) -> list[Any]:
            name = topic.resolved(namespace)
            if name in by_topic:
                return by_topic[name]
            suffix = "/" + topic.name
            matches = sorted(t for t, msgs in by_topic.items() if t.endswith(suffix) and msgs[0].msgtype == topic.msg_type)
            return by_topic[matches[0]] if matches else []

        joint = find(contract.JOINT_STATES)
        commands = find(contract.TORQUE_COMMAND)
        interaction = find(contract.INTERACTION_SHANK) or find(contract.INTERACTION_THIGH)
        missing = [label for label, msgs in ((contract.JOINT_STATES.name, joint), (contract.TORQUE_COMMAND.name, commands),
                                             ("interaction/shank or interaction/thigh", interaction)) if not msgs]
        if missing:
            raise RecordingError(f"{path}: not an assessment recording: no {', no '.join(missing)} "
                                 f"under namespace {namespace} (topics: {', '.join(sorted(by_topic)) or 'none'})")
        sources = sorted({str(m.msg.source) for m in commands})
        controller = meta.controller
        if controller and controller != "assessment":
            raise RecordingError(f"{path}: not an assessment recording: the session's controller is {controller!r} "
                                 "(record one with exo assess, or controller:=assessment)")
        if not controller and "assessment" not in sources:
            raise RecordingError(f"{path}: not an assessment recording: torque commands came from "
                                 f"{', '.join(sources)}, not from the assessment controller")
        if protocol is None:
            protocol = _protocol_from_metadata(meta.to_dict(), path)

        # the first step the assessment controller decided (a real graph's monitor commands a safe stop on its
        # own timer before the actuator's first sample: those come earlier)
        own = [stamp_s(m.msg) for m in commands if str(m.msg.source) == "assessment"]
        t0 = min(own) if own else min(stamp_s(m.msg) for m in commands)
        joint_by_stamp: dict[int, Any] = {}
        for m in joint:
            joint_by_stamp[int(round(stamp_s(m.msg) / CONTROL_PERIOD_S))] = m.msg
        inter_by_stamp: dict[int, float] = {}
        for m in interaction:
            inter_by_stamp[int(round(stamp_s(m.msg) / CONTROL_PERIOD_S))] = float(m.msg.wrench.torque.y)
        k0 = int(round(t0 / CONTROL_PERIOD_S))
        k_end = max(joint_by_stamp)
        # the first step with both sensor samples: a recorder that matched a publisher late lost the ones before
        k0_kept = min((k for k in joint_by_stamp if k >= k0 and k in inter_by_stamp), default=k0)
        cropped_s = (k0_kept - k0) * CONTROL_PERIOD_S
        if cropped_s > 0 and cropped_s > protocol.settle_s - MIN_KEPT_SETTLE_S:
            raise RecordingError(f"{path}: the recording lacks the first {cropped_s:.2f} s of the assessment "
                                 f"(sensor samples start at t = {cropped_s:.2f} s; at most "
                                 f"{protocol.settle_s - MIN_KEPT_SETTLE_S:.2f} s of the settling hold may be "
                                 "missing)")
        if k_end - k0_kept < 100:
            raise RecordingError(f"{path}: the assessment recording holds {max(k_end - k0_kept + 1, 0)} joint_states "
                                 "samples after its first command (need at least 1 s)")
        ks = np.arange(k0_kept, k_end + 1)
        angle = np.full(len(ks), np.nan)
        velocity = np.full(len(ks), np.nan)
        effort = np.full(len(ks), np.nan)
        inter = np.full(len(ks), np.nan)
        for i, k in enumerate(ks):
            msg = joint_by_stamp.get(int(k))
            if msg is not None:
                try:
                    idx = list(msg.name).index(contract.KNEE_JOINT) if len(msg.name) else 0
                    angle[i], velocity[i], effort[i] = msg.position[idx], msg.velocity[idx], msg.effort[idx]
                except (ValueError, IndexError):
                    raise RecordingError(f"{path}: a joint_states sample at t = {k * CONTROL_PERIOD_S:.2f} s lacks a "
                                         f"complete '{contract.KNEE_JOINT}' entry") from None
                if not (math.isfinite(angle[i]) and math.isfinite(velocity[i]) and math.isfinite(effort[i])):
                    raise RecordingError(f"{path}: joint_states holds NaN/inf at t = {k * CONTROL_PERIOD_S:.2f} s "
                                         "(the exo's sensors failed; this recording cannot be used)")
            value = inter_by_stamp.get(int(k))
            if value is not None:
                if not math.isfinite(value):
                    raise RecordingError(f"{path}: the interaction torque holds NaN/inf at t = {k * CONTROL_PERIOD_S:.2f} s")
                inter[i] = value
        for label, a in ((contract.JOINT_STATES.name, angle), ("interaction torque", inter)):
            is_joint = label == contract.JOINT_STATES.name
            _fill_gaps(a, label, path, velocity if is_joint else None, effort if is_joint else None)
        md = {k: v for k, v in meta.to_dict().items() if v}
        if cropped_s > 0:
            md["cropped_start_s"] = f"{cropped_s:.2f}"
        return cls(time_s=(ks - k0) * CONTROL_PERIOD_S, angle_rad=angle, velocity_rad_s=velocity,
                   motor_torque_nm=effort, interaction_torque_nm=inter, protocol=protocol, source=str(path),
                   metadata=md)


def _protocol_from_metadata(meta: dict[str, str], path: Path) -> AssessmentProtocol:
    text = meta.get(PROTOCOL_METADATA_KEY, "")
    if not text:
        return AssessmentProtocol()
    try:
        return AssessmentProtocol.from_mapping(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise RecordingError(f"{path}: the session's protocol metadata does not parse ({exc})") from None


def _fill_gaps(a: np.ndarray, label: str, path: Path, *others: np.ndarray | None) -> None:
    """Fill runs of up to :data:`MAX_FILLED_GAP` missing samples (NaN) in place by linear interpolation."""
    missing = ~np.isfinite(a)
    if not missing.any():
        return
    if missing.all():
        raise RecordingError(f"{path}: no {label} sample after the assessment's first command")
    idx = np.flatnonzero(missing)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    longest = max(len(r) for r in runs)
    if longest > MAX_FILLED_GAP:
        start = runs[int(np.argmax([len(r) for r in runs]))][0]
        raise RecordingError(f"{path}: {longest} consecutive {label} samples are missing from t = "
                             f"{start * CONTROL_PERIOD_S:.2f} s (at most {MAX_FILLED_GAP} are filled)")
    good = np.flatnonzero(~missing)
    for arr in (a, *others):
        if arr is not None:
            arr[idx] = np.interp(idx, good, arr[good])
