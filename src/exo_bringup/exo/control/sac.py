"""The trained SAC policy as a controller: observation in, exo torque (N m) out, no torch.

A policy exported by :mod:`exo.learn.export` (``exo export-policy``) is a folder::

    policy.npz    actor weights (what the default numpy backend runs)
    policy.onnx   the same deterministic actor for onnxruntime (backend "onnx")
    policy.pt     the same actor as TorchScript (for torch users; not read here)
    policy.json   the card: observation layout and scales, action scaling, training record

Inference is the deterministic SAC action, the mean of the squashed Gaussian::

    h_0 = obs                                    (float, OBS_DIM elements, see exo.envs.observation)
    h_i = gelu(W_i h_{i-1} + b_i)                 for each hidden layer
    a   = tanh(W_mu h_n + b_mu)                   in [-1, 1]
    torque_nm = clip(a * action_scale_nm, -torque_limit_nm, +torque_limit_nm)

with the exact GELU of torch (``nn.GELU()``, ``approximate="none"``):
``gelu(x) = 0.5 x (1 + erf(x / sqrt 2))``. ``scipy.special.erf`` matches torch's
float64 GELU to 1e-15 and runs a 64-element layer in about 1.5 us
(``np.frompyfunc(math.erf)``: same accuracy, 12 us); the tanh approximation differs
by up to 5e-4 and would not reproduce the trained actor. The numpy backend computes
in float64 (torch runs float32: outputs agree within about 1e-6).

``action_scale_nm`` comes from the card (100 N m: the env's action is torque / 100 N m);
``torque_limit_nm`` is an extra output clip (e.g. a per-user cap below the motor's 100 N m).

A **residual** policy (card entry ``residual``, :mod:`exo.envs.residual`) adds its action
to a base controller's (the PID's), with the base controller's recorded parameters::

    a_applied = clip(base_nm / action_scale_nm + residual_scale * a, -residual_limit, residual_limit)
    torque_nm = clip(a_applied * action_scale_nm, -torque_limit_nm, +torque_limit_nm)

The base controller's state (the PID integral) is reset by :meth:`SacController.reset`.

Loading is cached per (file, modification time, backend), so the evaluator, which
builds a fresh controller for every trial, reads each file once per process.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from exo.control.residual import ResidualSpec, combine

Backend = Literal["numpy", "onnx"]

#: Names of the files of an exported policy folder.
NPZ_NAME, ONNX_NAME, TORCHSCRIPT_NAME, CARD_NAME = "policy.npz", "policy.onnx", "policy.pt", "policy.json"
#: Folder under :func:`exo.paths.models_dir` used when ``policy`` is empty: the best committed policy
#: (docs/results.md: the residual SAC with a hard 85 N m limit, the only one within the paper's peak
#: margin at every spasticity level).
DEFAULT_POLICY_NAME = "sac-residual-limited-reduced"
#: Version of the policy.npz layout written by :mod:`exo.learn.export`.
NPZ_FORMAT_VERSION = 1
#: Default action scaling: env action = torque / 100 N m.
DEFAULT_ACTION_SCALE_NM = 100.0

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as torch's ``nn.GELU()``: ``0.5 x (1 + erf(x / sqrt 2))``."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x * _SQRT1_2))


class NumpyActor:
    """Deterministic SAC actor (GELU MLP + tanh) from plain weight matrices.

    Args:
        hidden: ``[(W, b), ...]`` of the hidden layers, ``W`` of shape (out, in) as in torch.
        mu: ``(W, b)`` of the mean head, ``W`` of shape (action_dim, hidden).
    """

    def __init__(self, hidden: list[tuple[np.ndarray, np.ndarray]], mu: tuple[np.ndarray, np.ndarray]) -> None:
        if not hidden:
            raise ValueError("the actor needs at least one hidden layer")
        self.hidden = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)) for w, b in hidden]
        self.mu = (np.asarray(mu[0], dtype=np.float64), np.asarray(mu[1], dtype=np.float64))
        size = self.hidden[0][0].shape[1]
        for i, (w, b) in enumerate([*self.hidden, self.mu]):
            if w.ndim != 2 or w.shape[1] != size or b.shape != (w.shape[0],):
                raise ValueError(f"layer {i}: weight {w.shape} / bias {b.shape} do not chain from width {size}")
            size = w.shape[0]
        self.obs_dim = int(self.hidden[0][0].shape[1])
        self.action_dim = int(self.mu[0].shape[0])

    @classmethod
    def from_npz(cls, path: str | Path) -> NumpyActor:
        """Load the arrays written by :func:`exo.learn.export.write_npz`."""
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"]) if "format_version" in data else -1
            if version != NPZ_FORMAT_VERSION:
                raise ValueError(f"{path}: policy.npz format {version}, this exo reads {NPZ_FORMAT_VERSION}")
            activation = str(data["activation"])
            if activation != "gelu":
                raise ValueError(f"{path}: activation {activation!r}, only 'gelu' is implemented")
            n = int(data["n_hidden"])
            hidden = [(data[f"hidden.{i}.weight"], data[f"hidden.{i}.bias"]) for i in range(n)]
            return cls(hidden, (data["mu.weight"], data["mu.bias"]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] of shape (batch, action_dim) for obs of shape (batch, obs_dim) or (obs_dim,)."""
        h = np.asarray(obs, dtype=np.float64).reshape(-1, self.obs_dim)
        for w, b in self.hidden:
            h = gelu(h @ w.T + b)
        w, b = self.mu
        return np.tanh(h @ w.T + b)


