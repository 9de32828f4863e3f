"""The encrypted per-user store: profiles, sessions (bags and JSON artefacts), recording into it.

Layout of a store folder (``--store``, ``$EXO_STORE``, default ``~/.local/share/exo/users``)::

    store.json                      non-secret header: format, key mode, scrypt salt and cost, key id, key check
    .lock                           empty; serialises changes between processes (flock)
    <user>/profile.enc              the profile (JSON), see exo.users.profile
    <user>/sessions/<n>/bag/...     every file of the session's bag, each as <name>.enc
    <user>/sessions/<n>/<name>.json.enc   JSON artefacts of the session (put_json)
    .staging/<id>/                  a recording in progress: plaintext, mode 0700 (recording())
    .tmp/<id>/                      a session decrypted for reading: plaintext, mode 0700 (open_session())

Every file under ``<user>/`` is ciphertext (:mod:`exo.users.crypto`), bound to its
path. Plaintext exists only in ``.staging`` while a recording runs and in ``.tmp``
while a session is open; both are deleted (unlinked: on a journaling or
copy-on-write filesystem or an SSD an overwrite would not reach the old blocks
either, so none is attempted) when the block ends, on an exception and on
SIGTERM, and by :meth:`UserStore.recover` after a SIGKILL. Folders are created
0700, files 0600. No name and no free text is stored (see :mod:`exo.users.profile`).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace as _replace
from pathlib import Path
from types import FrameType
from typing import Any

from exo.users.assistance import (
    Assistance,
    AssistanceDecision,
    AssistanceSchedule,
    AssistanceStep,
    SessionOutcome,
    next_assistance,
)
from exo.users.crypto import (
    ScryptParams,
    StoreKey,
    check_passphrase,
    create_key_file,
    derive_key,
    file_key_id,
    kdf_from_entry,
    load_key_file,
    new_kdf,
    new_key_entry,
)
from exo.users.errors import CredentialError, DecryptionError, StoreError, UnknownUserError, WrongKeyError
from exo.users.profile import (
    Caps,
    ControllerVersion,
    Profile,
    SessionInfo,
    plain_value,
    today,
    validate_identified_twin,
    validate_kind,
    validate_mas_level,
    validate_name,
    validate_user_id,
)

#: Environment variable naming the store folder.
ENV_STORE = "EXO_STORE"
#: Environment variable naming the key file.
ENV_KEY_FILE = "EXO_KEY_FILE"
#: Environment variable holding the passphrase (passphrase stores).
ENV_PASSPHRASE = "EXO_PASSPHRASE"
#: Name of the non-secret store header.
HEADER_FILE = "store.json"
#: Format tag of the store header.
STORE_FORMAT = "exo-user-store/1"
#: Folder of recordings in progress (plaintext).
STAGING_DIR = ".staging"
#: Folder of sessions decrypted for reading (plaintext).
TMP_DIR = ".tmp"
#: The store-wide lock file.
LOCK_FILE = ".lock"
#: Magic of an MCAP file, at its start and (once complete, after the footer) at its end.
MCAP_MAGIC = b"\x89MCAP0\r\n"
#: Suffix of every encrypted file.
ENC_SUFFIX = ".enc"

_KEEP: Any = object()
_log = logging.getLogger("exo.users")


def default_store() -> Path:
    """The store folder: ``$EXO_STORE``, else ``$XDG_DATA_HOME/exo/users`` (``~/.local/share/exo/users``)."""
    if os.environ.get(ENV_STORE):
        return Path(os.environ[ENV_STORE]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(data) / "exo" / "users"


def default_key_file() -> Path:
    """Where ``exo user init-key`` puts a key without ``--key-file``: ``$XDG_CONFIG_HOME/exo/user-store.key``
    (``~/.config/exo/user-store.key``); a store locked with a key file uses it when no other key is named."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config) / "exo" / "user-store.key"


def _mkdir_private(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a 0600 temporary file in the same folder, fsync, rename)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def mcap_truncated(path: Path) -> bool:
    """Whether an ``.mcap`` file lacks the magic that ends a complete file (a recorder killed mid-way)."""
    try:
        size = path.stat().st_size
        if size < 2 * len(MCAP_MAGIC):
            return True
        with path.open("rb") as f:
            f.seek(size - len(MCAP_MAGIC))
            return f.read() != MCAP_MAGIC
    except OSError:
        return True


def _remove_tree(path: Path) -> None:
    """Delete a folder of plaintext (unlink every file; see the module docstring on overwriting)."""
    shutil.rmtree(path, ignore_errors=True)


class _TerminationGuard:
    """While active (main thread only), SIGTERM raises ``SystemExit(143)`` so that ``finally`` blocks run.

    After :meth:`defer` (the cleanup has started) a SIGTERM is remembered instead and raised when the guard
    exits, so the cleanup itself is never interrupted. The previous handler is restored on exit.
    """

    def __enter__(self) -> _TerminationGuard:
        self._installed = threading.current_thread() is threading.main_thread()
        self._deferring = False
        self._pending: int | None = None
        if self._installed:
            self._previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = signum
            return
        self._deferring = True
        raise SystemExit(128 + signum)

    def defer(self) -> None:
        """From now on a SIGTERM waits until the guard exits."""
        self._deferring = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)
        if self._pending is not None and exc_type is None:
            raise SystemExit(128 + self._pending)


