"""The README's commands as a user runs them: the venv's ``exo`` console script in a subprocess.

Every path a command writes (``--out``, ``--log-dir``, ``--cache``, ...) goes to the test's
``tmp_path``; nothing lands in the repository's ``runs/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXO = Path(sys.executable).parent / "exo"


@dataclass
class CliResult:
    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout + stderr with every run of whitespace made one space (rich wraps and pads its lines)."""
        return " ".join((self.stdout + self.stderr).split())

    def __str__(self) -> str:  # the assertion message: the command and what it printed
        return f"$ exo {' '.join(self.args)}\n(exit {self.code})\n{self.stdout[-6000:]}\n{self.stderr[-6000:]}"

    __repr__ = __str__  # pytest shows the message's repr: the whole output, not a truncated dataclass repr


def run_exo(*args: str, timeout: float = 120.0, cwd: Path = REPO) -> CliResult:
    """``exo ARGS`` from ``cwd`` (default: the repository root, where the README's relative paths resolve)."""
    proc = subprocess.run([str(EXO), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def exo() -> Callable[..., CliResult]:
    """Run the installed ``exo`` command (see :func:`run_exo`)."""
    assert EXO.is_file(), f"{EXO} is not installed (scripts/setup.sh)"
    return run_exo
