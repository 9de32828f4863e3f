"""exo.backends: the choice of backend is validated; the local backend never imports Ray; on a real
local Ray instance the evaluator gives the local backend's numbers, and a trial whose worker
process is killed mid-task is run again (Ray's task retries) with the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from exo.backends import Backend, BackendError, map_tasks
from exo.control import ControllerSpec, load_controller_params
from exo.evaluate import EvalConfig, evaluate

TINY = EvalConfig(twin="reduced", levels=(1, 3), trials=2, seed=5, workers=1, max_steps=60, timeseries_per_level=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "dask"}, "unknown backend 'dask'; choose one of local, ray"),
    ({"backend": "local", "ray_address": "10.0.0.5:6379"}, "--ray-address 10.0.0.5:6379 needs --backend ray"),
    ({"backend": "ray", "ray_address": "  "}, "--ray-address is empty"),
    ({"backend": "ray", "workers": 0}, "workers must be >= 1"),
    ({"backend": "ray", "max_retries": -1}, "max retries must be >= 0"),
])
def test_a_bad_backend_choice_names_the_problem(kwargs: dict, message: str):
    with pytest.raises(BackendError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Backend.from_options(**kwargs)


def test_a_head_address_is_read_as_host_and_port_and_a_bad_port_is_named():
    from exo.backends.ray_tasks import head_endpoint

    assert head_endpoint("10.0.0.5:6380") == ("10.0.0.5", 6380)
    assert head_endpoint("head.lab") == ("head.lab", 6379)
    assert head_endpoint("ray://[fd00::1]:10001") == ("fd00::1", 10001)
    assert head_endpoint("auto") is None
    with pytest.raises(BackendError, match="--ray-address 'head:abc': the port 'abc' is not a number"):
        head_endpoint("head:abc")


def test_the_default_backend_is_local_and_eval_on_it_never_imports_ray(tmp_path: Path):
    assert Backend().name == "local"
    code = (
        "import sys\n"
        "from exo.cli.main import app\n"
        "try:\n"
        f"    app(['eval', '--trials', '1', '--levels', '1', '--workers', '1', '--max-steps', '20',"
        f" '--out', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'RAY_NOT_IMPORTED')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("RAY_NOT_IMPORTED"), proc.stdout[-2000:]
    assert (tmp_path / "out" / "summary.json").is_file()


def _square(x: int) -> int:
    return x * x


def test_map_tasks_keeps_the_order_of_the_items_on_both_backends(ray_instance):
    items = list(range(7))
    seen: list[int] = []
    local = map_tasks(_square, items, Backend("local", workers=1), on_result=lambda i, _: seen.append(i))
    assert local == [x * x for x in items] and seen == items
    remote = map_tasks(_square, items, Backend("ray"))
    assert remote == local


def _raises(x: int) -> int:
    raise ValueError(f"bad item {x}")


def test_an_exception_of_the_task_reaches_the_caller_as_its_own_type(ray_instance):
    with pytest.raises(ValueError, match="bad item 0"):
        map_tasks(_raises, [0], Backend("ray", max_retries=2))


@dataclass(frozen=True)
class KillsItsWorkerOnce:
    """A controller factory whose first call outside the test process kills that worker process (SIGKILL).

    ``marker`` is created atomically by the call that kills, so exactly one worker dies; the
    marker holds that worker's pid.
    """

    spec: ControllerSpec
    marker: str
    test_pid: int

    def __call__(self):
        if os.getpid() != self.test_pid:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return self.spec()
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return self.spec()


def _numbers(report) -> str:
    """Every trial's row and the per-level summary as JSON text (NaN compares equal to NaN there)."""
    return json.dumps({"trials": [t.row() for t in report.trials], "levels": report.levels_summary()},
                      sort_keys=True)


@pytest.mark.slow
def test_eval_on_ray_gives_the_local_numbers_and_a_killed_worker_is_retried(ray_instance, tmp_path: Path):
    pid = ControllerSpec("pid", load_controller_params("pid"))
    local = evaluate(pid, TINY)

    on_ray = evaluate(pid, TINY, backend=Backend("ray", max_retries=2))
    assert _numbers(on_ray) == _numbers(local)

    marker = tmp_path / "killed"
    survived = evaluate(KillsItsWorkerOnce(pid, str(marker), os.getpid()), TINY,
                        backend=Backend("ray", max_retries=2))
    killed_pid = int(marker.read_text())
    assert killed_pid != os.getpid()
    assert _numbers(survived) == _numbers(local)

    marker_no_retry = tmp_path / "killed-no-retry"
    with pytest.raises(RuntimeError, match="lost its worker process 1 time"):
        evaluate(KillsItsWorkerOnce(pid, str(marker_no_retry), os.getpid()), TINY,
                 backend=Backend("ray", max_retries=0))
    assert marker_no_retry.is_file()


def test_every_node_of_the_cluster_must_run_this_exo(ray_instance):
    from exo.backends import code_fingerprint
    from exo.backends.ray_tasks import check_same_code

    here = code_fingerprint()
    assert len(here) == 16 and here == code_fingerprint()
    check_same_code(here)  # the local instance's node runs this worktree's code
    node = ray_instance.nodes()[0]["NodeManagerAddress"]
    with pytest.raises(BackendError, match=f"node\\(s\\) {node} \\({here}\\) run another exo than this machine"):
        check_same_code("0" * 16)
