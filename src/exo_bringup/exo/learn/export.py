"""Export the deterministic actor of a trained SAC model (SB3 or SBX) for inference without either.

:func:`export_policy` writes, into one folder (``exo export-policy RUN_DIR --out DIR``):

- ``policy.npz``: hidden-layer and mean-head weights (float32, torch's (out, in)
  layout) plus ``format_version``, ``activation``, ``n_hidden``, ``obs_dim`` and
  ``action_scale_nm``; what :class:`exo.control.sac.SacController` runs in numpy;
- ``policy.onnx``: the same function ``action = tanh(mu(obs))``, input ``obs``
  float32 (batch, OBS_DIM), output ``action`` (batch, 1), opset 17, dynamic batch;
- ``policy.pt``: the same module as TorchScript (``torch.jit.load``);
- ``policy.json``: the card: observation layout with scales and units, action
  scaling, network, the training record (twin, level distribution, steps, seed,
  commit, wall time, configuration), the evaluation of the exported weights on
  the run's fixed subjects, file hashes, and the measured agreement of the three
  formats with torch on random observations (float64 numpy within 1e-5 of torch in float64; the
  float32 runtimes within 1e-4 of torch in float32).

Only the deterministic path is exported (:mod:`exo.learn.actor`): SAC's stochastic
actor samples ``tanh(mu + sigma * eps)`` during training; deployment uses the mean
``tanh(mu)`` (the ``log_std`` head is dropped).

The ONNX file is written with torch's TorchScript-based exporter
(``dynamo=False``): the newer torch.export-based exporter needs ``onnxscript``,
which this environment does not have. Both exporters and TorchScript are
deprecated in torch 2.9+ and warn; the warnings are silenced here, the checks
are not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exo.control.sac import (
    CARD_NAME,
    NPZ_FORMAT_VERSION,
    NPZ_NAME,
    ONNX_NAME,
    TORCHSCRIPT_NAME,
    NumpyActor,
    OnnxActor,
    SacController,
)
from exo.envs.observation import OBS_DIM, OBS_HIGH, OBS_LAYOUT, OBS_LOW, OBS_SCALE
from exo.learn.actor import DeterministicActor, actor_layers, deterministic_actor
from exo.learn.config import SacConfig
from exo.learn.evaluation import evaluate_controller
from exo.learn.learners import load_model, run_learner
from exo.learn.rundir import RunDir
from exo.records import json_safe

#: Largest |action difference| allowed between the float64 numpy actor and torch in float64 (the formula).
TOLERANCE = 1e-5
#: Largest |action difference| allowed between a float32 runtime (ONNX, TorchScript) and torch in float32.
#: Float32 rounding through the network reaches ~2e-5 on observations at the env's extreme bounds (one
#: trained residual actor: 1.4e-5 for ONNX); 1e-4 of the action range is 0.01 N m at 100 N m.
FLOAT32_TOLERANCE = 1e-4
#: ONNX opset of policy.onnx.
ONNX_OPSET = 17
#: Units of the observation entries (SI value = obs * scale).
OBS_UNITS: dict[str, str | tuple[str, ...]] = {
    "exo_knee_angle": "rad",
    "exo_knee_velocity": "rad/s",
    "exo_motor_torque": "N m",
    "thigh_pitch": "rad",
    "shank_pitch": "rad",
    "thigh_angular_velocity": "rad/s",
    "shank_angular_velocity": "rad/s",
    "interaction_torque": "N m",
    "last_action": "1 (torque / 100 N m)",
    "target_error": "rad",
    "time_fraction": "1",
    "intent": ("rad/s", "N m", "1"),
}


def write_npz(path: Path, module: DeterministicActor, action_scale_nm: float = 100.0) -> None:
    """Write ``policy.npz`` (layout in the module docstring)."""
    hidden, mu = actor_layers(module)
    arrays: dict[str, Any] = {
        "format_version": np.array(NPZ_FORMAT_VERSION),
        "activation": np.array("gelu"),
        "n_hidden": np.array(len(hidden)),
        "obs_dim": np.array(hidden[0][0].shape[1]),
        "action_scale_nm": np.array(float(action_scale_nm)),
        "mu.weight": mu[0],
        "mu.bias": mu[1],
    }
    for i, (w, b) in enumerate(hidden):
        arrays[f"hidden.{i}.weight"] = w
        arrays[f"hidden.{i}.bias"] = b
    np.savez(path, **arrays)


def write_onnx(path: Path, module: DeterministicActor) -> None:
    """Write ``policy.onnx`` (input ``obs``, output ``action``, dynamic batch)."""
    example = torch.zeros(1, OBS_DIM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["obs"],
            output_names=["action"],
            dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def write_torchscript(path: Path, module: DeterministicActor) -> None:
    """Write ``policy.pt`` (``torch.jit.script`` of the module)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))


