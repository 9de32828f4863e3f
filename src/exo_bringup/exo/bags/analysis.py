"""Analyse exo bags: did the controller do its job, was it safe, how did the loop keep time.

Pure Python on decoded messages (:mod:`exo.bags.reader`); every number is
computed from header stamps (sim or hardware time, s) except latencies, which
use the recorder's receive times (wall clock, ns).

- **Trials** (:func:`extract_trials`): with ``sim/truth`` a trial is a run of
  samples of one subject (a new ``subject_seed`` or a jump back in time starts
  the next); each is cut to ``trial_duration_s`` (default: the evaluator's
  episode, ``control_steps`` of ``config/env.yaml`` = 5.12 s, so the numbers
  are the evaluator's for the same trial) and scored by
  :func:`exo.metrics.compute_trial_metrics` with the same signals the
  evaluator uses: the human knee angle, the target, the interaction torque on
  the human knee (all from ``sim/truth``) and the exo motor torque
  (``joint_states`` effort of the same stamp). Without ground truth (hardware
  bags) the whole recording is one trial scored on the exo knee angle and the
  shank strap's torque, and ``signals`` says so. With truth, each trial also carries the
  evaluator's range-of-motion events (:func:`exo.evaluate.safety_events`: out of the safe
  range, unsafe = out of range with the interaction torque above the env's threshold).
- **Safety events** (:func:`safety_events`): every change of the safety
  monitor's state, with its sim time, the state, the reason and the active limits;
  the command sources that reached the actuator.
- **Interventions** (:func:`intervention_steps`): the control steps the safety monitor decided itself
  (fallback, safe stop, e-stop) while the controller was running: what assist-as-needed weighs.
- **Latency** (:func:`loop_latency`): for every ``torque_command``, the receive
  time minus the receive time of the ``joint_states`` sample it answers (same
  stamp): the sensor-to-command time of the whole graph as the recorder saw it.
  A deadline miss is a latency above one control period or a sensor sample that
  never got a command.
- **Sensor streams** (:func:`topic_stats`): per topic, count, rate from stamps
  and from receive times, gaps longer than 1.5 nominal periods, repeated stamps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from exo import contract
from exo.bags.reader import BagMessage, Session, stamp_s
from exo.metrics import METRIC_NAMES, TrialMetrics, compute_trial_metrics
from exo.safety.monitor import SOURCE_ESTOP, SOURCE_SAFE_STOP

#: Default control period of the graph, s.
CONTROL_PERIOD_S = 1.0 / contract.DEFAULT_CONTROL_RATE_HZ


def evaluator_trial_duration_s() -> float:
    """Length of an evaluator episode (``control_steps`` of config/env.yaml x control period), s."""
    from exo.envs.config import load_env_config

    return float(load_env_config().control_steps) * CONTROL_PERIOD_S


@dataclass
class TrialResult:
    """One trial found in a bag.

    Attributes:
        index: trial number within the session (0-based).
        start_s: stamp of its first sample, s.
        duration_s: time covered by the scored samples, s.
        samples: number of scored samples.
        subject_seed, level: the simulated subject (-1 when unknown).
        signals: which signals were scored ("truth" or "exo_only").
        metrics: :class:`~exo.metrics.TrialMetrics` (None when it could not be computed).
        error: why the metrics are missing.
        complete: the trial covers the whole ``trial_duration_s``.
        range_events: the evaluator's unsafe-state and range-of-motion events of the trial
            (:func:`exo.evaluate.safety_events`, ``config/env.yaml`` thresholds); None without truth.
    """

    index: int
    start_s: float
    duration_s: float
    samples: int
    subject_seed: int
    level: int
    signals: str
    metrics: TrialMetrics | None
    error: str = ""
    complete: bool = True
    range_events: Any = None

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("metrics", "range_events")}
        for name in (*METRIC_NAMES, "settled", "rms_to_end"):
            out[name] = getattr(self.metrics, name) if self.metrics is not None else math.nan
        if self.range_events is not None:
            out.update(self.range_events.to_dict())
        return out


@dataclass
class SafetyEvent:
    """A transition of the safety monitor (state entered at ``time_s``)."""

    time_s: float
    state: str
    reason: str
    active_limits: list[str]


@dataclass
class LatencyStats:
    """Sensor-sample-to-command latency of the control loop (recorder receive times).

    Attributes:
        count: commands matched to their sensor sample.
        p50_ms, p95_ms, p99_ms, max_ms, mean_ms: latency statistics, ms.
        deadline_ms: the deadline (one control period), ms.
        misses: commands later than the deadline plus sensor samples never answered.
        unanswered: sensor samples without a command.
        hist_edges_ms, hist_counts: histogram (edges in ms).
    """

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    deadline_ms: float
    misses: int
    unanswered: int
    hist_edges_ms: list[float]
    hist_counts: list[int]


@dataclass
class TopicStats:
    """One topic's stream.

    Attributes:
        topic: absolute name.
        count: messages read.
        stamp_rate_hz: rate from header stamps (sim/hardware time), Hz (NaN without stamps).
        wall_rate_hz: rate from receive times (wall clock), Hz.
        nominal_rate_hz: the contract's rate, Hz (0 = on change).
        gaps: intervals between consecutive stamps longer than 1.5 nominal periods.
        max_gap_s: longest interval between consecutive stamps, s.
        repeated_stamps: messages whose stamp repeats the previous one (re-offers).
    """

    topic: str
    count: int
    stamp_rate_hz: float
    wall_rate_hz: float
    nominal_rate_hz: float
    gaps: int
    max_gap_s: float
    repeated_stamps: int


@dataclass
class SessionAnalysis:
    """Everything :func:`analyze_session` found in one session."""

    name: str
    path: str
    metadata: dict[str, str]
    problems: list[str]
    message_count: int
    duration_s: float
    trials: list[TrialResult]
    safety: list[SafetyEvent]
    command_sources: dict[str, int]
    latency: LatencyStats | None
    topics: list[TopicStats]
    series: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """Mean of each metric over the scored trials, counts of events (for comparisons)."""
        scored = [t.metrics for t in self.trials if t.metrics is not None]
        out: dict[str, Any] = {"trials": len(self.trials), "scored_trials": len(scored)}
        for name in METRIC_NAMES:
            values = np.array([getattr(m, name) for m in scored], dtype=float)
            finite = values[np.isfinite(values)]
            out[name] = float(np.mean(finite)) if finite.size else math.nan
        out["safety_transitions"] = len(self.safety)
        out["non_ok_states"] = sum(1 for e in self.safety if e.state not in ("OK", "LIMITING"))
        out["latency_p95_ms"] = self.latency.p95_ms if self.latency else math.nan
        out["deadline_misses"] = self.latency.misses if self.latency else 0
        return out


def topic_names(session: Session, by_topic: dict[str, list[BagMessage]]) -> dict[str, str]:
    """Relative contract name -> absolute topic in the bag (the session's namespace, else by suffix)."""
    out: dict[str, str] = {}
    ns = session.metadata.namespace or contract.DEFAULT_NAMESPACE
    for rel, topic in contract.TOPICS.items():
        name = topic.resolved(ns)
        if name in by_topic:
            out[rel] = name
            continue
        suffix = "/" + rel.lstrip("/")
        matches = [t for t in by_topic if t.endswith(suffix) and by_topic[t][0].msgtype == topic.msg_type]
        if matches:
            out[rel] = sorted(matches)[0]
    return out


def _dedup_by_stamp(msgs: list[BagMessage]) -> tuple[np.ndarray, list[BagMessage]]:
    """Messages sorted by stamp with repeated stamps removed (the last received wins)."""
    by_stamp: dict[float, BagMessage] = {}
    for m in msgs:
        by_stamp[round(stamp_s(m.msg), 9)] = m
    stamps = np.array(sorted(by_stamp))
    return stamps, [by_stamp[s] for s in stamps]


def extract_trials(truth: list[BagMessage], joint: list[BagMessage], trial_duration_s: float,
                   interaction: list[BagMessage] | None = None, target_rad: float = math.nan) -> list[TrialResult]:
    """Per-trial metrics (see the module docstring); ``trial_duration_s`` <= 0 scores whole trials."""
    joint_t, joint_msgs = _dedup_by_stamp(joint)
    effort = {t: float(m.msg.effort[0]) if len(m.msg.effort) else 0.0 for t, m in zip(joint_t, joint_msgs, strict=True)}
    results: list[TrialResult] = []
    if truth:
        t, msgs = _dedup_by_stamp(truth)
        seeds = np.array([int(m.msg.subject_seed) for m in msgs])
        angle = np.array([m.msg.human_knee_angle for m in msgs], dtype=float)
        target = np.array([m.msg.target_knee_angle for m in msgs], dtype=float)
        inter = np.array([m.msg.interaction_torque for m in msgs], dtype=float)
        levels = np.array([int(m.msg.spasticity_level) for m in msgs])
        breaks = np.flatnonzero((np.diff(seeds) != 0) | (np.diff(t) > 5 * CONTROL_PERIOD_S)) + 1
        bounds = [0, *breaks.tolist(), len(t)]
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            results.append(_score(i, t[a:b], angle[a:b], target[a:b], inter[a:b], effort, int(seeds[a]),
                                  int(levels[a]), "truth", trial_duration_s))
        return results
    if not joint_msgs:
        return results
    inter_map = {}
    if interaction:
        it, imsgs = _dedup_by_stamp(interaction)
        inter_map = {s: float(m.msg.wrench.torque.y) for s, m in zip(it, imsgs, strict=True)}
    angle = np.array([float(m.msg.position[0]) if len(m.msg.position) else math.nan for m in joint_msgs])
    inter = np.array([inter_map.get(s, 0.0) for s in joint_t])
    if not math.isfinite(target_rad):
        target_rad = _task_target_rad()
    results.append(_score(0, joint_t, angle, np.full(len(joint_t), target_rad), inter, effort, -1, -1,
                          "exo_only", trial_duration_s))
    return results


def _task_target_rad() -> float:
    import yaml

    from exo.paths import config_file

    data = yaml.safe_load(config_file("task.yaml").read_text())
    return float(data["/**"]["ros__parameters"]["target_knee_angle_rad"])


def _score(index: int, t: np.ndarray, angle: np.ndarray, target: np.ndarray, inter: np.ndarray,
           effort: dict[float, float], seed: int, level: int, signals: str, trial_duration_s: float) -> TrialResult:
    complete = True
    if trial_duration_s > 0:
        keep = t - t[0] <= trial_duration_s + 1e-6
        complete = bool(t[-1] - t[0] >= trial_duration_s - 1e-6)
        t, angle, target, inter = t[keep], angle[keep], target[keep], inter[keep]
    exo = np.array([effort.get(round(float(x), 9), math.nan) for x in t])
    missing = ~np.isfinite(exo)
    if missing.any() and (~missing).any():  # a lost joint_states sample: hold the previous torque
        idx = np.where(~missing, np.arange(len(exo)), 0)
        np.maximum.accumulate(idx, out=idx)
        exo = exo[idx]
        exo[~np.isfinite(exo)] = 0.0
    elif missing.all():
        exo = np.zeros_like(t)
    duration = float(t[-1] - t[0]) if t.size else 0.0
    try:
        metrics = compute_trial_metrics(t - t[0], angle, target, inter, exo)
        error = ""
    except ValueError as exc:
        metrics, error = None, str(exc)
    if not complete and not error:
        error = f"trial shorter than {trial_duration_s:.2f} s ({duration:.2f} s recorded)"
    events = _range_events(t, angle, inter) if signals == "truth" and t.size > 1 else None
    return TrialResult(index, float(t[0]) if t.size else math.nan, duration, int(t.size), seed, level, signals,
                       metrics, error, complete, events)


def _range_events(t: np.ndarray, angle: np.ndarray, inter: np.ndarray):
    """The evaluator's per-trial unsafe/out-of-range events, with the env's thresholds (human knee angle)."""
    from exo.envs.config import load_env_config
    from exo.evaluate import safety_events as evaluator_events

    cfg = load_env_config()
    lo, hi = cfg.safe_range_rad
    out_of_range = (angle < lo) | (angle > hi)
    unsafe = out_of_range & (np.abs(inter) > cfg.termination_interaction_nm)
    return evaluator_events(t, angle, out_of_range, unsafe, (lo, hi))


def safety_events(status: list[BagMessage]) -> list[SafetyEvent]:
    """Every change of the safety monitor's state, in stamp order (the first status counts as one)."""
    events: list[SafetyEvent] = []
    for m in sorted(status, key=lambda m: (stamp_s(m.msg), m.log_time_ns)):
        if not events or events[-1].state != m.msg.state_name:
            events.append(SafetyEvent(round(stamp_s(m.msg), 9), str(m.msg.state_name), str(m.msg.reason),
                                      [str(x) for x in m.msg.active_limits]))
    return events


def intervention_steps(session: Session) -> int:
    """Control steps on which the safety monitor took the knee from the controller (a ``fallback_*``,
    ``safe_stop`` or ``estop`` command), between the controller's first and last request.

    The graph's start-up (the monitor holds a safe stop until the first sample) and its shutdown (the
    controller stops before the monitor) are not the user's session. A step is judged by its first command
    (receive order): the monitor's last words at shutdown, a zero-torque safe stop, repeat the stamp of the
    last step it decided, which the controller's request may have decided.
    """
    ns = session.metadata.namespace or contract.DEFAULT_NAMESPACE
    names = contract.TORQUE_COMMAND.resolved(ns), contract.TORQUE_REQUEST.resolved(ns)
    found = session.read_all(set(names))
    commands, requests = found.get(names[0], []), found.get(names[1], [])
    stamps = [round(stamp_s(m.msg), 9) for m in requests]
    if not stamps:
        return 0
    first, last = min(stamps), max(stamps)
    decided: dict[float, str] = {}
    for m in sorted(commands, key=lambda m: m.log_time_ns):
        decided.setdefault(round(stamp_s(m.msg), 9), str(m.msg.source))
    return sum(1 for stamp, source in decided.items()
               if first <= stamp <= last
               and (source.startswith("fallback_") or source in (SOURCE_SAFE_STOP, SOURCE_ESTOP)))


def loop_latency(joint: list[BagMessage], commands: list[BagMessage], deadline_s: float = CONTROL_PERIOD_S,
                 bins: int = 60) -> LatencyStats | None:
    """Sensor-to-command latency from receive times (see the module docstring); None without commands.

    A re-offered sample (same stamp received again) counts from its latest receipt before the command.
    The histogram spans 0 .. max(3 deadlines, 1.5 x p99) in ``bins`` bins; the last bin also holds
    everything later.
    """
    if not joint or not commands:
        return None
    receipts: dict[float, list[int]] = {}
    for m in sorted(joint, key=lambda m: m.log_time_ns):
        receipts.setdefault(round(stamp_s(m.msg), 9), []).append(m.log_time_ns)
    answered: dict[float, int] = {}
    for m in sorted(commands, key=lambda m: m.log_time_ns):
        answered.setdefault(round(stamp_s(m.msg), 9), m.log_time_ns)
    lat_list = []
    for s, t_cmd in answered.items():
        seen = receipts.get(s)
        if seen:
            before = [t for t in seen if t <= t_cmd]
            lat_list.append((t_cmd - (before[-1] if before else seen[0])) * 1e-6)
    lat = np.array(lat_list, dtype=float)
    last_command = max(answered) if answered else -math.inf
    unanswered = sum(1 for s in receipts if s not in answered and s < last_command)
    if lat.size == 0:
        return None
    deadline_ms = deadline_s * 1e3
    top = max(3.0 * deadline_ms, 1.5 * float(np.percentile(lat, 99)))
    edges = np.linspace(0.0, top, bins + 1)
    counts, _ = np.histogram(np.clip(lat, 0.0, top), bins=edges)
    return LatencyStats(
        count=int(lat.size), p50_ms=float(np.percentile(lat, 50)), p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)), max_ms=float(np.max(lat)), mean_ms=float(np.mean(lat)),
        deadline_ms=deadline_ms, misses=int(np.count_nonzero(lat > deadline_ms)) + unanswered,
        unanswered=int(unanswered), hist_edges_ms=[float(e) for e in edges], hist_counts=[int(c) for c in counts],
    )


