"""The store's API: users, profile validation, sessions, artefacts, controllers, the identified twin, caps_for."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from exo.safety import SafetyLimits
from exo.users import (
    SAFETY_PARAMETERS,
    Caps,
    ProfileError,
    StoreError,
    UnknownUserError,
    UserStore,
    caps_for,
)


def _keys(obj: object) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_round_trip_create_show_list_delete(store: UserStore, store_dir: Path, key_file: Path):
    caps = Caps(torque_cap_nm=40.0, joint_min_angle_rad=0.0, joint_max_angle_rad=1.5, max_slew_rate_nm_per_s=200.0)
    created = store.create_user("p07", mas_level=2, caps=caps)
    store.create_user("p08")
    assert store.users() == ["p07", "p08"]

    reopened = UserStore.open(store_dir, key_file=key_file)  # everything comes back from the ciphertext
    profile = reopened.profile("p07")
    assert profile == created
    assert profile.mas_level == 2 and profile.caps == caps
    assert len(profile.created) == 10 and profile.created.count("-") == 2  # a day, no time
    assert reopened.profile("p08").mas_level is None and reopened.profile("p08").caps == Caps()
    # no name anywhere, and no free-text field that would invite one
    assert not {"name", "notes", "note", "comment", "first_name", "last_name"} & _keys(profile.to_dict())

    with pytest.raises(StoreError, match="exists"):
        reopened.create_user("p07")
    assert reopened.delete_user("p07") == 0
    assert reopened.users() == ["p08"]
    assert not (store_dir / "p07").exists()
    with pytest.raises(UnknownUserError, match="no user 'p07'"):
        reopened.profile("p07")


@pytest.mark.parametrize("user_id", ["P07", "ab", "x" * 33, "p_07", "jane doe", "p07/../p08", "", "été-01"])
def test_user_ids_are_pseudonyms(store: UserStore, user_id: str):
    with pytest.raises(ProfileError, match="invalid user id"):
        store.create_user(user_id)
    assert store.users() == []


@pytest.mark.parametrize(("values", "message"), [
    ({"torque_cap_nm": 0.0}, "torque_cap_nm must be > 0 and <= 100"),
    ({"torque_cap_nm": -5.0}, "torque_cap_nm must be > 0"),
    ({"torque_cap_nm": 100.5}, "<= 100 N m"),
    ({"torque_cap_nm": math.nan}, "finite"),
    ({"torque_cap_nm": math.inf}, "finite"),
    ({"torque_cap_nm": True}, "finite number"),
    ({"torque_cap_nm": "40"}, "finite number"),
    ({"max_slew_rate_nm_per_s": 0.0}, "max_slew_rate_nm_per_s must be > 0"),
    ({"joint_min_angle_rad": 1.0, "joint_max_angle_rad": 1.0}, "must be < caps.joint_max_angle_rad"),
    ({"joint_max_angle_rad": 7.0}, "knee angle"),
])
def test_caps_are_validated(values: dict, message: str):
    with pytest.raises(ProfileError, match=message):
        Caps(**values)


def test_profile_validation_errors(store: UserStore):
    with pytest.raises(ProfileError, match="MAS level must be one of 0, 1, 2, 3"):
        store.create_user("p07", mas_level=4)
    with pytest.raises(ProfileError, match="unknown cap"):
        Caps.from_dict({"torque_cap": 40})
    store.create_user("p07")
    with pytest.raises(ProfileError, match="MAS level"):
        store.update_user("p07", mas_level=-1)
    store.update_user("p07", mas_level=3, caps=Caps(torque_cap_nm=30))
    assert store.profile("p07").mas_level == 3 and store.profile("p07").caps.torque_cap_nm == 30.0
    store.update_user("p07", mas_level=None)
    assert store.profile("p07").mas_level is None and store.profile("p07").caps.torque_cap_nm == 30.0


def test_sessions_are_numbered_per_user_with_json_artefacts(store: UserStore):
    store.create_user("p07")
    store.create_user("p08")
    with store.recording("p07", "sim", {"twin": "reduced", "level": "2", "controller": "pid"}):
        pass
    first = store.create_session("p07", "assessment", {"protocol": "pendulum"})
    other = store.create_session("p08", "real")
    assert [s.number for s in store.sessions("p07")] == [1, 2] and first.number == 2 and other.number == 1
    s1 = store.session("p07", 1)
    assert (s1.kind, s1.metadata, s1.recovered, s1.truncated, s1.files) == (
        "sim", {"twin": "reduced", "level": "2", "controller": "pid"}, False, False, 0)

    summary = {"peak_torque_nm": 12.5, "trials": [1, 2, 3], "ok": True}
    path = store.put_json("p07", 2, "summary", summary)
    assert path.name == "summary.json.enc" and b"peak_torque_nm" not in path.read_bytes()
    assert store.get_json("p07", 2, "summary") == summary
    store.put_json("p07", 2, "summary", {"replaced": 1})
    assert store.get_json("p07", 2, "summary") == {"replaced": 1}
    assert store.session("p07", 2).artefacts == ("summary",)
    with pytest.raises(StoreError, match="no artefact 'report'"):
        store.get_json("p07", 2, "report")
    with pytest.raises(StoreError, match="no session 9"):
        store.put_json("p07", 9, "summary", {})
    with pytest.raises(StoreError, match="strict JSON"):
        store.put_json("p07", 2, "bad", {"x": math.nan})
    with pytest.raises(ProfileError, match="invalid artefact name"):
        store.put_json("p07", 2, "../escape", {})
    with pytest.raises(ProfileError, match="invalid session kind"):
        store.create_session("p07", "Sim Session")


def test_controller_lineage_and_identified_twin(store: UserStore):
    store.create_user("p07", mas_level=2)
    store.create_session("p07", "assessment")
    c1 = store.add_controller("p07", "models/sac-reduced", source_session=1)
    c2 = store.add_controller("p07", "runs/finetune/p07-a", parent="c1", source_session=1)
    assert (c1.id, c1.parent, c2.id, c2.parent, c2.source_session) == ("c1", None, "c2", "c1", 1)
    assert [c.id for c in store.controllers("p07")] == ["c1", "c2"]
    with pytest.raises(StoreError, match="no controller 'c9'"):
        store.add_controller("p07", "x", parent="c9")
    with pytest.raises(StoreError, match="no session 5"):
        store.add_controller("p07", "x", source_session=5)

    result = {"params": {"reflex_gain": 1.8, "stiffness_nm_per_rad": 4.2},
              "ci": {"reflex_gain": [1.5, 2.1], "stiffness_nm_per_rad": [3.9, 4.6]},
              "mas_level": 2.3, "residual_nm": 0.41, "session": 1, "method": "least-squares", "date": "2025-03-04"}
    profile = store.set_identified_twin("p07", result)
    assert profile.identified_twin == result
    assert store.profile("p07").identified_twin == result
    assert profile.mas_level == 2  # the clinician's rating is separate from the estimate
    with pytest.raises(ProfileError, match="numbers only"):
        store.set_identified_twin("p07", {**result, "params": {"reflex_gain": "high"}})
    with pytest.raises(ProfileError, match="needs 'params'"):
        store.set_identified_twin("p07", {"residual_nm": 1.0})
    with pytest.raises(ProfileError, match="residual_nm must be >= 0"):
        store.set_identified_twin("p07", {**result, "residual_nm": -1.0})
    with pytest.raises(StoreError, match="no session 4"):
        store.set_identified_twin("p07", {**result, "session": 4})
    undated = store.set_identified_twin("p07", {"params": {"reflex_gain": 1.0}})
    assert len(undated.identified_twin["date"]) == 10


def test_caps_for_gives_safety_monitor_parameters(store: UserStore, store_dir: Path, key_file: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    store.create_user("p07", caps=Caps(torque_cap_nm=40.0, joint_min_angle_rad=0.0, joint_max_angle_rad=1.5,
                                       max_slew_rate_nm_per_s=200.0))
    store.create_user("p08")
    store.create_user("p09", caps=Caps(joint_max_angle_rad=2.0))  # wider than the device (1.85 rad)
    caps = caps_for("p07", store)
    assert caps == {"user_torque_cap_nm": 40.0, "joint_min_angle_rad": 0.0, "joint_max_angle_rad": 1.5,
                    "max_slew_rate_nm_per_s": 200.0}
    # the names are the safety monitor's parameters: they apply on top of config/safety.yaml
    from exo.paths import config_file

    base = SafetyLimits.from_yaml(config_file("safety.yaml"))
    applied = SafetyLimits.from_dict({**base.to_dict(), **caps})
    assert applied.torque_cap_nm == 40.0 and applied.joint_max_angle_rad == 1.5
    assert set(SAFETY_PARAMETERS.values()) <= set(base.to_dict())
    assert caps_for("p08", store) == {}
    with pytest.raises(ValueError, match="joint_max_angle_rad 2 rad is above the device's 1.85 rad"):
        caps_for("p09", store)

    # as the graph calls it: the store and key from the environment
    monkeypatch.setenv("EXO_STORE", str(store_dir))
    monkeypatch.setenv("EXO_KEY_FILE", str(key_file))
    assert caps_for("p07") == caps
    assert caps_for("p07", str(store_dir)) == caps
    with pytest.raises(ValueError, match="no user 'p10'"):
        caps_for("p10")
    monkeypatch.delenv("EXO_KEY_FILE")
    with pytest.raises(ValueError, match="no key for the user store"):
        caps_for("p07")


def test_the_store_header_holds_no_personal_data(store: UserStore, store_dir: Path):
    store.create_user("p07", mas_level=2, caps=Caps(torque_cap_nm=40))
    with store.recording("p07", "sim", {"level": "2"}) as bag:
        (bag / "x.mcap").write_bytes(b"\x89MCAP0\r\n")
    header = json.loads((store_dir / "store.json").read_text())
    text = json.dumps(header)
    assert "p07" not in text and "sessions" not in text
    # only the format and the key's non-secret parameters: nothing about users, caps or sessions
    assert set(header) == {"format", "key"} and set(header["key"]) == {"mode", "key_id", "kdf", "check"}
    # every file and folder is private to the owner
    for path in [store_dir, *store_dir.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_store_is_only_made_on_request_and_not_in_a_foreign_folder(tmp_path: Path, key_file: Path):
    with pytest.raises(StoreError, match="no user store at"):
        UserStore.open(tmp_path / "missing", key_file=key_file)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not a user store"):
        UserStore.open(foreign, key_file=key_file, create=True)
