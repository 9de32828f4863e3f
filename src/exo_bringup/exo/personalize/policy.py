"""The personalised policy: the generic SAC policy fine-tuned on one user's twin, inside a trust region.

Start: the policy the user runs now (the deployed version if it is a learned one, else the best committed
generic policy, :data:`exo.control.sac.DEFAULT_POLICY_NAME`), its card (network, residual base controller,
action scale) and its actor weights.

Fine-tuning (:func:`tune_policy`), with Stable-Baselines3's SAC:

1. **The user's twin as the training env**: the knee-extension task on ``user_twin.twin`` with a subject
   drawn per episode from a pool inside the identification's 95 % intervals
   (:meth:`~exo.personalize.evaluation.UserTwin.subjects`: randomisation within the confidence region),
   the user's torque cap applied to the motor command, the policy's residual base controller when it has
   one (:class:`~exo.envs.residual.ResidualActionWrapper`), the task of ``config/env.yaml``.
2. **The actor starts as the deployed one** (its hidden layers and mean head copied into SB3's actor;
   the log-std head starts small, ``log_std_init``), the critics start fresh.
3. **Critic warm-up**: for ``warmup_transitions`` the actor is pinned to the deployed one (its weights
   restored after every update), so that the critics learn the values of the policy being adapted
   before it moves.
4. **Trust region** (:class:`TrustRegion`): after every update the actor's deterministic action on a fixed
   set of ``reference_states`` (states the deployed policy visited on this user's twin, from the warm-up's
   replay buffer) may differ from the deployed one's by at most ``max_action_change`` (env action units:
   0.1 = 10 N m of the 100 N m scale); an update that goes further is pulled back along the line to the
   deployed weights (bisection on the step fraction), never past it.
5. Small batches (``batch_size``), few updates per transition (``utd_ratio``), ``transitions`` in all
   (or fewer, if ``budget_s`` runs out first).

The result is a :class:`TunedPolicy` (numpy weights and a card). Whether it is deployed is the acceptance
gate's decision (:mod:`exo.personalize.gate`), on held-out subjects of the user's twin, through the safety
monitor, exactly as for the baselines.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from exo.personalize.evaluation import UserTwin
from exo.personalize.sessions import SessionTransitions
from exo.twin.reflex import SpasticityLevel


@dataclass(frozen=True)
class PolicyTuneConfig:
    """Settings of the policy fine-tuning (``config/personalize.yaml``, ``policy:``).

    Attributes:
        transitions: env transitions of the fine-tuning, warm-up included (an upper bound; ``budget_s`` may
            stop it earlier).
        warmup_transitions: transitions with the actor pinned to the deployed one (critic warm-up).
        batch_size: transitions per gradient step.
        utd_ratio: gradient steps per transition.
        train_freq: env steps between two training phases.
        learning_rate: Adam step of actor, critics and entropy coefficient.
        max_action_change: trust region: largest |change| of the deterministic action on the reference
            states, env action units (x 100 N m).
        reference_states: states the trust region is checked on.
        subjects: pool of the user's twin subjects drawn per episode (the identified point first).
        log_std_init: initial log standard deviation of the exploration (SB3's log-std head bias).
        gamma, tau: SAC's discount and target-network rate.
        seed: seed of SB3, the subject pool and the env.
        intervention_penalty: reward subtracted from a recorded session's transition where the safety monitor
            intervened (between-session adaptation, :mod:`exo.personalize.sessions`).
    """

    transitions: int = 20_000
    warmup_transitions: int = 4_000
    batch_size: int = 64
    utd_ratio: float = 0.5
    train_freq: int = 16
    learning_rate: float = 1e-4
    max_action_change: float = 0.1
    reference_states: int = 2048
    subjects: int = 32
    log_std_init: float = -1.5
    gamma: float = 0.99
    tau: float = 0.005
    seed: int = 0
    intervention_penalty: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.warmup_transitions < self.transitions:
            raise ValueError(f"policy.warmup_transitions must be within 0 < warmup < transitions "
                             f"({self.transitions}), got {self.warmup_transitions}")
        if self.batch_size < 1 or self.train_freq < 1 or self.subjects < 1 or self.reference_states < 1:
            raise ValueError("policy.batch_size, train_freq, subjects and reference_states must be >= 1")
        if not 0.0 < self.utd_ratio <= 4.0:
            raise ValueError(f"policy.utd_ratio must be within (0, 4], got {self.utd_ratio}")
        if not 0.0 < self.max_action_change <= 2.0:
            raise ValueError(f"policy.max_action_change must be within (0, 2] (env action units), got "
                             f"{self.max_action_change}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0.0):
            raise ValueError(f"policy.learning_rate must be > 0, got {self.learning_rate}")
        if not (math.isfinite(self.intervention_penalty) and self.intervention_penalty >= 0.0):
            raise ValueError(f"policy.intervention_penalty must be >= 0, got {self.intervention_penalty}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> PolicyTuneConfig:
        """From ``{name: value}`` (unknown names refused)."""
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown policy setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


@dataclass
class TunedPolicy:
    """A fine-tuned actor: weights (as :class:`~exo.control.sac.NumpyActor` takes them), card and statistics.

    Attributes:
        hidden: ``[(W, b), ...]`` of the hidden layers (float32 arrays, torch layout (out, in)).
        mu: ``(W, b)`` of the mean head.
        card: the policy card (the start policy's, with ``personalisation`` added).
        stats: what the fine-tuning did (transitions, projections, the largest action change, seconds).
    """

    hidden: list[tuple[np.ndarray, np.ndarray]]
    mu: tuple[np.ndarray, np.ndarray]
    card: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)

    def actor(self):
        """The :class:`~exo.control.sac.NumpyActor` of these weights."""
        from exo.control.sac import NumpyActor

        return NumpyActor(self.hidden, self.mu)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (weights as nested lists): what the user's store keeps, encrypted."""
        return {"format": "exo-tuned-policy/1", "card": self.card, "stats": self.stats,
                "hidden": [[w.tolist(), b.tolist()] for w, b in self.hidden],
                "mu": [self.mu[0].tolist(), self.mu[1].tolist()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TunedPolicy:
        """Back from :meth:`to_json` (ValueError if malformed)."""
        if data.get("format") != "exo-tuned-policy/1":
            raise ValueError(f"not a tuned policy (format {data.get('format')!r})")
        hidden = [(np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)) for w, b in data["hidden"]]
        mu = (np.asarray(data["mu"][0], dtype=np.float32), np.asarray(data["mu"][1], dtype=np.float32))
        policy = cls(hidden=hidden, mu=mu, card=dict(data.get("card") or {}), stats=dict(data.get("stats") or {}))
        policy.actor()  # checks the shapes chain
        return policy

    def write_folder(self, folder: Path) -> Path:
        """Write an exported-policy folder (``policy.npz`` + ``policy.json``) that
        :class:`~exo.control.sac.SacController` loads; the folder."""
        import io
        import json

        from exo.control.sac import NPZ_FORMAT_VERSION
        from exo.paths import write_private_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        arrays: dict[str, Any] = {
            "format_version": np.array(NPZ_FORMAT_VERSION), "activation": np.array("gelu"),
            "n_hidden": np.array(len(self.hidden)), "obs_dim": np.array(self.hidden[0][0].shape[1]),
            "action_scale_nm": np.array(float(self.card.get("action", {}).get("scale_nm", 100.0))),
            "mu.weight": self.mu[0], "mu.bias": self.mu[1],
        }
        for i, (w, b) in enumerate(self.hidden):
            arrays[f"hidden.{i}.weight"], arrays[f"hidden.{i}.bias"] = w, b
        npz = io.BytesIO()
        np.savez(npz, **arrays)
        write_private_file(folder / "policy.npz", npz.getvalue())
        write_private_file(folder / "policy.json", json.dumps(self.card, indent=2))
        return folder


def start_policy(policy: str | Path = "") -> TunedPolicy:
    """The policy to start from: an exported folder ("" = the best committed one), as weights and card."""
    from exo.control.sac import SacController

    controller = SacController(policy=str(policy))
    actor = controller._actor
    card = copy.deepcopy(controller.card)
    for key in ("files", "consistency", "evaluation"):  # described the start policy's own files and numbers
        card.pop(key, None)
    card["start_policy"] = controller.policy_path.parent.name
    return TunedPolicy(hidden=[(w.astype(np.float32), b.astype(np.float32)) for w, b in actor.hidden],
                       mu=(actor.mu[0].astype(np.float32), actor.mu[1].astype(np.float32)), card=card)


class TorqueCapWrapper(gym.ActionWrapper):
    """Clip the env's action to the user's torque cap (``cap_nm / torque scale``), as the controller's
    ``torque_limit_nm`` and the safety monitor do on the graph."""

    def __init__(self, env: gym.Env, cap_nm: float) -> None:
        super().__init__(env)
        self.limit = float(cap_nm) / float(env.unwrapped.twin.max_exo_torque_nm)

    def action(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, dtype=np.float32), -self.limit, self.limit)


class SubjectPool(gym.Wrapper):
    """Each episode on a subject drawn uniformly from ``subjects`` (seeded by the first reset's seed)."""

    def __init__(self, env: gym.Env, subjects: Sequence[SpasticityLevel]) -> None:
        super().__init__(env)
        self.subjects = list(subjects)
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        subject = self.subjects[int(self._rng.integers(len(self.subjects)))]
        return self.env.reset(seed=seed, options={**(options or {}), "subject": subject})


def make_user_env(user_twin: UserTwin, start: TunedPolicy, subjects: Sequence[SpasticityLevel]) -> gym.Env:
    """The fine-tuning env: the task on the user's twin, subject pool, user cap, residual base if any."""
    from stable_baselines3.common.monitor import Monitor

    from exo.envs.knee_extension import KneeExtensionEnv
    from exo.envs.residual import ResidualActionWrapper, ResidualSpec

    env: gym.Env = KneeExtensionEnv(twin=user_twin.twin, level=user_twin.subject.level)
    env = TorqueCapWrapper(env, user_twin.limits.user_torque_cap_nm)
    env = SubjectPool(env, subjects)
    residual = start.card.get("residual")
    if residual:
        env = ResidualActionWrapper(env, ResidualSpec.from_dict(residual))
    return Monitor(env)


def _actor_params(model: Any) -> list[Any]:
    """The parameters of the deterministic path (hidden layers and mean head) of SB3's SAC actor."""
    return [*model.actor.latent_pi.parameters(), *model.actor.mu.parameters()]


def load_actor_weights(model: Any, policy: TunedPolicy) -> None:
    """Copy ``policy``'s hidden layers and mean head into SB3's actor (shapes must match)."""
    import torch

    linears = [m for m in model.actor.latent_pi if isinstance(m, torch.nn.Linear)]
    if len(linears) != len(policy.hidden):
        raise ValueError(f"the start policy has {len(policy.hidden)} hidden layers, the SAC actor {len(linears)}")
    with torch.no_grad():
        for layer, (w, b) in zip(linears, policy.hidden, strict=True):
            layer.weight.copy_(torch.as_tensor(w))
            layer.bias.copy_(torch.as_tensor(b))
        model.actor.mu.weight.copy_(torch.as_tensor(policy.mu[0]))
        model.actor.mu.bias.copy_(torch.as_tensor(policy.mu[1]))


def set_exploration(model: Any, log_std: float) -> None:
    """Start SB3's log-std head at a constant ``log_std`` (pre-tanh standard deviation ``exp(log_std)``):
    a trained mean needs a little exploration around it, not SB3's initial unit deviation."""
    import torch

    with torch.no_grad():
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.fill_(float(log_std))


def _callback_base():
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class TrustRegion(_callback_base()):
    """Keeps SB3's actor within ``max_action_change`` of the start actor on reference states (module doc).

    Until ``warmup`` transitions the actor is pinned to the start weights. At the end of the warm-up the
    reference states are drawn from the replay buffer; from then on, after every training phase, an
    actor that moved too far is pulled back to ``start + alpha (current - start)`` with the largest alpha
    (bisection, 12 halvings) that keeps the change within bounds.
    """

    def __init__(self, warmup: int, max_action_change: float, reference_states: int, seed: int,
                 on_progress: Callable[[int], None] | None = None, deadline: float | None = None) -> None:
        super().__init__()
        self.warmup = warmup
        self.max_change = max_action_change
        self.n_states = reference_states
        self.seed = seed
        self.on_progress = on_progress
        self.deadline = deadline
        self.start: list[Any] = []
        self.states = None
        self.start_actions = None
        self.projections = 0
        self.largest_change = 0.0
        self.stopped_by_budget = False

    def _on_training_start(self) -> None:
        self.start = [p.detach().clone() for p in _actor_params(self.model)]

    def _actions(self):
        import torch

        with torch.no_grad():
            return torch.tanh(self.model.actor.mu(self.model.actor.latent_pi(self.states)))

    def _set(self, alpha: float, current: list[Any]) -> None:
        import torch

        with torch.no_grad():
            for p, p0, p1 in zip(_actor_params(self.model), self.start, current, strict=True):
                p.copy_(p0 + alpha * (p1 - p0))

    def _on_rollout_start(self) -> None:  # right after a training phase
        import torch

        n = self.model.num_timesteps
        if n <= self.warmup or self.model.replay_buffer.size() == 0:
            self._set(0.0, self.start)  # pinned: the critics learn the start policy's values
            return
        if self.states is None:
            buffer = self.model.replay_buffer
            size = buffer.size()
            rng = np.random.default_rng(self.seed)
            obs = buffer.observations[:size].reshape(size * buffer.n_envs, -1)
            rows = rng.choice(len(obs), size=min(self.n_states, len(obs)), replace=False)
            self.states = torch.as_tensor(obs[rows], dtype=torch.float32)
            current = [p.detach().clone() for p in _actor_params(self.model)]
            self._set(0.0, current)
            self.start_actions = self._actions()
            self._set(1.0, current)
        change = float((self._actions() - self.start_actions).abs().max())
        if change > self.max_change:
            self.projections += 1
            current = [p.detach().clone() for p in _actor_params(self.model)]
            lo, hi = 0.0, 1.0
            for _ in range(12):
                mid = 0.5 * (lo + hi)
                self._set(mid, current)
                if float((self._actions() - self.start_actions).abs().max()) <= self.max_change:
                    lo = mid
                else:
                    hi = mid
            self._set(lo, current)
            change = float((self._actions() - self.start_actions).abs().max())
        self.largest_change = max(self.largest_change, change)

    def _on_step(self) -> bool:
        if self.on_progress is not None:
            self.on_progress(self.model.num_timesteps)
        if self.deadline is not None and time.monotonic() > self.deadline and self.model.num_timesteps > self.warmup:
            self.stopped_by_budget = True
            return False
        return True


def add_prior_transitions(model: Any, prior: SessionTransitions) -> None:
    """Put recorded transitions into SB3's replay buffer (their ``done`` is a time limit, not a terminal state)."""
    buffer = model.replay_buffer
    if len(prior) > buffer.buffer_size:
        raise ValueError(f"{len(prior)} recorded transitions do not fit the replay buffer ({buffer.buffer_size}); "
                         "raise policy.transitions")
    for i in range(len(prior)):
        done = bool(prior.dones[i])
        buffer.add(prior.observations[i:i + 1], prior.next_observations[i:i + 1], prior.actions[i:i + 1],
                   prior.rewards[i:i + 1], np.array([done]), [{"TimeLimit.truncated": done}])


def tune_policy(user_twin: UserTwin, start: TunedPolicy, cfg: PolicyTuneConfig, *, budget_s: float | None = None,
                on_progress: Callable[[int], None] | None = None,
                prior: SessionTransitions | None = None) -> TunedPolicy:
    """Fine-tune ``start`` on ``user_twin`` (module docstring); the tuned policy with its statistics.

    With ``prior`` (transitions of the user's recorded sessions, :mod:`exo.personalize.sessions`), the replay
    buffer starts with them: the critics learn from the person's own sessions (interventions penalised) as
    well as from the twin, and the trust region's reference states include the states the person visited.

    Deterministic for a given ``cfg.seed`` when run to ``cfg.transitions`` (a ``budget_s`` cut is not).
    """
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    t0 = time.monotonic()
    subjects = user_twin.subjects(cfg.subjects, cfg.seed)
    venv = DummyVecEnv([lambda: make_user_env(user_twin, start, subjects)])
    venv.seed(cfg.seed)
    hidden = [int(w.shape[0]) for w, _ in start.hidden]
    torch.set_num_threads(1)
    recorded = 0 if prior is None else len(prior)
    model = SAC("MlpPolicy", venv, learning_rate=cfg.learning_rate, buffer_size=cfg.transitions + recorded,
                learning_starts=cfg.batch_size, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
                train_freq=(cfg.train_freq, "step"), gradient_steps=max(1, round(cfg.utd_ratio * cfg.train_freq)),
                ent_coef="auto", policy_kwargs={"net_arch": hidden, "activation_fn": torch.nn.GELU},
                seed=cfg.seed, device="cpu", verbose=0)
    load_actor_weights(model, start)
    set_exploration(model, cfg.log_std_init)
    if prior is not None and len(prior):
        add_prior_transitions(model, prior)
    deadline = None if budget_s is None else t0 + float(budget_s)
    region = TrustRegion(cfg.warmup_transitions, cfg.max_action_change, cfg.reference_states, cfg.seed,
                         on_progress, deadline)
    model.learn(total_timesteps=cfg.transitions, callback=region, progress_bar=False)
    region._on_rollout_start()  # the last training phase is projected too
    from exo.learn.actor import actor_layers, deterministic_actor

    layers, mu = actor_layers(deterministic_actor(model))
    card = copy.deepcopy(start.card)
    stats = {"transitions": int(model.num_timesteps), "warmup_transitions": cfg.warmup_transitions,
             "projections": region.projections, "largest_action_change": region.largest_change,
             "stopped_by_budget": region.stopped_by_budget, "seconds": round(time.monotonic() - t0, 1),
             "subjects": len(subjects), "recorded": prior.summary() if prior is not None else None}
    card["personalisation"] = {"method": "sac-finetune-trust-region", "config": asdict(cfg), "stats": stats,
                               "twin": user_twin.twin, "start_policy": start.card.get("start_policy", "")}
    return TunedPolicy(hidden=layers, mu=mu, card=card, stats=stats)


# -- the user's store: a tuned policy is an encrypted artefact, materialised only for a run ----------------
#: Prefix of a controller version's ``path`` that names a policy kept in the user's store.
STORE_PREFIX = "store:"


def store_reference(session: int, artefact: str = "policy") -> str:
    """The ``path`` of a controller version whose policy is artefact ``artefact`` of session ``session``."""
    return f"{STORE_PREFIX}session-{int(session)}/{artefact}"


def parse_store_reference(path: str) -> tuple[int, str]:
    """``(session, artefact)`` of a :func:`store_reference` (ValueError if ``path`` is not one)."""
    if not path.startswith(STORE_PREFIX):
        raise ValueError(f"not a store reference: {path!r}")
    head, _, artefact = path[len(STORE_PREFIX):].partition("/")
    if not head.startswith("session-") or not head[len("session-"):].isdigit() or not artefact:
        raise ValueError(f"malformed store reference {path!r} (expected store:session-N/ARTEFACT)")
    return int(head[len("session-"):]), artefact


_PRIVATE: list[Path] = []


def private_folder() -> Path:
    """A 0700 temporary folder for decrypted policies, removed when this process exits."""
    import atexit
    import shutil
    import tempfile

    if not _PRIVATE:
        folder = Path(tempfile.mkdtemp(prefix="exo-policy-"))
        _PRIVATE.append(folder)
        atexit.register(shutil.rmtree, folder, True)
    return _PRIVATE[0]


def materialise(store: Any, user: str, path: str) -> Path:
    """The policy folder of a store reference, decrypted into :func:`private_folder` (plaintext only there,
    and only until this process exits); a policy folder the controller loads."""
    session, artefact = parse_store_reference(path)
    policy = TunedPolicy.from_json(store.get_json(user, session, artefact))
    return policy.write_folder(private_folder() / f"{user}-session-{session}-{artefact}")
