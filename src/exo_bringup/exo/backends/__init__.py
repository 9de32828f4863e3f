"""Where independent tasks run: this machine's process pool (``local``) or Ray tasks (``ray``).

One call, :func:`map_tasks`, runs ``fn(args)`` for every item of a list and returns the results
in the list's order, whatever the backend and the number of workers; the callers (the
evaluator's trials, ``exo sweep``'s training runs, ``exo personalize --users``'s users) keep
their results independent of where each task ran because every task carries its own seeds.

- ``local`` (the default): :func:`exo.backends.local.local_map`, a ``ProcessPoolExecutor``
  of ``workers`` spawned processes (``workers`` = 1: in this process). Ray is never imported.
- ``ray``: :func:`exo.backends.ray_tasks.ray_map`, one Ray task per item on a local Ray instance
  of ``workers`` CPUs started for the call, or on the cluster at ``ray_address``. A task whose
  worker process dies (killed, out of memory, a lost node) is run again up to ``max_retries``
  times; an exception raised by the task itself is not retried (it would raise again) and
  reaches the caller as it is. On a cluster, every node must run the same exo as this process
  (:func:`code_fingerprint`, checked when connecting).

:class:`Backend` is the validated choice; its errors (:class:`BackendError`, a
:class:`~exo.params.ConfigError`) name the problem in one line, so the ``exo`` command
reports them without a traceback (:mod:`exo.cli.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TypeVar

from exo.backends.local import local_map
from exo.backends.spec import BACKENDS, DEFAULT_MAX_RETRIES, Backend, BackendError, code_fingerprint

__all__ = ["BACKENDS", "DEFAULT_MAX_RETRIES", "Backend", "BackendError", "code_fingerprint", "map_tasks", "session"]

ArgsT = TypeVar("ArgsT")
ResultT = TypeVar("ResultT")


def map_tasks(fn: Callable[[ArgsT], ResultT], items: Sequence[ArgsT], backend: Backend | None = None,
              on_result: Callable[[int, ResultT], None] | None = None) -> list[ResultT]:
    """``[fn(item) for item in items]`` on ``backend`` (default: local, 2 workers).

    ``fn`` must be a module-level function and the items picklable (they travel to worker
    processes or machines). ``on_result(index, result)`` is called in this process as each task
    finishes (in completion order); the returned list is in the order of ``items``.
    """
    backend = backend or Backend()
    if backend.name == "ray":
        from exo.backends.ray_tasks import ray_map  # Ray is imported only when asked for

        return ray_map(fn, items, backend, on_result)
    return local_map(fn, items, backend.workers, on_result)


@contextmanager
def session(backend: Backend | None) -> Iterator[None]:
    """Keep one connection to Ray across several :func:`map_tasks` calls (nothing to do for ``local``).

    Without it each ``ray`` call connects (or starts a local instance) and disconnects on its own.
    """
    if backend is None or backend.name != "ray":
        with nullcontext():
            yield
        return
    from exo.backends.ray_tasks import connected

    with connected(backend):
        yield
