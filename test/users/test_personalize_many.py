"""`exo personalize --users all --backend ray`: one Ray task per user on a real local instance (2 CPUs), the
users without an identified twin listed as skipped, each personalised user's new version in the store; and
the option combinations it refuses, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exo.users import Caps, UserStore

SETTINGS = ("personalize:\n  twin: reduced\n  search_subjects: 2\n  popsize: 4\n  learned_policy: false\n"
            "  gate:\n    subjects: 2\n")


def _identified(level: int, seed: int) -> dict:
    from exo.twin.config import load_twin_config
    from exo.twin.reflex import NOISY_PARAMETERS

    subject = load_twin_config().spasticity.subject(level, seed)
    params = {n: getattr(subject, n) for n in NOISY_PARAMETERS}
    return {"params": params, "ci": {n: [v * 0.95, v * 1.05] for n, v in params.items()}, "mas_level": level,
            "residual_nm": 0.4, "method": "test-fixture"}


@pytest.fixture
def three_users(store: UserStore) -> UserStore:
    for user, level in (("p-a", 1), ("p-b", 2)):
        store.create_user(user, mas_level=level, caps=Caps(torque_cap_nm=60.0))
        store.set_identified_twin(user, _identified(level, seed=3))
    store.create_user("p-c")  # not identified yet
    return store


@pytest.mark.slow
def test_personalize_users_all_on_ray_runs_one_task_per_identified_user(three_users, store_dir: Path, key_file: Path,
                                                                       exo_in_process, tmp_path: Path):
    settings = tmp_path / "personalize.yaml"
    settings.write_text(SETTINGS)
    run = exo_in_process("personalize", "--users", "all", "--backend", "ray", "--workers", "2", "--config",
                         str(settings), "--max-evaluations", "2", "--store", str(store_dir), "--key-file",
                         str(key_file), "--json")
    assert run.code == 0, run
    rows = {row["user"]: row for row in json.loads(run.stdout)}
    assert set(rows) == {"p-a", "p-b", "p-c"}
    assert rows["p-c"]["status"] == "skipped" and "no identified twin" in rows["p-c"]["reason"]
    for user in ("p-a", "p-b"):
        assert rows[user]["status"] in ("deployed", "rejected") and rows[user]["version"] == "c1", rows[user]
        stored = three_users.profile(user).controllers
        assert [v.id for v in stored] == ["c1"] and stored[0].status == rows[user]["status"]
    assert not three_users.profile("p-c").controllers


@pytest.mark.parametrize(("args", "message"), [
    (["--users", "all", "--from-sessions"], "--from-sessions adapts one user's policy from their sessions: use --user"),
    (["--users", "p-a", "--user", "p-a"], "give --user or --users, not both"),
    (["--user", "p-a", "--backend", "ray"], "--backend ray runs one task per user: use --users"),
    (["--users", "p-a", "--backend", "ray", "--ray-address", "127.0.0.1:1"],
     "cannot reach the Ray cluster at 127.0.0.1:1"),
    ([], "give --user ID (one user) or --users all|ID,ID,..."),
    (["--users", "p-a,nobody"], "nobody"),
])
def test_personalize_refuses_a_bad_choice_of_users_or_backend_in_one_line(three_users, store_dir: Path,
                                                                          key_file: Path, exo_in_process,
                                                                          args: list[str], message: str):
    run = exo_in_process("personalize", *args, "--store", str(store_dir), "--key-file", str(key_file))
    assert run.code == 2, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("exo personalize: error: ") and message in lines[0], lines
