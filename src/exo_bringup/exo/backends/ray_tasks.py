"""The ``ray`` backend: one Ray task per item, on a local Ray instance or a cluster (docs/scaling.md).

Imported only when ``--backend ray`` is chosen (:func:`exo.backends.map_tasks`); of exo's backends it
needs only :mod:`exo.backends.spec`.

- Connecting: :func:`connected` joins the cluster at ``Backend.ray_address`` (checked first with a
  TCP connection, so a wrong address fails in seconds with one line naming it), or starts a local
  instance of ``Backend.workers`` CPUs without the dashboard; it disconnects (and stops a local
  instance) at the end, unless Ray was already initialised by the caller (tests, notebooks).
- Same code: on a cluster, :func:`check_same_code` runs :func:`~exo.backends.code_fingerprint` on
  every node with CPUs and refuses to start if one differs from this process's (another commit or
  configuration would give other numbers). Nodes that join later are not checked.
- Retries: a task whose worker process dies is run again up to ``Backend.max_retries`` times
  (Ray's task retries); an exception raised by the task's own code is not retried.
- Stopping: if the caller is interrupted (Ctrl-C) or a task fails for good, the tasks still
  pending are cancelled.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ray
from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from exo.backends.spec import Backend, BackendError, code_fingerprint

#: Ray's environment variable choosing its authentication mode (``token`` to join a cluster that uses tokens).
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"

#: Default port of a Ray head (``ray start --head``) when an address gives none.
DEFAULT_HEAD_PORT = 6379

#: Seconds to wait for a TCP connection to the head before calling the address unreachable.
CONNECT_TIMEOUT_S = 5.0

#: Seconds to wait for every node's code fingerprint when connecting to a cluster.
FINGERPRINT_TIMEOUT_S = 120.0

#: Seconds a look at the pending tasks waits for one to finish (progress reports come at most this late).
POLL_S = 0.05


def head_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a head address (``HOST``, ``HOST:PORT``, ``ray://HOST:PORT``); None for ``auto``."""
    text = address.strip()
    if text == "auto":
        return None
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_HEAD_PORT
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise BackendError(f"--ray-address {address!r}: the port {port!r} is not a number (expected HOST:PORT)") from None


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`BackendError` naming ``address`` if nothing accepts a TCP connection there."""
    endpoint = head_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendError(f"cannot reach the Ray cluster at {address} ({reason}); start its head with "
                           "`ray start --head` or correct --ray-address") from None


@contextmanager
def connected(backend: Backend) -> Iterator[None]:
    """Ray connected as ``backend`` asks for the duration of the block (see the module docstring)."""
    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if backend.ray_address:
        check_reachable(backend.ray_address)
        try:
            ray.init(address=backend.ray_address, **options)
        except (ConnectionError, RuntimeError) as exc:
            hint = "" if os.environ.get(AUTH_MODE_VARIABLE) else (
                f" (a cluster with token authentication, Ray's default, also needs {AUTH_MODE_VARIABLE}=token "
                "and the cluster's token here: docs/scaling.md)")
            raise BackendError(f"cannot connect to the Ray cluster at {backend.ray_address}: "
                               f"{' '.join(str(exc).split())}{hint}") from None
    else:
        ray.init(num_cpus=backend.workers, **options)
    try:
        if backend.ray_address:
            check_same_code(code_fingerprint())
        yield
    finally:
        ray.shutdown()


def check_same_code(expected: str) -> None:
    """Raise :class:`BackendError` naming the nodes whose exo fingerprint is not ``expected``.

    One zero-CPU task pinned to each live node with CPUs computes the node's fingerprint.
    """
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    probe = ray.remote(code_fingerprint)
    refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote() for n in nodes]
    mismatched: set[str] = set()
    for node, ref in zip(nodes, refs, strict=True):
        try:
            found = ray.get(ref, timeout=FINGERPRINT_TIMEOUT_S)
        except RayTaskError as exc:  # e.g. an exo without this module: certainly not the same code
            found = f"cannot run exo's fingerprint: {type(exc.cause).__name__}"
        if found != expected:
            mismatched.add(f"{node['NodeManagerAddress']} ({found})")
    if mismatched:
        raise BackendError(f"the Ray cluster's node(s) {', '.join(sorted(mismatched))} run another exo than this machine "
                           f"({expected}); install the same commit and config on every node")


def ray_map(fn: Callable[[Any], Any], items: Sequence[Any], backend: Backend,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(item) for item in items]`` as Ray tasks, in the items' order (see :func:`exo.backends.map_tasks`)."""
    with connected(backend):
        task = ray.remote(fn).options(max_retries=backend.max_retries, retry_exceptions=False,
                                      num_cpus=backend.cpus_per_task)
        pending = {task.remote(item): index for index, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
                for ref in done:
                    index = pending.pop(ref)
                    results[index] = _result(ref, index, backend)
                    if on_result:
                        on_result(index, results[index])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        return results


def _result(ref: ray.ObjectRef, index: int, backend: Backend) -> Any:
    """The value of a finished task; its own exception re-raised as that type; a lost worker named."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        raise exc.as_instanceof_cause() from None
    except (WorkerCrashedError, TaskCancelledError) as exc:
        raise RuntimeError(f"task {index} lost its worker process {backend.max_retries + 1} time(s) "
                           f"(max_retries={backend.max_retries}): {type(exc).__name__}") from exc
