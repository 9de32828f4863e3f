"""A user's caps reach every layer of the graph: the safety monitor, the actuator side's guard, the assessment.

The pip runner's command lines (``exo.runner.ros_arguments``) are built from ``exo.graph`` as the launch files'
parameters are, so checking them checks both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exo import graph
from exo.graph import active_nodes, resolve_arguments
from exo.runner import ros_arguments
from exo.users import Caps, UserStore


def _params(mode: str, **args: str) -> dict[str, dict[str, str]]:
    resolved = resolve_arguments(mode, args)
    out = {}
    for spec in active_nodes(mode, resolved):
        argv = ros_arguments(spec, resolved)
        out[spec.name] = dict(argv[i + 1].split(":=", 1) for i, a in enumerate(argv) if a == "-p")
    return out


@pytest.fixture
def user_store(store: UserStore, store_dir: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> UserStore:
    store.create_user("p-caps", mas_level=2, caps=Caps(torque_cap_nm=35.0, joint_max_angle_rad=1.5,
                                                        max_slew_rate_nm_per_s=250.0))
    store.create_user("p-nocaps")
    monkeypatch.setenv("EXO_STORE", str(store_dir))
    monkeypatch.setenv("EXO_KEY_FILE", str(key_file))
    monkeypatch.setattr(graph, "_USER_CAPS", {})
    monkeypatch.setattr(graph, "_USER_ASSISTANCE", {})
    return store


def test_a_users_caps_reach_the_monitor_the_guard_and_the_assessment(user_store):
    params = _params("sim", user="p-caps", controller="assessment")
    assert params["safety_monitor"]["user_torque_cap_nm"] == "35.0"
    assert params["safety_monitor"]["max_slew_rate_nm_per_s"] == "250.0"
    assert params["safety_monitor"]["joint_max_angle_rad"] == "1.5"
    assert params["sim_bridge"]["guard.torque_cap_nm"] == "35.0"
    assert params["sim_bridge"]["guard.joint_max_angle_rad"] == "1.5"
    assert params["controller"]["assessment.torque_limit_nm"] == "35.0"
    assert params["controller"]["assessment.slew_limit_nm_s"] == "250.0"
    # the protocol's flexed end stays a soft zone (0.15 rad) inside the user's flexion limit
    assert float(params["controller"]["assessment.flexed_angle_rad"]) == pytest.approx(1.35)
    real = _params("real", user="p-caps")
    assert real["actuator_driver"]["guard.torque_cap_nm"] == "35.0"
    assert not any(k.startswith("assessment.") for k in real["controller"])  # only for the assessment controller


def test_no_user_and_a_user_without_caps_keep_the_defaults(user_store):
    for params in (_params("sim"), _params("sim", user="p-nocaps")):
        assert "user_torque_cap_nm" not in params["safety_monitor"]
        assert "guard.torque_cap_nm" not in params["sim_bridge"]


def test_an_unknown_user_or_a_wrong_key_is_a_clear_error(user_store, tmp_path: Path, monkeypatch):
    with pytest.raises(ValueError, match="p-nobody"):
        _params("sim", user="p-nobody")
    from exo.users import create_key_file

    monkeypatch.setenv("EXO_KEY_FILE", str(create_key_file(tmp_path / "other.key")))
    monkeypatch.setattr(graph, "_USER_CAPS", {})
    monkeypatch.setattr(graph, "_USER_ASSISTANCE", {})
    with pytest.raises(ValueError, match="wrong key"):
        _params("sim", user="p-caps")
