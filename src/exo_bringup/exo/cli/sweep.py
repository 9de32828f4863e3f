"""``exo sweep``: seeds x variants x hyperparameters of ``exo train``, each run its own run folder (exo.learn.sweep)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from exo.cli.backend_options import BackendOption, MaxRetriesOption, RayAddressOption, backend_from_options
from exo.cli.evaluate import _parse_params, _scalar
from exo.cli.train import _yaml_mapping

#: SAC settings whose command-line value is a YAML mapping.
MAPPING_KEYS = ("env_overrides", "residual_params")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as ``exo train --set`` reads them (mappings for :data:`MAPPING_KEYS`)."""
    overrides = _parse_params(items)
    for key in MAPPING_KEYS:
        if isinstance(overrides.get(key), str):
            overrides[key] = _yaml_mapping(key, overrides[key])
    return overrides


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME: KEY=VALUE KEY=VALUE"`` (shell quoting inside) -> name and overrides; ``"NAME"`` alone = no override."""
    from exo.params import ConfigError

    name, _, rest = text.partition(":")
    if not name.strip():
        raise ConfigError(f"--variant {text!r}: expected NAME or 'NAME: KEY=VALUE ...'")
    try:
        items = shlex.split(rest)
    except ValueError as exc:
        raise ConfigError(f"--variant {text!r}: {exc}") from None
    return name.strip(), parse_overrides(items)


def parse_grid(items: list[str]) -> dict[str, tuple[Any, ...]]:
    """``KEY=V1,V2,...`` items -> ``{KEY: (V1, V2, ...)}`` (scalars, as ``--set`` reads them)."""
    from exo.params import ConfigError

    grid: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=VALUE1,VALUE2,...")
        if key.strip() in grid:
            raise ConfigError(f"--grid {key.strip()} is given twice")
        grid[key.strip()] = tuple(_scalar(v) for v in values.split(",") if v.strip())
    return grid


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-4`` (inclusive) or a mix -> seeds."""
    from exo.params import ConfigError

    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            first, dash, last = part.partition("-")
            seeds.extend(range(int(first), int(last) + 1) if dash and first else [int(part)])
    except ValueError:
        raise ConfigError(f"--seeds must be integers like 0,1,2 or 0-4, got {text!r}") from None
    return tuple(seeds)


def sweep_command(
    out: Annotated[Path, typer.Option(help="Sweep folder: sweep.json, one run folder per run, summary.json/.csv.")] = Path(
        "runs/sweep"),
    twin: Annotated[str, typer.Option(help="Digital twin: reduced or full.")] = "reduced",
    steps: Annotated[int, typer.Option(min=1, help="Transitions per run (summed over envs).")] = 300_000,
    seeds: Annotated[str, typer.Option(help="Master seeds: 0,1,2 or 0-4; one run per seed and configuration.")] = "0",
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="A named variant, repeatable: 'NAME: KEY=VALUE ...' (overrides of config/sac.yaml, "
        "e.g. 'residual-pid: residual_controller=pid'); NAME alone = the configuration as it is.")] = None,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="A swept hyperparameter, repeatable: KEY=VALUE1,VALUE2 (every combination runs), "
        "e.g. --grid learning_rate=1e-4,3e-4 --grid batch_size=256,512.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override for every run KEY=VALUE (as exo train --set), repeatable.")] = None,
    config: Annotated[Path | None, typer.Option(help="Hyperparameter file (default config/sac.yaml).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the sweep stored in --out (its sweep.json); "
                                         "the same command again does the same.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Runs training at once on this machine (--backend ray: "
                                         "CPUs of the local Ray instance).")] = 1,
    cpus_per_run: Annotated[float, typer.Option(min=0.01, help="With --backend ray: CPUs reserved per run.")] = 1.0,
    backend: BackendOption = "local",
    ray_address: RayAddressOption = "",
    max_retries: MaxRetriesOption = 3,
) -> None:
    """Train a grid of SAC runs (seeds x variants x hyperparameters), resumable, with a summary table at the end.

    Each run is an `exo train` run folder under --out. Stopped and started again (same command, or
    --resume), the sweep skips finished runs and resumes the others from their checkpoints.
    """
    from rich.console import Console
    from rich.table import Table

    from exo.learn.sweep import BASE_VARIANT, SweepPlan, run_sweep
    from exo.params import ConfigError

    execution = backend_from_options(backend, ray_address, workers, max_retries, cpus_per_run)
    plan_given = bool(variant or grid or set_ or config or seeds != "0")
    if resume and plan_given:
        raise ConfigError("--resume continues the sweep stored in --out: give no --seeds/--variant/--grid/--set/--config")
    plan = None
    if not resume:
        variants = dict(parse_variant(v) for v in variant or []) or {BASE_VARIANT: {}}
        if variant and len(variants) != len(variant):
            raise ConfigError("--variant names must be distinct")
        plan = SweepPlan(twin=twin, steps=steps, seeds=parse_seeds(seeds), variants=variants,
                         grid=parse_grid(grid or []), common=parse_overrides(set_ or []),
                         config_path=str(config) if config else None)
    console = Console()

    def show(row: dict[str, Any]) -> None:
        detail = f" ({row['error']})" if row["error"] else ""
        console.print(f"{row['status']:>16s}  {row['run']}  {row['steps']:,} steps{detail}")

    doc = run_sweep(out, plan, execution, on_run=show)
    table = Table(title=f"sweep {out}: {len(doc['runs'])} runs on {execution.name} ({doc['wall_time_s']:.0f} s)",
                  caption="returns on the fixed evaluation subjects (mean +- std over seeds); "
                          "final error and peak torque: final model, mean over levels")
    for column in ("configuration", "runs", "final return", "best return", "final err deg", "peak Nm"):
        table.add_column(column, justify="left" if column == "configuration" else "right")

    def cell(stats: dict[str, Any], fmt: str = ".1f") -> str:
        mean, std = stats["mean"], stats["std"]
        if mean is None or (isinstance(mean, float) and math.isnan(mean)):
            return "-"
        return f"{mean:{fmt}} +- {std:{fmt}}" if stats["count"] > 1 else f"{mean:{fmt}}"

    for c in doc["configurations"]:
        table.add_row(c["configuration"], f"{c['finished']}/{c['runs']}", cell(c["final_mean_return"]),
                      cell(c["best_mean_return"]), cell(c["final_error_deg"], ".2f"), cell(c["peak_torque_nm"]))
    console.print(table)
    failed = [r for r in doc["runs"] if r["status"] == "failed"]
    console.print(f"-> {out / 'summary.json'}, {out / 'summary.csv'}")
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed[/red]: " + ", ".join(r["run"] for r in failed))
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``exo sweep``."""
    app.command("sweep")(sweep_command)
