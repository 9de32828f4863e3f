"""The ``sbx`` learner: SBX's SAC (JAX) with the exploration actions computed in numpy.

Imported only when an SBX model is built or loaded (:mod:`exo.learn.learners`).

SBX runs each training phase's gradient steps as one compiled XLA loop, which is
what makes it fast here. Its action sampling during data collection, though, is a
chain of small JAX dispatches (key split, actor, sample, copy back): about 1 ms per
call on this project's 2-core reference machine, longer than the twin step it
drives. :class:`NumpySamplingPolicy` draws the same distribution in numpy from a
copy of the actor's weights (refreshed whenever a training phase has replaced
them): ``tanh(mean + exp(clip(log_std, -20, 2)) * eps)``, ``eps ~ N(0, 1)`` from a
numpy generator seeded with the run's seed, so a run stays reproducible.
Deterministic actions (evaluation) still go through JAX.

XLA runs on one thread (:data:`XLA_ONE_THREAD`, added to ``XLA_FLAGS`` before JAX
starts unless ``XLA_FLAGS`` already sets the CPU threading): measured on the 2-core
machine, one thread gives more gradient steps/s than Eigen's thread pool for these
small networks (866 vs 713 /s at batch 256) and leaves the other core to the rest.
"""

from __future__ import annotations

import os
from typing import Any

#: XLA's CPU flags for a single-threaded learner.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if "multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402
import sbx  # noqa: E402
from sbx.sac.policies import SACPolicy  # noqa: E402

from exo.control.sac import gelu  # noqa: E402


def exact_gelu(x: jax.Array) -> jax.Array:
    """GELU in its exact erf form, as torch's ``nn.GELU()`` (flax's ``nn.gelu`` defaults to the tanh form).

    A named module-level function so that the model file can pickle it by reference.
    """
    return jax.nn.gelu(x, approximate=False)


class NumpySamplingPolicy(SACPolicy):
    """SBX's SAC policy whose stochastic actions are sampled in numpy (same distribution, seeded)."""

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sampling_rng = np.random.default_rng(0)
        self._weights_of: Any = None
        self._weights: list[tuple[np.ndarray, np.ndarray]] = []

    def seed_sampling(self, seed: int) -> None:
        """Seed the exploration noise (the model's seed; a resumed run's ``seed + steps``)."""
        self.sampling_rng = np.random.default_rng(seed)

    def _numpy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._weights_of is not self.actor_state:  # a training phase replaced the parameters
            params = self.actor_state.params["params"]
            layers = sorted(params, key=lambda name: int(name.rsplit("_", 1)[1]))  # Dense_0 .. Dense_{n+1}
            self._weights = [(np.asarray(params[n]["kernel"], dtype=np.float32),
                              np.asarray(params[n]["bias"], dtype=np.float32)) for n in layers]
            self._weights_of = self.actor_state
        return self._weights

    def _predict(self, observation: np.ndarray, deterministic: bool = False) -> Any:  # type: ignore[override]
        if deterministic or self.use_sde:
            return super()._predict(observation, deterministic=deterministic)
        *hidden, (w_mean, b_mean), (w_log_std, b_log_std) = self._numpy_weights()
        x = np.asarray(observation, dtype=np.float32).reshape(len(observation), -1)
        for w, b in hidden:
            x = gelu(x @ w + b).astype(np.float32)
        mean = x @ w_mean + b_mean
        log_std = np.clip(x @ w_log_std + b_log_std, self.LOG_STD_MIN, self.LOG_STD_MAX)
        eps = self.sampling_rng.standard_normal(mean.shape).astype(np.float32)
        return np.tanh(mean + np.exp(log_std) * eps)


class SbxSac(sbx.SAC):
    """SBX's ``SAC`` with :class:`NumpySamplingPolicy` as its MLP policy."""

    policy_aliases = {**sbx.SAC.policy_aliases, "MlpPolicy": NumpySamplingPolicy}  # noqa: RUF012

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.seed_sampling(0 if self.seed is None else int(self.seed))

    def set_random_seed(self, seed: int | None = None) -> None:
        super().set_random_seed(seed)
        if seed is not None and getattr(self, "policy", None) is not None:
            self.policy.seed_sampling(int(seed))