def topic_stats(topic: str, msgs: list[BagMessage], nominal_rate_hz: float) -> TopicStats:
    """Rates, gaps and repeated stamps of one topic (see the module docstring)."""
    wall = np.sort(np.array([m.log_time_ns for m in msgs], dtype=float)) * 1e-9
    wall_rate = (len(wall) - 1) / (wall[-1] - wall[0]) if len(wall) > 1 and wall[-1] > wall[0] else math.nan
    stamp_rate, gaps, max_gap, repeated = math.nan, 0, math.nan, 0
    if msgs and hasattr(msgs[0].msg, "header"):
        stamps = np.array([stamp_s(m.msg) for m in msgs])
        repeated = int(np.count_nonzero(np.diff(stamps) == 0)) if stamps.size > 1 else 0
        unique = np.unique(stamps)
        if unique.size > 1:
            d = np.diff(unique)
            stamp_rate = 1.0 / float(np.median(d))
            max_gap = float(np.max(d))
            if nominal_rate_hz > 0:
                gaps = int(np.count_nonzero(d > 1.5 / nominal_rate_hz))
    elif msgs and hasattr(msgs[0].msg, "clock"):
        ticks = np.unique([m.msg.clock.sec + m.msg.clock.nanosec * 1e-9 for m in msgs])
        if ticks.size > 1:
            d = np.diff(ticks)
            stamp_rate, max_gap = 1.0 / float(np.median(d)), float(np.max(d))
            gaps = int(np.count_nonzero(d > 1.5 / nominal_rate_hz)) if nominal_rate_hz > 0 else 0
    return TopicStats(topic, len(msgs), stamp_rate, float(wall_rate), nominal_rate_hz, gaps, max_gap, repeated)


