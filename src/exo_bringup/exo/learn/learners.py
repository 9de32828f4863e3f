"""The two SAC implementations a run can train with, behind one small interface.

- ``sb3``: Stable-Baselines3's ``SAC`` (torch). One Python-level gradient step at a
  time: about 100 gradient steps/s for the [64, 64] networks on this project's 2-core
  reference machine, which makes training learner-bound.
- ``sbx``: SBX's ``SAC`` (Stable-Baselines3 in JAX, the ``sbx-rl`` package). Same
  algorithm, same SB3 training loop, replay buffer, callbacks, logger and model
  files; each training phase's gradient steps run as one compiled XLA loop, and
  the exploration actions are sampled in numpy (:mod:`exo.learn.sbx_sac`).

Both train the same networks (MLP actor and twin critics, ``net_arch``, exact erf
GELU, tanh-squashed Gaussian), and :func:`exo.learn.actor.deterministic_actor`
turns either into the same torch module, so the exported policy (``policy.npz`` and
its card) is identical in format whichever learner trained it.

The learner is a run setting (``config/sac.yaml`` ``learner``, recorded in run.json);
a run folder is always reloaded with the learner it was trained with
(:func:`run_learner`; runs recorded before the setting existed are ``sb3``).
JAX is imported only when an ``sbx`` model is built or loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

LEARNERS = ("sb3", "sbx")


def check_learner(learner: str) -> str:
    """``learner`` if it is one of :data:`LEARNERS`; ``ValueError`` naming the choices otherwise."""
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {', '.join(LEARNERS)}, got {learner!r}")
    return learner


def sac_class(learner: str) -> type:
    """The ``SAC`` class of ``learner`` (SB3's or SBX's)."""
    if check_learner(learner) == "sbx":
        from exo.learn.sbx_sac import SbxSac

        return SbxSac
    from stable_baselines3 import SAC

    return SAC


def policy_kwargs(learner: str, net_arch: tuple[int, ...]) -> dict[str, Any]:
    """``policy_kwargs`` for an MLP actor and twin critics of ``net_arch`` with exact GELU."""
    if check_learner(learner) == "sbx":
        from exo.learn.sbx_sac import exact_gelu

        return {"net_arch": list(net_arch), "activation_fn": exact_gelu}
    import torch

    return {"net_arch": list(net_arch), "activation_fn": torch.nn.GELU}


def load_model(path: str | Path, learner: str, env: Any = None) -> Any:
    """A saved model (``model.save``) of ``learner``, on the CPU, optionally bound to ``env``."""
    cls = sac_class(learner)
    if env is None:
        return cls.load(str(path), device="cpu")
    return cls.load(str(path), env=env, device="cpu")


def run_learner(config: Mapping[str, Any]) -> str:
    """The learner of a run's recorded configuration (run.json ``config``); ``sb3`` before the setting existed."""
    return check_learner(str(config.get("learner", "sb3")))


def library_versions(learner: str) -> dict[str, str]:
    """Versions of the learning libraries a run used (recorded in run.json and the policy card)."""
    import stable_baselines3
    import torch

    out = {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__}
    if check_learner(learner) == "sbx":
        import flax
        import jax
        import sbx

        out.update({"sbx": sbx.__version__, "jax": jax.__version__, "flax": flax.__version__})
    return out
