"""Transitions from a user's recorded sessions: the data of the between-session policy adaptation.

A session recorded with ``exo sim/real --user ID`` holds, per control step ``k`` (a ``joint_states``
sample stamped ``t_k``): the sensor messages the controller read, the controller's ``torque_request``
stamped ``t_k`` and the safety monitor's ``torque_command`` stamped ``t_k``. :func:`session_transitions`
turns them into off-policy transitions ``(o_k, a_k, r_k, o_{k+1}, done_k)`` in the action space of the
policy being adapted, exactly as the fine-tuning env would have produced them:

- ``o_k``: :func:`exo.envs.observation.build_observation` of the same inputs the controller node used
  (:func:`exo.ros.convert.measurements_from_msgs` of the newest thigh/shank IMU and shank-strap samples
  stamped at or before ``t_k``; the last applied action; the time since the trial's first sample; the
  intent estimate when the session ran with intent). A step the controller computed after its
  ``sync_timeout_s`` (a late input on a loaded machine) used the previous samples instead; the bag does not
  say which steps those were, so their observations here differ slightly from the controller's;
- ``a_k``: the controller's request, divided by the session's assistance level (the controller's own
  output), in the adapted policy's action space: ``request / scale`` for a plain policy, and for a residual
  policy the correction ``(request / scale - base(o_k) / scale) / residual.scale`` with its base controller
  re-run over the trial, clipped to [-1, 1] (where the combination sat on its limit, every larger correction
  gives the same torque: the smallest one that does is taken, a transition the fine-tuning env reproduces);
- ``r_k``: the task's reward (:func:`exo.envs.knee_extension.compute_reward`, ``config/env.yaml``
  weights) from what the exo measures: the exo knee angle and velocity stand for the person's (the true
  knee is not measured on a person), the shank strap's torque is the interaction torque;
- **safety interventions are penalised, never imitated**: where the safety monitor did not pass the request
  (its command's source is not the controller's, or its torque differs by more than
  ``limited_tolerance_nm``: limited, fallback, safe stop, e-stop), ``r_k`` loses ``intervention_penalty``
  and the transition is flagged. The learner only ever uses these transitions through its critic (SAC's
  actor follows the critic, never the recorded actions), so an intervened request is learnt as a bad
  action, not copied.

Trials: a session is cut into trials where the stamps go back or jump by more than ``max_gap_s`` (a new
run, a bag loop), where the controller node restarts too (its time, last action and controller state);
past the task's episode length the time fraction stays at 1, as it did for the controller. The last step
of a trial is ``done`` (a time limit, not a terminal state).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exo import contract
from exo.envs.config import EnvConfig
from exo.envs.knee_extension import compute_reward, weighted_reward
from exo.envs.observation import OBS_DIM, build_observation
from exo.ros.convert import measurements_from_msgs, stamp_ns

#: Default reward penalty of a transition where the safety monitor intervened (reward units per step).
INTERVENTION_PENALTY = 1.0


@dataclass
class SessionTransitions:
    """Off-policy transitions from recorded sessions (arrays of equal length ``n``).

    Attributes:
        observations, next_observations: (n, OBS_DIM) float32.
        actions: (n, 1) float32, in the adapted policy's action space ([-1, 1]).
        rewards: (n,) float32, intervention penalty included.
        dones: (n,) bool, the last step of a trial (a time limit: bootstrapping is cut).
        intervened: (n,) bool, the safety monitor did not pass the request.
        stamps_ns: (n,) int64, the control step's sample stamp (graph clock), ns.
        sessions: the session numbers the transitions came from.
        dropped: steps left out, by reason.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    dones: np.ndarray
    intervened: np.ndarray
    stamps_ns: np.ndarray
    sessions: tuple[int, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.rewards))

    @classmethod
    def empty(cls) -> SessionTransitions:
        return cls(np.zeros((0, OBS_DIM), np.float32), np.zeros((0, 1), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, OBS_DIM), np.float32), np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[SessionTransitions]) -> SessionTransitions:
        """All ``parts`` in order (sessions and drop counts merged)."""
        if not parts:
            return cls.empty()
        dropped: dict[str, int] = {}
        for p in parts:
            for k, v in p.dropped.items():
                dropped[k] = dropped.get(k, 0) + v
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                     ("observations", "actions", "rewards", "next_observations", "dones", "intervened",
                      "stamps_ns")),
                   sessions=tuple(s for p in parts for s in p.sessions), dropped=dropped)

    def summary(self) -> dict[str, Any]:
        """Counts for the run's record (no physiological values)."""
        return {"transitions": len(self), "intervened": int(self.intervened.sum()),
                "trials": int(self.dones.sum()), "sessions": list(self.sessions), "dropped": dict(self.dropped),
                "mean_reward": float(self.rewards.mean()) if len(self) else None}


def _latest_before(stamps: list[int], msgs: list[Any], t_ns: int) -> Any | None:
    """The newest of ``msgs`` (sorted by ``stamps``) stamped at or before ``t_ns``."""
    i = bisect.bisect_right(stamps, t_ns)
    return msgs[i - 1] if i else None


