"""``exo personalize --user ID``: a user's baselines tuned on the user's twin, gated, versioned in the profile.

:func:`personalize_user` does, for one user of the encrypted store:

1. the user's twin (:meth:`UserTwin.from_store`: identified subject, 95 % intervals, the user's safety
   limits) and the deployed version: the profile's deployed controller, or, before the first one, the
   generic PID of ``config/controllers.yaml`` capped at the user's torque cap (:func:`generic_choice`);
2. a CMA-ES search per baseline family (:mod:`exo.personalize.search`) on ``search_subjects``
   subjects, relative to the deployed version's score on them, within the wall-time budget;
   every generation is checkpointed (encrypted) as the ``search`` artefact of a ``personalization``
   session of the user, so a run cut off is resumed by the next ``exo personalize`` of that user;
3. the personalised policy (``learned_policy: true``): the deployed learned policy, or the best committed
   generic one, fine-tuned on the user's twin inside a trust region (:mod:`exo.personalize.policy`), with
   ``policy_budget_share`` of the budget; its weights are kept encrypted as the session's ``policy``
   artefact, and it competes with the baselines' best on the same cost;
4. the acceptance gate (:mod:`exo.personalize.gate`) on held-out subjects; the best candidate is
   stored as a new controller version with its lineage (parent = the deployed version, source
   session = the assessment the twin came from), the gate's numbers and reason, as ``deployed`` if it
   passed (the previous one becomes ``retired``) or ``rejected``.

Settings: ``config/personalize.yaml`` (:class:`PersonalizeConfig`).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exo.params import ConfigError
from exo.personalize.evaluation import ControllerChoice, UserTwin, evaluate_on_user
from exo.personalize.gate import GateConfig, GateVerdict, judge
from exo.personalize.policy import PolicyTuneConfig
from exo.personalize.search import SPACES, SearchState, cost, new_state, space_for, tune
from exo.users.errors import StoreError

if TYPE_CHECKING:
    from exo.users import ControllerVersion, UserStore

#: Session kind of a personalisation run (its artefacts: ``search``, ``outcome``).
SESSION_KIND = "personalization"


@dataclass(frozen=True)
class PersonalizeConfig:
    """Settings of a personalisation run (``config/personalize.yaml``, documented there)."""

    twin: str = "full"
    baselines: tuple[str, ...] = ("reference_pid", "pid")
    budget_min: float = 15.0
    search_subjects: int = 4
    search_seed: int = 0
    popsize: int = 8
    sigma0: float = 0.2
    gate: GateConfig = field(default_factory=GateConfig)
    learned_policy: bool = True
    policy_budget_share: float = 0.5
    policy: PolicyTuneConfig = field(default_factory=PolicyTuneConfig)

    def __post_init__(self) -> None:
        from exo.twin import KINDS

        if self.twin not in KINDS:
            raise ValueError(f"twin must be one of {', '.join(KINDS)}, got {self.twin!r}")
        unknown = [b for b in self.baselines if b not in SPACES]
        if unknown or not (self.baselines or self.learned_policy):
            raise ValueError(f"baselines must be a list of {', '.join(SPACES)} (non-empty without learned_policy), "
                             f"got {list(self.baselines)}")
        if not (self.budget_min > 0 and self.search_subjects >= 1 and self.popsize >= 2 and 0 < self.sigma0 <= 1):
            raise ValueError("budget_min > 0, search_subjects >= 1, popsize >= 2 and 0 < sigma0 <= 1 are required")
        if not 0.0 < self.policy_budget_share < 1.0:
            raise ValueError(f"policy_budget_share must be within (0, 1), got {self.policy_budget_share}")

    @classmethod
    def from_yaml(cls, path: Path | str | None = None) -> PersonalizeConfig:
        """The settings of ``path`` (default ``config/personalize.yaml``); :class:`ConfigError` naming the key."""
        from exo.params import load_yaml
        from exo.paths import config_file

        path = Path(path) if path is not None else config_file("personalize.yaml")
        doc = load_yaml(path)
        section = doc.get("personalize") if isinstance(doc, Mapping) else None
        if not isinstance(section, Mapping):
            raise ConfigError(f"{path}: no 'personalize:' section")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) personalize.{', personalize.'.join(unknown)}")
        values = dict(section)
        try:
            gate = values.pop("gate", None) or {}
            unknown = sorted(set(gate) - {f.name for f in fields(GateConfig)})
            if unknown:
                raise ValueError(f"unknown key(s) gate.{', gate.'.join(unknown)}")
            if "baselines" in values:
                values["baselines"] = tuple(values["baselines"])
            policy = PolicyTuneConfig.from_mapping(values.pop("policy", None))
            return cls(**values, gate=GateConfig(**gate), policy=policy)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: personalize: {exc}") from None


@dataclass(frozen=True)
class PersonalizeOutcome:
    """What a run did: the stored version, the gate's verdict, the search's numbers."""

    version: ControllerVersion
    verdict: GateVerdict
    deployed_before: ControllerChoice
    searches: dict[str, dict[str, Any]]
    session: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version.to_dict(), "passed": self.verdict.passed, "reason": self.verdict.reason,
                "candidate": _finite(self.verdict.candidate), "deployed": _finite(self.verdict.deployed),
                "deployed_before": self.deployed_before.to_dict(), "searches": self.searches,
                "session": self.session}


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in d.items()}


def generic_choice(torque_cap_nm: float) -> ControllerChoice:
    """The generic controller every user starts with: ``config/controllers.yaml``'s PID, capped at the user's cap."""
    from exo.control import load_controller_params

    params = load_controller_params("pid")
    params["torque_limit_nm"] = min(float(params.get("torque_limit_nm", 100.0)), torque_cap_nm)
    return ControllerChoice("pid", params)


def deployed_choice(store: UserStore, user: str, torque_cap_nm: float) -> tuple[ControllerChoice, str | None]:
    """The controller ``user`` runs now and its version id (None: the generic one)."""
    version = store.profile(user).deployed
    if version is None or not version.controller:
        return generic_choice(torque_cap_nm), None
    return version_choice(store, user, version), version.id


def version_choice(store: UserStore, user: str, version: ControllerVersion) -> ControllerChoice:
    """What running ``version`` means: its controller and parameters; a learned policy kept in the store is
    decrypted into a private temporary folder (:func:`exo.personalize.policy.materialise`)."""
    from exo.personalize.policy import STORE_PREFIX, materialise

    params = dict(version.params)
    if version.path.startswith(STORE_PREFIX):
        params["policy"] = str(materialise(store, user, version.path))
    return ControllerChoice(version.controller, params)


def _start_params(family: str, deployed: ControllerChoice, torque_cap_nm: float) -> dict[str, Any]:
    """Where a family's search starts: the deployed parameters if it is that family, else its configured ones."""
    from exo.control import load_controller_params

    if deployed.name == family:
        return dict(deployed.params)
    params = load_controller_params(family)
    params["torque_limit_nm"] = min(float(params.get("torque_limit_nm", 100.0)), torque_cap_nm)
    return params


