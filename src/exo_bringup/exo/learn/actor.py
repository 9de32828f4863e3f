"""The deterministic actor of a trained SAC model (SB3 or SBX), as a torch module and as numpy weights.

SAC's stochastic actor samples ``tanh(mu + sigma * eps)`` during training; deployment
uses the mean ``tanh(mu(latent_pi(obs)))`` (the ``log_std`` head is dropped).

- :func:`deterministic_actor`: a standalone torch copy (what :mod:`exo.learn.export` writes);
- :func:`actor_layers`: its weights as float32 numpy arrays;
- :func:`numpy_actor`: the :class:`exo.control.sac.NumpyActor` of a model, which the
  training-time evaluation (:mod:`exo.learn.sac`) and the checkpoint selection
  (:mod:`exo.learn.selection`) run through :class:`exo.control.sac.SacController`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from exo.control.sac import NumpyActor


class DeterministicActor(nn.Module):
    """``obs -> tanh(mu(latent_pi(obs)))``: the mean action of an SB3 SAC actor (copied weights)."""

    def __init__(self, latent_pi: nn.Module, mu: nn.Module) -> None:
        super().__init__()
        self.latent_pi = latent_pi
        self.mu = mu

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.mu(self.latent_pi(obs)))


def deterministic_actor(model: Any) -> DeterministicActor:
    """A standalone copy of the deterministic actor of an SB3 or SBX ``SAC`` model (or of an SB3 ``actor``).

    Raises:
        ValueError: the actor is not the plain MLP this module exports (gSDE, a
            non-flatten feature extractor, an activation other than exact GELU).
    """
    if hasattr(getattr(model, "policy", None), "actor_state"):
        return _sbx_deterministic_actor(model)
    actor = getattr(model, "actor", model)
    if getattr(actor, "use_sde", False):
        raise ValueError("gSDE actors are not supported by the exporter")
    if not isinstance(actor.features_extractor, FlattenExtractor):
        raise ValueError(f"expected a FlattenExtractor, got {type(actor.features_extractor).__name__}")
    for layer in actor.latent_pi:
        if isinstance(layer, nn.GELU) and layer.approximate != "none":
            raise ValueError("only the exact (erf) GELU is supported")
        if not isinstance(layer, (nn.Linear, nn.GELU)):
            raise ValueError(f"unsupported layer {layer!r} in the actor (Linear + GELU only)")
    module = DeterministicActor(copy.deepcopy(actor.latent_pi), copy.deepcopy(actor.mu)).cpu().float().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _sbx_deterministic_actor(model: Any) -> DeterministicActor:
    """The same torch module from an SBX ``SAC`` model's flax parameters.

    SBX's ``SquashedGaussianActor`` is ``Flatten`` then ``Dense_0 .. Dense_{n-1}`` (hidden,
    each followed by the activation), ``Dense_n`` (the mean) and ``Dense_{n+1}`` (log std,
    dropped). A flax kernel is (in, out): torch's ``Linear.weight`` is its transpose.
    """
    from exo.learn.sbx_sac import exact_gelu

    policy = model.policy
    if getattr(policy, "use_sde", False):
        raise ValueError("gSDE actors are not supported by the exporter")
    if policy.activation_fn is not exact_gelu:
        raise ValueError(f"only the exact (erf) GELU is supported, the model uses {policy.activation_fn!r}")
    params = policy.actor_state.params["params"]
    widths = list(policy.net_arch_pi)
    expected = {f"Dense_{i}" for i in range(len(widths) + 2)}
    if set(params) != expected:
        raise ValueError(f"unexpected SBX actor layers {sorted(params)} (expected {sorted(expected)})")

    def linear(name: str) -> nn.Linear:
        kernel = np.array(params[name]["kernel"], dtype=np.float32)
        bias = np.array(params[name]["bias"], dtype=np.float32)
        layer = nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(kernel.T.copy()))
            layer.bias.copy_(torch.from_numpy(bias))
        return layer

    hidden: list[nn.Module] = []
    for i in range(len(widths)):
        hidden += [linear(f"Dense_{i}"), nn.GELU()]
    module = DeterministicActor(nn.Sequential(*hidden), linear(f"Dense_{len(widths)}")).cpu().float().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def actor_layers(module: DeterministicActor) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """(hidden [(W, b), ...], (W_mu, b_mu)) as float32 numpy arrays."""
    linears = [m for m in module.latent_pi if isinstance(m, nn.Linear)]
    hidden = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]
    mu = (module.mu.weight.detach().numpy().copy(), module.mu.bias.detach().numpy().copy())
    return hidden, mu


def numpy_actor(model: Any) -> NumpyActor:
    """The numpy twin of a model's deterministic actor (used by the periodic evaluation and the selection)."""
    hidden, mu = actor_layers(deterministic_actor(model))
    return NumpyActor(hidden, mu)
