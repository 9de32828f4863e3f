"""``exo identify`` through its register(app) on a fresh typer app: JSON out, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from identify_helpers import SHORT, write_assessment_bag
from typer.testing import CliRunner

from exo.cli import identify as identify_cli
from exo.identify.simulate import simulate_assessment
from exo.twin.config import load_twin_config
from exo.twin.reflex import NOISY_PARAMETERS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """test root"""

    identify_cli.register(a)
    return a


@pytest.fixture(scope="module")
def bag(reduced_twin, tmp_path_factory) -> Path:
    rec, _ = simulate_assessment(reduced_twin, 1, 9, SHORT)
    return write_assessment_bag(rec, tmp_path_factory.mktemp("bags") / "assess")


def test_json_output(app, bag: Path, tmp_path: Path):
    out = tmp_path / "id.json"
    res = CliRunner().invoke(app, ["identify", "--bag", str(bag), "--json", "--twin", "reduced", "--workers", "1",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["mas_level"] == 1
    assert set(data["params"]) == set(NOISY_PARAMETERS)
    assert data["residual_nm"] > 0.0 and data["twin"] == "reduced"
    assert json.loads(out.read_text()) == data


def test_table_output(app, bag: Path):
    res = CliRunner().invoke(app, ["identify", "--bag", str(bag), "--twin", "reduced", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "MAS level 1" in res.stdout and "not identifiable from this recording" in res.stdout


@pytest.mark.parametrize("case, message", [
    ("pid", "not an assessment recording: the session's controller is 'pid'"),
    ("missing", "no such file or folder"),
    ("nan", "joint_states holds NaN/inf at t = 2.00 s"),
    ("no_topics", "not an assessment recording: no joint_states"),
    ("twin", "--twin must be one of"),
])
def test_bad_input_is_one_line_and_exit_2(app, reduced_twin, tmp_path: Path, case: str, message: str):
    args = ["--twin", "reduced", "--workers", "1"]
    if case == "pid":
        path = REPO / "bags" / "sim_level0_pid"
    elif case == "missing":
        path = tmp_path / "nope"
    else:
        rec, _ = simulate_assessment(reduced_twin, 1, 9, SHORT)
        if case == "nan":
            path = write_assessment_bag(rec, tmp_path / "nan", nan_at=200)
        elif case == "no_topics":
            path = write_assessment_bag(rec, tmp_path / "nt", skip_topics=("joint_states",))
        else:
            path, args = write_assessment_bag(rec, tmp_path / "tw"), ["--twin", "myoleg"]
    res = CliRunner().invoke(app, ["identify", "--bag", str(path), *args])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("exo identify: error: ")
    assert message in lines[0]


# -- the user store: identify from an encrypted assessment session, store the twin in the profile -----------------
@pytest.fixture()
def user_store(bag: Path, tmp_path: Path):
    """A store with user p-id: session 1 a sim run, session 2 the assessment bag (encrypted)."""
    import shutil

    from exo.users import UserStore, create_key_file

    key = create_key_file(tmp_path / "keys" / "store.key")
    store = UserStore.open(tmp_path / "store", key_file=key, create=True)
    store.create_user("p-id", mas_level=1)
    store.create_user("p-none")
    store.create_session("p-id", "sim")
    with store.recording("p-id", "assessment", {"level": 1}) as staging:
        shutil.copytree(bag, staging, dirs_exist_ok=True)
    return store, ("--store", str(tmp_path / "store"), "--key-file", str(key))


def test_user_identifies_from_the_store_and_keeps_the_twin_encrypted(app, user_store, tmp_path: Path):
    from exo.identify.records import identified_subject
    from exo.users import UserStore

    store, common = user_store
    res = CliRunner().invoke(app, ["identify", "--user", "p-id", "--json", "--twin", "reduced", "--workers", "1",
                                   *common])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["mas_level"] == 1 and data["recording"]["source"] == "p-id/session-2"
    assert "identified twin of p-id (from session 2" in res.stderr
    opened = UserStore.open(store.root, key_file=common[-1])
    twin = opened.profile("p-id").identified_twin
    assert twin["session"] == 2 and twin["mas_level"] == 1 and twin["method"] == "assessment-replay-map.reduced"
    assert twin["params"] == data["params"]
    assert opened.get_json("p-id", 2, "identification")["not_identifiable"] == data["not_identifiable"]
    subject = identified_subject(opened, "p-id")
    assert subject.level == 1 and subject.l_ang == pytest.approx(data["params"]["l_ang"])
    # nothing in plaintext: no parameter names, no MCAP, no temporary copy left
    for path in store.root.rglob("*"):
        if path.is_file() and path.name != "store.json":
            content = path.read_bytes()
            assert b"a_flex_deg" not in content and b"MCAP" not in content and b"p-id/session" not in content, path
    assert not [p for p in store.root.rglob("*") if p.is_file() and ".tmp" in p.parts]


@pytest.mark.parametrize("args, message", [
    (["--user", "p-none"], "user 'p-none' has no assessment session to identify from; record one with exo assess"),
    (["--user", "p-id", "--session", "1"], "session 1 of user 'p-id' is a 'sim' session, not an assessment"),
    (["--user", "p-id", "--session", "7"], "user 'p-id' has no session 7"),
    (["--user", "nobody"], "nobody"),
    (["--session", "2"], "--session goes with --user"),
    (["--user", "p-id", "--bag", "x"], "give either --bag DIR or --user ID"),
    ([], "give --bag DIR, or --user ID"),
])
def test_user_bad_input_is_one_line_and_exit_2(app, user_store, args: list[str], message: str):
    store, common = user_store
    res = CliRunner().invoke(app, ["identify", *args, "--twin", "reduced", *common])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("exo identify: error: ") and message in lines[0], lines
    assert store.profile("p-id").identified_twin is None


def test_a_twin_that_does_not_reproduce_its_assessment_is_not_used(user_store):
    from exo.identify.records import identified_subject
    from exo.users import StoreError

    store, _ = user_store
    params = {n: getattr(load_twin_config().spasticity.levels[1], n) for n in NOISY_PARAMETERS}
    store.set_identified_twin("p-id", {"params": params, "mas_level": 1, "residual_nm": 4.7, "session": 2,
                                       "reproduces_recording": False})
    with pytest.raises(StoreError, match="does not reproduce its assessment .session 2.*Repeat the assessment"):
        identified_subject(store, "p-id")
    store.set_identified_twin("p-id", {"params": params, "mas_level": 1, "residual_nm": 1.0, "session": 2,
                                       "reproduces_recording": True})
    assert identified_subject(store, "p-id").level == 1
