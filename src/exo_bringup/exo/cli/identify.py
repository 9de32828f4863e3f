"""``exo identify --bag DIR``: fit the person's own twin to the assessment the exo recorded.

Reads the assessment bag (``exo assess`` / ``exo real --assess``), replays it on the twin with
candidate reflex parameters and prints the estimated Modified Ashworth level, the seven per-subject
parameters with 95 % intervals, the fit residual and the parameters this recording cannot identify
(``--json``: the JSON of :class:`exo.identify.result.IdentificationResult`). Method and validation:
docs/identification.md. Bad input (no such bag, a bag of another controller, missing topics, NaN
data) ends with one line naming the problem and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def identify_command(
    bag: Path = typer.Option(..., "--bag", help="The assessment bag (session folder, rosbag2 folder or .mcap)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    twin: str = typer.Option("full", help="Twin the recording is replayed on: full (MyoLeg, accurate) or "
                             "reduced (fast, biased at levels 2-3)."),
    workers: int = typer.Option(2, min=1, help="Processes for the simulations."),
    out: Path | None = typer.Option(None, help="Also write the JSON result to this file."),
) -> None:
    """Identify the person's reflex parameters and MAS level from an assessment recording."""
    from exo.cli.errors import EXIT_BAD_INPUT, USER_ERRORS, one_line
    from exo.identify.report import run_identify
    from exo.twin import KINDS

    if twin not in KINDS:
        print(f"exo identify: error: --twin must be one of {', '.join(KINDS)}, got {twin!r}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        run_identify(bag, json_out=json_out, twin=twin, workers=workers, out=out, echo=typer.echo)
    except USER_ERRORS as exc:
        print(f"exo identify: error: {one_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def register(app: typer.Typer) -> None:
    app.command("identify")(identify_command)
