"""Per-run secrets: created by whoever starts the graph, handed to each node by file path.

:meth:`RunSecrets.create` makes a private folder (mode 0700, under ``$EXO_RUN_ROOT``, else
``$XDG_RUNTIME_DIR/exo``, else ``<tmp>/exo-<uid>``) with three fresh random secrets, each in a
0600 file:

- ``command.key``: signs ``torque_command``. Only the safety monitor (signs) and the actuator side
  (the sim bridge's actuator model or the actuator driver: verifies) get its path.
- ``request.key``: signs ``torque_request``. The controller (signs) and the safety monitor
  (verifies). A compromised controller can therefore not forge commands.
- ``reset.token``: the operator's credential to reset a latched stop (``exo reset``).
- ``console.token``: what a browser must present to the therapist's console when it listens beyond this
  machine (``console_host`` other than 127.0.0.1; docs/live.md).

and ``run.json`` (namespace, DDS domain, the starting process's id) so that ``exo reset`` finds
the run. Nodes get the *paths* as parameters, never the secrets: parameter values can be read by
any participant of the DDS domain, files only by the user who started the run.
:meth:`RunSecrets.remove` deletes the folder when the graph stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Bytes of every secret (256 bit).
SECRET_BYTES = 32
COMMAND_KEY = "command.key"
REQUEST_KEY = "request.key"
RESET_TOKEN = "reset.token"
CONSOLE_TOKEN = "console.token"
RUN_INFO = "run.json"

#: Node parameter -> file of the run folder; :attr:`exo.graph.NodeSpec.secrets` picks per node.
SECRET_PARAMS = {
    "command_key_file": COMMAND_KEY,
    "request_key_file": REQUEST_KEY,
    "reset_token_file": RESET_TOKEN,
    "console_token_file": CONSOLE_TOKEN,
}


class SecretError(PermissionError):
    """A secret file is missing, malformed or readable by other users; the message names the file."""


def run_root() -> Path:
    """Folder holding the run folders of this user (not created here)."""
    if os.environ.get("EXO_RUN_ROOT"):
        return Path(os.environ["EXO_RUN_ROOT"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "exo"
    return Path(tempfile.gettempdir()) / f"exo-{os.getuid()}"


def _private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check that an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise SecretError(f"{path}: not a folder owned by this user (uid {os.getuid()})")
    if st.st_mode & 0o077:
        raise SecretError(f"{path}: other users can access it (mode {stat.S_IMODE(st.st_mode):04o}); "
                          f"chmod 700 {path}")
    return path


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` hex-encoded to a new file created with mode 0600 (never widened by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data.hex() + "\n")


def load_secret(path: Path | str) -> bytes:
    """The secret in ``path``; :class:`SecretError` naming the file if it is missing, malformed,
    not owned by this user, or readable or writable by group or others (like ssh refuses a key)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist (the graph's run folder was removed, or "
                          "the node was started without the launch file / exo runner that creates it)") from None
    except OSError as exc:
        raise SecretError(f"secret file {path}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.getuid():
            raise SecretError(f"secret file {path} is owned by uid {st.st_uid}, not by this user ({os.getuid()})")
        if st.st_mode & 0o077:
            raise SecretError(f"secret file {path} is accessible by other users (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}); it must be 0600: chmod 600 {path}")
        text = f.read(4 * SECRET_BYTES + 2).strip()
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"secret file {path} does not hold a hex-encoded secret") from None
    if len(data) < 16:
        raise SecretError(f"secret file {path} holds {len(data)} bytes; at least 16 are needed")
    return data


@dataclass(frozen=True)
class RunSecrets:
    """The secrets of one run of the graph (see the module docstring).

    Attributes:
        folder: the run's private folder (0700).
    """

    folder: Path

    @classmethod
    def create(cls, namespace: str, domain_id: int | None = None, root: Path | None = None) -> RunSecrets:
        """A new run folder with fresh secrets under ``root`` (default :func:`run_root`)."""
        parent = _private_dir(Path(root) if root is not None else run_root())
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=parent))  # mkdtemp: mode 0700
        for name in SECRET_PARAMS.values():
            write_secret(folder / name, secrets.token_bytes(SECRET_BYTES))
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
        info = {"namespace": namespace, "domain_id": domain_id, "pid": os.getpid(), "created": time.time()}
        (folder / RUN_INFO).write_text(json.dumps(info) + "\n")
        return cls(folder)

    def file(self, param: str) -> Path:
        """Path of the secret a node parameter of :data:`SECRET_PARAMS` names."""
        return self.folder / SECRET_PARAMS[param]

    def parameters(self, params: tuple[str, ...]) -> dict[str, str]:
        """``{parameter: path}`` for the secrets a node gets (only those, see NodeSpec.secrets)."""
        return {p: str(self.file(p)) for p in params}

    def info(self) -> dict:
        return json.loads((self.folder / RUN_INFO).read_text())

    def remove(self) -> None:
        """Delete the run folder and every secret in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


def find_runs(namespace: str, domain_id: int, root: Path | None = None) -> list[RunSecrets]:
    """Run folders of this user for ``namespace`` on ``domain_id`` whose starting process still lives."""
    parent = Path(root) if root is not None else run_root()
    found = []
    for folder in sorted(parent.glob("run-*")) if parent.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads((folder / RUN_INFO).read_text())
            if info["namespace"].rstrip("/") != namespace.rstrip("/") or int(info["domain_id"]) != domain_id:
                continue
            try:
                os.kill(int(info["pid"]), 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            found.append(RunSecrets(folder))
    return found
