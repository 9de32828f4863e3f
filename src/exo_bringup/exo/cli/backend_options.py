"""The ``--backend``, ``--ray-address`` and ``--max-retries`` options shared by ``exo eval``, ``exo sweep``
and ``exo personalize`` (where their tasks run: :mod:`exo.backends`)."""

from __future__ import annotations

from typing import Annotated

import typer

from exo.backends import BACKENDS, DEFAULT_MAX_RETRIES, Backend

BackendOption = Annotated[
    str,
    typer.Option("--backend", help=f"Where the tasks run: {' or '.join(BACKENDS)} (local: this machine's "
                 "processes, no Ray; ray: Ray tasks on a local instance or the cluster of --ray-address)."),
]
RayAddressOption = Annotated[
    str,
    typer.Option("--ray-address", help="With --backend ray: HOST:PORT of a running Ray cluster's head "
                 "(ray start --head), or auto; default: start a local Ray instance of --workers CPUs."),
]
MaxRetriesOption = Annotated[
    int,
    typer.Option("--max-retries", min=0, help="With --backend ray: times a task is run again when its "
                 "worker process dies."),
]


def backend_from_options(backend: str, ray_address: str, workers: int,
                         max_retries: int = DEFAULT_MAX_RETRIES, cpus_per_task: float = 1.0) -> Backend:
    """The validated :class:`~exo.backends.Backend` (a :class:`~exo.backends.BackendError` names a bad option)."""
    return Backend.from_options(backend, ray_address, workers, max_retries, cpus_per_task)