def analyze_session(session: Session, trial_duration_s: float | None = None) -> SessionAnalysis:
    """Read every readable message of ``session`` and compute the whole analysis."""
    if trial_duration_s is None:
        trial_duration_s = evaluator_trial_duration_s()
    by_topic = session.read_all()
    names = topic_names(session, by_topic)

    def get(rel: str) -> list[BagMessage]:
        return by_topic.get(names.get(rel, ""), [])

    joint, truth = get(contract.JOINT_STATES.name), get(contract.SIM_TRUTH.name)
    commands, status = get(contract.TORQUE_COMMAND.name), get(contract.SAFETY_STATUS.name)
    trials = extract_trials(truth, joint, trial_duration_s, get(contract.INTERACTION_SHANK.name))
    sources: dict[str, int] = {}
    for m in commands:
        sources[m.msg.source] = sources.get(m.msg.source, 0) + 1
    rel_of = {v: k for k, v in names.items()}
    topics = [topic_stats(name, msgs, contract.TOPICS[rel_of[name]].rate_hz if name in rel_of else 0.0)
              for name, msgs in sorted(by_topic.items())]
    all_times = [m.log_time_ns for msgs in by_topic.values() for m in (msgs[0], msgs[-1])]
    duration = (max(all_times) - min(all_times)) * 1e-9 if all_times else 0.0
    series = _series(joint, truth, commands)
    if not by_topic:
        session.problems.append(f"{session.path}: no readable message")
    return SessionAnalysis(
        name=session.name, path=str(session.path), metadata=session.metadata.to_dict(),
        problems=list(session.problems), message_count=sum(len(v) for v in by_topic.values()),
        duration_s=duration, trials=trials, safety=safety_events(status), command_sources=sources,
        latency=loop_latency(joint, commands), topics=topics, series=series,
    )


def _series(joint: list[BagMessage], truth: list[BagMessage], commands: list[BagMessage]) -> dict[str, np.ndarray]:
    """Plot-ready time series (stamps in s, deduplicated)."""
    out: dict[str, np.ndarray] = {}
    if joint:
        t, msgs = _dedup_by_stamp(joint)
        out["joint_t"] = t
        out["exo_knee_rad"] = np.array([m.msg.position[0] if len(m.msg.position) else math.nan for m in msgs])
    if truth:
        t, msgs = _dedup_by_stamp(truth)
        out["truth_t"] = t
        out["human_knee_rad"] = np.array([m.msg.human_knee_angle for m in msgs])
        out["target_rad"] = np.array([m.msg.target_knee_angle for m in msgs])
        out["interaction_nm"] = np.array([m.msg.interaction_torque for m in msgs])
    if commands:
        t, msgs = _dedup_by_stamp(commands)
        out["command_t"] = t
        out["command_nm"] = np.array([m.msg.torque for m in msgs])
    return out