def check_observations(n: int = 1000, seed: int = 0) -> np.ndarray:
    """Random float32 observations: half in a realistic range, half uniform over the env's bounds."""
    rng = np.random.default_rng(seed)
    realistic = rng.normal(0.0, 1.0, size=(n - n // 2, OBS_DIM)) * np.array(
        [0.6, 3.0, 0.5, 0.2, 0.6, 1.0, 3.0, 0.5, 0.6, 0.6, 0.3, 0.0, 0.0, 0.0]
    ) + np.array([0.8, 0, 0, 0, 0.8, 0, 0, 0, 0, -0.6, 0.5, 0, 0, 0])
    bounds = rng.uniform(OBS_LOW, OBS_HIGH, size=(n // 2, OBS_DIM))
    return np.clip(np.concatenate([realistic, bounds]), OBS_LOW, OBS_HIGH).astype(np.float32)


def consistency(folder: Path, module: DeterministicActor, n: int = 1000) -> dict[str, float]:
    """Max |action difference| of policy.npz (numpy), policy.onnx and policy.pt vs torch on ``n`` observations.

    Torch runs float32 (as trained); numpy runs float64, so ``numpy_vs_torch_max_abs``
    is torch's float32 rounding (~1e-6, up to ~2e-5 on observations at the env's extreme
    bounds); ``numpy_vs_torch_float64_max_abs`` compares with torch in float64 and checks
    the implementation itself (~1e-14). :func:`write_policy` gates the float64 pair and the
    float32 runtimes (ONNX, TorchScript vs torch float32) on :data:`FLOAT32_TOLERANCE`.
    """
    obs = check_observations(n)
    with torch.no_grad():
        reference = module(torch.from_numpy(obs)).numpy().astype(np.float64)
        reference64 = copy.deepcopy(module).double()(torch.from_numpy(obs).double()).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(folder / TORCHSCRIPT_NAME))
            ts = scripted(torch.from_numpy(obs)).numpy().astype(np.float64)
    numpy_actions = NumpyActor.from_npz(folder / NPZ_NAME)(obs)
    return {
        "observations": n,
        "numpy_vs_torch_max_abs": float(np.max(np.abs(numpy_actions - reference))),
        # same weights in float64 on both sides: checks the formula (GELU, layout), not float32 rounding
        "numpy_vs_torch_float64_max_abs": float(np.max(np.abs(numpy_actions - reference64))),
        "onnx_vs_torch_max_abs": float(np.max(np.abs(OnnxActor(folder / ONNX_NAME)(obs) - reference))),
        "torchscript_vs_torch_max_abs": float(np.max(np.abs(ts - reference))),
        "tolerance": TOLERANCE,
        "float32_tolerance": FLOAT32_TOLERANCE,
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def observation_card() -> dict[str, Any]:
    """The observation part of the card (layout from :data:`exo.envs.observation.OBS_LAYOUT`)."""
    layout = {}
    for key, sl in OBS_LAYOUT.items():
        layout[key] = {"slice": [sl.start, sl.stop], "scale": OBS_SCALE[key], "unit": OBS_UNITS[key]}
    return {
        "dim": OBS_DIM,
        "builder": "exo.envs.observation.build_observation (sensor data only)",
        "scaling": "obs = SI value / scale; every element clipped to [low, high]",
        "layout": layout,
        "low": OBS_LOW.tolist(),
        "high": OBS_HIGH.tolist(),
    }


def write_policy(
    model: Any,
    out_dir: str | Path,
    *,
    training: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    action_scale_nm: float = 100.0,
    residual: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the four files of an exported policy from a SAC ``model`` (SB3 or SBX); return the card.

    ``residual``: the card entry of a residual policy (:meth:`exo.control.residual.ResidualSpec.to_dict`).

    Raises:
        ValueError: a format disagrees with torch by more than :data:`TOLERANCE` (float64 numpy) or
            :data:`FLOAT32_TOLERANCE` (ONNX, TorchScript).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = deterministic_actor(model)
    write_npz(out / NPZ_NAME, module, action_scale_nm)
    write_onnx(out / ONNX_NAME, module)
    write_torchscript(out / TORCHSCRIPT_NAME, module)
    check = consistency(out, module)
    # like with like: the float32 runtimes (ONNX, TorchScript) against torch in float32, the float64
    # numpy actor against torch in float64; numpy vs torch-float32 is torch's own rounding (reported)
    limits = {"numpy_vs_torch_float64_max_abs": TOLERANCE, "onnx_vs_torch_max_abs": FLOAT32_TOLERANCE,
              "torchscript_vs_torch_max_abs": FLOAT32_TOLERANCE}
    over = {k: check[k] for k, limit in limits.items() if check[k] > limit}
    hidden, _ = actor_layers(module)
    card = {
        "format": "exo-sac-policy",
        "format_version": NPZ_FORMAT_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "controller": "exo.control.sac.SacController (make_controller('sac', policy=<this folder>))",
        "inference": "h_0 = obs; h_i = gelu(W_i h_(i-1) + b_i) (exact erf GELU); action = tanh(W_mu h_n + b_mu) "
                     "(deterministic: the mean of SAC's squashed Gaussian)",
        "files": {
            "npz": {"name": NPZ_NAME, "sha256": _sha256(out / NPZ_NAME)},
            "onnx": {"name": ONNX_NAME, "sha256": _sha256(out / ONNX_NAME), "opset": ONNX_OPSET,
                     "input": "obs float32 (batch, obs_dim)", "output": "action float32 (batch, 1)"},
            "torchscript": {"name": TORCHSCRIPT_NAME, "sha256": _sha256(out / TORCHSCRIPT_NAME)},
        },
        "observation": observation_card(),
        "action": {
            "dim": 1,
            "range": [-1.0, 1.0],
            "scale_nm": float(action_scale_nm),
            "meaning": "exo motor torque = action * scale_nm (N m, + = flexion); the env's action is torque / 100 N m",
        },
        "network": {"hidden": [int(w.shape[0]) for w, _ in hidden], "activation": "gelu (exact, erf)",
                    "output": "tanh"},
        **({"residual": residual} if residual else {}),
        "training": training or {},
        "evaluation": evaluation or {},
        "consistency": check,
    }
    (out / CARD_NAME).write_text(json.dumps(json_safe(card), indent=2, allow_nan=False) + "\n")
    if over:
        raise ValueError("exported policy disagrees with torch: " + ", ".join(
            f"{k} {v:.3g} > {limits[k]:g}" for k, v in over.items()) + f" ({check})")
    return card


def _portable_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (cards name no machine's folders)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def export_run(run_dir: str | Path, out_dir: str | Path, which: str = "best", evaluate: bool = True) -> dict[str, Any]:
    """Export the ``which`` model ("best", "final" or "latest" checkpoint) of a training run folder.

    The card gets the run's record (run.json) and, with ``evaluate``, the metrics of
    the exported ``policy.npz`` on the run's fixed evaluation subjects.

    Raises:
        FileNotFoundError: no such run or model.
    """
    run = RunDir(Path(run_dir))
    record = run.read_record()
    model_path = run.model_path(which)
    cfg = record["config"]
    model = load_model(model_path, run_learner(cfg))
    training = {
        "algo": "sac",
        "learner": run_learner(cfg),
        "library": record.get("versions", {}).get("sbx" if run_learner(cfg) == "sbx" else "stable_baselines3"),
        "run_dir": _portable_path(Path(run_dir)),
        "model": str(model_path),
        "which": which,
        "twin": record["twin"],
        "levels": {"distribution": "uniform per episode", "levels": cfg["levels"]},
        "subjects": "new subject per episode: Gaussian noise, sd 10 % of each level parameter"
                    if cfg["subject_noise"] else "nominal level parameters (no subject noise)",
        "steps": int(model.num_timesteps),
        "target_steps": record.get("steps"),
        "seed": record["seed"],
        "git": record.get("git"),
        "wall_time_s": record.get("wall_time_s"),
        "command": record.get("command"),
        "config": cfg,
        "config_sources": record.get("config_sources"),
        "versions": record.get("versions"),
        "best": record.get("best"),
    }
    started = time.perf_counter()
    spec = SacConfig().with_overrides(**cfg).residual()
    card = write_policy(model, out_dir, training=training, residual=spec.to_dict() if spec else None)
    if evaluate:
        controller = SacController(str(out_dir))
        result = evaluate_controller(controller, record["twin"], tuple(cfg["levels"]), cfg["eval_trials_per_level"],
                                     cfg["eval_seed"], dict(cfg["env_overrides"]))
        card["evaluation"] = {**result.to_dict(), "wall_time_s": round(time.perf_counter() - started, 2)}
        (Path(out_dir) / CARD_NAME).write_text(json.dumps(json_safe(card), indent=2, allow_nan=False) + "\n")
    return card