def _by_stamp(msgs: Sequence[Any], first_wins: bool = False) -> tuple[list[int], list[Any]]:
    """Messages (in receipt order) sorted by header stamp (ns), repeated stamps removed: the last received
    wins, or the first with ``first_wins`` (torque commands: a step is decided by its first command; a later
    one at the same stamp is the safety monitor's zero-torque last words at shutdown, not a decision)."""
    table: dict[int, Any] = {}
    for m in msgs:
        key = stamp_ns(m.header.stamp)
        if first_wins and key in table:
            continue
        table[key] = m
    keys = sorted(table)
    return keys, [table[k] for k in keys]


def session_transitions(messages: Mapping[str, Sequence[Any]], env_config: EnvConfig, *,
                        card: Mapping[str, Any], assistance: float = 1.0, use_intent: bool = False,
                        intervention_penalty: float = INTERVENTION_PENALTY, limited_tolerance_nm: float = 0.5,
                        max_gap_s: float = 0.1, session: int = 0) -> SessionTransitions:
    """Transitions of one recorded session (module docstring).

    Args:
        messages: deserialized messages per *relative* contract topic name (``joint_states``,
            ``imu/thigh``, ``imu/shank``, ``interaction/shank``, ``torque_request``, ``torque_command``,
            optionally ``intent``); each message has a ``header.stamp``.
        env_config: the task (target, episode length, reward weights: ``config/env.yaml``).
        card: the adapted policy's card (``action.scale_nm``, ``residual``).
        assistance: the session's assistance level (its requests are the controller's output x this).
        use_intent: build the intent part of the observation from ``intent`` (as ``use_intent`` did).
        intervention_penalty: reward subtracted where the safety monitor intervened.
        limited_tolerance_nm: a command further than this from the request counts as an intervention, N m.
        max_gap_s: a stamp gap larger than this starts a new trial, s.
        session: the session number (recorded in the result).

    Raises:
        ValueError: a bad argument, or a session without the streams the observation needs.
    """
    from exo.envs.residual import ResidualSpec

    if not (math.isfinite(assistance) and 0.0 < assistance <= 1.0):
        raise ValueError(f"assistance must be within (0, 1], got {assistance}")
    if not (math.isfinite(intervention_penalty) and intervention_penalty >= 0.0):
        raise ValueError(f"intervention_penalty must be >= 0, got {intervention_penalty}")
    required = [contract.JOINT_STATES.name, contract.TORQUE_REQUEST.name, contract.TORQUE_COMMAND.name]
    missing = [name for name in required if not messages.get(name)]
    if missing:
        raise ValueError(f"session {session}: no {', '.join(missing)} messages: nothing to learn from")
    scale_nm = float(card.get("action", {}).get("scale_nm", 100.0))
    residual = ResidualSpec.from_dict(card["residual"]) if card.get("residual") else None
    base = residual.make_base() if residual is not None else None
    task, rcfg = env_config, env_config.reward
    target = float(task.target_knee_angle_rad)
    dt = 1.0 / contract.DEFAULT_CONTROL_RATE_HZ  # the graph's control period, s
    duration = float(task.control_steps) * dt

    joint_t, joints = _by_stamp(messages[contract.JOINT_STATES.name])
    streams = {key: _by_stamp(messages.get(name, ())) for key, name in (
        ("thigh", contract.IMU_THIGH.name), ("shank", contract.IMU_SHANK.name),
        ("interaction", contract.INTERACTION_SHANK.name), ("intent", contract.INTENT.name))}
    requests = dict(zip(*_by_stamp(messages[contract.TORQUE_REQUEST.name]), strict=True))
    commands = dict(zip(*_by_stamp(messages[contract.TORQUE_COMMAND.name], first_wins=True), strict=True))

    rows: list[tuple[np.ndarray, float, float, bool, int, int]] = []  # obs, action, reward, intervened, trial, t
    dropped: dict[str, int] = {}

    def drop(why: str) -> None:
        dropped[why] = dropped.get(why, 0) + 1

    trial, t0, last_t = -1, None, None
    last_action, prev_vel, prev_acc, in_band, running_peak = 0.0, 0.0, 0.0, 0, 0.0
    for t_ns, joint in zip(joint_t, joints, strict=True):
        t = t_ns * 1e-9
        if t0 is None or last_t is None or t < last_t or t - last_t > max_gap_s:
            trial, t0 = trial + 1, t
            last_action, prev_vel, prev_acc, in_band, running_peak = 0.0, math.nan, 0.0, 0, 0.0
            if base is not None:
                base.reset()
        last_t = t
        latest = {k: _latest_before(*streams[k], t_ns) for k in streams}
        request, command = requests.get(t_ns), commands.get(t_ns)
        if request is None or command is None:
            drop("no request or command at the step")
            continue
        try:
            m = measurements_from_msgs(joint, latest["thigh"], latest["shank"], latest["interaction"])
        except ValueError:
            drop("malformed joint_states")
            continue
        intent = None
        if use_intent and latest["intent"] is not None:
            est = latest["intent"]
            intent = (est.predicted_knee_velocity, est.predicted_knee_torque, est.confidence)
        obs = build_observation(m, target, last_action, t - t0, intent, episode_duration_s=duration).copy()
        total = float(request.torque) / assistance / scale_nm  # the controller's output, env action units
        base_action = base.act(obs) / scale_nm if base is not None else 0.0
        applied = float(command.torque)
        if not (math.isfinite(total) and math.isfinite(applied) and np.all(np.isfinite(obs))):
            drop("non-finite request, command or observation")
            last_action = max(-1.0, min(1.0, float(request.torque) / 100.0)) if math.isfinite(request.torque) else 0.0
            continue
        # a residual policy's correction (at the combination's limit, every larger correction gives the same
        # torque: this is the smallest that does)
        action = (total - base_action) / residual.scale if residual is not None else total
        action = max(-1.0, min(1.0, action))
        # the reward of the step, from what the exo measures
        vel = m.exo_knee_velocity_rad_s
        acc = 0.0 if math.isnan(prev_vel) else (vel - prev_vel) / dt
        daccel = acc - prev_acc if not math.isnan(prev_vel) else 0.0
        prev_vel, prev_acc = vel, acc
        e = m.exo_knee_angle_rad - target
        in_band = in_band + 1 if abs(e) < rcfg.bonus_angle_band_rad and abs(vel) < rcfg.bonus_velocity_band_rad_s else 0
        a_env = max(-1.0, min(1.0, float(request.torque) / 100.0))
        terms = compute_reward(rcfg, knee_angle_rad=m.exo_knee_angle_rad, knee_velocity_rad_s=vel,
                               target_rad=target, interaction_torque_nm=m.interaction_torque_nm, action=a_env,
                               previous_action=last_action, acceleration_change_rad_s2=daccel,
                               steps_in_band=in_band, running_peak_nm=running_peak)
        running_peak = max(running_peak, abs(m.interaction_torque_nm))
        reward = weighted_reward(rcfg.weights, terms)
        intervened = command.source != request.source or abs(applied - float(request.torque)) > limited_tolerance_nm
        if intervened:
            reward -= intervention_penalty
        rows.append((obs, action, reward, intervened, trial, t_ns))
        last_action = a_env

    if not rows:
        out = SessionTransitions.empty()
        out.sessions, out.dropped = (session,), dropped
        return out
    # pair each step with the next step of the same trial; the last step of a trial is done (time limit)
    obs = np.stack([r[0] for r in rows]).astype(np.float32)
    trials = np.array([r[4] for r in rows])
    pairs = [i for i in range(len(rows) - 1) if trials[i] == trials[i + 1]]
    last = [i for i in range(len(rows)) if i == len(rows) - 1 or trials[i] != trials[i + 1]]
    index = np.array(sorted(pairs + last), dtype=int)
    nxt = np.minimum(index + 1, len(rows) - 1)
    done = np.isin(index, last)
    nxt = np.where(done, index, nxt)  # a done step's next observation is not bootstrapped; any valid row
    return SessionTransitions(
        observations=obs[index], actions=np.array([[rows[i][1]] for i in index], np.float32),
        rewards=np.array([rows[i][2] for i in index], np.float32), next_observations=obs[nxt],
        dones=done, intervened=np.array([rows[i][3] for i in index], bool),
        stamps_ns=np.array([rows[i][5] for i in index], np.int64), sessions=(session,), dropped=dropped)


