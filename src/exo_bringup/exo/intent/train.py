"""Build the twin dataset, train the intent LSTM, evaluate on held-out subjects, export.

Subjects: split ``s`` subject ``i`` has spasticity level ``i % 4`` and seed
``SPLIT_BASE[s] + i`` (``train`` seeds also offset by ``1000 * seed``): the test
subjects are the same for every training seed and never appear in training or
validation. Training/validation subjects sit in a transparent exo or one driven by the
PID to the task's target (``controllers``, in turn); each test subject is evaluated in both. Sessions are cached as ``.npz`` under ``<out>/../.cache-intent`` (or
``cache_dir``) so ablations reuse them.

Training (torch, CPU): random chunks of ``seq_frames`` frames from every training
session per epoch, cross-entropy with inverse-frequency class weights plus
``velocity_weight`` x MSE of velocity / 1.5 rad/s, Adam; the epoch with the best
validation macro-F1 (stateful run over whole sessions) is kept.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from exo.intent.dataset import Frames, Session, session_frames, simulate_session
from exo.intent.drive import CLASSES
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.intent.evaluate import IntentMetrics, evaluate, predict_sessions
from exo.intent.features import FeatureConfig
from exo.intent.model import VELOCITY_SCALE_RAD_S, NumpyIntentModel, base_card, export, make_torch_model

SPLIT_BASE = {"train": 10_000, "val": 500_000, "test": 900_000}


@dataclass
class TrainConfig:
    """Hyper-parameters and data of one training run (stored in the model card).

    Attributes:
        train_subjects / val_subjects / test_subjects: number of simulated subjects per split.
        duration_s: session length per subject, s.
        twin: twin kind simulating the subjects.
        seed: training seed (training subjects, chunking, initialisation).
        hidden: LSTM units.
        epochs, batch, seq_frames, lr: optimisation (seq_frames x 20 ms per chunk).
        velocity_weight: weight of the velocity loss.
        kinematics: feed knee angle/velocity to the model.
        emg: feed the EMG features to the model (False: the kinematics-only ablation).
        controllers: exo controllers of the training/validation sessions, in turn per group of
            four subjects ("zero" = transparent, "pid" = knee driven to the task's target);
            every test subject is evaluated under each of them.
        calibrated: normalise amplitudes by each subject's calibration segment.
        window_s: feature window, s.
    """

    train_subjects: int = 48
    val_subjects: int = 8
    test_subjects: int = 16
    duration_s: float = 60.0
    twin: str = "reduced"
    seed: int = 0
    hidden: int = 64
    epochs: int = 40
    batch: int = 32
    seq_frames: int = 150
    lr: float = 3e-3
    velocity_weight: float = 0.5
    kinematics: bool = True
    calibrated: bool = True
    emg: bool = True
    controllers: tuple[str, ...] = ("zero", "pid")
    window_s: float = 0.2
    threads: int = 1
    extra: dict = field(default_factory=dict)


def subject_seeds(split: str, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """(level, seed) of the ``n`` subjects of ``split``."""
    base = SPLIT_BASE[split] + (1000 * seed if split == "train" else 0)
    return [(i % 4, base + i) for i in range(n)]


def split_controllers(n: int, controllers: tuple[str, ...]) -> list[str]:
    """The exo controller of each of ``n`` subjects: ``controllers`` in turn per group of 4 (all levels each)."""
    return [controllers[(i // 4) % len(controllers)] for i in range(n)]


def load_sessions(subjects: list[tuple[int, int]], duration_s: float, twin: str, cache_dir: Path,
                  log=print, controller: str | list[str] = "zero") -> list[Session]:
    """Simulate (or read from the cache) one session per (level, seed), the exo run by ``controller``
    (one name for all, or one per subject)."""
    controllers = [controller] * len(subjects) if isinstance(controller, str) else list(controller)
    from exo.twin import make_twin

    cache_dir.mkdir(parents=True, exist_ok=True)
    tw = None
    out = []
    for (level, seed), controller in zip(subjects, controllers, strict=True):
        tag = "" if controller == "zero" else f"-{controller}"
        path = cache_dir / f"{twin}{tag}-L{level}-s{seed}-{duration_s:g}s.npz"
        if path.is_file():
            d = np.load(path)
            out.append(Session(d["emg_v"], float(d["fs"]), tuple(str(c) for c in d["channels"]), float(d["step_s"]),
                               d["intent"], d["velocity"], d["angle"], d["knee_v"], float(d["cal_s"]), level, seed))
            continue
        tw = tw if tw is not None else make_twin(twin)
        t0 = time.perf_counter()
        s = simulate_session(level, seed, duration_s, twin=tw, controller=controller)
        np.savez_compressed(path, emg_v=s.emg_v, fs=s.sample_rate_hz, channels=np.array(s.channel_names),
                            step_s=s.step_s, intent=s.intent, velocity=s.velocity_rad_s, angle=s.knee_angle_rad,
                            knee_v=s.knee_velocity_rad_s, cal_s=s.calibration_s)
        log(f"  simulated level {level} seed {seed} ({time.perf_counter() - t0:.1f} s)")
        out.append(s)
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(cfg: TrainConfig, out_dir: str | Path, cache_dir: str | Path | None = None, log=print,
          recorded: dict[str, list[Path]] | None = None) -> dict:
    """Train, evaluate on the test subjects, export to ``out_dir``; returns the card.

    ``recorded``: train on recorded sessions instead of twin subjects (:mod:`exo.intent.loader`
    files, ``{"train": [...], "val": [...], "test": [...]}``, one subject per file; every file's
    sample rate and channel names must match; unlabelled samples (-1) are ignored).
    """
    import torch
    from torch import nn

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else out.parent / ".cache-intent"
    fc = FeatureConfig(window_s=cfg.window_s)
    t_start = time.perf_counter()
    frames: dict[str, list[Frames]] = {}
    channel_names = CHANNEL_NAMES
    if recorded is not None:
        from exo.intent.loader import RecordingError, load_recording

        loaded = {k: [load_recording(p) for p in recorded.get(k, [])] for k in ("train", "val", "test")}
        if not all(loaded.values()):
            raise RecordingError("recorded training needs at least one file for each of train, val and test")
        first = loaded["train"][0]
        for s in (s for v in loaded.values() for s in v):
            if s.channel_names != first.channel_names or s.sample_rate_hz != first.sample_rate_hz:
                raise RecordingError(f"recordings disagree: {s.channel_names} at {s.sample_rate_hz} Hz vs "
                                     f"{first.channel_names} at {first.sample_rate_hz} Hz")
        fc = FeatureConfig(sample_rate_hz=first.sample_rate_hz, window_s=cfg.window_s)
        channel_names = first.channel_names
        frames = {k: [session_frames(s, fc, cfg.calibrated, cfg.kinematics, cfg.emg) for s in loaded[k]]
                  for k in ("train", "val")}
        test_frames = {"recorded": [session_frames(s, fc, cfg.calibrated, cfg.kinematics, cfg.emg)
                                    for s in loaded["test"]]}
        cfg = replace(cfg, controllers=("recorded",))
    for split, n in ((("train", cfg.train_subjects), ("val", cfg.val_subjects)) if recorded is None else ()):
        log(f"{split}: {n} subjects x {cfg.duration_s:g} s, exo: {', '.join(cfg.controllers)} in turn")
        sessions = load_sessions(subject_seeds(split, n, cfg.seed), cfg.duration_s, cfg.twin, cache, log,
                                 split_controllers(n, cfg.controllers))
        frames[split] = [session_frames(s, fc, cfg.calibrated, cfg.kinematics, cfg.emg) for s in sessions]
    if recorded is None:
        test_frames: dict[str, list[Frames]] = {}
    for controller in (cfg.controllers if recorded is None else ()):
        log(f"test: {cfg.test_subjects} subjects x {cfg.duration_s:g} s, exo: {controller}")
        sessions = load_sessions(subject_seeds("test", cfg.test_subjects), cfg.duration_s, cfg.twin, cache, log,
                                 controller)
        test_frames[controller] = [session_frames(s, fc, cfg.calibrated, cfg.kinematics, cfg.emg)
                                   for s in sessions]
    t_data = time.perf_counter() - t_start

    x_all = np.concatenate([f.x for f in frames["train"]])
    y_all = np.concatenate([f.intent for f in frames["train"]])
    y_all = y_all[y_all >= 0]
    model = make_torch_model(x_all.shape[1], cfg.hidden)
    model.mean.copy_(torch.from_numpy(x_all.mean(axis=0)))
    model.std.copy_(torch.from_numpy(x_all.std(axis=0) + 1e-3))
    counts = np.bincount(y_all, minlength=len(CLASSES)).astype(float)
    weights = torch.tensor(counts.sum() / (len(CLASSES) * np.maximum(counts, 1.0)), dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weights, ignore_index=-1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)

    def chunks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, vs = [], [], []
        for f in frames["train"]:
            start = int(rng.integers(cfg.seq_frames))
            for a in range(start, len(f.x) - cfg.seq_frames + 1, cfg.seq_frames):
                xs.append(f.x[a:a + cfg.seq_frames])
                ys.append(f.intent[a:a + cfg.seq_frames])
                vs.append(f.velocity_rad_s[a:a + cfg.seq_frames])
        return np.stack(xs), np.stack(ys), np.stack(vs).astype(np.float32)

    def val_f1() -> float:
        model.eval()
        with torch.no_grad():
            preds = []
            for f in frames["val"]:
                logits, vel, _ = model(torch.from_numpy(f.x)[None])
                preds.append((logits[0].argmax(-1).numpy(), vel[0].numpy() * VELOCITY_SCALE_RAD_S))
        model.train()
        return evaluate(frames["val"], preds).macro_f1

    best = (-1.0, None, -1)
    history = []
    t_train0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        xs, ys, vs = chunks()
        order = rng.permutation(len(xs))
        total = 0.0
        for b in range(0, len(order), cfg.batch):
            idx = order[b:b + cfg.batch]
            x = torch.from_numpy(xs[idx])
            y = torch.from_numpy(ys[idx])
            v = torch.from_numpy(vs[idx]) / VELOCITY_SCALE_RAD_S
            logits, vel, _ = model(x)
            loss = ce(logits.reshape(-1, len(CLASSES)), y.reshape(-1)) + cfg.velocity_weight * torch.mean((vel - v) ** 2)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        f1 = val_f1()
        history.append({"epoch": epoch, "loss": total / len(order), "val_macro_f1": f1})
        log(f"epoch {epoch:3d} loss {total / len(order):.4f} val macro-F1 {f1:.4f}")
        if f1 > best[0]:
            best = (f1, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
    t_train = time.perf_counter() - t_train0
    model.load_state_dict(best[1])

    card = base_card(fc, cfg.kinematics, cfg.calibrated, cfg.hidden, cfg.emg, channel_names)
    card.update({
        "commit": _git_commit(),
        "train_config": asdict(cfg),
        "command": f"exo train-intent --out {out} --seed {cfg.seed}",
        "data": {k: [str(p) for p in v] for k, v in recorded.items()} if recorded is not None else
        {split: [list(s) for s in subject_seeds(split, n, cfg.seed)] for split, n in
                 (("train", cfg.train_subjects), ("val", cfg.val_subjects), ("test", cfg.test_subjects))},
        "data_controllers": {"train": split_controllers(cfg.train_subjects, cfg.controllers),
                             "val": split_controllers(cfg.val_subjects, cfg.controllers),
                             "test": f"every test subject under each of {list(cfg.controllers)}"},
        "best_epoch": best[2],
        "val_macro_f1": best[0],
        "history": history,
        "timing_s": {"data": t_data, "train": t_train},
        "torch": torch.__version__,
    })
    export(model, out, card)
    metrics = evaluate_model(out, [f for c in cfg.controllers for f in test_frames[c]])
    card["test_metrics"] = metrics.to_dict()
    card["test_metrics_by_controller"] = {c: evaluate_model(out, test_frames[c]).to_dict() for c in cfg.controllers}
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    for name, m in [("all", card["test_metrics"]), *card["test_metrics_by_controller"].items()]:
        log(f"test (held-out subjects, exo {name}): macro-F1 {m['macro_f1']:.3f}, accuracy {m['accuracy']:.3f}, "
            f"velocity RMSE {m['velocity_rmse_rad_s']:.3f} rad/s, onset delay median "
            f"{m['onset_delay_median_s'] * 1000:.0f} ms p90 {m['onset_delay_p90_s'] * 1000:.0f} ms")
    return card


def evaluate_model(model_dir: str | Path, frames: list[Frames]) -> IntentMetrics:
    """Metrics of the exported model in ``model_dir`` (numpy inference, stateful) on ``frames``."""
    model = NumpyIntentModel(model_dir)
    return evaluate(frames, predict_sessions(model, frames))
