"""Fixtures for tests that run real node processes over DDS.

Every test that touches ROS gets its own ``ROS_DOMAIN_ID`` (claimed with a
file lock, so parallel runs and benchmarks on one machine never share one), localhost-only discovery, its own ROS log folder, and a guarantee
that every process it started is killed at teardown, even when the test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exo.testing import ros_env


@pytest.fixture
def ros_domain(tmp_path: Path) -> Iterator[int]:
    """A DDS domain id no other test (of this or any parallel run) uses, applied to this process's env."""
    claim = ros_env.claim_domain()
    env = ros_env.ros_environment(claim.domain_id, tmp_path / "ros_log")
    previous = ros_env.apply(env)
    try:
        yield claim.domain_id
    finally:
        ros_env.restore(previous)
        claim.release()


@pytest.fixture
def probe(ros_domain: int):
    """An in-process rclpy node in the test's domain (see exo.testing.probe.RosProbe)."""
    from exo.testing.probe import RosProbe

    p = RosProbe(ros_domain)
    try:
        yield p
    finally:
        p.close()


class Processes:
    """Starts python modules / the graph as child processes and always kills them."""

    def __init__(self, domain: int, tmp_path: Path) -> None:
        self.env = ros_env.ros_environment(domain, tmp_path / "ros_log")
        self.tmp_path = tmp_path
        self.children: list[subprocess.Popen] = []
        self.graphs = []

    def module(self, module: str, *args: str, name: str | None = None) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name or module.rsplit('.', 1)[-1]}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        log.close()
        self.children.append(proc)
        return proc

    def graph(self, mode: str = "sim", only: tuple[str, ...] | None = None, start: bool = True, **arguments: str):
        """A GraphRunner of ``mode`` (started unless ``start=False``); logs per namespace."""
        from exo.runner import GraphRunner

        log_dir = self.tmp_path / "logs" / (str(arguments.get("namespace", "exo")).strip("/") or "root")
        runner = GraphRunner(mode, {k: str(v) for k, v in arguments.items()}, env=self.env,
                             log_dir=log_dir, only=only)
        self.graphs.append(runner)
        if start:
            runner.start()
        return runner

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp_path.rglob("*.log")) if "ros_log" not in p.parts)

    def close(self) -> None:
        from exo.runner import stop_process_groups

        for runner in self.graphs:
            runner.stop(timeout_s=3.0)
        stop_process_groups(self.children, timeout_s=3.0, signals=(signal.SIGINT, signal.SIGKILL))


@pytest.fixture
def processes(ros_domain: int, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """Start node processes in the test's domain; on failure their logs are printed."""
    procs = Processes(ros_domain, tmp_path)
    try:
        yield procs
    finally:
        procs.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(procs.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