def topic_messages(session: Any) -> dict[str, list[Any]]:
    """Deserialized messages of an opened bag (:class:`exo.bags.reader.Session`) per relative topic name."""
    from exo.bags.analysis import topic_names

    by_topic = session.read_all()
    names = topic_names(session, by_topic)
    return {rel: [m.msg for m in by_topic.get(names.get(rel, ""), [])] for rel in contract.TOPICS}


def user_session_transitions(store: Any, user: str, sessions: Sequence[int], card: Mapping[str, Any],
                             env_config: EnvConfig, intervention_penalty: float = INTERVENTION_PENALTY
                             ) -> SessionTransitions:
    """Transitions of the user's recorded ``sessions`` (decrypted one at a time into a private folder).

    Raises:
        exo.users.StoreError: a session that does not exist or holds no bag.
    """
    from exo.bags.reader import open_session
    from exo.users import StoreError

    parts = []
    for number in sessions:
        info = store.session(user, number)
        if info.files == 0:
            raise StoreError(f"session {number} of user {user!r} holds no bag to learn from")
        meta = info.metadata
        with store.open_session(user, number) as bag:
            messages = topic_messages(open_session(bag))
        parts.append(session_transitions(messages, env_config, card=card,
                                         assistance=float(meta.get("assistance", 1.0) or 1.0),
                                         use_intent=bool(meta.get("intent", False)),
                                         intervention_penalty=intervention_penalty, session=number))
    return SessionTransitions.concat(parts)

