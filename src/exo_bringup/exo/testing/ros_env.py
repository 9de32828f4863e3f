"""Environment for ROS processes that must not see (or disturb) anything else on the machine."""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from pathlib import Path
from typing import IO

from exo.ros.environment import ros_environment

__all__ = ["DomainClaim", "apply", "claim_domain", "restore", "ros_environment"]


def apply(env: dict[str, str]) -> dict[str, str | None]:
    """Set ``env`` in this process; returns the previous values for :func:`restore`."""
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return previous


def restore(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class DomainClaim:
    """An exclusive claim on a ROS_DOMAIN_ID among the processes of this machine.

    Tests and benchmarks that run in parallel (two pytest runs, a benchmark next to
    the test suite) would otherwise share DDS domains and see each other's topics.
    A claim holds an ``flock`` on ``$TMPDIR/exo-ros-domain-<id>.lock`` until
    :meth:`release` (or process exit, when the kernel drops the lock).
    """

    def __init__(self, domain_id: int, handle: IO[str]) -> None:
        self.domain_id = domain_id
        self._handle = handle

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def claim_domain(low: int = 1, high: int = 101) -> DomainClaim:
    """Claim a free domain id in ``[low, high]`` (tried in random order); RuntimeError if none is free."""
    lock_dir = Path(tempfile.gettempdir())
    candidates = list(range(low, high + 1))
    random.shuffle(candidates)
    for domain in candidates:
        handle = open(lock_dir / f"exo-ros-domain-{domain}.lock", "w")  # noqa: SIM115 - held by the claim
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return DomainClaim(domain, handle)
    raise RuntimeError(f"no free ROS_DOMAIN_ID in {low}..{high}: every one is claimed by another exo process")
