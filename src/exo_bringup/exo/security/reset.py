"""Resetting a latched stop is a local, deliberate act: never a network service.

Two inputs, both read by the safety monitor itself (nothing on DDS can reach them):

- **Operator command** (sim, bench, emulated rig): :class:`LocalResetServer` listens on a Unix
  socket in the run's private folder (0700; the socket 0600) and accepts a reset only from a
  process of the same user (``SO_PEERCRED``) that presents the run's reset token (a 0600 file);
  ``exo reset`` is the client (:func:`request_reset`).
- **Physical input** (hardware): :class:`ResetButton` polls a momentary push button wired to a
  GPIO line, read through a file that holds ``1`` while it is pressed (the Linux sysfs GPIO
  ``value`` file, or the line exported by a udev rule); a press is a release-to-pressed edge.
  The emulated rig's button is a plain file written by ``exo reset --button``.

Everything here is non-blocking: the monitor polls from its timer and is never held up by a slow
or hostile client.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from exo.security.keys import RESET_TOKEN, load_secret

#: Name of the reset socket in the run folder (next to ``reset.token``).
RESET_SOCKET = "reset.sock"
#: Largest request read from a client, bytes.
MAX_REQUEST_BYTES = 1024
#: A connected client that has not sent its whole request within this many seconds is dropped.
CLIENT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ResetRequest:
    """A reset asked for through the socket; :meth:`LocalResetServer.poll` returns it with a reply channel."""

    authorised: bool
    why: str  # why it is refused ("" when authorised)
    operator: str  # who says they asked (free text from the client, for the event log)


@dataclass
class _Client:
    conn: socket.socket
    since: float
    data: bytes = b""
    uid: int | None = None


@dataclass
class LocalResetServer:
    """The safety monitor's end of ``exo reset`` (see the module docstring).

    Args:
        token_file: the run's ``reset.token`` (mode 0600); the socket is created next to it.
    """

    token_file: Path
    clients: list[_Client] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.token_file = Path(self.token_file)
        self._token = load_secret(self.token_file)
        self.path = self.token_file.with_name(RESET_SOCKET)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is created 0600
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        self.sock.listen(4)
        self.sock.setblocking(False)

    def poll(self) -> list[tuple[ResetRequest, _Client]]:
        """Accept waiting clients and return the complete requests (answer each with :meth:`reply`)."""
        now = time.monotonic()
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            conn.setblocking(False)
            client = _Client(conn, now)
            with contextlib.suppress(OSError):
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                client.uid = struct.unpack("3i", creds)[1]
            self.clients.append(client)
        done: list[tuple[ResetRequest, _Client]] = []
        for client in list(self.clients):
            try:
                chunk = client.conn.recv(MAX_REQUEST_BYTES)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk:
                client.data += chunk
            if b"\n" in client.data or chunk == b"" or len(client.data) >= MAX_REQUEST_BYTES:
                self.clients.remove(client)
                done.append((self._judge(client), client))
            elif now - client.since > CLIENT_TIMEOUT_S:
                self.clients.remove(client)
                client.conn.close()
        return done

    def _judge(self, client: _Client) -> ResetRequest:
        if client.uid != os.getuid():
            return ResetRequest(False, f"client uid {client.uid} is not this user's ({os.getuid()})", "?")
        try:
            request = json.loads(client.data.split(b"\n", 1)[0] or b"{}")
            token = bytes.fromhex(str(request.get("token", "")))
            operator = str(request.get("operator", ""))[:64]
        except (ValueError, AttributeError):
            return ResetRequest(False, "malformed request", "?")
        if not hmac.compare_digest(token, self._token):
            return ResetRequest(False, "wrong reset token", operator)
        return ResetRequest(True, "", operator)

    @staticmethod
    def reply(client: _Client, ok: bool, message: str) -> None:
        """Answer one client and close its connection (never blocks)."""
        with contextlib.suppress(OSError):
            client.conn.send((json.dumps({"ok": ok, "message": message}) + "\n").encode()[:4096])
        client.conn.close()

    def close(self) -> None:
        for client in self.clients:
            client.conn.close()
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request_reset(run_folder: Path, operator: str = "", timeout_s: float = 5.0) -> tuple[bool, str]:
    """Ask the safety monitor of the run in ``run_folder`` to reset its latched stop (``exo reset``).

    Returns the monitor's (accepted, message). Raises OSError if nobody listens (the graph is not
    running, or its monitor uses a reset button instead).
    """
    token = load_secret(Path(run_folder) / RESET_TOKEN)
    request = json.dumps({"token": token.hex(), "operator": operator}) + "\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(Path(run_folder) / RESET_SOCKET))
        sock.sendall(request.encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data or b"{}")
    return bool(answer.get("ok")), str(answer.get("message", "no answer"))


class ResetButton:
    """A momentary reset button read through a file holding ``1`` while pressed (see the module docstring).

    Args:
        path: the GPIO line's value file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pressed = True  # a button held at start-up is not a press: it must be released first
        self.read_errors = 0

    def poll(self) -> bool:
        """True once per press (release -> pressed edge)."""
        try:
            pressed = self.path.read_text()[:1] == "1"
        except OSError:
            self.read_errors += 1
            pressed = False
        edge = pressed and not self._pressed
        self._pressed = pressed
        return edge
