"""``exo compare BASELINE CANDIDATE``: per-level % change between two ``exo eval`` folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def compare_command(
    baseline: Annotated[Path, typer.Argument(help="Baseline `exo eval --out` folder (e.g. the PID).")],
    candidate: Annotated[Path, typer.Argument(help="Candidate `exo eval --out` folder (e.g. SAC).")],
    out: Annotated[
        Path | None, typer.Option(help="Write compare.json, compare.md and compare.png here (default: CANDIDATE/compare).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
) -> None:
    """Per-level % change of peak and RMS torque, settling time and final error (candidate vs baseline)."""
    from rich.console import Console
    from rich.table import Table

    from exo.compare import COMPARED, CompareError, compare, load_evaluation, markdown_table, plot_comparison

    console = Console()
    try:
        comp = compare(load_evaluation(baseline), load_evaluation(candidate), seed=seed)
    except CompareError as exc:
        console.print(f"[red]exo compare: {exc}[/]")
        raise typer.Exit(2) from None
    for w in comp.warnings:
        console.print(f"[yellow]note: {w}[/]")
    table = Table(title=f"{comp.candidate.split(' <- ')[0]} vs {comp.baseline.split(' <- ')[0]} (change = candidate vs baseline)")
    for col in ("level", "metric", "baseline", "candidate", "change", "95 % CI"):
        table.add_column(col, justify="right" if col not in ("metric",) else "left")
    for level, changes in comp.levels.items():
        for key, label, unit in COMPARED:
            c = changes[key]
            colour = "green" if c.change_pct < 0 else "red" if c.change_pct > 0 else ""
            table.add_row(str(level), f"{label} ({unit})", f"{c.baseline_mean:.2f}", f"{c.candidate_mean:.2f}",
                          f"[{colour}]{c.change_pct:+.1f} %[/]" if colour else f"{c.change_pct:+.1f} %",
                          f"[{c.ci95_pct[0]:+.1f}, {c.ci95_pct[1]:+.1f}]")
        sa, sb = comp.settled[level]
        table.add_row(str(level), "settled fraction", f"{sa:.2f}", f"{sb:.2f}", "", "", end_section=True)
    console.print(table)
    folder = out if out is not None else candidate / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(json.dumps(comp.to_dict(), indent=1))
    (folder / "compare.md").write_text(markdown_table(comp) + "\n")
    png = plot_comparison(comp, folder / "compare.png")
    console.print(f"wrote {folder / 'compare.json'}, {folder / 'compare.md'}, {png}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