def _try_lock(folder: Path) -> int | None:
    """An fd holding ``folder/lock`` exclusively, or None when another process holds it (still alive)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class UserStore:
    """An open, unlocked user store. Create with :meth:`open`.

    Every method takes the user's pseudonym and validates it; a missing user is an
    :class:`~exo.users.errors.UnknownUserError`. Changes are serialised across
    processes by a lock on ``<store>/.lock``.

    Attributes:
        root: the store folder.
        mode: "key-file" or "passphrase".
    """

    def __init__(self, root: Path, key: StoreKey, header: dict[str, Any]) -> None:
        self.root = root
        self._key = key
        self._header = header
        self.mode: str = header["key"]["mode"]
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root: Path | str | None = None, *, key_file: Path | str | None = None, key: bytes | None = None,
             passphrase: str | None = None, create: bool = False, interactive: bool = False,
             scrypt_params: ScryptParams | None = None, recover: bool = True,
             allow_interrupted_rotation: bool = False) -> UserStore:
        """Open (or with ``create`` make) the store at ``root`` and check the key; then :meth:`recover`.

        Args:
            root: the store folder (default :func:`default_store`).
            key_file: a 32-byte key file (default ``$EXO_KEY_FILE``, then :func:`default_key_file` if it
                exists), for a store locked with a key file.
            key: the 32 key bytes themselves (instead of a file).
            passphrase: for a store locked with a passphrase (default ``$EXO_PASSPHRASE``, then a prompt
                if ``interactive``).
            create: make the store if ``root`` holds none (locked with the key given, else a passphrase).
            interactive: ask for a missing passphrase on the terminal.
            scrypt_params: scrypt cost of a new passphrase store (tests use a small one).
            recover: run :meth:`recover` (recordings killed mid-way, decrypted copies left behind).
            allow_interrupted_rotation: open although a key rotation did not finish (only to finish it).

        Raises:
            StoreError: no store at ``root`` (without ``create``), a malformed header, an interrupted key
                rotation.
            CredentialError: no usable key or passphrase (the message says where it looked).
            WrongKeyError: the key or passphrase does not open this store; no user file was read.
        """
        root = Path(root).expanduser() if root is not None else default_store()
        header_path = root / HEADER_FILE
        if not header_path.exists():
            if not create:
                raise StoreError(f"no user store at {root} (exo user create ID makes one; --store or "
                                 f"${ENV_STORE} name another folder)")
            store = cls._create(root, key_file=key_file, key=key, passphrase=passphrase, interactive=interactive,
                                scrypt_params=scrypt_params or ScryptParams())
        else:
            header = cls._read_header(root)
            entry = header["key"]
            raw, source = _secret_for(entry, root, key_file=key_file, key=key, passphrase=passphrase,
                                      interactive=interactive)
            store_key = StoreKey(raw, bytes.fromhex(entry["key_id"]))
            if not store_key.verify_check_value(entry["check"]):
                raise WrongKeyError(f"wrong key for the user store {root}: {source} does not open it (the key "
                                    f"check in {HEADER_FILE} fails); no user data was read")
            if header.get("pending_key") and not allow_interrupted_rotation:
                raise StoreError(f"a key rotation of the user store {root} did not finish; run exo user "
                                 "rotate-key again with the same old and new key")
            store = cls(root, store_key, header)
        if recover:
            for note in store.recover():
                _log.warning("user store %s: %s", root, note)
        return store

    @classmethod
    def _create(cls, root: Path, *, key_file: Path | str | None, key: bytes | None, passphrase: str | None,
                interactive: bool, scrypt_params: ScryptParams) -> UserStore:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise StoreError(f"{root} is not a user store (no {HEADER_FILE}) and not empty; choose a new or empty "
                             "folder")
        kdf = None
        if key is not None:
            raw = key
        elif key_file is not None or os.environ.get(ENV_KEY_FILE):
            raw = load_key_file(key_file or os.environ[ENV_KEY_FILE])
        elif passphrase is not None or os.environ.get(ENV_PASSPHRASE):
            kdf = new_kdf(scrypt_params)
            pw = check_passphrase(passphrase if passphrase is not None else os.environ[ENV_PASSPHRASE])
            salt, params = kdf_from_entry(kdf, HEADER_FILE)
            raw = derive_key(pw, salt, params)
        elif default_key_file().exists():
            raw = load_key_file(default_key_file())
        elif interactive:
            kdf = new_kdf(scrypt_params)
            pw = prompt_new_passphrase(f"new user store {root}")
            salt, params = kdf_from_entry(kdf, HEADER_FILE)
            raw = derive_key(pw, salt, params)
        else:
            raise CredentialError(f"no key for a new user store at {root}: give --key-file (exo user init-key "
                                  f"makes one), or set ${ENV_KEY_FILE} or ${ENV_PASSPHRASE}")
        store_key, entry = new_key_entry(raw, kdf)
        header = {"format": STORE_FORMAT, "key": entry}
        _mkdir_private(root)
        os.chmod(root, 0o700)
        tmp = root / f".{HEADER_FILE}.{secrets.token_hex(4)}.tmp"
        _atomic_write(tmp, (json.dumps(header, indent=2) + "\n").encode())
        try:
            os.link(tmp, root / HEADER_FILE)  # never replaces a header another process just wrote
        except FileExistsError:
            raise StoreError(f"another process made a user store at {root} at the same moment; run the command "
                             "again") from None
        finally:
            tmp.unlink()
        _fsync_dir(root)
        return cls(root, store_key, header)

    @staticmethod
    def _read_header(root: Path) -> dict[str, Any]:
        path = root / HEADER_FILE
        try:
            header = json.loads(path.read_text())
            if header.get("format") != STORE_FORMAT:
                raise StoreError(f"{path}: format {header.get('format')!r}; this exo reads {STORE_FORMAT!r}")
            for name in ("key", "pending_key"):
                entry = header.get(name)
                if entry is None and name == "pending_key":
                    continue
                if entry["mode"] not in ("key-file", "passphrase") or len(bytes.fromhex(entry["key_id"])) != 8:
                    raise StoreError(f"{path}: malformed {name} entry")
                str(entry["check"])
                if entry["mode"] == "passphrase":
                    kdf_from_entry(entry["kdf"], str(path))
            return header
        except StoreError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{path}: not a readable user store header ({type(exc).__name__}: {exc})") from None

    def _write_header(self, header: dict[str, Any]) -> None:
        _atomic_write(self.root / HEADER_FILE, (json.dumps(header, indent=2) + "\n").encode())
        self._header = header

    # ------------------------------------------------------------------ low level
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the store-wide lock (re-entrant within this object)."""
        with self._thread_lock:
            if self._lock_depth == 0:
                fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _write_enc(self, rel: str, plaintext: bytes, key: StoreKey | None = None) -> Path:
        path = self.root / rel
        _mkdir_private(path.parent)
        _atomic_write(path, (key or self._key).encrypt(plaintext, rel))
        return path

    def _read_enc(self, rel: str) -> bytes:
        path = self.root / rel
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{path}: missing from the store") from None
        return self._key.decrypt(blob, rel, where=path)

    def _user_dir(self, user_id: str) -> Path:
        return self.root / validate_user_id(user_id)

    def _require_user(self, user_id: str) -> Path:
        folder = self._user_dir(user_id)
        if not (folder / f"profile{ENC_SUFFIX}").is_file():
            raise UnknownUserError(f"no user {user_id!r} in the store {self.root} (exo user list shows them)")
        return folder

    def _save_profile(self, profile: Profile) -> None:
        self._write_enc(f"{profile.user_id}/profile{ENC_SUFFIX}", json.dumps(profile.to_dict(), indent=1).encode())

    def _new_private_dir(self, parent: str) -> tuple[Path, int]:
        """A new ``<store>/<parent>/<random id>/`` (0700) with its lock held: (folder, lock fd)."""
        with self._lock():
            base = _mkdir_private(self.root / parent)
            folder = base / secrets.token_hex(8)
            folder.mkdir(mode=0o700)
            fd = _try_lock(folder)
            if fd is None:
                raise StoreError(f"{folder}: cannot lock a new private folder")
            return folder, fd

    # ------------------------------------------------------------------ users
    def users(self) -> list[str]:
        """The pseudonyms of the store's users, sorted."""
        out = []
        for folder in self.root.iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and (folder / f"profile{ENC_SUFFIX}").is_file():
                with contextlib.suppress(StoreError):
                    out.append(validate_user_id(folder.name))
        return sorted(out)

    def profile(self, user_id: str) -> Profile:
        """The decrypted profile of ``user_id``."""
        self._require_user(user_id)
        rel = f"{user_id}/profile{ENC_SUFFIX}"
        try:
            data = json.loads(self._read_enc(rel))
        except ValueError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.root / rel}: not a profile ({exc})") from None
        profile = Profile.from_dict(data, origin=str(self.root / rel))
        if profile.user_id != user_id:
            raise DecryptionError(self.root / rel, f"it is the profile of another user id, not of {user_id!r}")
        return profile

    def create_user(self, user_id: str, *, mas_level: int | None = None, caps: Caps | None = None) -> Profile:
        """Add a user (created today).

        Args:
            user_id: a new pseudonym (``[a-z0-9-]{3,32}``).
            mas_level: clinician-rated Modified Ashworth level 0-3, or None.
            caps: the therapist's safety caps (default: none set; config/safety.yaml applies).

        Raises:
            ProfileError: invalid id, level or caps. StoreError: the user exists.
        """
        validate_user_id(user_id)
        profile = Profile(user_id=user_id, created=today(), mas_level=validate_mas_level(mas_level),
                          caps=caps or Caps())
        with self._lock():
            folder = self._user_dir(user_id)
            if folder.exists():
                raise StoreError(f"user {user_id!r} exists in the store {self.root}")
            _mkdir_private(folder / "sessions")
            self._save_profile(profile)
        return profile

    def update_user(self, user_id: str, *, mas_level: int | None = _KEEP, caps: Caps | None = None) -> Profile:
        """Change the clinician-rated MAS level (None = not rated) and/or replace the caps; returns the profile."""
        with self._lock():
            profile = self.profile(user_id)
            changes: dict[str, Any] = {}
            if mas_level is not _KEEP:
                changes["mas_level"] = validate_mas_level(mas_level)
            if caps is not None:
                changes["caps"] = caps
            profile = _replace(profile, **changes)
            self._save_profile(profile)
        return profile

    def delete_user(self, user_id: str) -> int:
        """Delete ``user_id``'s whole folder (profile, sessions, artefacts); returns the number of sessions.

        Raises:
            StoreError: a recording of this user is in progress.
        """
        with self._lock():
            profile = self.profile(user_id)
            if user_id in self._live_recording_users():
                raise StoreError(f"a recording of user {user_id!r} is in progress; delete the user after it ends")
            trash = self.root / f".deleting-{secrets.token_hex(8)}"
            os.rename(self._user_dir(user_id), trash)  # atomic: the user is gone at once
            _fsync_dir(self.root)
            _remove_tree(trash)
        return len(profile.sessions)

    # ------------------------------------------------------------------ twin and controllers
    def set_identified_twin(self, user_id: str, result: Mapping[str, Any]) -> Profile:
        """Store the twin identified for ``user_id`` (see :func:`~exo.users.profile.validate_identified_twin`:
        params, ci, mas_level, residual_nm (N m), session, method, date); replaces a previous one."""
        twin = validate_identified_twin(result)
        with self._lock():
            profile = self.profile(user_id)
            if twin.get("session") is not None and profile.session(twin["session"]) is None:
                raise StoreError(f"identified twin: user {user_id!r} has no session {twin['session']}")
            profile = _replace(profile, identified_twin=twin)
            self._save_profile(profile)
        return profile

    def add_controller(self, user_id: str, path: str = "", *, parent: str | None = None,
                       source_session: int | None = None, controller_id: str | None = None,
                       controller: str = "", params: Mapping[str, Any] | None = None, status: str = "candidate",
                       metrics: Mapping[str, Any] | None = None, reason: str = "") -> ControllerVersion:
        """Add a controller version to ``user_id``'s lineage (fields: :class:`ControllerVersion`).

        Args:
            path: where the controller lives (an exported policy folder, ...); "" if ``controller`` and
                ``params`` describe it fully.
            parent: id of the version it derives from (must exist).
            source_session: number of the session it was made from (must exist).
            controller_id: its id (default "c<n>", the next free number).
            controller, params: its registry name and keyword parameters.
            status: "candidate", "rejected", or "deployed" (the deployed version becomes "retired").
            metrics, reason: the acceptance gate's numbers and verdict.

        Raises:
            StoreError: unknown parent or session, or an id in use. ProfileError: invalid values.
        """
        if status == "retired":
            raise StoreError("a new controller version cannot be 'retired'")
        with self._lock():
            profile = self.profile(user_id)
            ids = {c.id for c in profile.controllers}
            if controller_id is None:
                n = len(profile.controllers) + 1
                while f"c{n}" in ids:
                    n += 1
                controller_id = f"c{n}"
            if controller_id in ids:
                raise StoreError(f"user {user_id!r} has a controller {controller_id!r} already")
            if parent is not None and parent not in ids:
                raise StoreError(f"user {user_id!r} has no controller {parent!r} (the parent)")
            if source_session is not None and profile.session(source_session) is None:
                raise StoreError(f"user {user_id!r} has no session {source_session}")
            version = ControllerVersion.from_dict({
                "id": controller_id, "parent": parent, "created": today(), "source_session": source_session,
                "path": path, "controller": controller, "params": dict(params or {}), "status": status,
                "metrics": dict(metrics or {}), "reason": reason})
            versions = profile.controllers
            if status == "deployed":
                versions = tuple(_replace(c, status="retired") if c.status == "deployed" else c for c in versions)
            self._save_profile(_replace(profile, controllers=(*versions, version)))
        return version

    def deploy_controller(self, user_id: str, controller_id: str, reason: str = "") -> ControllerVersion:
        """Make version ``controller_id`` the deployed one (a rollback, or a manual choice); the one
        deployed before becomes "retired". Its parameters are unchanged, to the bit.

        Raises:
            StoreError: no such version, or a rejected one (it never passed the acceptance gate).
        """
        with self._lock():
            profile = self.profile(user_id)
            target = profile.controller(controller_id)
            if target is None:
                have = ", ".join(c.id for c in profile.controllers) or "none"
                raise StoreError(f"user {user_id!r} has no controller version {controller_id!r} (versions: {have})")
            if target.status == "rejected":
                raise StoreError(f"controller version {controller_id!r} of user {user_id!r} was rejected by the "
                                 f"acceptance gate ({target.reason or 'no reason recorded'}); it cannot be deployed")
            versions = tuple(
                _replace(c, status="deployed", reason=reason or c.reason) if c.id == controller_id
                else _replace(c, status="retired") if c.status == "deployed" else c
                for c in profile.controllers)
            self._save_profile(_replace(profile, controllers=versions))
            return next(c for c in versions if c.id == controller_id)

    def set_assistance(self, user_id: str, *, level: float | None = None,
                       schedule: Mapping[str, Any] | None = None) -> Assistance:
        """The therapist sets ``user_id``'s assistance level and/or schedule parameters (the others kept).

        A new floor above the current level lifts the level to it. The change is recorded in the history
        as a "set" step.

        Raises:
            ProfileError: a value out of its range (named).
        """
        with self._lock():
            profile = self.profile(user_id)
            current = profile.assistance
            merged = AssistanceSchedule.from_dict({**current.schedule.to_dict(), **dict(schedule or {})})
            new_level = current.level if level is None else float(level)
            if level is None:
                new_level = max(new_level, merged.floor)
            assistance = Assistance(level=new_level, schedule=merged, history=current.history)
            step = AssistanceStep(session=None, date=today(), level_before=current.level,
                                  level_after=assistance.level, decision="set")
            assistance = assistance.recorded(step)
            self._save_profile(_replace(profile, assistance=assistance))
        return assistance

    def record_assistance(self, user_id: str, session: int, outcome: SessionOutcome) -> AssistanceDecision:
        """Apply the assist-as-needed rule (:func:`~exo.users.assistance.next_assistance`) to ``user_id``'s
        session ``session`` with ``outcome``; store the new level and the history entry; the decision.

        Raises:
            StoreError: no such session, or the session was judged already.
        """
        with self._lock():
            profile = self.profile(user_id)
            if profile.session(session) is None:
                raise StoreError(f"user {user_id!r} has no session {session}")
            if any(h.session == session for h in profile.assistance.history):
                raise StoreError(f"session {session} of user {user_id!r} already adjusted the assistance level")
            current = profile.assistance
            decision = next_assistance(current.level, outcome, current.schedule)
            step = AssistanceStep(session=session, date=today(), level_before=current.level,
                                  level_after=decision.level, decision=decision.decision,
                                  final_error_deg=outcome.final_error_deg, contribution=outcome.contribution,
                                  interventions=outcome.interventions)
            self._save_profile(_replace(profile, assistance=current.recorded(step)))
        return decision

    def controllers(self, user_id: str) -> list[ControllerVersion]:
        """``user_id``'s controller versions, oldest first."""
        return list(self.profile(user_id).controllers)

    # ------------------------------------------------------------------ sessions
    def sessions(self, user_id: str) -> list[SessionInfo]:
        """``user_id``'s session index, by number."""
        return sorted(self.profile(user_id).sessions, key=lambda s: s.number)

    def session(self, user_id: str, number: int) -> SessionInfo:
        """Session ``number`` of ``user_id`` (:class:`StoreError` if there is none)."""
        info = self.profile(user_id).session(number)
        if info is None:
            raise StoreError(f"user {user_id!r} has no session {number}")
        return info

    def _next_number(self, profile: Profile) -> int:
        folder = self.root / profile.user_id / "sessions"
        taken = {s.number for s in profile.sessions}
        if folder.is_dir():
            taken |= {int(p.name) for p in folder.iterdir() if p.name.isdigit()}
        return max(taken, default=0) + 1

    def create_session(self, user_id: str, kind: str, metadata: Mapping[str, Any] | None = None) -> SessionInfo:
        """A new session without a bag (for JSON artefacts only, e.g. an identification report)."""
        kind = validate_kind(kind)
        meta = plain_value(dict(metadata or {}), "session metadata")
        with self._lock():
            profile = self.profile(user_id)
            n = self._next_number(profile)
            _mkdir_private(self.root / user_id / "sessions" / str(n))
            info = SessionInfo(number=n, kind=kind, date=today(), metadata=meta)
            self._save_profile(_replace(profile, sessions=(*profile.sessions, info)))
        return info

    def put_json(self, user_id: str, session: int, name: str, obj: Any) -> Path:
        """Store ``obj`` (strict JSON: no NaN/inf) as artefact ``name`` of a session; replaces one of that name.

        Returns the encrypted file's path (``<user>/sessions/<n>/<name>.json.enc``).
        """
        validate_name(name, "artefact name")
        try:
            data = json.dumps(obj, allow_nan=False, indent=1).encode()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"artefact {name!r} is not strict JSON ({exc}); convert NaN/inf to null") from None
        with self._lock():
            profile = self.profile(user_id)
            info = profile.session(session)
            if info is None:
                raise StoreError(f"user {user_id!r} has no session {session}")
            path = self._write_enc(f"{user_id}/sessions/{session}/{name}.json{ENC_SUFFIX}", data)
            if name not in info.artefacts:
                new = _replace(info, artefacts=(*info.artefacts, name))
                self._save_profile(_replace(profile, sessions=tuple(new if s.number == session else s
                                                                    for s in profile.sessions)))
        return path

    def get_json(self, user_id: str, session: int, name: str) -> Any:
        """The JSON artefact ``name`` of a session."""
        info = self.session(user_id, session)
        if name not in info.artefacts:
            have = ", ".join(info.artefacts) or "none"
            raise StoreError(f"session {session} of user {user_id!r} has no artefact {name!r} (it has: {have})")
        return json.loads(self._read_enc(f"{user_id}/sessions/{session}/{name}.json{ENC_SUFFIX}"))

    @contextlib.contextmanager
    def recording(self, user_id: str, kind: str, metadata: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """Record into the store: yields an empty plaintext folder for the recorder's bag.

        The folder (mode 0700) is ``<store>/.staging/<random id>/bag``. When the block ends, normally or by
        an exception (SIGTERM raises ``SystemExit`` inside the block while it runs), every file written
        there is encrypted into a new session of ``user_id`` and the plaintext is deleted. A process killed
        outright (SIGKILL) leaves the folder; the next :meth:`recover` (every ``exo user`` command and
        :meth:`open` run it) makes it a session marked ``recovered``.

        Args:
            user_id: whose session it is (must exist).
            kind: "sim", "real", "replay", "assessment", ...
            metadata: plain JSON about the session (twin, level, controller, ...).

        The new session is ``store.sessions(user_id)[-1]`` after the block.
        """
        kind = validate_kind(kind)
        meta = plain_value(dict(metadata or {}), "session metadata")
        self._require_user(user_id)
        folder, fd = self._new_private_dir(STAGING_DIR)
        try:
            manifest = {"user_id": user_id, "kind": kind, "metadata": meta, "date": today(),
                        "recording_id": folder.name, "number": None}
            self._write_enc(f"{self._rel(folder)}/manifest{ENC_SUFFIX}", json.dumps(manifest).encode())
            bag = folder / "bag"
            bag.mkdir(mode=0o700)
        except BaseException:
            _remove_tree(folder)
            os.close(fd)
            raise
        with _TerminationGuard() as guard:
            ended_by = ""
            try:
                yield bag
            except BaseException as exc:
                ended_by = type(exc).__name__
                raise
            finally:
                guard.defer()
                try:
                    self._commit_staging(folder, recovered=False, ended_by=ended_by)
                finally:
                    os.close(fd)

    def _commit_staging(self, folder: Path, *, recovered: bool, ended_by: str = "") -> SessionInfo | None:
        """Encrypt a staging folder into a session (idempotent: safe to repeat after a crash), then delete it."""
        with self._lock():
            manifest_rel = f"{self._rel(folder)}/manifest{ENC_SUFFIX}"
            try:
                manifest = json.loads(self._read_enc(manifest_rel))
                user_id = validate_user_id(manifest["user_id"])
                rid = str(manifest["recording_id"])
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{self.root / manifest_rel}: malformed recording manifest") from None
            if not (self.root / user_id / f"profile{ENC_SUFFIX}").is_file():
                _remove_tree(folder)  # the user was deleted while recording: their data goes too
                return None
            profile = self.profile(user_id)
            done = next((s for s in profile.sessions if s.recording_id == rid), None)
            if done is not None:  # encrypted before a crash; only the plaintext was left
                _remove_tree(folder)
                return done
            number = manifest.get("number")
            if not isinstance(number, int) or profile.session(number) is not None:
                number = self._next_number(profile)
                _mkdir_private(self.root / user_id / "sessions" / str(number))
                manifest["number"] = number
                self._write_enc(manifest_rel, json.dumps(manifest).encode())
            else:  # a previous attempt of this very recording got this far
                _remove_tree(self.root / user_id / "sessions" / str(number))
                _mkdir_private(self.root / user_id / "sessions" / str(number))
            bag = folder / "bag"
            files = sorted(p for p in bag.rglob("*") if p.is_file() and not p.is_symlink()) if bag.is_dir() else []
            truncated = any(mcap_truncated(p) for p in files if p.suffix == ".mcap")
            for path in files:
                rel = f"{user_id}/sessions/{number}/bag/{path.relative_to(bag).as_posix()}{ENC_SUFFIX}"
                self._write_enc(rel, path.read_bytes())
            info = SessionInfo(number=number, kind=validate_kind(manifest["kind"]), date=manifest["date"],
                               metadata=manifest.get("metadata") or {}, recovered=recovered, truncated=truncated,
                               files=len(files), ended_by=ended_by, recording_id=rid)
            self._save_profile(_replace(profile, sessions=(*profile.sessions, info)))
            _remove_tree(folder)
            return info

    @contextlib.contextmanager
    def open_session(self, user_id: str, number: int) -> Iterator[Path]:
        """Decrypt session ``number``'s bag into a private temporary folder; yields the bag folder.

        The folder (``<store>/.tmp/<random id>/<user>-session-<n>``, mode 0700, files 0600) is deleted when
        the block ends, on an exception and on SIGTERM; after a SIGKILL, by the next :meth:`recover`.
        Any file that does not decrypt raises :class:`~exo.users.errors.DecryptionError` naming it.
        """
        info = self.session(user_id, number)
        source = self.root / user_id / "sessions" / str(number) / "bag"
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
        if len(files) != info.files:
            raise StoreError(f"session {number} of user {user_id!r}: {source} holds {len(files)} file(s), the "
                             f"index lists {info.files} (files were deleted or added outside exo)")
        folder, fd = self._new_private_dir(TMP_DIR)
        with _TerminationGuard() as guard:
            try:
                out = folder / f"{user_id}-session-{number}"
                out.mkdir(mode=0o700)
                for path in files:
                    if not path.name.endswith(ENC_SUFFIX):
                        raise DecryptionError(path, f"not a store file (no {ENC_SUFFIX} suffix); it does not "
                                                    "belong in the store")
                    plaintext = self._read_enc(self._rel(path))
                    target = out / path.relative_to(source).as_posix()[: -len(ENC_SUFFIX)]
                    _mkdir_private(target.parent)
                    wfd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(wfd, "wb") as f:
                        f.write(plaintext)
                yield out
            finally:
                guard.defer()
                _remove_tree(folder)
                os.close(fd)

    # ------------------------------------------------------------------ recovery
    def _live_recording_users(self) -> set[str]:
        """Users with a recording in progress (their staging folder is locked by a live process)."""
        users = set()
        staging = self.root / STAGING_DIR
        for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
            fd = _try_lock(folder)
            if fd is not None:
                os.close(fd)
                continue
            with contextlib.suppress(StoreError, ValueError, KeyError, TypeError):
                users.add(json.loads(self._read_enc(f"{self._rel(folder)}/manifest{ENC_SUFFIX}"))["user_id"])
        return users

    def recover(self) -> list[str]:
        """Clean up after processes that were killed: returns one line per thing done or left (no personal data).

        - a recording left in ``.staging`` (its process is gone) is encrypted into a session marked
          ``recovered`` (and ``truncated`` if an ``.mcap`` lacks its end magic), then its plaintext deleted;
        - a decrypted copy left in ``.tmp`` is deleted;
        - a half-deleted user (``.deleting-*``) and half-written temporary files are deleted.

        Live recordings and open sessions (locked by their process) are left alone. A staging folder that
        cannot be attributed to a user (its manifest does not decrypt) is left in place and reported.
        """
        notes: list[str] = []
        with self._lock():
            staging = self.root / STAGING_DIR
            for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
                fd = _try_lock(folder)
                if fd is None:
                    continue  # a live recording
                try:
                    if not (folder / f"manifest{ENC_SUFFIX}").is_file():
                        bag = folder / "bag"
                        if bag.is_dir() and any(p.is_file() for p in bag.rglob("*")):
                            notes.append(f"{folder}: a recording without its manifest (cannot be attributed to "
                                         "a user); left in place, in plaintext: move or delete it")
                        else:
                            _remove_tree(folder)
                        continue
                    try:
                        info = self._commit_staging(folder, recovered=True)
                    except StoreError as exc:
                        notes.append(f"{folder}: an interrupted recording that cannot be recovered ({exc}); left "
                                     "in place, in plaintext: move or delete it")
                        continue
                    if info is not None:
                        notes.append(f"recovered an interrupted recording as session {info.number}"
                                     + (" (truncated)" if info.truncated else ""))
                finally:
                    os.close(fd)
            tmp = self.root / TMP_DIR
            for folder in sorted(tmp.iterdir()) if tmp.is_dir() else []:
                fd = _try_lock(folder)
                if fd is not None:
                    _remove_tree(folder)
                    os.close(fd)
                    notes.append("deleted a decrypted session left by a reader that was killed")
            for trash in self.root.glob(".deleting-*"):
                _remove_tree(trash)
            for user in self.users():
                for part in (self.root / user).rglob(".*.tmp"):
                    part.unlink(missing_ok=True)
        return notes

    # ------------------------------------------------------------------ key rotation
    def rotate_key(self, *, new_key: bytes | None = None, new_key_file: Path | str | None = None,
                   new_passphrase: str | None = None, scrypt_params: ScryptParams | None = None) -> int:
        """Re-encrypt every file of the store with a new key; returns how many files were re-encrypted.

        Exactly one of ``new_key``/``new_key_file`` (the store is then locked with a key file) or
        ``new_passphrase`` (scrypt with a new salt). Each file is replaced atomically; the header names
        the new key as *pending* until every file is done, so an interrupted rotation is finished by running
        it again with the same old and new key (files already under the new key are skipped). Afterwards
        the old key opens nothing: not the key check, not any file.

        Raises:
            StoreError: a recording is in progress or a session is open, or the new key is the current one.
            CredentialError: unusable new key file or passphrase.
        """
        if sum(x is not None for x in (new_key, new_key_file, new_passphrase)) != 1:
            raise CredentialError("rotate-key needs exactly one new key: a key file or a passphrase")
        with self._lock():
            for note in self.recover():
                _log.warning("user store %s: %s", self.root, note)
            busy = [p for d in (STAGING_DIR, TMP_DIR) if (self.root / d).is_dir() for p in (self.root / d).iterdir()]
            if busy:
                raise StoreError(f"{len(busy)} recording(s) or open session(s) in {self.root} ({STAGING_DIR}, "
                                 f"{TMP_DIR}); rotate the key when they have ended")
            header = dict(self._header)
            pending = header.get("pending_key")
            if new_passphrase is not None:
                check_passphrase(new_passphrase)
            if pending is not None:  # finish the interrupted rotation: the new key must be the pending one
                wanted = "passphrase" if new_passphrase is not None else "key-file"
                if pending["mode"] != wanted:
                    raise CredentialError(f"an interrupted key rotation to a {pending['mode']} is pending; give "
                                          "the same new key (or passphrase) as then")
                raw, _ = _secret_for(pending, self.root, key=new_key, key_file=new_key_file,
                                     passphrase=new_passphrase, interactive=False, use_env=False)
                new = StoreKey(raw, bytes.fromhex(pending["key_id"]))
                if not new.verify_check_value(pending["check"]):
                    raise WrongKeyError("an interrupted key rotation to another key is pending; give the same new "
                                        "key (or passphrase) as then")
                entry = pending
            else:
                if new_passphrase is not None:
                    kdf = new_kdf(scrypt_params or ScryptParams())
                    salt, params = kdf_from_entry(kdf, HEADER_FILE)
                    raw, kdf_entry = derive_key(new_passphrase, salt, params), kdf
                else:
                    raw = new_key if new_key is not None else load_key_file(new_key_file)  # type: ignore[arg-type]
                    kdf_entry = None
                new, entry = new_key_entry(raw, kdf_entry)
                if new.same_key(self._key):
                    raise StoreError("the new key is the store's current key; nothing to rotate")
                self._write_header({**header, "pending_key": entry})
            count = 0
            for user in self.users():
                for path in sorted(p for p in (self.root / user).rglob("*") if p.is_file()):
                    rel = self._rel(path)
                    blob = path.read_bytes()
                    if file_key_id(blob, path) == new.key_id:
                        continue
                    _atomic_write(path, new.encrypt(self._key.decrypt(blob, rel, where=path), rel))
                    count += 1
            header = {k: v for k, v in self._header.items() if k != "pending_key"}
            header["key"] = entry
            self._write_header(header)
            self._key = new
            self.mode = entry["mode"]
        return count


def prompt_new_passphrase(what: str) -> str:
    """Ask twice on the terminal for a new passphrase of ``what`` (at least 12 characters)."""
    first = getpass.getpass(f"Passphrase for the {what} (at least 12 characters): ")
    check_passphrase(first)
    if getpass.getpass("The same passphrase again: ") != first:
        raise CredentialError("the two passphrases differ")
    return first


def _secret_for(entry: Mapping[str, Any], root: Path, *, key_file: Path | str | None, key: bytes | None,
                passphrase: str | None, interactive: bool, use_env: bool = True) -> tuple[bytes, str]:
    """The raw key that should open a ``store.json`` key entry, and a description of where it came from."""
    env_key = os.environ.get(ENV_KEY_FILE) if use_env else None
    env_pw = os.environ.get(ENV_PASSPHRASE) if use_env else None
    if entry["mode"] == "key-file":
        if key is not None:
            return key, "the given key"
        path = key_file or env_key or (default_key_file() if use_env and default_key_file().exists() else None)
        if path is None:
            if passphrase is not None or env_pw:
                raise CredentialError(f"the user store {root} is locked with a key file, not a passphrase: give "
                                      f"--key-file or set ${ENV_KEY_FILE}")
            raise CredentialError(f"no key for the user store {root}: give --key-file or set ${ENV_KEY_FILE} "
                                  f"(default {default_key_file()} does not exist)")
        return load_key_file(path), f"key file {Path(path).expanduser()}"
    if key is not None or key_file is not None or (env_key and passphrase is None and not env_pw):
        raise CredentialError(f"the user store {root} is locked with a passphrase, not a key file: set "
                              f"${ENV_PASSPHRASE} or enter it when asked (and unset ${ENV_KEY_FILE})")
    pw = passphrase if passphrase is not None else env_pw
    if pw is None:
        if not interactive:
            raise CredentialError(f"no passphrase for the user store {root}: set ${ENV_PASSPHRASE} (or run "
                                  "the command on a terminal to be asked)")
        pw = getpass.getpass(f"Passphrase of the user store {root}: ")
    salt, params = kdf_from_entry(entry["kdf"], str(root / HEADER_FILE))
    return derive_key(pw, salt, params), "the passphrase"


__all__ = [
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "ENV_STORE",
    "UserStore",
    "create_key_file",
    "default_key_file",
    "default_store",
    "mcap_truncated",
]