def recorded_sessions(store: UserStore, user: str) -> list[int]:
    """The user's sessions with a bag recorded on the graph (``sim``/``real``) since the last personalisation run
    (all of them if there was none): what ``--from-sessions`` adapts from by default."""
    numbers: list[int] = []
    for info in store.sessions(user):
        if info.kind == SESSION_KIND:
            numbers = []
        elif info.kind in ("sim", "real") and info.files > 0:
            numbers.append(info.number)
    return numbers


def _policy_candidate(store: UserStore, user: str, session: int, user_twin: UserTwin, deployed: ControllerChoice,
                      config: PersonalizeConfig, budget_s: float,
                      policy_progress: Callable[[int, int], None] | None,
                      from_sessions: Sequence[int] | None = None) -> tuple[ControllerChoice, dict[str, Any]]:
    """The personalised policy of this run (tuned now, or the one a cut-off run already stored) and its stats.

    With ``from_sessions``, the fine-tuning's replay buffer starts with those recorded sessions' transitions."""
    from exo.personalize.policy import TunedPolicy, private_folder, start_policy, tune_policy

    if "policy" in store.session(user, session).artefacts:
        tuned = TunedPolicy.from_json(store.get_json(user, session, "policy"))
    else:
        start = start_policy(deployed.params.get("policy", "") if deployed.name == "sac" else "")
        prior = None
        if from_sessions:
            from exo.envs.config import load_env_config
            from exo.personalize.sessions import user_session_transitions

            prior = user_session_transitions(store, user, from_sessions, start.card, load_env_config(),
                                             config.policy.intervention_penalty)
            if not len(prior):
                raise StoreError(f"sessions {list(from_sessions)} of user {user!r} gave no transition to learn from "
                                 f"({prior.dropped or 'no control step'})")
        total = config.policy.transitions
        tuned = tune_policy(user_twin, start, config.policy, budget_s=budget_s, prior=prior,
                            on_progress=(lambda n: policy_progress(n, total)) if policy_progress else None)
        store.put_json(user, session, "policy", tuned.to_json())
    folder = tuned.write_folder(private_folder() / f"{user}-session-{session}-policy")
    choice = ControllerChoice("sac", {"policy": str(folder), "torque_limit_nm": float(user_twin.limits.user_torque_cap_nm)})
    return choice, {"evaluations": 1, "generations": 0, "time_s": tuned.stats.get("seconds", 0.0),
                    "best_cost": None, "best": {"name": "sac", "params": {"start": tuned.card.get("start_policy", "")}},
                    "transitions": tuned.stats.get("transitions"), "projections": tuned.stats.get("projections"),
                    "largest_action_change": tuned.stats.get("largest_action_change"),
                    "recorded": tuned.stats.get("recorded")}


