"""The encrypted per-user store (pure Python, no ROS): profiles, caps, sessions, recording into it.

A *user* is a pseudonym (``[a-z0-9-]{3,32}``; the clinic keeps who it is, outside
exo). The store keeps, per user, a profile (clinician-rated MAS level, the
therapist's safety caps, the identified twin, controller versions, the session
index) and sessions (bags recorded by the graph, JSON artefacts), every file
encrypted with AES-256-GCM and bound to its path. See ``docs/user-store.md``
for the format, the commands (``exo user ...``) and the threat model.

Typical use::

    store = UserStore.open()                        # $EXO_STORE, key from $EXO_KEY_FILE / $EXO_PASSPHRASE
    with store.recording("p07", "sim", {"twin": "reduced", "level": "2"}) as bag_dir:
        ...                                         # the recorder writes its bag into bag_dir
    with store.open_session("p07", 1) as bag_dir:   # decrypted, deleted again on exit
        analyse(bag_dir)
    caps_for("p07")                                  # {"user_torque_cap_nm": 40.0, ...} for the graph
"""

from __future__ import annotations

from exo.users.assistance import Assistance, AssistanceSchedule, SessionOutcome, next_assistance
from exo.users.caps import SAFETY_PARAMETERS, caps_for
from exo.users.crypto import ScryptParams, create_key_file, load_key_file
from exo.users.errors import (
    CredentialError,
    DecryptionError,
    ProfileError,
    StoreError,
    UnknownUserError,
    WrongKeyError,
)
from exo.users.profile import (
    MAS_LEVELS,
    Caps,
    ControllerVersion,
    Profile,
    SessionInfo,
    validate_user_id,
)
from exo.users.store import (
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    ENV_STORE,
    UserStore,
    default_key_file,
    default_store,
)

__all__ = [
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "ENV_STORE",
    "MAS_LEVELS",
    "SAFETY_PARAMETERS",
    "Assistance",
    "AssistanceSchedule",
    "Caps",
    "ControllerVersion",
    "CredentialError",
    "DecryptionError",
    "Profile",
    "ProfileError",
    "ScryptParams",
    "SessionInfo",
    "SessionOutcome",
    "StoreError",
    "UnknownUserError",
    "UserStore",
    "WrongKeyError",
    "caps_for",
    "create_key_file",
    "default_key_file",
    "default_store",
    "load_key_file",
    "next_assistance",
    "validate_user_id",
]
