"""Metrics of an intent model on labelled sessions (held-out subjects).

Per frame (one estimate per 20 ms), after each session's calibration segment:

- accuracy and macro-F1 (F1 per class, unweighted mean over the classes present in the
  labels; supports and prediction counts per class are reported alongside);
- velocity RMSE, rad/s (predicted vs intended knee velocity);
- onset detection delay, s: for every switch of the label from *hold* to a movement,
  the time from the switch (the start of the drive's onset ramp) to the end of the
  first frame whose predicted class is the new movement, within that movement
  segment; a segment without such a frame is a *miss* (counted, not in the delays);
- per-window inference latency, s (features + one model step), measured by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exo.intent.dataset import Frames
from exo.intent.drive import CLASSES, HOLD
from exo.intent.model import NumpyIntentModel


def macro_f1(true: np.ndarray, pred: np.ndarray, n_classes: int = len(CLASSES)) -> tuple[float, list[float]]:
    """(macro-F1, per-class F1) of integer labels.

    The macro mean is over the classes present in ``true`` (a class without support has no
    defined F1: its per-class entry is NaN). False predictions of an absent class still cost
    the present classes' recall.
    """
    f1s = []
    for c in range(n_classes):
        tp = float(np.sum((pred == c) & (true == c)))
        fp = float(np.sum((pred == c) & (true != c)))
        fn = float(np.sum((pred != c) & (true == c)))
        if tp + fn == 0:
            f1s.append(float("nan"))
        else:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    present = [f for f in f1s if not np.isnan(f)]
    return (float(np.mean(present)) if present else float("nan")), f1s


def onset_delays(true: np.ndarray, pred: np.ndarray, time_s: np.ndarray) -> tuple[list[float], int]:
    """(delays s, misses) of hold -> movement onsets (see the module docstring).

    The switch happens within the first movement frame, so it is taken as the end of the last
    *hold* frame: the delay is an upper bound (by at most one hop) of the true one.
    """
    delays: list[float] = []
    misses = 0
    n = len(true)
    i = 1
    while i < n:
        if true[i - 1] == HOLD and true[i] != HOLD:
            cls = true[i]
            onset = time_s[i - 1]
            j = i
            hit = None
            while j < n and true[j] == cls:
                if pred[j] == cls:
                    hit = j
                    break
                j += 1
            if hit is None:
                misses += 1
            else:
                delays.append(float(time_s[hit] - onset))
            while i < n and true[i] == cls:
                i += 1
        i += 1
    return delays, misses


@dataclass
class IntentMetrics:
    """Metrics over a set of sessions (``per_level`` holds the same keys per spasticity level)."""

    accuracy: float
    macro_f1: float
    f1_per_class: list[float]
    support_per_class: list[int]
    predicted_per_class: list[int]
    velocity_rmse_rad_s: float
    onset_delay_median_s: float
    onset_delay_p90_s: float
    onsets: int
    onset_misses: int
    frames: int
    per_level: dict[int, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["per_level"] = {str(k): v for k, v in self.per_level.items()}
        return d


def _metrics(true, pred, vel_true, vel_pred, delays, misses) -> dict[str, float]:
    f1, per = macro_f1(true, pred)
    return {
        "accuracy": float(np.mean(true == pred)) if len(true) else float("nan"),
        "macro_f1": f1,
        "f1_per_class": per,
        "support_per_class": [int(np.sum(true == c)) for c in range(len(CLASSES))],
        "predicted_per_class": [int(np.sum(pred == c)) for c in range(len(CLASSES))],
        "velocity_rmse_rad_s": float(np.sqrt(np.mean((vel_true - vel_pred) ** 2))) if len(true) else float("nan"),
        "onset_delay_median_s": float(np.median(delays)) if delays else float("nan"),
        "onset_delay_p90_s": float(np.percentile(delays, 90)) if delays else float("nan"),
        "onsets": len(delays) + misses,
        "onset_misses": misses,
        "frames": len(true),
    }


def predict_sessions(model: NumpyIntentModel, sessions: list[Frames]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(predicted class, predicted velocity) per frame of each session, stateful from its start."""
    out = []
    for s in sessions:
        probs, vel = model.run(s.x)
        out.append((np.argmax(probs, axis=1), vel))
    return out


def evaluate(sessions: list[Frames], predictions: list[tuple[np.ndarray, np.ndarray]],
             skip_s: float | None = None) -> IntentMetrics:
    """Metrics of ``predictions`` on ``sessions``, ignoring frames ending before ``skip_s`` (default:
    each session's calibration segment) and unlabelled frames (-1)."""
    rows: dict[int, list] = {}
    for s, (pred, vel) in zip(sessions, predictions, strict=True):
        keep = (s.time_s > (s.calibration_s if skip_s is None else skip_s)) & (s.intent >= 0)  # after the calibration, labelled frames only
        d, m = onset_delays(s.intent[keep], pred[keep], s.time_s[keep])
        rows.setdefault(s.level, []).append((s.intent[keep], pred[keep], s.velocity_rad_s[keep], vel[keep], d, m))

    def combine(items):
        return (np.concatenate([r[0] for r in items]), np.concatenate([r[1] for r in items]),
                np.concatenate([r[2] for r in items]), np.concatenate([r[3] for r in items]),
                [x for r in items for x in r[4]], sum(r[5] for r in items))

    overall = _metrics(*combine([r for v in rows.values() for r in v]))
    per_level = {lvl: _metrics(*combine(v)) for lvl, v in sorted(rows.items())}
    return IntentMetrics(**overall, per_level=per_level)
