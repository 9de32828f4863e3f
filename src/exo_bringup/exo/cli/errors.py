"""The ``exo`` command's central error handler: bad input gets one line naming the problem, exit 2.

Subcommands raise instead of printing: a :class:`~exo.params.ConfigError`
(malformed config or params file, a value the command cannot use, a policy that
does not load), a ``yaml.YAMLError``, a ``FileNotFoundError``, or typer's own
usage errors. :func:`run` turns the first three into ``exo <command>: error:
<message>`` on stderr and exit code 2, instead of a traceback. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import yaml

from exo.params import ConfigError, describe_yaml_error

#: Exceptions that mean "the input is bad", not "exo is broken".
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, yaml.YAMLError, FileNotFoundError)

#: Exit code of bad input (click's usage errors use it too).
EXIT_BAD_INPUT = 2


def one_line(exc: BaseException) -> str:
    """The message of a user error on one line (a YAML error with its line and column)."""
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {describe_yaml_error(exc)}"
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or 'no such file or folder'}"
    return " ".join(str(exc).split()) or type(exc).__name__


def command_name(argv: Sequence[str]) -> str:
    """``exo eval`` for ``exo eval --trials 3`` (``exo`` when no subcommand is given)."""
    sub = next((a for a in argv[1:] if not a.startswith("-")), "")
    return f"exo {sub}".strip()


def run(app: Callable[[], object], argv: Sequence[str] | None = None) -> None:
    """Call ``app`` (the typer app); exit 2 with one line on stderr for a :data:`USER_ERRORS` error."""
    try:
        app()
    except USER_ERRORS as exc:
        print(f"{command_name(sys.argv if argv is None else argv)}: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
