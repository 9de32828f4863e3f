"""``exo train`` (SAC in the digital twin) and ``exo export-policy`` (a run's actor -> npz/onnx/TorchScript + card).

torch and Stable-Baselines3 are imported inside the commands, so ``exo --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from exo.cli.evaluate import _parse_params


def _yaml_mapping(key: str, text: str) -> dict:
    """A ``--set KEY={...}`` value parsed as a YAML flow mapping (ConfigError naming KEY otherwise)."""
    import yaml

    from exo.params import ConfigError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: not valid YAML ({exc})") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--set {key}: expected a mapping like {{reward__peak_above_nm: 60}}, got {text!r}")
    return value


def train_command(
    algo: Annotated[str, typer.Option(help="Algorithm (sac).")] = "sac",
    twin: Annotated[str, typer.Option(help="Digital twin: reduced (fast) or full (MyoLeg).")] = "reduced",
    steps: Annotated[int, typer.Option(min=1, help="Total env transitions of the run (summed over envs).")] = 300_000,
    seed: Annotated[int, typer.Option(help="Master seed (python, numpy, torch, envs).")] = 0,
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints, progress.csv, best/, final/).")] = Path(
        "runs/train/sac"
    ),
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest checkpoint.")] = False,
    config: Annotated[Path | None, typer.Option(help="Hyperparameter file (default config/sac.yaml).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one hyperparameter KEY=VALUE, e.g. --set batch_size=256 (repeatable); "
                     "env_overrides and residual_params take a YAML mapping, e.g. "
                     "--set 'env_overrides={reward__peak_above_nm: 60}'."),
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: when on a terminal).")
    ] = None,
) -> None:
    """Train a SAC torque policy in the twin with domain randomisation over spasticity levels 0-3."""
    from exo.learn.config import load_sac_config
    from exo.params import ConfigError

    if algo != "sac":
        raise typer.BadParameter(f"--algo must be sac, got {algo!r}")
    if twin not in ("reduced", "full"):
        raise typer.BadParameter(f"--twin must be reduced or full, got {twin!r}")
    try:
        cfg, sources = load_sac_config(config)
        overrides = _parse_params(set_ or [])
        for key in ("env_overrides", "residual_params"):
            if isinstance(overrides.get(key), str):
                overrides[key] = _yaml_mapping(key, overrides[key])
        if overrides:
            cfg = cfg.with_overrides(**overrides)
            sources = {**sources, **{k: "command line --set" for k in overrides}}
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if resume and overrides:
        raise typer.BadParameter("--set cannot change a resumed run (its run.json holds the configuration)")

    from exo.learn.sac import train

    try:
        result = train(out, twin=twin, steps=steps, seed=seed, config=cfg, config_sources=sources,
                       config_path=str(config) if config else "config/sac.yaml", resume=resume,
                       progress_bar=progress, echo=lambda line: print(line, flush=True))
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    best = result.best or {}
    print(f"done: {result.steps:,} steps in {result.wall_time_s / 60:.1f} min -> {result.run_dir} "
          f"(best mean return {best.get('mean_return', float('nan')):.1f} at {best.get('steps', 0):,} steps)", flush=True)


def export_policy_command(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder (exo train --out).")],
    out: Annotated[Path, typer.Option(help="Output folder, e.g. models/sac-reduced.")] = Path("models/sac"),
    which: Annotated[str, typer.Option(
        help="Model to export: best (by return), final, latest (checkpoint), selected (exo select-checkpoint) "
             "or a checkpoint's step count, e.g. 300000.")] = "best",
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Evaluate the exported policy on the run's fixed subjects.")
    ] = True,
) -> None:
    """Export a run's deterministic actor: policy.npz, policy.onnx, policy.pt (TorchScript) and policy.json."""
    import torch

    from exo.learn.export import export_run

    torch.set_num_threads(1)
    if which not in ("best", "final", "latest", "selected") and not which.isdigit():
        raise typer.BadParameter(f"--which must be best, final, latest, selected or a step count, got {which!r}")
    try:
        card = export_run(run_dir, out, which=which, evaluate=evaluate)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    check = card["consistency"]
    print(f"exported {card['training']['model']} ({card['training']['steps']:,} steps) -> {out}")
    print("max |action - torch| on {observations} random observations: numpy {numpy_vs_torch_max_abs:.2e}, "
          "onnx {onnx_vs_torch_max_abs:.2e}, torchscript {torchscript_vs_torch_max_abs:.2e}".format(**check))
    if card.get("evaluation"):
        per_level = card["evaluation"]["per_level"]
        print(json.dumps({"mean_return": card["evaluation"]["mean_return"], "per_level": per_level}, indent=1))


def select_checkpoint_command(
    run_dir: Annotated[Path, typer.Argument(help="Training run folder (exo train --out).")],
    trials: Annotated[int, typer.Option(min=1, help="Generated subjects per level for every model and the PID.")] = 10,
    seed: Annotated[int, typer.Option(help="Subject seed (2000: disjoint from training evaluation 1000 and exo eval 0).")] = 2000,
) -> None:
    """Rank a run's checkpoints by their shortfall from the targets; write selection.json/.csv.

    Targets, per level: the paper's peak (and, at levels 0-2, RMS) torque margins vs the PID; final error <= 2 deg.

    Then `exo export-policy RUN --which selected` exports the chosen model.
    """
    import torch

    from exo.learn.rundir import SELECTION_JSON
    from exo.learn.selection import select_checkpoint

    torch.set_num_threads(1)
    try:
        result = select_checkpoint(run_dir, trials=trials, seed=seed, echo=lambda line: print(line, flush=True))
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    chosen = result.selected
    print(f"selected {chosen['model']} ({chosen['steps']:,} steps, shortfall {chosen['shortfall']:.2f}) "
          f"-> {run_dir / SELECTION_JSON}")


def register(app: typer.Typer) -> None:
    """Add ``exo train``, ``exo select-checkpoint`` and ``exo export-policy``."""
    app.command("train")(train_command)
    app.command("select-checkpoint")(select_checkpoint_command)
    app.command("export-policy")(export_policy_command)
