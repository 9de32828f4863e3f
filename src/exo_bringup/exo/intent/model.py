"""The intent model: a one-layer LSTM over feature frames with a class head and a velocity head.

Training uses torch (:class:`IntentLSTM`); inference, in the intent_estimator node and the
benchmarks, runs the exported weights in numpy (:class:`NumpyIntentModel`, no torch import),
one frame at a time with the LSTM state carried across frames (stateful: the context is the
whole session, not one window).

Files of an exported model (a folder): ``model.npz`` (weights, input mean/std) and
``card.json`` (classes, feature configuration, input layout, training data, seed, metrics).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from exo.intent.drive import CLASSES
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.intent.features import FEATURES, FeatureConfig

#: Scale of the velocity head: the network predicts velocity / VELOCITY_SCALE.
VELOCITY_SCALE_RAD_S = 1.5


def input_names(channel_names: tuple[str, ...], kinematics: bool, emg: bool = True) -> list[str]:
    """Names of the model's input columns (the card's ``input_layout``)."""
    names = [f"log_{f}/{ch}" for f in ("mav", "rms", "wl") for ch in channel_names] if emg else []
    names += [f"{f}/{ch}" for f in ("zc", "ssc") for ch in channel_names] if emg else []
    if kinematics:
        names += ["knee_angle_rad", "knee_velocity_rad_s/2"]
    return names


def make_torch_model(n_inputs: int, hidden: int = 64):
    """The torch module (imported lazily: torch is only needed to train)."""
    import torch
    from torch import nn

    class IntentLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_inputs))
            self.register_buffer("std", torch.ones(n_inputs))
            self.lstm = nn.LSTM(n_inputs, hidden, batch_first=True)
            self.head = nn.Linear(hidden, len(CLASSES) + 1)

        def forward(self, x, state=None):
            h, state = self.lstm((x - self.mean) / self.std, state)
            out = self.head(h)
            return out[..., : len(CLASSES)], out[..., len(CLASSES)], state

    return IntentLSTM()


def export(model: Any, out_dir: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model.npz`` and ``card.json`` of a trained torch model into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    np.savez(out / "model.npz", mean=sd["mean"], std=sd["std"], w_ih=sd["lstm.weight_ih_l0"],
             w_hh=sd["lstm.weight_hh_l0"], b=sd["lstm.bias_ih_l0"] + sd["lstm.bias_hh_l0"],
             w_out=sd["head.weight"], b_out=sd["head.bias"])
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return out


def base_card(config: FeatureConfig, kinematics: bool, calibrated: bool, hidden: int,
              emg: bool = True, channel_names: tuple[str, ...] = CHANNEL_NAMES) -> dict[str, Any]:
    """The card entries that describe the model's inputs and outputs."""
    return {
        "model": "intent-lstm",
        "classes": list(CLASSES),
        "channel_names": list(channel_names),
        "features": list(FEATURES),
        "feature_config": asdict(config),
        "kinematics": kinematics,
        "emg": emg,
        "calibrated": calibrated,
        "hidden": hidden,
        "input_layout": input_names(tuple(channel_names), kinematics, emg),
        "velocity_scale_rad_s": VELOCITY_SCALE_RAD_S,
        "outputs": {"probabilities": "softmax over classes", "velocity_rad_s": "intended knee velocity, + = flexion"},
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyIntentModel:
    """Exported intent model, stateful, in numpy (float32).

    Args:
        path: folder with ``model.npz`` and ``card.json``.

    Raises:
        FileNotFoundError: a file is missing. ValueError: the card and weights disagree.
    """

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        for name in ("model.npz", "card.json"):
            if not (p / name).is_file():
                raise FileNotFoundError(f"intent model {p}: {name} missing")
        self.card: dict[str, Any] = json.loads((p / "card.json").read_text())
        w = np.load(p / "model.npz")
        self.mean, self.std = w["mean"], w["std"]
        self.w_ih, self.w_hh, self.b = w["w_ih"], w["w_hh"], w["b"]
        self.w_out, self.b_out = w["w_out"], w["b_out"]
        self.hidden = self.w_hh.shape[1]
        self.n_inputs = self.w_ih.shape[1]
        if len(self.card["input_layout"]) != self.n_inputs:
            raise ValueError(f"intent model {p}: card lists {len(self.card['input_layout'])} inputs, "
                             f"weights take {self.n_inputs}")
        fc = dict(self.card["feature_config"])
        fc["band_hz"] = tuple(fc["band_hz"])
        self.feature_config = FeatureConfig(**fc)
        self.classes: tuple[str, ...] = tuple(self.card["classes"])
        self.channel_names: tuple[str, ...] = tuple(self.card["channel_names"])
        self.kinematics = bool(self.card["kinematics"])
        self.emg = bool(self.card.get("emg", True))
        self.calibrated = bool(self.card["calibrated"])
        self.model_id = f"{self.card.get('model', 'intent-lstm')}@{self.card.get('commit', 'unknown')[:12]}"
        self.reset()

    def reset(self) -> None:
        """Forget the context (new session)."""
        self.h = np.zeros(self.hidden, dtype=np.float32)
        self.c = np.zeros(self.hidden, dtype=np.float32)

    def step(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """One frame -> (class probabilities, intended velocity rad/s); advances the state."""
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        g = self.w_ih @ z + self.w_hh @ self.h + self.b
        n = self.hidden
        i, f, gg, o = _sigmoid(g[:n]), _sigmoid(g[n:2 * n]), np.tanh(g[2 * n:3 * n]), _sigmoid(g[3 * n:])
        self.c = f * self.c + i * gg
        self.h = o * np.tanh(self.c)
        out = self.w_out @ self.h + self.b_out
        logits = out[: len(self.classes)]
        e = np.exp(logits - logits.max())
        return e / e.sum(), float(out[len(self.classes)]) * float(self.card["velocity_scale_rad_s"])

    def run(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A whole session from a fresh state: (probabilities (n, classes), velocity (n,))."""
        self.reset()
        probs = np.zeros((len(xs), len(self.classes)))
        vel = np.zeros(len(xs))
        for k, x in enumerate(xs):
            probs[k], vel[k] = self.step(x)
        return probs, vel
