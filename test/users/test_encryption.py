"""Encryption at rest: tampering, wrong keys, swapped files, key files, passphrases, key rotation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from exo.users import (
    CredentialError,
    DecryptionError,
    StoreError,
    UserStore,
    WrongKeyError,
    create_key_file,
    load_key_file,
)
from exo.users import store as store_module
from exo.users.crypto import MAGIC, StoreKey, file_key_id

MCAP = b"\x89MCAP0\r\n"


def _fill(store: UserStore, user: str = "p07") -> None:
    """A user with a recorded session (a small complete 'bag') and an artefact."""
    if user not in store.users():
        store.create_user(user, mas_level=1)
    with store.recording(user, "sim", {"level": "1"}) as bag:
        (bag / "bag_0").mkdir()
        (bag / "bag_0" / "bag_0.mcap").write_bytes(MCAP + os.urandom(256) + MCAP)
        (bag / "session.json").write_text(json.dumps({"user_id": user, "mode": "sim"}))
    store.put_json(user, store.sessions(user)[-1].number, "summary", {"rms_torque_nm": 3.2})


def _store_files(store_dir: Path) -> list[Path]:
    return sorted(p for p in store_dir.rglob("*") if p.is_file() and p.name not in ("store.json", ".lock"))


def _flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _bag_bytes(store: UserStore, user: str, number: int) -> dict[str, bytes]:
    with store.open_session(user, number) as bag:
        return {p.relative_to(bag).as_posix(): p.read_bytes() for p in bag.rglob("*") if p.is_file()}


def test_every_file_is_ciphertext_bound_to_its_path(store: UserStore, store_dir: Path):
    _fill(store)
    files = _store_files(store_dir)
    assert {p.relative_to(store_dir).as_posix() for p in files} == {
        "p07/profile.enc", "p07/sessions/1/bag/bag_0/bag_0.mcap.enc", "p07/sessions/1/bag/session.json.enc",
        "p07/sessions/1/summary.json.enc"}
    for path in files:
        data = path.read_bytes()
        assert data.startswith(MAGIC) and MCAP not in data and b"p07" not in data and b'"mode"' not in data


@pytest.mark.parametrize("where", ["ciphertext", "tag", "nonce", "key id"])
def test_a_flipped_bit_is_an_error_naming_the_file(store: UserStore, store_dir: Path, where: str):
    _fill(store)
    target = store_dir / "p07" / "sessions" / "1" / "bag" / "bag_0" / "bag_0.mcap.enc"
    size = target.stat().st_size
    offset = {"ciphertext": size // 2, "tag": size - 1, "nonce": 20, "key id": 8}[where]
    _flip_bit(target, offset)
    with pytest.raises(DecryptionError) as err, store.open_session("p07", 1):
        pass
    assert str(target) in str(err.value) and err.value.path == target
    assert not any((store_dir / ".tmp").iterdir())  # the partly decrypted copy is gone too

    profile = store_dir / "p07" / "profile.enc"
    _flip_bit(profile, profile.stat().st_size // 2)
    with pytest.raises(DecryptionError, match=f"{profile}: cannot be decrypted: authentication failed"):
        store.profile("p07")


def test_a_truncated_or_plaintext_file_is_an_error_naming_the_file(store: UserStore, store_dir: Path):
    _fill(store)
    target = store_dir / "p07" / "sessions" / "1" / "summary.json.enc"
    target.write_bytes(target.read_bytes()[:-5])
    with pytest.raises(DecryptionError, match=f"{target}: cannot be decrypted: authentication failed"):
        store.get_json("p07", 1, "summary")
    target.write_bytes(target.read_bytes()[:20])
    with pytest.raises(DecryptionError, match=f"{target}: cannot be decrypted: cut short"):
        store.get_json("p07", 1, "summary")
    target.write_bytes(b'{"rms_torque_nm": 3.2}')
    with pytest.raises(DecryptionError, match=f"{target}: cannot be decrypted: not an encrypted store file"):
        store.get_json("p07", 1, "summary")


def test_a_deleted_bag_file_is_noticed_when_the_session_is_opened(store: UserStore, store_dir: Path):
    _fill(store)
    (store_dir / "p07" / "sessions" / "1" / "bag" / "session.json.enc").unlink()
    with pytest.raises(StoreError, match="holds 1 file\\(s\\), the index lists 2"), store.open_session("p07", 1):
        pass


def test_a_file_swapped_between_users_or_sessions_does_not_decrypt(store: UserStore, store_dir: Path):
    _fill(store, "p07")
    _fill(store, "p08")
    _fill(store, "p08")
    # p07's profile copied over p08's: the same key, but bound to another path
    p08_profile = store_dir / "p08" / "profile.enc"
    saved = p08_profile.read_bytes()
    shutil.copyfile(store_dir / "p07" / "profile.enc", p08_profile)
    with pytest.raises(DecryptionError, match=f"{p08_profile}: cannot be decrypted: authentication failed.*moved "
                                              "here from another place"):
        store.profile("p08")
    p08_profile.write_bytes(saved)
    assert store.profile("p08").user_id == "p08"

    # two sessions of one user swap a file
    one = store_dir / "p08" / "sessions" / "1" / "bag" / "session.json.enc"
    two = store_dir / "p08" / "sessions" / "2" / "bag" / "session.json.enc"
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    with pytest.raises(DecryptionError, match=f"{one}: cannot be decrypted"), store.open_session("p08", 1):
        pass
    with pytest.raises(DecryptionError, match=f"{two}: cannot be decrypted"), store.open_session("p08", 2):
        pass
    one.write_bytes(a)
    two.write_bytes(b)

    # a bag file of p07 put into p08's session
    target = store_dir / "p08" / "sessions" / "2" / "bag" / "bag_0" / "bag_0.mcap.enc"
    shutil.copyfile(store_dir / "p07" / "sessions" / "1" / "bag" / "bag_0" / "bag_0.mcap.enc", target)
    with pytest.raises(DecryptionError, match=f"{target}: cannot be decrypted"), store.open_session("p08", 2):
        pass
    with store.open_session("p08", 1) as bag:  # the untouched session still opens
        assert (bag / "session.json").read_text().startswith('{"user_id": "p08"')


def test_a_wrong_key_is_reported_before_any_user_file_is_read(store: UserStore, store_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    _fill(store)
    other = create_key_file(tmp_path / "other.key")
    reads: list[str] = []
    original = store_module.UserStore._read_enc

    def spy(self, rel: str) -> bytes:
        reads.append(rel)
        return original(self, rel)

    monkeypatch.setattr(store_module.UserStore, "_read_enc", spy)
    with pytest.raises(WrongKeyError, match=f"wrong key for the user store {store_dir}: key file {other}"):
        UserStore.open(store_dir, key_file=other)
    assert reads == []
    # a file of another store (another key): named as such
    second = UserStore.open(tmp_path / "second", key_file=other, create=True)
    _fill(second)
    foreign = tmp_path / "second" / "p07" / "profile.enc"
    shutil.copyfile(foreign, store_dir / "p07" / "profile.enc")
    with pytest.raises(DecryptionError, match="written with another key"):
        store.profile("p07")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_others_can_access_is_refused(store: UserStore, store_dir: Path, key_file: Path, mode: int):
    os.chmod(key_file, mode)
    with pytest.raises(CredentialError, match=f"key file {key_file} is accessible by group or others "
                                              f"\\(mode {mode:04o}\\); refused: chmod 600"):
        UserStore.open(store_dir, key_file=key_file)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_file_of_the_wrong_size_is_refused(tmp_path: Path, size: int):
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(CredentialError, match=f"key file {path} holds .*{min(size, 32)} bytes; a store key is "
                                              "exactly 32"):
        load_key_file(path)


def test_init_key_never_overwrites_and_makes_a_private_file(tmp_path: Path):
    path = create_key_file(tmp_path / "new" / "dir" / "k")
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == 32
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    before = path.read_bytes()
    with pytest.raises(CredentialError, match="exists; a key is never overwritten"):
        create_key_file(path)
    assert path.read_bytes() == before
    with pytest.raises(CredentialError, match="does not exist"):
        load_key_file(tmp_path / "missing.key")


def test_passphrase_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passphrase: str, fast_scrypt):
    root = tmp_path / "pw-store"
    store = UserStore.open(root, passphrase=passphrase, create=True, scrypt_params=fast_scrypt)
    assert store.mode == "passphrase"
    _fill(store)
    header = (root / "store.json").read_text()
    assert '"name": "scrypt"' in header and '"salt"' in header and passphrase not in header
    again = UserStore.open(root, passphrase=passphrase)
    assert again.profile("p07").mas_level == 1
    monkeypatch.setenv("EXO_PASSPHRASE", passphrase)
    assert UserStore.open(root).sessions("p07")[0].number == 1
    with pytest.raises(WrongKeyError, match="wrong key .*the passphrase does not open it"):
        UserStore.open(root, passphrase=passphrase + "!")
    with pytest.raises(CredentialError, match="locked with a passphrase, not a key file"):
        UserStore.open(root, key_file=create_key_file(tmp_path / "k"))
    monkeypatch.delenv("EXO_PASSPHRASE")
    with pytest.raises(CredentialError, match="no passphrase for the user store"):
        UserStore.open(root)
    with pytest.raises(CredentialError, match="too short"):
        UserStore.open(tmp_path / "short", passphrase="secret", create=True, scrypt_params=fast_scrypt)
    # the salt is per store: the same passphrase gives another key elsewhere
    other = UserStore.open(tmp_path / "pw-store-2", passphrase=passphrase, create=True, scrypt_params=fast_scrypt)
    assert not other._key.same_key(store._key)


def _snapshot(store_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in _store_files(store_dir)}


def test_rotate_key_re_encrypts_every_file_and_the_old_key_opens_nothing(store: UserStore, store_dir: Path,
                                                                          key_file: Path, tmp_path: Path):
    _fill(store, "p07")
    _fill(store, "p08")
    bag_before = _bag_bytes(store, "p07", 1)
    before = _snapshot(store_dir)
    old_key = store._key
    new_file = create_key_file(tmp_path / "new.key")

    assert store.rotate_key(new_key_file=new_file) == len(before)
    after = _snapshot(store_dir)
    assert set(after) == set(before)
    for path, data in after.items():
        assert data != before[path], path
        assert file_key_id(data, path) == store._key.key_id != old_key.key_id
        with pytest.raises(DecryptionError, match="written with another key"):
            old_key.decrypt(data, path.relative_to(store_dir).as_posix())
        # not even with the old key's bytes under the new key id
        with pytest.raises(DecryptionError, match="authentication failed"):
            StoreKey(load_key_file(key_file), store._key.key_id).decrypt(data, path.relative_to(store_dir).as_posix())
    with pytest.raises(WrongKeyError):
        UserStore.open(store_dir, key_file=key_file)
    reopened = UserStore.open(store_dir, key_file=new_file)
    assert _bag_bytes(reopened, "p07", 1) == bag_before
    assert reopened.get_json("p08", 1, "summary") == {"rms_torque_nm": 3.2}
    with pytest.raises(StoreError, match="the new key is the store's current key"):
        reopened.rotate_key(new_key_file=new_file)


def test_rotate_key_to_and_from_a_passphrase(store: UserStore, store_dir: Path, key_file: Path, tmp_path: Path,
                                            passphrase: str, fast_scrypt):
    _fill(store)
    n = len(_store_files(store_dir))
    assert store.rotate_key(new_passphrase=passphrase, scrypt_params=fast_scrypt) == n
    assert store.mode == "passphrase"
    with pytest.raises(CredentialError, match="locked with a passphrase"):
        UserStore.open(store_dir, key_file=key_file)
    pw_store = UserStore.open(store_dir, passphrase=passphrase)
    assert pw_store.profile("p07").mas_level == 1
    back = create_key_file(tmp_path / "back.key")
    assert pw_store.rotate_key(new_key_file=back) == n
    with pytest.raises(CredentialError, match="locked with a key file, not a passphrase"):
        UserStore.open(store_dir, passphrase=passphrase)
    assert UserStore.open(store_dir, key_file=back).sessions("p07")[0].files == 2


def test_an_interrupted_rotation_is_finished_by_running_it_again(store: UserStore, store_dir: Path, key_file: Path,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fill(store, "p07")
    _fill(store, "p08")
    n = len(_store_files(store_dir))
    new_file = create_key_file(tmp_path / "new.key")
    calls = {"n": 0}
    original = store_module._atomic_write

    def dies_on_the_fourth_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # 1 header write, then 2 files re-encrypted
            raise KeyboardInterrupt
        original(path, data)

    monkeypatch.setattr(store_module, "_atomic_write", dies_on_the_fourth_write)
    with pytest.raises(KeyboardInterrupt):
        store.rotate_key(new_key_file=new_file)
    monkeypatch.setattr(store_module, "_atomic_write", original)

    with pytest.raises(StoreError, match="key rotation .* did not finish; run exo user rotate-key again"):
        UserStore.open(store_dir, key_file=key_file)
    other = create_key_file(tmp_path / "other.key")
    resumed = UserStore.open(store_dir, key_file=key_file, allow_interrupted_rotation=True)
    with pytest.raises(WrongKeyError, match="give the same new key"):
        resumed.rotate_key(new_key_file=other)
    assert resumed.rotate_key(new_key_file=new_file) == n - 2
    final = UserStore.open(store_dir, key_file=new_file)
    assert final.get_json("p08", 1, "summary") == {"rms_torque_nm": 3.2}
    assert "pending_key" not in (store_dir / "store.json").read_text()
    with pytest.raises(WrongKeyError):
        UserStore.open(store_dir, key_file=key_file)
