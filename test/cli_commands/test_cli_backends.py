"""`exo eval --backend local|ray` as a user runs it: the same summary.json numbers on both backends
(the Ray run starts its own local instance of 2 CPUs and stops it), and one line naming the
address, exit 2, when --ray-address cannot be reached."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

EVAL = ["eval", "--controller", "pid", "--trials", "2", "--levels", "0", "3", "--seed", "11",
        "--max-steps", "80", "--workers", "2", "--timeseries-per-level", "1"]


@pytest.mark.slow
def test_exo_eval_gives_the_same_summary_on_the_local_and_the_ray_backend(exo, tmp_path: Path):
    local = exo(*EVAL, "--out", str(tmp_path / "local"), timeout=180)
    assert local.code == 0, local
    on_ray = exo(*EVAL, "--backend", "ray", "--out", str(tmp_path / "ray"), timeout=180)
    assert on_ray.code == 0, on_ray
    a = json.loads((tmp_path / "local" / "summary.json").read_text())
    b = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert a["levels"] == b["levels"] and set(a["levels"]) == {"0", "3"}
    assert a["levels"]["3"]["rms_torque_nm"]["count"] == 2
    assert (a["backend"]["name"], b["backend"]["name"]) == ("local", "ray")
    assert b["backend"]["ray_address"] == "local instance"
    assert (tmp_path / "local" / "trials.csv").read_text() == (tmp_path / "ray" / "trials.csv").read_text()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_exo_eval_names_a_ray_address_that_cannot_be_reached(exo, tmp_path: Path):
    address = f"127.0.0.1:{_closed_port()}"
    result = exo(*EVAL, "--backend", "ray", "--ray-address", address, "--out", str(tmp_path / "x"))
    assert result.code == 2, result
    assert f"exo eval: error: cannot reach the Ray cluster at {address}" in result.stderr, result
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "spark"], "exo eval: error: unknown backend 'spark'; choose one of local, ray"),
    (["--ray-address", "10.0.0.5:6379"], "exo eval: error: --ray-address 10.0.0.5:6379 needs --backend ray"),
])
def test_exo_eval_refuses_a_bad_backend_choice_in_one_line(exo, tmp_path: Path, args: list[str], message: str):
    result = exo(*EVAL, *args, "--out", str(tmp_path / "x"))
    assert result.code == 2 and message in result.stderr, result
    assert "Traceback" not in result.stderr
