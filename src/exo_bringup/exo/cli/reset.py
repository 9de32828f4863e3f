"""``exo reset``: reset the safety monitor's latched stop, locally (never over the network).

The safety monitor offers no reset service on DDS. This command talks to it over a Unix socket
in the run's private folder (mode 0700), presenting the run's reset token (a 0600 file the runner
created): only the user who started the graph, on the same machine, can reset. With
``--button`` it presses the emulated rig's reset button instead (a file the monitor polls, as it
polls the GPIO line of the real button on hardware).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import typer

from exo.contract import DEFAULT_NAMESPACE


def reset_command(
    namespace: str = typer.Option(DEFAULT_NAMESPACE, help="Namespace of the graph whose monitor to reset."),
    run_dir: Path | None = typer.Option(None, help="The run's folder (default: found from the namespace and "
                                        "ROS_DOMAIN_ID among this user's running graphs)."),
    button: Path | None = typer.Option(None, help="Press an emulated reset button: the file the monitor's "
                                       "reset_button_path names (writes 1, then 0)."),
    operator: str = typer.Option("", help="Who resets (written to the event log; default: the login name)."),
) -> None:
    """Reset a latched e-stop / safe stop of a running graph (refused while its cause is still present)."""
    from exo.security.keys import SecretError, find_runs
    from exo.security.reset import request_reset

    if button is not None:
        import time

        button.write_text("1\n")
        time.sleep(0.3)  # held for a few of the monitor's polls
        button.write_text("0\n")
        typer.echo(f"reset button {button} pressed; the monitor's state is on safety/status")
        return
    if run_dir is None:
        domain = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
        runs = find_runs(namespace, domain)
        if not runs:
            typer.echo(f"error: no running graph of this user with namespace {namespace} on ROS_DOMAIN_ID {domain}",
                       err=True)
            raise typer.Exit(2)
        if len(runs) > 1:
            typer.echo("error: several running graphs match; choose one with --run-dir: "
                       + ", ".join(str(r.folder) for r in runs), err=True)
            raise typer.Exit(2)
        run_dir = runs[0].folder
    try:
        ok, message = request_reset(run_dir, operator or getpass.getuser())
    except (OSError, SecretError) as exc:
        typer.echo(f"error: cannot reach the safety monitor of {run_dir}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(message)
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command("reset")(reset_command)
