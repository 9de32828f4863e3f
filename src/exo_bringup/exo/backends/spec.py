"""The choice of backend (:class:`Backend`), its errors, and the code fingerprint of this exo (no Ray here)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo.params import ConfigError
from exo.paths import share_dir

#: Backend names, the default first.
BACKENDS: tuple[str, ...] = ("local", "ray")

#: Ray's own default for remote functions: a task is run again up to 3 times if its worker dies.
DEFAULT_MAX_RETRIES = 3

class BackendError(ConfigError):
    """The backend cannot be used as asked (unknown name, unreachable Ray address, option mismatch)."""


@dataclass(frozen=True)
class Backend:
    """Where :func:`map_tasks` runs its tasks.

    Attributes:
        name: "local" (process pool of this machine) or "ray".
        workers: local: worker processes (1 = in this process); ray without ``ray_address``:
            CPUs of the local Ray instance started for the run. Ignored on a cluster, whose
            CPUs Ray schedules.
        ray_address: address of a running Ray cluster's head, ``HOST:PORT`` (the port of
            ``ray start --head``, 6379 by default) or ``auto`` (the cluster this machine
            belongs to); None: start a local Ray instance.
        max_retries: ray: times a task is run again after its worker process died.
        cpus_per_task: ray: CPUs reserved per task (a training run with 2 envs may want 2).
    """

    name: str = "local"
    workers: int = 2
    ray_address: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise BackendError(f"unknown backend {self.name!r}; choose one of {', '.join(BACKENDS)}")
        if self.ray_address is not None and self.name != "ray":
            raise BackendError(f"--ray-address {self.ray_address} needs --backend ray (the backend is {self.name!r})")
        if self.ray_address is not None and not self.ray_address.strip():
            raise BackendError("--ray-address is empty; give HOST:PORT of the cluster's head or auto")
        if self.workers < 1:
            raise BackendError(f"workers must be >= 1, got {self.workers}")
        if self.max_retries < 0:
            raise BackendError(f"max retries must be >= 0, got {self.max_retries}")
        if not self.cpus_per_task > 0:
            raise BackendError(f"CPUs per task must be > 0, got {self.cpus_per_task}")

    @classmethod
    def from_options(cls, backend: str, ray_address: str = "", workers: int = 2,
                     max_retries: int = DEFAULT_MAX_RETRIES, cpus_per_task: float = 1.0) -> Backend:
        """The backend of the command-line options (``--ray-address ""`` = not given)."""
        return cls(name=backend.strip().lower(), workers=workers, ray_address=ray_address or None,
                   max_retries=max_retries, cpus_per_task=cpus_per_task)

    def describe(self) -> dict[str, Any]:
        """What summary files record about where the tasks ran."""
        doc: dict[str, Any] = {"name": self.name, "workers": self.workers}
        if self.name == "ray":
            doc.update({"ray_address": self.ray_address or "local instance", "max_retries": self.max_retries,
                        "cpus_per_task": self.cpus_per_task})
        return doc


def code_fingerprint() -> str:
    """16 hex digits of a SHA-256 over exo's Python sources and ``config/*.yaml`` as this process sees them.

    Two processes with the same fingerprint run the same code and configuration, so their tasks give
    the same numbers; a cluster node with another one would not (:mod:`exo.backends.ray_tasks`).
    """
    package = Path(__file__).resolve().parents[1]
    files = [(f"exo/{p.relative_to(package).as_posix()}", p) for p in package.rglob("*.py")]
    files += [(f"config/{p.name}", p) for p in (share_dir() / "config").glob("*.yaml")]
    digest = hashlib.sha256()
    for name, path in sorted(files):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
