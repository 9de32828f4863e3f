"""Fixtures of the user-store tests: a key file, an open store, and ``exo user`` in a subprocess.

No ROS. Every test runs with its own ``XDG_CONFIG_HOME``/``XDG_DATA_HOME`` and without the
``EXO_*`` variables of the caller, so nothing reads or writes the real user's store or key.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exo.users import ScryptParams, UserStore, create_key_file

REPO = Path(__file__).resolve().parents[2]
#: The cheapest scrypt the store accepts: tests only (a real store keeps the default cost).
FAST_SCRYPT = ScryptParams(n=2**10, r=8, p=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _private_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXO_STORE", "EXO_KEY_FILE", "EXO_PASSPHRASE", "EXO_NEW_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def fast_scrypt() -> ScryptParams:
    """The cheapest scrypt the store accepts: tests only (a real store keeps the default cost)."""
    return FAST_SCRYPT


@pytest.fixture
def passphrase() -> str:
    return PASSPHRASE


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return create_key_file(tmp_path / "keys" / "store.key")


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir: Path, key_file: Path) -> UserStore:
    return UserStore.open(store_dir, key_file=key_file, create=True)


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout + stderr, whitespace runs made one space (rich wraps its lines)."""
        return " ".join((self.stdout + self.stderr).split())

    def __str__(self) -> str:
        return f"$ exo {' '.join(self.args)}\n(exit {self.code})\n{self.stdout[-4000:]}\n{self.stderr[-4000:]}"


def _run_exo(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             timeout: float = 60.0) -> Result:
    """``python -m exo.cli.main ARGS`` with the test's environment plus ``env``; stdin is not a terminal."""
    proc = subprocess.run([sys.executable, "-m", "exo.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, input=stdin if stdin is not None else "",
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    return Result(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_exo():
    """``exo ARGS`` in a subprocess (``python -m exo.cli.main``), from the repository root."""
    return _run_exo


def _run_in_process(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """``exo ARGS`` in this process, through the same entry point (:func:`exo.cli.main.main`: the central
    error handler, exit codes) as the console script; stdin is not a terminal. Much faster than a
    subprocess; the tests that need a real process (signals, the installed command) use :func:`run_exo`."""
    from exo.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved = sys.argv, sys.stdin
    os.environ.update(env or {})
    sys.argv, sys.stdin = ["exo", *args], io.StringIO(stdin or "")
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli_main.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.stdin = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(args, code, out.getvalue(), err.getvalue())


@pytest.fixture
def exo_in_process():
    """``exo ARGS`` in this process (see :func:`_run_in_process`)."""
    return _run_in_process


@pytest.fixture
def exo_user(store_dir: Path, key_file: Path) -> Iterator:
    """``exo user ...`` (in this process) against the test's store and key ($EXO_STORE, $EXO_KEY_FILE)."""

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
        base = {"EXO_STORE": str(store_dir), "EXO_KEY_FILE": str(key_file)}
        return _run_in_process("user", *args, env={**base, **(env or {})}, stdin=stdin)

    yield run
