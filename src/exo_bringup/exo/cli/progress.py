"""``exo progress --user ID``: a user's sessions, assistance level and controller versions over time.

Prints a table (one row per session: kind, controller and version, the assistance level it ran at and
the rule's decision after it, the mean peak and RMS interaction torque and final error of its trials,
the safety monitor's transitions). The metrics of a control session come from its bag, analysed in a
private temporary folder and cached in the store as the session's ``summary`` artefact (encrypted).

``--out DIR`` also writes ``progress.png``, ``progress.html`` (self-contained, the figure inlined) and
``progress.json``: a PLAINTEXT copy of personal data outside the store (files 0600 in a 0700 folder),
which the command warns about. Without ``--out`` nothing leaves the store.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer


def progress_command(
    user: str = typer.Option(..., "--user", help="The user (pseudonym) whose progress to show."),
    out: Path | None = typer.Option(None, "--out", help="Also write progress.png, progress.html and progress.json "
                                    "here (PLAINTEXT personal data outside the store)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of the table."),
    refresh: bool = typer.Option(False, "--refresh", help="Analyse every session's bag again (ignore the cached "
                                 "summaries)."),
    store: Path | None = typer.Option(None, "--store", help="User store folder (default: $EXO_STORE, else "
                                      "~/.local/share/exo/users)."),
    key_file: Path | None = typer.Option(None, "--key-file", help="Key file of the user store (default: "
                                         "$EXO_KEY_FILE; a passphrase store reads $EXO_PASSPHRASE)."),
) -> None:
    """Per-session metrics, assistance level and controller versions of a user: table, PNG and HTML."""
    from exo.cli.errors import EXIT_BAD_INPUT, USER_ERRORS, one_line
    from exo.cli.user import open_store
    from exo.personalize.progress import COLUMNS, html_report, plot_progress, progress_rows, table_rows
    from exo.users import validate_user_id

    try:
        validate_user_id(user)
        opened = open_store(store, key_file)
        summaries = session_summaries(opened, user, refresh=refresh)
        profile = opened.profile(user)
    except USER_ERRORS as exc:
        print(f"exo progress: error: {one_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    rows = progress_rows(profile, summaries)
    if as_json:
        typer.echo(json.dumps({"user": user, "assistance": profile.assistance.to_dict(),
                               "controllers": [c.to_dict() for c in profile.controllers],
                               "sessions": [r.to_dict() for r in rows]}, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"user {user}: {len(rows)} session(s), assistance now {profile.assistance.level:.2f}")
        for header, _ in COLUMNS:
            table.add_column(header, justify="right")
        for cells in table_rows(rows):
            table.add_row(*cells)
        Console().print(table)
        for c in profile.controllers:
            typer.echo(f"  {c.id} [{c.status}] {c.controller or c.path}, parent {c.parent or '-'}, {c.created}"
                       + (f": {c.reason}" if c.reason else ""))
    if out is not None:
        print(f"WARNING: {out} will hold PLAINTEXT personal data of user {user} (outside the encrypted store); "
              "protect or delete it.", file=sys.stderr)
        png = plot_progress(rows, profile)
        _private_write(out, "progress.png", png)
        _private_write(out, "progress.html", html_report(rows, profile, png).encode())
        _private_write(out, "progress.json", json.dumps([r.to_dict() for r in rows], indent=2).encode())
        print(f"wrote progress.png, progress.html, progress.json to {out}", file=sys.stderr)


def _private_write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    from exo.paths import write_private_file

    write_private_file(folder / name, data)


def session_summaries(opened, user: str, *, refresh: bool = False) -> dict[int, dict[str, Any]]:
    """``{session: summary}`` of ``user``'s control sessions with a bag (cached as their ``summary`` artefact)."""
    from exo.bags.analysis import analyze_session
    from exo.bags.reader import BagError, open_session
    from exo.personalize.progress import CONTROL_KINDS

    out: dict[int, dict[str, Any]] = {}
    for s in opened.sessions(user):
        if s.kind not in CONTROL_KINDS or s.files == 0:
            continue
        if "summary" in s.artefacts and not refresh:
            out[s.number] = opened.get_json(user, s.number, "summary")
            continue
        try:
            with opened.open_session(user, s.number) as bag:
                summary = analyze_session(open_session(bag)).summary()
        except BagError as exc:  # a damaged bag: that session has no metrics, the others still do
            print(f"exo progress: session {s.number}: {exc}", file=sys.stderr)
            continue
        summary = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in summary.items()}
        opened.put_json(user, s.number, "summary", summary)
        out[s.number] = summary
    return out


def register(app: typer.Typer) -> None:
    app.command("progress")(progress_command)
