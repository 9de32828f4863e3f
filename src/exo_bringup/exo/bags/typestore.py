"""The rosbags typestore of exo's bags: ROS 2 Kilted's standard types plus exo_msgs.

exo_msgs types are registered from their ``.msg`` files (the installed
``share/exo_msgs/msg`` of the build, else the source tree), so the definitions
a bag embeds are exactly the ones the nodes were built from, and the RIHS01
hashes written into the bag match the ROS-generated ones.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

EXO_MSGS = "exo_msgs"


def msg_dirs() -> list[Path]:
    """Candidate folders holding ``exo_msgs``' ``.msg`` files, most authoritative first."""
    candidates: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) + [sys.prefix]:
        if prefix:
            candidates.append(Path(prefix) / "share" / EXO_MSGS / "msg")
    candidates.append(Path(__file__).resolve().parents[3] / EXO_MSGS / "msg")  # src/exo_msgs/msg
    return [c for c in candidates if c.is_dir() and any(c.glob("*.msg"))]


@cache
def exo_typestore() -> Typestore:
    """Kilted's typestore with every ``exo_msgs/msg/*`` type registered.

    Raises:
        FileNotFoundError: no ``exo_msgs`` ``.msg`` files were found (build exo_msgs first).
    """
    dirs = msg_dirs()
    if not dirs:
        raise FileNotFoundError(
            "cannot find exo_msgs' .msg files (share/exo_msgs/msg in AMENT_PREFIX_PATH or src/exo_msgs/msg); "
            "run scripts/setup.sh"
        )
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(dirs[0].glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{EXO_MSGS}/msg/{path.stem}"))
    store.register(types)
    return store


def typestore_with(recorded: Typestore) -> Typestore:
    """Kilted's types plus exo_msgs, where ``recorded`` (a bag's embedded definitions) takes precedence.

    Rewriting a bag (``exo export --format mcap``) copies its CDR bytes, which were serialised with
    the definitions the bag embeds: an older bag's ``exo_msgs/TorqueCommand`` must stay the older
    definition in the copy, or it no longer decodes. Types the bag does not embed come from the
    build (every contract topic is declared in every bag).
    """
    store = get_typestore(Stores.ROS2_KILTED)
    current = exo_typestore()
    types = {name: defs for name, defs in current.fielddefs.items() if name.startswith(EXO_MSGS + "/")}
    types.update({name: defs for name, defs in recorded.fielddefs.items() if name not in store.fielddefs})
    store.register(types)
    return store
