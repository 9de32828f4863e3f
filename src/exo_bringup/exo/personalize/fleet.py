"""``exo personalize --users all``: :func:`exo.personalize.run.personalize_user` for many users, one task per user.

Each user is an independent task of a :class:`~exo.backends.Backend`: one after another on this machine
(``local``; each user's candidates evaluated by ``workers`` processes), or Ray tasks (``ray``; one CPU
and one process per user) on a local instance or a cluster. A task opens the user store itself, from
its folder and key file (never from key bytes sent over the network), so on a cluster the store folder
must be a shared file system and the key file present on every worker (docs/scaling.md). Changes to the
store are serialised between processes by its lock; each user's run is resumable as with ``--user``.

A user whose run fails (no identified twin, an error in the search) does not stop the others: the row
says ``failed`` with the error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo.backends import Backend, map_tasks
from exo.personalize.run import PersonalizeConfig, personalize_user
from exo.users import UserStore


@dataclass(frozen=True)
class UserJob:
    """One user's personalisation as a task: picklable, paths as strings.

    Attributes:
        store: the user store folder (absolute).
        key_file: its key file (None: ``$EXO_KEY_FILE`` or the default key file; a passphrase store
            reads ``$EXO_PASSPHRASE``).
        user: the pseudonym.
        config: the settings (``config/personalize.yaml``).
        budget_s: wall-time budget of this user's search, s (None: the settings').
        max_evaluations: stop each baseline's search after this many candidates (smoke runs).
        workers: processes evaluating this user's candidates.
        resume: continue the user's unfinished run if there is one.
    """

    store: str
    key_file: str | None
    user: str
    config: PersonalizeConfig
    budget_s: float | None = None
    max_evaluations: int | None = None
    workers: int = 1
    resume: bool = True


def personalize_job(job: UserJob) -> dict[str, Any]:
    """Run one user's personalisation (in a worker); the user's row (``failed`` with the error on an exception)."""
    try:
        store = UserStore.open(job.store, key_file=job.key_file, interactive=False, recover=False)
        outcome = personalize_user(store, job.user, job.config, budget_s=job.budget_s,
                                   max_evaluations=job.max_evaluations, workers=job.workers, resume=job.resume)
    except Exception as exc:  # noqa: BLE001 - one user's failure is recorded; the others go on
        return {"user": job.user, "status": "failed", "version": None, "reason": "",
                "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    return {"user": job.user, "status": outcome.version.status, "version": outcome.version.id,
            "reason": outcome.verdict.reason, "error": "", "session": outcome.session,
            "candidate": outcome.to_dict()["candidate"], "deployed": outcome.to_dict()["deployed"]}


def personalize_users(store: str | Path, key_file: str | Path | None, users: Sequence[str],
                      config: PersonalizeConfig, *, backend: Backend | None = None, budget_s: float | None = None,
                      max_evaluations: int | None = None, resume: bool = True,
                      on_user: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Personalise every user of ``users`` (one task each); their rows in the order of ``users``.

    On the local backend users run one after another, each with ``backend.workers`` processes; on Ray
    each user is one task of ``backend.cpus_per_task`` CPUs evaluating its candidates in its own process.
    """
    backend = backend or Backend(workers=1)
    per_user_workers = backend.workers if backend.name == "local" else 1
    jobs = [UserJob(str(Path(store).resolve()), str(Path(key_file).resolve()) if key_file else None, user, config,
                    budget_s, max_evaluations, per_user_workers, resume) for user in users]
    tasks_backend = Backend("local", workers=1) if backend.name == "local" else backend
    return map_tasks(personalize_job, jobs, tasks_backend,
                     on_result=(lambda _, row: on_user(row)) if on_user else None)
