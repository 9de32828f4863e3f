"""Encryption of the user store: the file format, the key (file or passphrase) and its check value.

Every file of the store except the non-secret header ``store.json`` is one
AES-256-GCM message (:class:`~cryptography.hazmat.primitives.ciphers.aead.AESGCM`)::

    magic "EXOUSR" (6 bytes) | format version (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes)

- the nonce is random (96 bit) for every write, never reused on purpose;
- the associated data is the 15-byte header (magic, version, key id) followed by
  the file's path relative to the store (``p07/sessions/3/bag/bag_0/bag_0.mcap.enc``):
  a file copied or moved to another place (another user, another session, another
  name) no longer authenticates;
- the key id (random, from ``store.json``) says which key wrote the file, so a
  file of another store or of an unfinished key rotation is named as such instead
  of as "modified". It is not secret and says nothing about the key.

A file is encrypted whole, in memory: AES-GCM messages are limited to
:data:`MAX_PLAINTEXT_BYTES` here (about 2 GiB); a longer recording must be split
(``config/recorder.yaml`` ``split_size_mb``).

Keys: a 32-byte random key file (mode 0600; refused when group or others can read
it, or when it is not exactly 32 bytes), or a passphrase stretched with scrypt
(:class:`ScryptParams`, random per-store salt in ``store.json``). A *key check
value* (a known token encrypted with the key) in ``store.json`` tells a wrong
key from damaged data before any user file is touched.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from exo.users.errors import CredentialError, DecryptionError, StoreError

#: First bytes of every encrypted store file.
MAGIC = b"EXOUSR"
#: Version of the encrypted file format.
FORMAT_VERSION = 1
#: Key length: AES-256, bytes.
KEY_BYTES = 32
#: Length of the key id in each file's header, bytes.
KEY_ID_BYTES = 8
#: AES-GCM nonce length, bytes.
NONCE_BYTES = 12
#: AES-GCM tag length, bytes.
TAG_BYTES = 16
#: Bytes before the ciphertext: magic, version, key id, nonce.
HEADER_BYTES = len(MAGIC) + 1 + KEY_ID_BYTES + NONCE_BYTES
#: Largest plaintext of one file, bytes (the AEAD call's limit, minus room for the tag).
MAX_PLAINTEXT_BYTES = 2**31 - 1 - TAG_BYTES
#: Shortest passphrase accepted for a new store or a key rotation, characters.
MIN_PASSPHRASE_CHARS = 12
#: Known plaintext of the key check value.
_CHECK_TOKEN = b"exo user store key check v1"
_CHECK_AAD = b"exo-user-store:key-check"


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters of a passphrase store (kept in ``store.json``).

    The default costs 128 MiB of memory and about half a second per derivation
    (``128 * r * n`` bytes). Tests pass a small ``n``; a store keeps the parameters
    it was made with.

    Attributes:
        n: CPU/memory cost, a power of two.
        r: block size.
        p: parallelism.
    """

    n: int = 2**17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        n, r, p = self.n, self.r, self.p
        for name, value in (("n", n), ("r", r), ("p", p)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise StoreError(f"scrypt parameter {name} must be an integer, got {value!r}")
        if n < 2 or n & (n - 1) or n > 2**22:
            raise StoreError(f"scrypt n must be a power of two between 2 and 2**22, got {n}")
        if not 1 <= r <= 32 or not 1 <= p <= 16:
            raise StoreError(f"scrypt r must be 1-32 and p 1-16, got r={r}, p={p}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def derive_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    """The 32-byte store key of ``passphrase`` (scrypt with ``salt`` and ``params``)."""
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))


def check_passphrase(passphrase: str) -> str:
    """``passphrase`` if long enough for a new store or key; :class:`CredentialError` otherwise."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise CredentialError(f"the passphrase is too short: at least {MIN_PASSPHRASE_CHARS} characters")
    return passphrase


# -- key files ------------------------------------------------------------------------------------
def create_key_file(path: Path | str) -> Path:
    """Write a new random 32-byte key to ``path`` (mode 0600; missing parent folders are made 0700).

    Raises:
        CredentialError: ``path`` exists (a key is never overwritten).
    """
    path = Path(path).expanduser()
    missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CredentialError(f"key file {path} exists; a key is never overwritten (choose another path, "
                              "or delete it yourself if no store uses it)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(KEY_BYTES))
        f.flush()
        os.fsync(f.fileno())
    return path


def load_key_file(path: Path | str) -> bytes:
    """The 32-byte key in ``path``.

    Raises:
        CredentialError: naming the file, if it is missing, not a regular file, owned by another user,
            accessible by group or others (like ssh refuses a private key), or not exactly 32 bytes.
    """
    path = Path(path).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise CredentialError(f"key file {path} does not exist (exo user init-key --key-file {path} "
                              "creates one)") from None
    except OSError as exc:
        raise CredentialError(f"key file {path}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CredentialError(f"key file {path} is not a regular file")
        if st.st_uid != os.getuid():
            raise CredentialError(f"key file {path} is owned by uid {st.st_uid}, not by this user ({os.getuid()})")
        if st.st_mode & 0o077:
            raise CredentialError(f"key file {path} is accessible by group or others (mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}); refused: chmod 600 {path}")
        data = f.read(KEY_BYTES + 1)
    if len(data) != KEY_BYTES:
        raise CredentialError(f"key file {path} holds {'more than ' if len(data) > KEY_BYTES else ''}"
                              f"{min(len(data), KEY_BYTES)} bytes; a store key is exactly {KEY_BYTES} random bytes "
                              "(exo user init-key)")
    return data


# -- the key and the file format ------------------------------------------------------------------
class StoreKey:
    """The store's AES-256-GCM key with its key id; encrypts and decrypts store files.

    Args:
        key: 32 bytes.
        key_id: the id of this key in ``store.json`` (8 bytes).
    """

    def __init__(self, key: bytes, key_id: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise CredentialError(f"a store key is {KEY_BYTES} bytes, got {len(key)}")
        if len(key_id) != KEY_ID_BYTES:
            raise StoreError(f"a key id is {KEY_ID_BYTES} bytes, got {len(key_id)}")
        self._aead = AESGCM(key)
        self._key = bytes(key)
        self.key_id = bytes(key_id)

    def same_key(self, other: StoreKey) -> bool:
        """Whether ``other`` holds the same key bytes (constant time)."""
        return secrets.compare_digest(self._key, other._key)

    def _prefix(self) -> bytes:
        return MAGIC + bytes([FORMAT_VERSION]) + self.key_id

    def encrypt(self, plaintext: bytes, rel: str) -> bytes:
        """The file content of ``plaintext`` stored at ``rel`` (path relative to the store, ``/``-separated)."""
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise StoreError(f"{rel}: {len(plaintext)} bytes is more than one store file holds "
                             f"({MAX_PLAINTEXT_BYTES}); split the recording (config/recorder.yaml split_size_mb)")
        prefix = self._prefix()
        nonce = secrets.token_bytes(NONCE_BYTES)
        return prefix + nonce + self._aead.encrypt(nonce, plaintext, prefix + b"\0" + rel.encode("utf-8"))

    def decrypt(self, blob: bytes, rel: str, where: object = None) -> bytes:
        """The plaintext of a store file's content ``blob`` read from ``rel``.

        Args:
            blob: the file's bytes.
            rel: its path relative to the store (the associated data it was written with).
            where: how to name the file in errors (default ``rel``).

        Raises:
            DecryptionError: naming the file and why (not a store file, cut short, another key, or the
                authentication failed: modified, or moved from another place).
        """
        name = rel if where is None else where
        key_id = file_key_id(blob, name)
        if key_id != self.key_id:
            raise DecryptionError(name, f"written with another key (key id {key_id.hex()}, this store's is "
                                        f"{self.key_id.hex()}): copied from another store, or a key rotation "
                                        "did not finish")
        prefix = blob[: len(MAGIC) + 1 + KEY_ID_BYTES]
        nonce = blob[len(prefix):HEADER_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[HEADER_BYTES:], prefix + b"\0" + rel.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError(name, "authentication failed: the file was modified or cut short, or it was "
                                        "moved here from another place in the store (each file is bound to "
                                        "its path)") from None

    # -- key check value ---------------------------------------------------------------------------
    def check_value(self) -> str:
        """A new key check value (base64): the known token encrypted with this key."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, _CHECK_TOKEN, _CHECK_AAD)).decode("ascii")

    def verify_check_value(self, check: str) -> bool:
        """Whether ``check`` (from ``store.json``) was made with this key."""
        try:
            raw = base64.b64decode(check.encode("ascii"), validate=True)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _CHECK_AAD) == _CHECK_TOKEN
        except (InvalidTag, ValueError, UnicodeError):
            return False


def file_key_id(blob: bytes, where: object) -> bytes:
    """The key id in a store file's header; :class:`DecryptionError` if ``blob`` is not a store file."""
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        raise DecryptionError(where, "not an encrypted store file (no EXOUSR header): plaintext, or another format")
    if len(blob) < HEADER_BYTES + TAG_BYTES:
        raise DecryptionError(where, f"cut short: {len(blob)} bytes, an encrypted file has at least "
                                     f"{HEADER_BYTES + TAG_BYTES}")
    version = blob[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise DecryptionError(where, f"format version {version}; this exo reads version {FORMAT_VERSION}")
    return blob[len(MAGIC) + 1: len(MAGIC) + 1 + KEY_ID_BYTES]


def new_key_entry(key: bytes, kdf: dict[str, Any] | None) -> tuple[StoreKey, dict[str, Any]]:
    """A new key id and check value for ``key``: the store key and its ``store.json`` entry.

    Args:
        key: 32 bytes (a key file's, or derived from a passphrase).
        kdf: ``{"name": "scrypt", "salt": <base64>, "n": .., "r": .., "p": ..}`` for a passphrase, None for a
            key file.
    """
    store_key = StoreKey(key, secrets.token_bytes(KEY_ID_BYTES))
    entry = {"mode": "passphrase" if kdf else "key-file", "key_id": store_key.key_id.hex(), "kdf": kdf,
             "check": store_key.check_value()}
    return store_key, entry


def new_kdf(params: ScryptParams) -> dict[str, Any]:
    """A fresh ``kdf`` entry: scrypt with a random 16-byte salt."""
    return {"name": "scrypt", "salt": base64.b64encode(secrets.token_bytes(16)).decode("ascii"), **params.to_dict()}


def kdf_from_entry(kdf: Any, origin: str) -> tuple[bytes, ScryptParams]:
    """Salt and parameters of a ``store.json`` kdf entry (:class:`StoreError` naming ``origin`` if malformed)."""
    try:
        if kdf["name"] != "scrypt":
            raise StoreError(f"{origin}: unknown key derivation {kdf['name']!r} (this exo knows scrypt)")
        salt = base64.b64decode(str(kdf["salt"]).encode("ascii"), validate=True)
        return salt, ScryptParams(n=kdf["n"], r=kdf["r"], p=kdf["p"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"{origin}: malformed key derivation entry ({type(exc).__name__}: {exc})") from None
