"""``exo train-intent`` (twin EMG dataset -> LSTM intent model + card) and ``exo eval-intent``.

torch is imported only inside ``train-intent``; ``eval-intent`` runs the exported model in numpy.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_CACHE = Path("runs/intent/cache")


def train_intent_command(
    out: Annotated[Path, typer.Option(help="Output folder of the model (model.npz + card.json).")] = Path(
        "runs/intent/lstm"),
    seed: Annotated[int, typer.Option(help="Training seed (training subjects, chunks, initialisation).")] = 0,
    train_subjects: Annotated[int, typer.Option(min=4, help="Simulated training subjects (levels 0-3 in turn).")] = 48,
    val_subjects: Annotated[int, typer.Option(min=4, help="Validation subjects (model selection).")] = 8,
    test_subjects: Annotated[int, typer.Option(min=4, help="Held-out test subjects (the same for every seed).")] = 16,
    duration: Annotated[float, typer.Option(min=20.0, help="Session length per subject, s.")] = 60.0,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 40,
    hidden: Annotated[int, typer.Option(min=4, help="LSTM units.")] = 64,
    window: Annotated[float, typer.Option(min=0.04, max=1.0, help="Feature window, s.")] = 0.2,
    kinematics: Annotated[bool, typer.Option("--kinematics/--emg-only",
                                             help="Fuse knee angle/velocity from joint_states.")] = True,
    calibrated: Annotated[bool, typer.Option("--calibrated/--uncalibrated",
                                             help="Normalise by each subject's calibration segment.")] = True,
    emg: Annotated[bool, typer.Option("--emg/--kinematics-only",
                                      help="Use the EMG features (--kinematics-only: the ablation without EMG).")] = True,
    cache: Annotated[Path, typer.Option(help="Folder caching the simulated sessions.")] = DEFAULT_CACHE,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    controllers: Annotated[str, typer.Option(
        help="Comma-separated exo controllers of the sessions, in turn (zero = transparent, pid).")] = "zero,pid",
    train_data: Annotated[list[Path] | None, typer.Option(
        help="Recorded sessions (.npz/.csv, docs/intent.md) to train on instead of the twin (repeatable; "
             "needs --val-data and --test-data too).")] = None,
    val_data: Annotated[list[Path] | None, typer.Option(help="Recorded validation sessions (repeatable).")] = None,
    test_data: Annotated[list[Path] | None, typer.Option(help="Recorded held-out sessions (repeatable).")] = None,
) -> None:
    """Simulate subjects in the twin, train the intent LSTM, evaluate it on held-out subjects, export it."""
    from exo.intent.train import TrainConfig, train

    cfg = TrainConfig(train_subjects=train_subjects, val_subjects=val_subjects, test_subjects=test_subjects,
                      duration_s=duration, seed=seed, hidden=hidden, epochs=epochs, kinematics=kinematics,
                      calibrated=calibrated, emg=emg, window_s=window, threads=threads,
                      controllers=tuple(c.strip() for c in controllers.split(",") if c.strip()))
    from exo.intent.loader import RecordingError

    recorded = None
    if train_data or val_data or test_data:
        recorded = {"train": list(train_data or []), "val": list(val_data or []), "test": list(test_data or [])}
    t0 = time.perf_counter()
    try:
        card = train(cfg, out, cache_dir=cache, log=lambda line: print(line, flush=True), recorded=recorded)
    except RecordingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    print(f"done in {(time.perf_counter() - t0) / 60:.1f} min -> {out} (card.json: test_metrics)", flush=True)
    for name, m in card["test_metrics_by_controller"].items():
        print(f"held-out subjects, exo controller {name}:")
        _print_levels(m)
    print("held-out subjects, both:")
    _print_levels(card["test_metrics"])


def _print_levels(m: dict) -> None:
    print("level  accuracy  macro-F1  vel RMSE rad/s  onset median ms  onset p90 ms  misses")
    rows = [(str(k), v) for k, v in m["per_level"].items()] + [("all", m)]
    for name, v in rows:
        print(f"{name:>5}  {v['accuracy']:8.3f}  {v['macro_f1']:8.3f}  {v['velocity_rmse_rad_s']:14.3f}  "
              f"{v['onset_delay_median_s'] * 1000:15.0f}  {v['onset_delay_p90_s'] * 1000:12.0f}  "
              f"{v['onset_misses']}/{v['onsets']}")


def eval_intent_command(
    model: Annotated[Path | None, typer.Argument(
        help="Model folder (model.npz + card.json); default: the committed models/intent/lstm-reduced.")] = None,
    subjects: Annotated[int, typer.Option(min=4, help="Held-out test subjects (levels 0-3 in turn).")] = 16,
    duration: Annotated[float, typer.Option(min=20.0, help="Session length per subject, s.")] = 60.0,
    data: Annotated[list[Path] | None, typer.Option(
        help="Recorded sessions (.npz/.csv, docs/intent.md) instead of twin subjects (repeatable).")] = None,
    controller: Annotated[str, typer.Option(
        help="Exo controller during the twin sessions: zero (transparent, as in training) or pid (knee driven "
             "to the extension target, the user works against it).")] = "zero",
    cache: Annotated[Path, typer.Option(help="Folder caching the simulated sessions.")] = DEFAULT_CACHE,
    out: Annotated[Path | None, typer.Option(help="Write the metrics as JSON here.")] = None,
) -> None:
    """Accuracy, macro-F1, velocity RMSE, onset delay (per level) and per-window inference latency."""
    if model is None:  # the installed committed model, wherever the command runs from
        from exo.paths import models_dir

        model = models_dir() / "intent" / "lstm-reduced"

    from exo.intent.dataset import session_frames
    from exo.intent.loader import RecordingError, load_recording
    from exo.intent.model import NumpyIntentModel
    from exo.intent.train import evaluate_model, load_sessions, subject_seeds

    try:
        m = NumpyIntentModel(model)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        sessions = ([load_recording(p) for p in data] if data else
                    load_sessions(subject_seeds("test", subjects), duration, m.card["train_config"]["twin"], cache,
                                  log=lambda line: print(line, flush=True), controller=controller))
        frames = [session_frames(s, m.feature_config, m.calibrated, m.kinematics, m.emg) for s in sessions]
    except (RecordingError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    metrics = evaluate_model(model, frames).to_dict()
    latency = inference_latency(m, 2000)
    metrics["latency_s"] = latency
    _print_levels(metrics)
    print(f"inference per window (features + LSTM step): wall p50 {latency['p50'] * 1e3:.3f} ms, "
          f"p99 {latency['p99'] * 1e3:.3f} ms; CPU p50 {latency['cpu_p50'] * 1e3:.3f} ms, "
          f"p99 {latency['cpu_p99'] * 1e3:.3f} ms over {latency['n']} windows "
          f"(load average {latency['loadavg_1min']:.1f})")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"model": str(model), **metrics}, indent=2, default=float) + "\n")


def inference_latency(model, n_windows: int) -> dict:
    """Time of one window (s): a 20 ms packet through the filters, features, one model step.

    p50/p99/max over ``n_windows`` windows (the first 10 are warm-up and not counted), as wall
    time (``p50``, ``p99``, ``max``: includes being preempted on a loaded machine) and as the
    thread's CPU time (``cpu_p50``, ``cpu_p99``, ``cpu_max``: the computation itself).
    """
    import numpy as np

    from exo.intent.emg_synth import CHANNEL_NAMES
    from exo.intent.features import Calibration, FrameExtractor, model_inputs

    fc = model.feature_config
    extractor = FrameExtractor(fc, len(CHANNEL_NAMES))
    rng = np.random.default_rng(0)
    packet = rng.normal(0.0, 1e-4, (fc.hop, len(CHANNEL_NAMES)))
    cal = Calibration.uncalibrated(len(CHANNEL_NAMES))
    kin = np.zeros((1, 2)) if model.kinematics else None
    model.reset()
    times, cpu = [], []
    for _ in range(n_windows + 10):
        t0, c0 = time.perf_counter(), time.thread_time()
        f = extractor.push(packet)
        model.step(model_inputs(f, cal, kin)[0])
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    t, c = np.array(times[10:]), np.array(cpu[10:])
    return {"p50": float(np.median(t)), "p99": float(np.percentile(t, 99)), "max": float(t.max()),
            "cpu_p50": float(np.median(c)), "cpu_p99": float(np.percentile(c, 99)), "cpu_max": float(c.max()),
            "n": len(t), "loadavg_1min": os.getloadavg()[0]}


def register(app: typer.Typer) -> None:
    app.command("train-intent")(train_intent_command)
    app.command("eval-intent")(eval_intent_command)
