"""Recording a graph run into a user's encrypted records (``exo sim/real --user``, ``exo assess``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer


@dataclass
class UserRecording:
    """A recording into a user's records while it runs.

    Attributes:
        bag: the plaintext staging folder the recorder writes its bag into (encrypted when the block ends).
        artefacts: JSON artefacts (name -> plain JSON value) stored with the session when the block ends.
    """

    bag: Path
    artefacts: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def recording_for(console, command: str, user: str, kind: str, store: Path | None, key_file: Path | None,
                  metadata: Mapping[str, Any]) -> Iterator[UserRecording]:
    """Open the store, check the user, and yield the recording (its plaintext staging folder for the bag).

    When the block ends (normally, by an exception or by SIGTERM) the recording is encrypted into a new
    session of the user and the plaintext is deleted (:meth:`exo.users.UserStore.recording`); a run killed
    outright is recovered by the next ``exo user`` command. The graph's nodes find the same store through
    ``EXO_STORE``/``EXO_KEY_FILE`` (set here from ``--store``/``--key-file``) for the user's caps.

    Bad store, key or user: one line naming the problem and exit code 2.
    """
    import os

    from rich.markup import escape

    from exo.users import ENV_KEY_FILE, ENV_STORE, StoreError, UserStore

    try:
        opened = UserStore.open(store, key_file=key_file, interactive=True)
        profile = opened.profile(user)
    except StoreError as exc:
        console.print(f"[red]{command}: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    # the graph's caps are read in this process (exo.graph.user_parameters) from the same store and key
    os.environ[ENV_STORE] = str(opened.root)
    if key_file is not None:
        os.environ[ENV_KEY_FILE] = str(Path(key_file).expanduser().resolve())
    metadata = dict(metadata)
    if metadata.get("controller") not in (None, "assessment"):  # what the session ran at (exo progress)
        metadata["assistance"] = profile.assistance.level
        if metadata.get("controller") == "user":
            metadata["controller_version"] = profile.deployed.id if profile.deployed is not None else "generic"
    with opened.recording(user, kind, metadata) as staging:
        recording = UserRecording(staging)
        yield recording
    session = opened.sessions(user)[-1]
    for name, value in recording.artefacts.items():
        opened.put_json(user, session.number, name, value)
    console.print(f"recorded into the records of {user}: session {session.number} ({kind}, encrypted); "
                  f"exo analyze --user {user} --session {session.number}")