class OnnxActor:
    """The exported ``policy.onnx`` (input ``obs`` float32 (batch, obs_dim), output ``action``) in onnxruntime."""

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one small matmul chain: threads only add latency
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.obs_dim = int(self.session.get_inputs()[0].shape[1])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float64)


_CACHE: dict[tuple[str, int, str], Any] = {}


def _load_actor(path: Path, backend: Backend) -> NumpyActor | OnnxActor:
    key = (str(path.resolve()), os.stat(path).st_mtime_ns, backend)
    if key not in _CACHE:
        _CACHE[key] = NumpyActor.from_npz(path) if backend == "numpy" else OnnxActor(path)
    return _CACHE[key]


def resolve_policy_path(policy: str | Path, backend: Backend = "numpy") -> Path:
    """The file the backend reads for ``policy``: an exported folder, one of its files, or "" (default).

    Raises:
        FileNotFoundError: nothing to load (the message says how to make a policy).
    """
    wanted = NPZ_NAME if backend == "numpy" else ONNX_NAME
    if not str(policy):
        from exo.paths import models_dir, repo_root

        # models/ of the install; in a git checkout also the top-level models/
        candidates = [models_dir() / DEFAULT_POLICY_NAME]
        root = repo_root()
        if root is not None:
            candidates.append(root / "models" / DEFAULT_POLICY_NAME)
        for folder in candidates:
            if (folder / wanted).is_file():
                return folder / wanted
        raise FileNotFoundError(
            f"no default SAC policy ({wanted} in {' or '.join(map(str, candidates))}); train one "
            f"(exo train --algo sac ...) and export it (exo export-policy RUN_DIR --out models/{DEFAULT_POLICY_NAME}), "
            "or pass policy=<folder or file>"
        )
    path = Path(policy).expanduser()
    if path.is_dir():
        path = path / wanted
    elif path.name in (NPZ_NAME, ONNX_NAME, CARD_NAME, TORCHSCRIPT_NAME):
        path = path.with_name(wanted)  # any file of an exported folder names the folder
    elif path.suffix != Path(wanted).suffix:
        raise ValueError(f"backend {backend!r} reads a {Path(wanted).suffix} file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"SAC policy file not found: {path} (backend {backend!r} reads {wanted})")
    return path


def read_card(policy_file: Path) -> dict[str, Any]:
    """The ``policy.json`` next to a policy file ({} if there is none)."""
    card = policy_file.with_name(CARD_NAME)
    return json.loads(card.read_text()) if card.is_file() else {}


class SacController:
    """Exo torque from the deterministic action of an exported SAC actor (numpy or onnxruntime).

    Args:
        policy: an exported policy folder (``exo export-policy --out``), or its
            ``policy.npz``/``policy.onnx``; "" = the best committed policy (``DEFAULT_POLICY_NAME``).
        torque_limit_nm: output clip, N m (> 0; the motor's 100 N m by default).
        backend: "numpy" (default; numpy + scipy only) or "onnx" (onnxruntime).

    Raises:
        FileNotFoundError: no policy file. ValueError: bad arguments, or the
            policy does not take this exo's observation vector.
    """

    name = "sac"

    def __init__(self, policy: str = "", torque_limit_nm: float = 100.0, backend: str = "numpy") -> None:
        if backend not in ("numpy", "onnx"):
            raise ValueError(f"backend must be 'numpy' or 'onnx', got {backend!r}")
        if not (math.isfinite(torque_limit_nm) and torque_limit_nm > 0.0):
            raise ValueError(f"torque_limit_nm must be finite and > 0, got {torque_limit_nm}")
        self.backend: Backend = backend  # type: ignore[assignment]
        self.torque_limit_nm = float(torque_limit_nm)
        self.policy_path = resolve_policy_path(policy, self.backend)
        self.card = read_card(self.policy_path)
        self.action_scale_nm = float(self.card.get("action", {}).get("scale_nm", DEFAULT_ACTION_SCALE_NM))
        self._actor = _load_actor(self.policy_path, self.backend)
        from exo.envs.observation import OBS_DIM

        if self._actor.obs_dim != OBS_DIM:
            raise ValueError(f"{self.policy_path}: policy takes {self._actor.obs_dim} observations, exo builds {OBS_DIM}")
        self._set_residual(self.card.get("residual"))

    @classmethod
    def from_actor(cls, actor: NumpyActor, torque_limit_nm: float = 100.0,
                   action_scale_nm: float = DEFAULT_ACTION_SCALE_NM, residual: Any = None) -> SacController:
        """A controller around in-memory weights (periodic evaluation during training).

        ``residual``: an :class:`exo.envs.residual.ResidualSpec` (or its card dict) for a residual policy.
        """
        self = cls.__new__(cls)
        self.backend = "numpy"
        self.torque_limit_nm = float(torque_limit_nm)
        self.policy_path = Path("<memory>")
        self.card = {}
        self.action_scale_nm = float(action_scale_nm)
        self._actor = actor
        self._set_residual(residual)
        return self

    def _set_residual(self, residual: Any) -> None:
        if residual is None or isinstance(residual, ResidualSpec):
            self.residual = residual
        else:
            try:
                self.residual = ResidualSpec.from_dict(residual)
            except ValueError as exc:
                raise ValueError(f"{self.policy_path}: bad 'residual' entry in the card: {exc}") from exc
        self._base = self.residual.make_base() if self.residual is not None else None

    def reset(self) -> None:
        """Reset the base controller of a residual policy (the policy itself is feed-forward)."""
        if self._base is not None:
            self._base.reset()

    def action(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions in [-1, 1], shape (batch, 1), for one or a batch of observations."""
        return self._actor(obs)

    def act(self, obs: np.ndarray) -> float:
        """Exo torque request in N m (+ = flexion) for one observation vector."""
        a = float(self._actor(obs)[0, 0])
        if self._base is not None:
            a = combine(self._base.act(obs) / self.action_scale_nm, a, self.residual.scale, self.residual.limit)
        torque = a * self.action_scale_nm
        limit = self.torque_limit_nm
        return limit if torque > limit else -limit if torque < -limit else torque

    def params(self) -> dict[str, Any]:
        """Parameters for run records and ``make_controller("sac", **params)``."""
        out: dict[str, Any] = {"policy": str(self.policy_path), "torque_limit_nm": self.torque_limit_nm,
                               "backend": self.backend}
        if self.residual is not None:
            out["residual"] = f"{self.residual.controller} x{self.residual.scale:g}"
        return out

    def __getstate__(self) -> dict[str, Any]:  # onnxruntime sessions do not pickle: reload on the other side
        state = dict(self.__dict__)
        if self.backend == "onnx":
            state["_actor"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._actor is None:
            self._actor = _load_actor(self.policy_path, self.backend)
