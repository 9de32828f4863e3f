"""`exo console --user ID` on its own, next to a running graph: the user's progress from the encrypted store
(`exo progress`'s rows), the graph's knee samples on the plot, and a clean exit on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from exo.users import Caps, UserStore

EXO = Path(sys.executable).parent / "exo"

pytestmark = pytest.mark.ros



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def test_exo_console_shows_the_users_progress_and_the_running_graph(exo, ros_domain: int, tmp_path: Path):
    store, key = tmp_path / "store", tmp_path / "store.key"
    common = ("--store", str(store), "--key-file", str(key))
    assert exo("user", "init-key", "--key-file", str(key)).code == 0
    opened = UserStore.open(store, key_file=key, create=True)
    opened.create_user("p-console", mas_level=1, caps=Caps(torque_cap_nm=70.0))
    first = exo("sim", "--user", "p-console", "--level", "1", "--duration", "3", "--domain-id", str(ros_domain),
                "--log-dir", str(tmp_path / "logs1"), *common, timeout=240)
    assert first.code == 0, first

    port = _free_port()
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115
    console = subprocess.Popen([str(EXO), "console", "--user", "p-console",
                                "--port", str(port), "--domain-id", str(ros_domain), *common],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60.0
        state = None
        while time.monotonic() < deadline:
            state = _state(port)
            if state is not None and (state["progress"] is not None or state["progress_error"]):
                break
            time.sleep(0.5)
        assert state is not None, (tmp_path / "console.log").read_text()
        assert state["session"]["user"] == "p-console"
        assert not state["progress_error"], state["progress_error"]
        rows = state["progress"]
        assert rows and any(str(r.get("session")) == "1" for r in rows), rows
        assert state["points"]["t"] == []  # no graph yet

        run = exo("sim", "--level", "1", "--duration", "4", "--domain-id", str(ros_domain), "--log-dir",
                  str(tmp_path / "logs2"), timeout=240)
        assert run.code == 0, run
        state = _state(port)
        assert state is not None and len(state["points"]["t"]) > 20, state and len(state["points"]["t"])
        assert max(state["points"]["t"]) > 2.0  # graph time, s
        assert state["safety"]["state"] != "UNKNOWN"  # the monitor's state reached the page
    finally:
        os.killpg(console.pid, signal.SIGINT)
        try:
            code = console.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(console.pid, signal.SIGKILL)
            code = console.wait()
        log.close()
    assert code in (0, 130, -signal.SIGINT), (code, (tmp_path / "console.log").read_text()[-3000:])
