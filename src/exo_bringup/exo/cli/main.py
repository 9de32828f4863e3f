"""Entry point of the ``exo`` command.

Each subcommand lives in its own module of :mod:`exo.cli` exposing
``register(app)``; heavy imports (torch, mujoco, rclpy) happen inside the
command functions so that ``exo --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from exo.cli import errors

app = typer.Typer(
    name="exo",
    help="exo: ROS 2 knee-exoskeleton stack (digital twin, RL control, safety monitor).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

@app.callback()
def _root() -> None:
    """exo: ROS 2 knee-exoskeleton stack (digital twin, RL control, safety monitor)."""


#: Modules of exo.cli that add commands, in the order they appear in --help.
COMMAND_MODULES = ("doctor", "sim", "evaluate", "train", "sweep", "compare", "bags", "real", "intent", "reset", "user",
                   "assess", "identify", "personalize", "progress", "live")


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"exo.cli.{name}")
        module.register(app)


_register_all()


def main() -> None:
    """``exo``: bad input (config, YAML, missing file) ends with one line and exit 2 (:mod:`exo.cli.errors`)."""
    errors.run(app)


if __name__ == "__main__":
    main()
