"""Per-run secrets, authenticated torque messages and the local reset channel (pure, no ROS)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from exo.security import COMMAND_PURPOSE, REQUEST_PURPOSE, MessageSigner, MessageVerifier, Verdict, sign
from exo.security.keys import RunSecrets, SecretError, find_runs, load_secret
from exo.security.reset import LocalResetServer, ResetButton, request_reset

KEY = bytes(range(32))


def test_a_signed_message_verifies_once_in_sequence_and_any_change_breaks_it():
    signer, verifier = MessageSigner(KEY, COMMAND_PURPOSE), MessageVerifier(KEY, COMMAND_PURPOSE)
    seq, mac = signer.next(1_000_000_000, "exo_knee", 12.5, "pid")
    assert verifier.check(1_000_000_000, seq, "exo_knee", 12.5, "pid", mac) is Verdict.OK
    assert verifier.check(1_000_000_000, seq, "exo_knee", 12.5, "pid", mac) is Verdict.DUPLICATE
    for changed in ((1_000_000_001, seq, "exo_knee", 12.5, "pid"), (1_000_000_000, seq + 1, "exo_knee", 12.5, "pid"),
                    (1_000_000_000, seq, "other", 12.5, "pid"), (1_000_000_000, seq, "exo_knee", 12.6, "pid"),
                    (1_000_000_000, seq, "exo_knee", 12.5, "sac")):
        assert verifier.check(*changed, mac) is Verdict.BAD_MAC, changed
    assert verifier.check(1, 9, "exo_knee", 0.0, "pid", b"") is Verdict.UNAUTHENTICATED
    # another key, or the other purpose (a request never passes as a command)
    assert verifier.check(1, 9, "exo_knee", 0.0, "pid", sign(bytes(32), COMMAND_PURPOSE, 1, 9, "exo_knee", 0.0, "pid")) \
        is Verdict.BAD_MAC
    assert verifier.check(1, 9, "exo_knee", 0.0, "pid", sign(KEY, REQUEST_PURPOSE, 1, 9, "exo_knee", 0.0, "pid")) \
        is Verdict.BAD_MAC
    # an older authentic message (a recorded one played again) is refused; a newer one passes
    seq2, mac2 = signer.next(2, "exo_knee", 1.0, "pid")
    assert verifier.check(2, seq2, "exo_knee", 1.0, "pid", mac2) is Verdict.OK
    assert verifier.check(1_000_000_000, seq, "exo_knee", 12.5, "pid", mac) is Verdict.REPLAYED
    # out-of-range numbers are refused, not a crash
    assert verifier.check(2**70, 1, "exo_knee", 1.0, "pid", mac2) is Verdict.BAD_MAC


def test_run_secrets_are_private_files_that_are_refused_once_others_can_read_them(tmp_path):
    secrets = RunSecrets.create("/exo_t", 42, root=tmp_path / "runs")
    assert oct(secrets.folder.stat().st_mode & 0o777) == "0o700"
    for param in ("command_key_file", "request_key_file", "reset_token_file"):
        path = secrets.file(param)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert len(load_secret(path)) == 32
    assert load_secret(secrets.file("command_key_file")) != load_secret(secrets.file("request_key_file"))
    assert secrets.parameters(("request_key_file",)) == {"request_key_file": str(secrets.file("request_key_file"))}
    assert [r.folder for r in find_runs("/exo_t", 42, root=tmp_path / "runs")] == [secrets.folder]
    assert find_runs("/exo_t", 43, root=tmp_path / "runs") == []
    key = secrets.file("command_key_file")
    key.chmod(0o640)
    with pytest.raises(SecretError, match="accessible by other users.*chmod 600"):
        load_secret(key)
    with pytest.raises(SecretError, match="does not exist"):
        load_secret(secrets.folder / "missing.key")
    bad = secrets.folder / "bad.key"
    bad.write_text("not hex\n")
    bad.chmod(0o600)
    with pytest.raises(SecretError, match="hex"):
        load_secret(bad)
    secrets.remove()
    assert not secrets.folder.exists()
    world = tmp_path / "world"
    world.mkdir(mode=0o777)
    world.chmod(0o777)
    with pytest.raises(SecretError, match="other users can access it"):
        RunSecrets.create("/exo", 0, root=world)


def _serve(server: LocalResetServer, answers: int, ok: bool = True) -> threading.Thread:
    def loop() -> None:
        done = 0
        while done < answers:
            for request, client in server.poll():
                server.reply(client, request.authorised and ok, "reset: ok" if request.authorised else request.why)
                done += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_the_local_reset_needs_the_runs_token(tmp_path):
    secrets = RunSecrets.create("/exo", 0, root=tmp_path / "runs")
    server = LocalResetServer(secrets.file("reset_token_file"))
    assert oct(server.path.stat().st_mode & 0o777) == "0o600"
    try:
        thread = _serve(server, 2)
        assert request_reset(secrets.folder, "therapist") == (True, "reset: ok")
        # a client with another token (another run's) is refused
        other = RunSecrets.create("/exo", 0, root=tmp_path / "runs")
        (other.folder / "reset.sock").symlink_to(server.path)
        ok, why = request_reset(other.folder, "intruder")
        assert not ok and why == "wrong reset token"
        thread.join(5)
        # a client that connects and sends nothing does not block the monitor's poll
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(server.path))
            assert server.poll() == []
    finally:
        server.close()


def test_the_reset_button_counts_a_press_on_the_release_to_pressed_edge(tmp_path):
    line = tmp_path / "value"
    line.write_text("1\n")
    button = ResetButton(line)
    assert not button.poll()  # held at start-up: not a press
    line.write_text("0\n")
    assert not button.poll()
    line.write_text("1\n")
    assert button.poll() and not button.poll()
    os.remove(line)
    assert not button.poll() and button.read_errors == 1


def test_the_runner_hands_each_node_only_its_own_secrets(tmp_path, monkeypatch):
    from exo.runner import GraphRunner

    monkeypatch.setenv("EXO_RUN_ROOT", str(tmp_path / "runs"))
    runner = GraphRunner("sim", {"enclave_prefix": "/exo"}, log_dir=tmp_path / "logs")
    given = {n.name: {k for k, v in n.parameters.items() if str(v).endswith((".key", ".token"))} for n in runner.nodes}
    assert given == {"safety_monitor": {"command_key_file", "request_key_file", "reset_token_file"},
                     "controller": {"request_key_file"}, "sim_bridge": {"command_key_file"}}
    for node in runner.nodes:  # SROS2: every node in its own enclave
        i = node.command.index("--enclave")
        assert node.command[i + 1] == f"/exo/{node.name}"
    folder = runner.secrets.folder
    assert folder.parent == tmp_path / "runs" and folder.is_dir()
    runner.stop()  # nothing started: the run's secrets are removed all the same
    assert not folder.exists()