def _open_run(store: UserStore, user: str, resume: bool, metadata: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The session of this run: the last unfinished personalisation session (resume) or a new one."""
    if resume:
        for info in reversed(store.sessions(user)):
            if info.kind == SESSION_KIND and "outcome" not in info.artefacts:
                saved = store.get_json(user, info.number, "search") if "search" in info.artefacts else {}
                return info.number, saved
            if info.kind == SESSION_KIND:
                break
    return store.create_session(user, SESSION_KIND, metadata).number, {}


def personalize_user(store: UserStore, user: str, config: PersonalizeConfig | None = None, *,
                     budget_s: float | None = None, max_evaluations: int | None = None, workers: int = 1,
                     resume: bool = True, progress: Callable[[str, SearchState, float], None] | None = None,
                     policy_progress: Callable[[int, int], None] | None = None,
                     from_sessions: Sequence[int] | None = None) -> PersonalizeOutcome:
    """Tune, gate and version ``user``'s controller (module docstring).

    With ``from_sessions`` (between-session adaptation), only the policy is adapted, from those recorded
    sessions and the user's twin, with the whole budget; the baselines are not searched.

    Args:
        store: the opened user store.
        user: the pseudonym (must have an identified twin: ``exo identify --user``).
        config: settings (default ``config/personalize.yaml``).
        budget_s: wall-time budget of the searches, s (default ``config.budget_min``), split evenly
            between the baselines; a resumed run counts the time already spent.
        max_evaluations: also stop each family's search after this many candidates (tests, smoke runs).
        workers: processes evaluating candidates.
        resume: continue the last unfinished run of this user if there is one.
        progress: called as ``progress(family, state, family_budget_s)`` after every generation.
        policy_progress: called as ``policy_progress(transitions, total)`` while the policy is fine-tuned.
        from_sessions: session numbers to adapt the policy from (see above).

    Raises:
        exo.users.StoreError: no such user, no identified twin, a session without a bag, sessions with nothing
            to learn from.
    """
    config = config or PersonalizeConfig.from_yaml()
    if from_sessions is not None:
        if not from_sessions:
            raise StoreError(f"user {user!r} has no recorded session to adapt from (record one with "
                             f"exo sim/real --user {user})")
        for number in from_sessions:
            info = store.session(user, number)
            if info.kind not in ("sim", "real") or info.files == 0:
                raise StoreError(f"session {number} of user {user!r} is a {info.kind!r} session without a graph "
                                 "recording: nothing to adapt from")
        config = replace(config, learned_policy=True, baselines=())
    budget_s = config.budget_min * 60.0 if budget_s is None else float(budget_s)
    user_twin = UserTwin.from_store(store, user, twin=config.twin)
    cap = float(user_twin.limits.user_torque_cap_nm)
    deployed, deployed_id = deployed_choice(store, user, cap)
    twin_session = (store.profile(user).identified_twin or {}).get("session")
    meta = {"twin": config.twin, "deployed": deployed_id or "generic", "budget_s": budget_s}
    if from_sessions is not None:
        meta["from_sessions"] = [int(n) for n in from_sessions]
    session, saved = _open_run(store, user, resume, meta)
    search_subjects = user_twin.subjects(config.search_subjects, config.search_seed)
    reference = evaluate_on_user(deployed, user_twin, search_subjects, config.search_seed).means
    states: dict[str, SearchState] = {}
    for family, blob in (saved.get("states") or {}).items():
        states[family] = SearchState.loads(base64.b64decode(blob))

    def checkpoint(_: SearchState) -> None:
        store.put_json(user, session, "search", {
            "states": {f: base64.b64encode(s.dumps()).decode() for f, s in states.items()},
            "reference": _finite(reference)})

    if not config.baselines:
        policy_budget = budget_s
    else:
        policy_budget = budget_s * config.policy_budget_share if config.learned_policy else 0.0
    family_budget = (budget_s - policy_budget) / max(1, len(config.baselines))
    for family in config.baselines:
        space = space_for(family, cap)
        start = _start_params(family, deployed, cap)
        if family not in states:
            states[family] = new_state(family, space, start, popsize=config.popsize, sigma0=config.sigma0,
                                       seed=config.search_seed + 1)
        tune(states[family], space, start, user_twin, search_subjects, reference, budget_s=family_budget,
             max_evaluations=max_evaluations, seed=config.search_seed, workers=workers, checkpoint=checkpoint,
             progress=(lambda st, f=family: progress(f, st, family_budget)) if progress else None)

    finished = {f: s for f, s in states.items() if s.best is not None}
    if not finished and config.baselines:
        raise RuntimeError("the search evaluated no candidate (budget too small?)")
    candidates = [(f, st.best[0], st.best[1]) for f, st in finished.items()]
    policy_stats: dict[str, Any] | None = None
    if config.learned_policy:
        choice, policy_stats = _policy_candidate(store, user, session, user_twin, deployed, config, policy_budget,
                                                 policy_progress, from_sessions)
        policy_cost = cost(evaluate_on_user(choice, user_twin, search_subjects, config.search_seed).means, reference)
        policy_stats["best_cost"] = policy_cost
        candidates.append(("policy", choice, policy_cost))
    family, candidate, best_cost = min(candidates, key=lambda item: item[2])
    gate_subjects = user_twin.subjects(config.gate.subjects, config.gate.seed)
    verdict = judge(evaluate_on_user(candidate, user_twin, gate_subjects, config.gate.seed),
                    evaluate_on_user(deployed, user_twin, gate_subjects, config.gate.seed), config.gate)
    metrics = {**_finite(verdict.metrics()), "search_cost": best_cost,
               "search_evaluations": sum(s.evaluations for s in states.values()),
               "search_time_s": round(sum(s.elapsed_s for s in states.values()), 1),
               "gate_subjects": config.gate.subjects}
    if from_sessions is not None:
        metrics["from_sessions"] = [int(n) for n in from_sessions]
    params, path = dict(candidate.params), ""
    if family == "policy":  # the weights stay in the store; the version points to them
        from exo.personalize.policy import store_reference

        params.pop("policy")
        path = store_reference(session, "policy")
    version = store.add_controller(user, path, controller=candidate.name, params=params,
                                   parent=deployed_id, source_session=twin_session,
                                   status="deployed" if verdict.passed else "rejected",
                                   metrics=metrics, reason=verdict.reason)
    searches = {f: {"evaluations": s.evaluations, "generations": s.generations, "time_s": round(s.elapsed_s, 1),
                    "best_cost": s.best[1] if s.best else None,
                    "best": s.best[0].to_dict() if s.best else None} for f, s in states.items()}
    if policy_stats is not None:
        searches["policy"] = policy_stats
    outcome = PersonalizeOutcome(version=version, verdict=verdict, deployed_before=deployed, searches=searches,
                                 session=session)
    store.put_json(user, session, "outcome", outcome.to_dict())
    return outcome

