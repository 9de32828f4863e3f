"""``exo user ...`` and ``exo analyze|export --user ID --session N`` as a user runs them (subprocesses).

Bad input ends with one line ``exo user: error: ...`` naming the problem and exit code 2.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from exo.users import UserStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE_BAG = REPO / "bags" / "sim_level0_pid"


def _one_error_line(result, *fragments: str) -> None:
    assert result.code == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("exo user: error: "), result
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result


def test_init_key_creates_a_private_key_and_refuses_to_overwrite(tmp_path: Path, exo_in_process):
    path = tmp_path / "keys" / "k.key"
    result = exo_in_process("user", "init-key", "--key-file", str(path))
    assert result.code == 0 and f"key file {path} created" in result.text, result
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == 32
    first = path.read_bytes()
    _one_error_line(exo_in_process("user", "init-key", "--key-file", str(path)), str(path), "never overwritten")
    assert path.read_bytes() == first
    # without --key-file: the default place ($XDG_CONFIG_HOME/exo/user-store.key), used by later commands
    result = exo_in_process("user", "init-key")
    default = tmp_path / "xdg-config" / "exo" / "user-store.key"
    assert result.code == 0 and default.is_file(), result
    store = tmp_path / "default-key-store"
    assert exo_in_process("user", "create", "p01", "--store", str(store)).code == 0
    assert UserStore.open(store, key_file=default).users() == ["p01"]


def test_create_list_show_set_delete(exo_user, store_dir: Path):
    result = exo_user("create", "p07", "--mas", "2", "--torque-cap", "40", "--joint-max-rad", "1.5")
    assert result.code == 0 and "user p07 created" in result.text, result
    assert (store_dir / "store.json").is_file()
    assert exo_user("create", "p08").code == 0

    listed = exo_user("list")
    assert listed.code == 0, listed
    assert "p07 created" in listed.text and "MAS 2" in listed.text and "torque 40 N m" in listed.text
    assert "p08 created" in listed.text and "MAS -" in listed.text and "none set" in listed.text
    as_json = json.loads(exo_user("list", "--json").stdout)
    assert [p["user_id"] for p in as_json] == ["p07", "p08"]

    shown = exo_user("show", "p07")
    assert shown.code == 0 and "MAS level (clinician): 2" in shown.text, shown
    assert "torque 40 N m, joint max 1.5 rad" in shown.text and "identified twin: none" in shown.text
    doc = json.loads(exo_user("show", "p07", "--json").stdout)
    assert doc["caps"]["torque_cap_nm"] == 40.0 and doc["mas_level"] == 2 and doc["sessions"] == []

    result = exo_user("set", "p07", "--torque-cap", "35", "--slew-rate", "200", "--clear", "mas")
    assert result.code == 0 and "MAS not rated" in result.text and "torque 35 N m" in result.text, result
    doc = json.loads(exo_user("show", "p07", "--json").stdout)
    assert doc["mas_level"] is None and doc["caps"]["max_slew_rate_nm_per_s"] == 200.0

    # delete asks; no answer (stdin is not a terminal) or "n" keeps the user
    result = exo_user("delete", "p08")
    assert result.code == 1 and "not deleted" in result.text, result
    assert exo_user("delete", "p08", stdin="n\n").code == 1
    assert (store_dir / "p08").is_dir()
    result = exo_user("delete", "p08", stdin="y\n")
    assert result.code == 0 and "user p08 deleted" in result.text, result
    assert not (store_dir / "p08").exists()
    assert exo_user("delete", "p07", "--yes").code == 0
    assert exo_user("list").text == f"no users in {store_dir}"


@pytest.mark.parametrize(("args", "fragments"), [
    (("create", "Jane-Doe"), ("invalid user id 'Jane-Doe'", "a-z, 0-9 and '-'")),
    (("create", "ab"), ("invalid user id 'ab'",)),
    (("create", "p07", "--torque-cap", "0"), ("torque_cap_nm must be > 0 and <= 100 N m",)),
    (("create", "p07", "--torque-cap", "120"), ("<= 100 N m", "got 120")),
    (("create", "p07", "--torque-cap", "nan"), ("finite",)),
    (("create", "p07", "--slew-rate", "-1"), ("max_slew_rate_nm_per_s must be > 0",)),
    (("create", "p07", "--joint-min-rad", "1", "--joint-max-rad", "0.5"), ("must be < caps.joint_max_angle_rad",)),
    (("create", "p07", "--joint-max-rad", "1.9"), ("joint_max_angle_rad 1.9 rad is above the device's 1.85 rad",)),
    (("show", "p99"), ("no user 'p99'",)),
    (("delete", "p99", "--yes"), ("no user 'p99'",)),
    (("set", "p99", "--mas", "1"), ("no user 'p99'",)),
])
def test_bad_input_is_one_line_and_exit_2(exo_user, args: tuple[str, ...], fragments: tuple[str, ...]):
    if args[0] != "create":
        assert exo_user("create", "p07").code == 0
    _one_error_line(exo_user(*args), *fragments)


def test_usage_errors_exit_2(exo_user):
    assert exo_user("create", "p07", "--mas", "4").code == 2
    assert exo_user("create").code == 2


def test_a_missing_store_a_wrong_key_and_an_exposed_key_are_named(exo_user, store_dir: Path, key_file: Path,
                                                                   tmp_path: Path, exo_in_process):
    _one_error_line(exo_user("list"), f"no user store at {store_dir}")
    assert exo_user("create", "p07").code == 0
    other = tmp_path / "other.key"
    assert exo_in_process("user", "init-key", "--key-file", str(other)).code == 0
    _one_error_line(exo_user("list", env={"EXO_KEY_FILE": str(other)}),
                    f"wrong key for the user store {store_dir}: key file {other}")
    _one_error_line(exo_user("list", "--key-file", str(other)), "wrong key")
    os.chmod(key_file, 0o640)
    _one_error_line(exo_user("list"), f"key file {key_file} is accessible by group or others (mode 0640)")
    os.chmod(key_file, 0o600)
    _one_error_line(exo_user("list", env={"EXO_KEY_FILE": ""}), "no key for the user store")


def test_a_tampered_file_is_named(exo_user, store_dir: Path):
    assert exo_user("create", "p07").code == 0
    profile = store_dir / "p07" / "profile.enc"
    data = bytearray(profile.read_bytes())
    data[len(data) // 2] ^= 0x80
    profile.write_bytes(bytes(data))
    _one_error_line(exo_user("show", "p07"), f"{profile}: cannot be decrypted: authentication failed")


def test_rotate_key_from_the_command_line(exo_user, store_dir: Path, key_file: Path, tmp_path: Path, exo_in_process):
    assert exo_user("create", "p07", "--mas", "1").code == 0
    new = tmp_path / "new.key"
    assert exo_in_process("user", "init-key", "--key-file", str(new)).code == 0
    result = exo_user("rotate-key", "--new-key-file", str(new))
    assert result.code == 0 and "re-encrypted 1 file(s)" in result.text, result
    _one_error_line(exo_user("list"), "wrong key")
    assert exo_user("list", env={"EXO_KEY_FILE": str(new)}).code == 0
    _one_error_line(exo_user("rotate-key", env={"EXO_KEY_FILE": str(new)}),
                    "give either --new-key-file PATH or --to-passphrase")
    _one_error_line(exo_user("rotate-key", "--to-passphrase", env={"EXO_KEY_FILE": str(new)}),
                    "no new passphrase: set $EXO_NEW_PASSPHRASE")


def test_a_passphrase_store_from_the_command_line(tmp_path: Path, passphrase: str, fast_scrypt, exo_in_process):
    root = tmp_path / "pw"
    UserStore.open(root, passphrase=passphrase, create=True, scrypt_params=fast_scrypt).create_user("p07")
    env = {"EXO_STORE": str(root)}
    result = exo_in_process("user", "list", env={**env, "EXO_PASSPHRASE": passphrase})
    assert result.code == 0 and "p07 created" in result.text, result
    _one_error_line(exo_in_process("user", "list", env={**env, "EXO_PASSPHRASE": passphrase + "x"}),
                    "wrong key", "the passphrase does not open it")
    _one_error_line(exo_in_process("user", "list", env=env), "no passphrase for the user store", "EXO_PASSPHRASE")


@pytest.fixture
def sample_session(store: UserStore) -> UserStore:
    """User p07 with session 1 = the committed sample bag sim_level0_pid, recorded through the store."""
    store.create_user("p07", mas_level=0)
    with store.recording("p07", "sim", {"twin": "reduced", "level": "0", "controller": "pid"}) as staging:
        shutil.copytree(SAMPLE_BAG, staging, dirs_exist_ok=True)
    return store


def test_analyze_a_store_session_keeps_the_analysis_in_the_store(sample_session: UserStore, store_dir: Path,
                                                                 key_file: Path, tmp_path: Path, run_exo,
                                                                 exo_in_process):
    env = {"EXO_STORE": str(store_dir), "EXO_KEY_FILE": str(key_file)}
    result = run_exo("analyze", "--user", "p07", "--session", "1", env=env)
    assert result.code == 0, result
    assert "p07-session-1: 8668 messages, 1 trial(s) (1 scored)" in result.text, result
    assert "analysis stored in the user store" in result.text, result
    doc = sample_session.get_json("p07", 1, "analysis")
    assert doc["message_count"] == 8668 and doc["trials"][0]["complete"] and doc["metadata"]["level"] == "0"
    assert not any((store_dir / ".tmp").iterdir())  # the decrypted copy is gone

    out = tmp_path / "analysis"
    result = exo_in_process("analyze", "--user", "p07", "--session", "1", "--out", str(out), "--store", str(store_dir),
                     "--key-file", str(key_file))
    assert result.code == 0 and "WARNING" in result.text and "PLAINTEXT personal data" in result.text, result
    assert json.loads((out / "metrics.json").read_text())["sessions"][0]["message_count"] == 8668
    assert (out / "report.html").is_file()

    # the same numbers as the bag analysed directly
    direct = tmp_path / "direct"
    assert exo_in_process("analyze", str(SAMPLE_BAG), "--out", str(direct)).code == 0
    a = json.loads((direct / "metrics.json").read_text())["sessions"][0]["trials"][0]
    assert doc["trials"][0] == a


def test_analyze_and_export_refuse_bad_store_arguments(sample_session: UserStore, store_dir: Path, key_file: Path,
                                                       tmp_path: Path, exo_in_process):
    env = {"EXO_STORE": str(store_dir), "EXO_KEY_FILE": str(key_file)}
    result = exo_in_process("analyze", "--user", "p07", env=env)
    assert result.code == 2 and "--user and --session go together" in result.text, result
    result = exo_in_process("analyze", str(SAMPLE_BAG), "--user", "p07", "--session", "1", env=env)
    assert result.code == 2 and "not both" in result.text, result
    result = exo_in_process("analyze", "--user", "p07", "--session", "5", env=env)
    assert result.code == 2 and "user 'p07' has no session 5" in result.text, result
    result = exo_in_process("analyze", env=env)
    assert result.code == 2 and "give a bag, or --user ID --session N" in result.text, result

    result = exo_in_process("export", "--user", "p07", "--session", "1", env=env)
    assert result.code == 2 and "personal data" in result.text and "--out DIR" in result.text, result
    assert not (REPO / "runs" / "export" / "p07-session-1").exists()
    out = tmp_path / "export"
    result = exo_in_process("export", "--user", "p07", "--session", "1", "--out", str(out), env=env)
    assert result.code == 0 and "PLAINTEXT personal data of user p07" in result.text, result
    assert (out / "exo_joint_states.csv").is_file() or any(out.glob("*.csv"))
    assert not any((store_dir / ".tmp").iterdir())
