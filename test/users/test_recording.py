"""Recording into the store and reading it back: normal end, exception, SIGTERM, SIGKILL and recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exo.users import UserStore
from exo.users.crypto import MAGIC, StoreKey, load_key_file

MCAP = b"\x89MCAP0\r\n"
#: The JSON the killed recording writes (plaintext until recovery).
PLAIN_JSON = '{"user_id": "p07", "mode": "sim", "marker": "plaintext-session-metadata"}'


def _spawn(code: str, *args: str) -> subprocess.Popen:
    """A python child running ``code`` (argv[1:] = ``args``) that prints a line when it is ready."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _ready(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().strip()
    assert line, f"child ended early: {proc.wait()} {proc.stderr.read()}"
    return line


RECORDER = """
    import os, sys, time
    from pathlib import Path
    from exo.users import UserStore
    store = UserStore.open(sys.argv[1], key_file=sys.argv[2])
    with store.recording("p07", "sim", {"twin": "reduced", "level": "2"}) as bag:
        (bag / "bag_0").mkdir()
        (bag / "bag_0" / "bag_0.mcap").write_bytes(b"\\x89MCAP0\\r\\n" + os.urandom(4096))  # no footer: cut short
        (bag / "session.json").write_text(sys.argv[3])
        print(bag, flush=True)
        time.sleep(60)
"""


def _scan_plaintext(store_dir: Path, key_file: Path) -> None:
    """No file of the store holds plaintext: neither the MCAP magic nor JSON.

    ``store.json`` (the non-secret header) is the only plaintext file by design; ``.lock`` files are empty.
    Two random bytes of ciphertext equal ``{"`` with probability 1/65536 per position, so a file in which
    ``{"`` occurs must prove to be ciphertext: it decrypts and authenticates under the store's key, bound to
    its path.
    """
    import json

    header = json.loads((store_dir / "store.json").read_text())
    key = StoreKey(load_key_file(key_file), bytes.fromhex(header["key"]["key_id"]))
    files = [p for p in store_dir.rglob("*") if p.is_file() and p.name != "store.json"]
    assert files
    for path in files:
        data = path.read_bytes()
        if path.name in (".lock", "lock"):
            assert data == b"", path
            continue
        assert b"\x89MCAP" not in data, path
        assert PLAIN_JSON.encode() not in data and b"plaintext-session-metadata" not in data, path
        assert data.startswith(MAGIC), path
        if b'{"' in data:
            key.decrypt(data, path.relative_to(store_dir).as_posix())  # raises if it is not our ciphertext


def test_a_recording_ends_in_an_encrypted_session_and_the_plaintext_is_gone(store: UserStore, store_dir: Path,
                                                                            key_file: Path):
    store.create_user("p07")
    with store.recording("p07", "sim", {"twin": "reduced"}) as bag:
        assert bag.is_dir() and not any(bag.iterdir())
        assert bag.parent.parent == store_dir / ".staging"
        assert bag.stat().st_mode & 0o777 == 0o700 and bag.parent.stat().st_mode & 0o777 == 0o700
        (bag / "bag_0").mkdir()
        (bag / "bag_0" / "bag_0.mcap").write_bytes(MCAP + b"records" + MCAP)
        (bag / "session.json").write_text(PLAIN_JSON)
    assert not any((store_dir / ".staging").iterdir())
    info = store.sessions("p07")[-1]
    assert (info.number, info.kind, info.recovered, info.truncated, info.files, info.ended_by) == (
        1, "sim", False, False, 2, "")
    with store.open_session("p07", 1) as bag:
        assert (bag / "session.json").read_text() == PLAIN_JSON
        assert (bag / "bag_0" / "bag_0.mcap").read_bytes() == MCAP + b"records" + MCAP
    _scan_plaintext(store_dir, key_file)


def test_a_recording_ended_by_an_exception_is_kept_and_the_exception_propagates(store: UserStore,
                                                                                 store_dir: Path):
    store.create_user("p07")
    with pytest.raises(RuntimeError, match="driver fault"), store.recording("p07", "real", {}) as bag:
        (bag / "part.mcap").write_bytes(MCAP + b"half")
        raise RuntimeError("driver fault")
    assert not any((store_dir / ".staging").iterdir())
    info = store.sessions("p07")[-1]
    assert (info.recovered, info.truncated, info.files, info.ended_by) == (False, True, 1, "RuntimeError")


def test_sigterm_during_a_recording_encrypts_it_and_exits(store: UserStore, store_dir: Path, key_file: Path):
    store.create_user("p07")
    before = signal.getsignal(signal.SIGTERM)
    proc = _spawn(RECORDER, str(store_dir), str(key_file), PLAIN_JSON)
    bag = Path(_ready(proc))
    assert (bag / "session.json").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM, proc.stderr.read()
    assert not bag.parent.exists()
    info = store.sessions("p07")[-1]
    assert (info.recovered, info.truncated, info.ended_by) == (False, True, "SystemExit")
    _scan_plaintext(store_dir, key_file)
    assert signal.getsignal(signal.SIGTERM) == before  # this process's handler was never touched


