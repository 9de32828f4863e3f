"""`exo sim --live` as a developer runs it: the command prints the live view's address, a Foxglove client
connects while the graph runs and receives the knee at the live view's cap; a port another program holds is
named before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exo import contract
from exo.testing.foxglove_client import FoxgloveClient

pytestmark = pytest.mark.ros

EXO = Path(sys.executable).parent / "exo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exo_sim_live_serves_the_run_to_a_foxglove_client(ros_domain: int, tmp_path: Path):
    port = _free_port()
    log = tmp_path / "sim.log"
    with open(log, "wb") as out:
        sim = subprocess.Popen([str(EXO), "sim", "--realtime", "--duration", "8", "--live", "--live-port", str(port),
                                "--domain-id", str(ros_domain), "--log-dir", str(tmp_path / "logs")],
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    client = None
    try:
        deadline = time.monotonic() + 60.0
        while client is None:
            try:
                client = FoxgloveClient(f"ws://127.0.0.1:{port}", timeout_s=2.0)
            except OSError:
                assert sim.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the live view never accepted a connection\n" + log.read_text()
                time.sleep(0.3)
        joint = contract.JOINT_STATES.resolved("/exo")
        client.wait_for_channels([joint])
        client.subscribe([joint])
        deadline = time.monotonic() + 60.0  # the graph's nodes start after the live view
        while len(client.of(joint)) <= 100 and sim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        frames = client.of(joint)
        assert len(frames) > 100, f"{len(frames)} joint_states messages\n" + log.read_text()
        stamps = np.array([f.log_time_ns for f in frames]) * 1e-9
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 40.0 <= rate <= 51.0, f"joint_states forwarded at {rate:.1f} Hz of graph time (cap 50 Hz)"
        assert sim.wait(timeout=120) == 0, log.read_text()
    finally:
        if client is not None:
            client.close()
        if sim.poll() is None:  # Ctrl-C: exo sim stops its graph's nodes; SIGKILL would orphan them
            os.killpg(sim.pid, signal.SIGINT)
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)
                sim.wait()
    assert f"ws://127.0.0.1:{port}" in " ".join(log.read_text().split())


def test_exo_sim_live_on_a_taken_port_is_refused_before_the_graph_starts(ros_domain: int, tmp_path: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = subprocess.run([str(EXO), "sim", "--duration", "1", "--live", "--live-port", str(port),
                              "--domain-id", str(ros_domain), "--log-dir", str(tmp_path / "logs")],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 2 and f"port {port}" in text and "--live" in text, text
    assert not (tmp_path / "logs" / "sim_bridge.log").exists()  # nothing started
