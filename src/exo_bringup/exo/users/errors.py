"""Errors of the user store: every one is a :class:`~exo.params.ConfigError` (a ``ValueError``).

The ``exo`` command turns them into one line naming the problem and exit code 2
(:mod:`exo.cli.errors`); code that builds the graph (:func:`exo.users.caps_for`)
gets a ``ValueError`` whose message says what is wrong. No message holds
personal data: at most a user's pseudonym, a session number and a file path.
"""

from __future__ import annotations

from exo.params import ConfigError


class StoreError(ConfigError):
    """The user store cannot do what was asked (missing store or user, bad state); the message says why."""


class CredentialError(StoreError):
    """A key file or passphrase is unusable (missing, wrong size, readable by others, too short)."""


class WrongKeyError(StoreError):
    """The key or passphrase does not open this store (its key check value does not decrypt)."""


class DecryptionError(StoreError):
    """A store file does not decrypt: modified, truncated, moved from another place, or another key's.

    Attributes:
        path: the file.
    """

    def __init__(self, path: object, why: str) -> None:
        self.path = path
        super().__init__(f"{path}: cannot be decrypted: {why}")


class ProfileError(StoreError):
    """A profile value is invalid (the message names the field and the accepted range)."""


class UnknownUserError(StoreError):
    """No user with that pseudonym in the store."""