def test_the_sigterm_handler_is_restored_after_the_block(store: UserStore):
    store.create_user("p07")
    marker = []

    def previous(signum, frame):
        marker.append(signum)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        with store.recording("p07", "sim", {}):
            assert signal.getsignal(signal.SIGTERM) is not previous
        assert signal.getsignal(signal.SIGTERM) is previous
        with store.open_session("p07", 1):
            assert signal.getsignal(signal.SIGTERM) is not previous
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_recording_killed_with_sigkill_is_recovered_by_the_next_exo_user_command(store: UserStore,
                                                                                   store_dir: Path,
                                                                                   key_file: Path, run_exo):
    store.create_user("p07")
    proc = _spawn(RECORDER, str(store_dir), str(key_file), PLAIN_JSON)
    bag = Path(_ready(proc))
    proc.kill()
    proc.wait(timeout=10)
    # the plaintext is left behind, and the scan would see it
    assert (bag / "bag_0" / "bag_0.mcap").read_bytes().startswith(MCAP)
    with pytest.raises(AssertionError):
        _scan_plaintext(store_dir, key_file)

    # the real command in a process of its own: python -m exo.cli.main user list
    result = run_exo("user", "list", env={"EXO_STORE": str(store_dir), "EXO_KEY_FILE": str(key_file)})
    assert result.code == 0, result
    assert "p07 created" in result.text and "1 session(s)" in result.text, result
    assert "session 1: sim" in result.text and "[recovered, truncated]" in result.text, result
    assert "exo user store: recovered an interrupted recording as session 1 (truncated)" in result.stderr, result
    assert not bag.parent.exists() and not any((store_dir / ".staging").iterdir())
    _scan_plaintext(store_dir, key_file)

    info = store.sessions("p07")[-1]
    assert (info.recovered, info.truncated, info.files, info.metadata) == (True, True, 2,
                                                                         {"twin": "reduced", "level": "2"})
    with store.open_session("p07", 1) as opened:
        assert (opened / "session.json").read_text() == PLAIN_JSON
    assert store.recover() == []  # nothing left to do


def test_recover_leaves_a_live_recording_alone(store: UserStore, store_dir: Path, key_file: Path):
    store.create_user("p07")
    with store.recording("p07", "sim", {}) as bag:
        (bag / "x.mcap").write_bytes(MCAP)
        other = UserStore.open(store_dir, key_file=key_file)  # recovers: must not take the live folder
        assert other.recover() == []
        assert (bag / "x.mcap").exists()
        assert other.sessions("p07") == []
        with pytest.raises(Exception, match="recording of user 'p07' is in progress"):
            other.delete_user("p07")
    assert [s.recovered for s in store.sessions("p07")] == [False]


def test_open_session_removes_its_temporary_folder_on_exit_exception_and_sigterm(store: UserStore,
                                                                                 store_dir: Path,
                                                                                 key_file: Path):
    store.create_user("p07")
    with store.recording("p07", "sim", {}) as bag:
        (bag / "session.json").write_text(PLAIN_JSON)
    with store.open_session("p07", 1) as opened:
        assert (opened / "session.json").read_text() == PLAIN_JSON
        assert opened.parent.parent == store_dir / ".tmp" and opened.name == "p07-session-1"
        assert opened.stat().st_mode & 0o777 == 0o700
        assert (opened / "session.json").stat().st_mode & 0o777 == 0o600
    assert not opened.exists() and not any((store_dir / ".tmp").iterdir())

    with pytest.raises(KeyError), store.open_session("p07", 1) as opened:
        raise KeyError("boom")
    assert not opened.exists() and not any((store_dir / ".tmp").iterdir())

    reader = """
        import sys, time
        from exo.users import UserStore
        store = UserStore.open(sys.argv[1], key_file=sys.argv[2])
        with store.open_session("p07", 1) as bag:
            print(bag, flush=True)
            time.sleep(60)
    """
    proc = _spawn(reader, str(store_dir), str(key_file))
    opened = Path(_ready(proc))
    assert (opened / "session.json").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert not opened.exists() and not any((store_dir / ".tmp").iterdir())

    # a reader killed outright leaves the copy; the next opening of the store deletes it
    proc = _spawn(reader, str(store_dir), str(key_file))
    opened = Path(_ready(proc))
    proc.kill()
    proc.wait(timeout=10)
    assert (opened / "session.json").exists()
    UserStore.open(store_dir, key_file=key_file)
    assert not opened.exists() and not any((store_dir / ".tmp").iterdir())


def test_recovery_after_a_crash_during_the_commit_makes_one_session(store: UserStore, store_dir: Path,
                                                                    key_file: Path, monkeypatch: pytest.MonkeyPatch):
    """A process killed while it encrypted its recording: the next recover() finishes it, once."""
    from exo.users import store as store_module

    store.create_user("p07")
    original = store_module.UserStore._save_profile

    def dies(self, profile):
        raise SystemExit(137)  # killed between encrypting the files and indexing the session

    monkeypatch.setattr(store_module.UserStore, "_save_profile", dies)
    with pytest.raises(SystemExit), store.recording("p07", "sim", {}) as bag:
        (bag / "a.mcap").write_bytes(MCAP + b"x" + MCAP)
    monkeypatch.setattr(store_module.UserStore, "_save_profile", original)
    assert any((store_dir / ".staging").iterdir())  # plaintext still there: nothing is lost
    notes = UserStore.open(store_dir, key_file=key_file, recover=False).recover()
    assert notes == ["recovered an interrupted recording as session 1"]
    assert [(s.number, s.recovered, s.files) for s in store.sessions("p07")] == [(1, True, 1)]
    assert sorted(p.name for p in (store_dir / "p07" / "sessions").iterdir()) == ["1"]
    _scan_plaintext(store_dir, key_file)
    assert os.listdir(store_dir / ".staging") == []
