"""SafetyLimits: the shipped config, loading, and every way a configuration can be malformed."""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import pytest

from exo.params import ConfigError
from exo.safety import SafetyConfigError, SafetyLimits

CONFIG = Path(__file__).resolve().parents[2] / "config" / "safety.yaml"


def test_shipped_config_loads_and_equals_the_defaults():
    assert SafetyLimits.from_yaml(CONFIG) == SafetyLimits()


def test_round_trips_through_dict_dotted_keys_and_pickle():
    limits = SafetyLimits(user_torque_cap_nm=25.0, fallback_kind="zero")
    assert SafetyLimits.from_dict(limits.to_dict()) == limits
    dotted = {"sensor_timeouts_s.joint_states": 0.02, "sensor_timeouts_s.interaction": 0.03}
    assert dict(SafetyLimits.from_dict(dotted).sensor_timeouts_s) == {"joint_states": 0.02, "interaction": 0.03}
    assert pickle.loads(pickle.dumps(limits)) == limits
    assert SafetyLimits.from_dict({"actuator_torque_limit_nm": 100}).actuator_torque_limit_nm == 100.0


def test_limits_are_immutable_and_replace_validates():
    limits = SafetyLimits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.user_torque_cap_nm = 90.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        limits.sensor_timeouts_s["joint_states"] = 9.0  # type: ignore[index]
    with pytest.raises(SafetyConfigError, match="user_torque_cap_nm"):
        dataclasses.replace(limits, user_torque_cap_nm=120.0)
    # a user cap below the fallback / safe-stop caps is fine: those are bounded by it
    assert dataclasses.replace(limits, user_torque_cap_nm=5.0).torque_cap_nm == 5.0


def test_every_parameter_is_documented_with_a_unit():
    docs = SafetyLimits.parameter_docs()
    assert set(docs) == {f.name for f in dataclasses.fields(SafetyLimits)}
    assert all(unit and len(doc) > 15 for unit, doc in docs.values())


@pytest.mark.parametrize(("params", "key", "fragment"), [
    ({"user_torque_cap": 30.0}, "user_torque_cap", "did you mean 'user_torque_cap_nm'"),
    ({"user_torque_cap_nm": "40"}, "user_torque_cap_nm", "expected a number"),
    ({"max_slew_rate_nm_per_s": True}, "max_slew_rate_nm_per_s", "expected a number"),
    ({"max_slew_rate_nm_per_s": math.nan}, "max_slew_rate_nm_per_s", "finite"),
    ({"user_torque_cap_nm": 120.0}, "user_torque_cap_nm", "<= actuator_torque_limit_nm"),
    ({"user_torque_cap_nm": -1.0}, "user_torque_cap_nm", "> 0"),
    ({"max_request_torque_nm": 20.0}, "max_request_torque_nm", ">= user_torque_cap_nm"),
    ({"joint_min_angle_rad": 1.9}, "joint_min_angle_rad", "< joint_max_angle_rad"),
    ({"soft_zone_width_rad": 1.0}, "soft_zone_width_rad", "must not overlap"),
    ({"soft_zone_width_rad": -0.1}, "soft_zone_width_rad", ">= 0"),
    ({"plausible_angle_min_rad": 0.0}, "plausible_angle_min_rad", "<= joint_min_angle_rad"),
    ({"plausible_velocity_max_rad_s": 1.0}, "plausible_velocity_max_rad_s", ">= max_joint_velocity"),
    ({"control_period_s": 0.0}, "control_period_s", "> 0"),
    ({"request_timeout_periods": 0}, "request_timeout_periods", ">= 1"),
    ({"request_timeout_periods": 2.5}, "request_timeout_periods", "expected an integer"),
    ({"fallback_kind": "pd"}, "fallback_kind", "one of pid, zero"),
    ({"latch_safe_stop": "yes"}, "latch_safe_stop", "true or false"),
    ({"fallback_kd_nm_s_per_rad": -1.0}, "fallback_kd_nm_s_per_rad", ">= 0"),
    ({"sensor_timeouts_s": {"joint_states": -0.1, "interaction": 0.05}}, "sensor_timeouts_s.joint_states",
     "must be > 0"),
    ({"sensor_timeouts_s": {"joint_states": 0.05, "interaction": 0.001}}, "sensor_timeouts_s.interaction",
     ">= control_period_s"),
    ({"sensor_timeouts_s": {"joint_states": 0.05, "interaction": "fast"}}, "sensor_timeouts_s.interaction",
     "expected a timeout"),
    ({"sensor_timeouts_s": {"interaction": 0.05}}, "sensor_timeouts_s", "must watch 'joint_states'"),
    ({"sensor_timeouts_s": {"joint_states": 0.05}}, "sensor_timeouts_s", "interaction*"),
    ({"sensor_timeouts_s": {"joint_states": 0.05, "imu/thigh": 0.05, "interaction": 0.05}},
     "sensor_timeouts_s.imu/thigh", "imu_thigh"),
    ({"sensor_timeouts_s": {}}, "sensor_timeouts_s", "at least one source"),
    ({"sensor_timeouts_s": 0.05}, "sensor_timeouts_s", "expected a mapping"),
])
def test_malformed_parameters_name_the_key_and_why(params, key, fragment):
    with pytest.raises(SafetyConfigError) as info:
        SafetyLimits.from_dict(params)
    assert any(k == key and fragment in why for k, why in info.value.problems), info.value.problems
    assert key in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(SafetyConfigError) as info:
        SafetyLimits.from_dict({"typo_key": 1, "user_torque_cap_nm": 120.0, "joint_min_angle_rad": 3.0})
    assert {k for k, _ in info.value.problems} == {"typo_key", "user_torque_cap_nm", "joint_min_angle_rad"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "safety.yaml"
    path.write_text(text)
    return path


def test_malformed_yaml_files_are_refused_naming_the_file(tmp_path: Path):
    bad_syntax = _write(tmp_path, "safety_monitor:\n  ros__parameters: {user_torque_cap_nm: [40\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        SafetyLimits.from_yaml(bad_syntax)
    assert str(bad_syntax) in str(info.value)
    with pytest.raises(ConfigError, match="expected a mapping"):
        SafetyLimits.from_yaml(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="no parameters for node 'safety_monitor'"):
        SafetyLimits.from_yaml(_write(tmp_path, "controller:\n  ros__parameters: {kp: 1.0}\n"))
    with pytest.raises(ConfigError, match="ros__parameters"):
        SafetyLimits.from_yaml(_write(tmp_path, "safety_monitor:\n  user_torque_cap_nm: 30.0\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        SafetyLimits.from_yaml(tmp_path / "missing.yaml")
    bad_value = _write(tmp_path, "/**:\n  ros__parameters:\n    user_torque_cap_nm: 150.0\n    colour: red\n")
    with pytest.raises(SafetyConfigError) as info:
        SafetyLimits.from_yaml(bad_value)
    assert str(bad_value) in str(info.value)
    assert {k for k, _ in info.value.problems} == {"user_torque_cap_nm", "colour"}


def test_wildcard_and_node_entries_merge(tmp_path: Path):
    path = _write(tmp_path, "/**:\n  ros__parameters:\n    control_period_s: 0.005\n"
                            "safety_monitor:\n  ros__parameters:\n    user_torque_cap_nm: 25\n")
    limits = SafetyLimits.from_yaml(path)
    assert (limits.control_period_s, limits.user_torque_cap_nm) == (0.005, 25.0)
