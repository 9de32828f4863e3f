"""``exo console``, and the ``--live`` / ``--console`` options of ``exo sim``, ``exo real`` and ``exo replay``.

``exo console [--user ID]`` serves the therapist's console (:mod:`exo.nodes.console`) for a graph that runs
already (same domain and namespace), in this process, until Ctrl-C. ``--console`` on ``exo sim`` / ``exo real``
runs the same node inside the graph (launch argument ``console:=true``); ``--live`` adds the Foxglove
``live_view`` (``live:=true``). Hosts and ports are checked before anything starts, with an error naming the
problem (a name instead of an address, a port out of range, a port another program holds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from exo.live.net import LOCALHOST, AddressError, check_free, check_host, check_port, is_loopback

LIVE_HELP = "Serve the contract topics to Foxglove (live_view, read only) on ws://--live-host:--live-port."
LIVE_HOST_HELP = "Address the live view binds to (default 127.0.0.1: this machine only)."
CONSOLE_HELP = "Serve the therapist's console (live plots, safety state, progress, STOP) on http://--console-host:--console-port."
CONSOLE_HOST_HELP = ("Address the console binds to (default 127.0.0.1: this machine only); any other address "
                     "requires the token printed at start.")

# The options of --live / --console, declared once for exo sim, exo real and exo replay.
LIVE_OPTION = typer.Option(False, "--live", help=LIVE_HELP)
LIVE_HOST_OPTION = typer.Option(LOCALHOST, "--live-host", help=LIVE_HOST_HELP)
LIVE_PORT_OPTION = typer.Option(8765, "--live-port", help="TCP port of the live view (Foxglove WebSocket).")
CONSOLE_OPTION = typer.Option(False, "--console", help=CONSOLE_HELP)
CONSOLE_HOST_OPTION = typer.Option(LOCALHOST, "--console-host", help=CONSOLE_HOST_HELP)
CONSOLE_PORT_OPTION = typer.Option(8080, "--console-port", help="TCP port of the console's page.")


def view_arguments(live: bool, live_host: str, live_port: int, console: bool, console_host: str,
                   console_port: int) -> dict[str, str]:
    """The launch arguments of ``--live`` / ``--console``, checked (host, port range, port free).

    Raises:
        AddressError: naming the option and the problem.
    """
    out: dict[str, str] = {"live": str(live).lower(), "console": str(console).lower()}
    for on, name, host, port in ((live, "live", live_host, live_port), (console, "console", console_host,
                                                                        console_port)):
        if not on:
            continue
        try:
            check_host(host)
            check_port(port)
            if port:
                check_free(host, port)
        except AddressError as exc:
            raise AddressError(f"--{name}: {exc}") from None
        out.update({f"{name}_host": host, f"{name}_port": str(port)})
    if live and console and live_port and live_port == console_port and live_host == console_host:
        raise AddressError(f"--live and --console cannot share port {live_port}")
    return out


def print_view_addresses(console, runner) -> None:
    """Where to look: the live view's WebSocket and the console's page (with its token when it needs one)."""
    from exo.nodes.console import console_token, console_url

    args = runner.args
    if args.get("live"):
        console.print(f"  live view (Foxglove): ws://{args['live_host']}:{args['live_port']}  "
                      "(layout: config/foxglove/exo.json)")
    if args.get("console"):
        host = str(args["console_host"])
        needs = not is_loopback(host) or _requires_token(runner)
        token = console_token(str(runner.secrets.file("console_token_file"))) if needs else None
        console.print(f"  console: {console_url(host, int(args['console_port']), token)}")


def _requires_token(runner) -> bool:
    """Whether the run's parameter files set the console's ``require_token`` (the page then needs the token)."""
    import yaml

    try:
        files = [a for i, a in enumerate(runner.node("console").command) if runner.node("console").command[i - 1]
                 == "--params-file"]
        for path in files:
            for key, entry in (yaml.safe_load(Path(path).read_text()) or {}).items():
                if key.endswith(("console", "/**")) and (entry or {}).get("ros__parameters", {}).get("require_token"):
                    return True
    except (KeyError, OSError, yaml.YAMLError, AttributeError):
        return False
    return False


def console_command(
    user: str = typer.Option("", "--user", help="Pseudonym of the user: shown on the page, with their progress "
                             "across sessions from the encrypted store (EXO_STORE, EXO_KEY_FILE or EXO_PASSPHRASE)."),
    host: str = typer.Option(LOCALHOST, "--host", help=CONSOLE_HOST_HELP),
    port: int = typer.Option(8080, "--port", help="TCP port of the page (0 = any free port)."),
    require_token: bool = typer.Option(False, "--require-token", help="Require the token on 127.0.0.1 too (a "
                                       "machine other people log in to)."),
    controller: str = typer.Option("", help="Controller the graph runs (shown on the page)."),
    namespace: str = typer.Option("/exo", help="Namespace of the running graph."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID of the running graph (default: $ROS_DOMAIN_ID or 0)."),
    use_sim_time: bool = typer.Option(True, "--sim-time/--wall-time", help="Graph time from /clock (sim, replay) "
                                      "or the system clock (real)."),
    store: Path = typer.Option(None, "--store", help="User store folder (default $EXO_STORE or "
                               "~/.local/share/exo/users)."),
    key_file: Path = typer.Option(None, "--key-file", help="Store key file (default $EXO_KEY_FILE; or "
                                  "$EXO_PASSPHRASE)."),
) -> None:
    """The therapist's web page for a running graph (plots, safety state, STOP).

    One local page with live plots, the safety state in large type, the session timer, the user's progress,
    and a STOP button (the safety monitor's e-stop). The page cannot reset an e-stop, change limits or start motion. It is served on 127.0.0.1 unless --host is
    given; then every request needs the token printed at start. Runs until Ctrl-C.
    """
    from exo.cli.errors import EXIT_BAD_INPUT

    try:
        check_host(host)
        check_port(port)
        if user:
            from exo.users import validate_user_id

            validate_user_id(user)
    except (AddressError, ValueError) as exc:
        print(f"exo console: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if store is not None:
        os.environ["EXO_STORE"] = str(store)
    if key_file is not None:
        os.environ["EXO_KEY_FILE"] = str(key_file)
    if domain_id >= 0:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    from exo.nodes.console import main as console_main
    from exo.paths import config_file

    def text(value: str) -> str:
        return value if value else "''"

    console_main(["exo-console", "--ros-args", "-r", "__node:=console", "-r", f"__ns:={namespace}",
                  "--params-file", str(config_file("task.yaml")), "--params-file", str(config_file("console.yaml")),
                  "-p", f"host:={host}", "-p", f"port:={port}", "-p", f"require_token:={str(require_token).lower()}", "-p", f"user:={text(user)}",
                  "-p", f"controller:={text(controller)}", "-p", f"use_sim_time:={str(use_sim_time).lower()}"])


def register(app: typer.Typer) -> None:
    app.command("console")(console_command)
