"""exo.ros.params_file: every --params-file of a node is checked against the parameters it declares.

rcl merges several parameter files into one table in which a later file's value of
another YAML type does not replace the earlier one (rclpy then returns the earlier
value), and a ``/**`` entry can lose to an earlier file's ``/**/<node>`` entry. The
pure checks are tested here; the last tests run a real rclpy node (in a subprocess)
to pin both rcl behaviours and show declare_all refusing them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exo.ros.params_file import (
    ParamsFileError,
    check_params_files,
    node_key_matches,
    parse_params_file,
    rcl_values,
    ros_param_rules,
    ros_params_files,
    scalar_value,
    shadowed_values,
    type_problems,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "exo_bringup" / "config"
SAFETY_DECLARED = {"user_torque_cap_nm": 70.0, "request_timeout_periods": 1, "sensor_timeouts_s.imu_thigh": 0.1,
                   "step_sync": "sim_time", "publish_truth": True}


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_string_for_a_float_in_a_later_file_names_the_file_line_and_key(tmp_path: Path):
    user = _file(tmp_path, "user.yaml", """\
        /**/safety_monitor:
          ros__parameters:
            user_torque_cap_nm: "40"
        """)
    with pytest.raises(ParamsFileError) as info:
        check_params_files([CONFIG / "safety.yaml", user], "safety_monitor", "/exo", SAFETY_DECLARED)
    assert str(info.value) == (f"params file {user}:3: safety_monitor.user_torque_cap_nm: "
                               "expected a float, got the string '40'")


@pytest.mark.parametrize("key", ["/**", "/**/safety_monitor", "/exo/safety_monitor", "/*/safety_monitor"])
def test_every_key_that_applies_to_the_node_is_checked(tmp_path: Path, key: str):
    user = _file(tmp_path, "user.yaml", f"{key}:\n  ros__parameters:\n    user_torque_cap_nm: '40'\n")
    with pytest.raises(ParamsFileError, match=r"user.yaml:3: safety_monitor.user_torque_cap_nm"):
        check_params_files([user], "safety_monitor", "/exo", SAFETY_DECLARED)


@pytest.mark.parametrize("key", ["/**/controller", "/other/safety_monitor", "safety_monitor", "/safety_monitor"])
def test_keys_of_other_nodes_or_namespaces_are_not_checked(tmp_path: Path, key: str):
    user = _file(tmp_path, "user.yaml", f"{key}:\n  ros__parameters:\n    user_torque_cap_nm: '40'\n")
    assert check_params_files([user], "safety_monitor", "/exo", SAFETY_DECLARED)[0].entries[0].key == key


@pytest.mark.parametrize(("key", "namespace", "matches"), [
    ("/**", "/exo", True), ("/**", "/", True), ("/**/n", "/a/b/exo", True), ("/**/n", "/", True),
    ("n", "/", True), ("n", "/exo", False), ("/n", "/", True), ("/n", "/exo", False),
    ("/exo/n", "/exo", True), ("exo/n", "/exo", True), ("/exo/n", "/a/exo", False),
    ("/*/n", "/exo", True), ("/*/n", "/a/exo", False), ("/exo/*", "/exo", True), ("/**/m", "/exo", False),
    ("/a/**/n", "/a/b/exo", True), ("/a/**/n", "/exo", False),
])
def test_node_keys_match_like_rclpy(key: str, namespace: str, matches: bool):
    assert node_key_matches(key, "n", namespace) is matches


@pytest.mark.parametrize(("literal", "default", "problem"), [
    ("40", 70.0, None),                         # an integer where a float is expected is fine
    ("1e3", 70.0, None),                        # strtod's 1e3 is a float (PyYAML would read a string)
    (".inf", 70.0, None),
    ("'40'", 70.0, "expected a float, got the string '40'"),
    ("true", 70.0, "expected a float, got the bool true"),
    ("1.5", 1, "expected an integer, got the float 1.5"),
    ("2", 1, None),
    ("0x10", 1, None),
    ("true", 1, "expected an integer, got the bool true"),
    ("yes", False, None),                       # rcl's bool spellings
    ("1", False, "expected a bool, got the integer 1"),
    ("'true'", False, "expected a bool, got the string 'true'"),
    ("never", "sim_time", None),
    ("5", "sim_time", "expected a string, got the integer 5"),
    ("'5'", "sim_time", None),
    ("[1.0, 2.0]", 70.0, "expected a float, got a float array [1.0, 2.0]"),
    ("{a: 1.0}", 70.0, "expected a float, got a mapping"),
])
def test_type_rules(tmp_path: Path, literal: str, default: object, problem: str | None):
    path = _file(tmp_path, "p.yaml", f"/**:\n  ros__parameters:\n    value: {literal}\n")
    problems = type_problems(parse_params_file(path), "n", "/exo", {"value": default})
    assert problems == ([] if problem is None else [f"params file {path}:3: n.value: {problem}"])


def test_nested_parameters_are_dotted_names(tmp_path: Path):
    path = _file(tmp_path, "p.yaml", """\
        /**/safety_monitor:
          ros__parameters:
            sensor_timeouts_s:
              imu_thigh: fast
        """)
    [problem] = type_problems(parse_params_file(path), "safety_monitor", "/exo", SAFETY_DECLARED)
    assert problem.endswith("p.yaml:4: safety_monitor.sensor_timeouts_s.imu_thigh: expected a float, "
                            "got the string 'fast'")


def test_undeclared_keys_keep_todays_behaviour(tmp_path: Path):
    path = _file(tmp_path, "p.yaml", "/**:\n  ros__parameters:\n    colour: 5\n    other_node_key: 'x'\n")
    assert check_params_files([path], "safety_monitor", "/exo", SAFETY_DECLARED)


def test_every_problem_of_every_file_is_listed_on_one_line(tmp_path: Path):
    a = _file(tmp_path, "a.yaml", "/**:\n  ros__parameters:\n    request_timeout_periods: 1.5\n")
    b = _file(tmp_path, "b.yaml", "/**/safety_monitor:\n  ros__parameters:\n    publish_truth: 1\n")
    with pytest.raises(ParamsFileError) as info:
        check_params_files([a, b], "safety_monitor", "/exo", SAFETY_DECLARED)
    message = str(info.value)
    assert "\n" not in message and "a.yaml:3: safety_monitor.request_timeout_periods" in message
    assert "b.yaml:3: safety_monitor.publish_truth: expected a bool, got the integer 1" in message


def test_the_shipped_config_files_pass(tmp_path: Path):
    for name in ("safety.yaml", "safety_monitor.yaml", "task.yaml", "controllers.yaml", "sim_bridge.yaml",
                 "drivers.yaml", "bag_player.yaml", "recorder.yaml", "intent_estimator.yaml"):
        assert parse_params_file(CONFIG / name).entries, name


def test_malformed_yaml_is_one_line_naming_the_file_and_line(tmp_path: Path):
    path = _file(tmp_path, "broken.yaml", """\
        /**/safety_monitor:
          ros__parameters:
            user_torque_cap_nm: [40
            request_deadline_s: 0.02
        """)
    with pytest.raises(ParamsFileError) as info:
        parse_params_file(path)
    message = str(info.value)
    assert message.startswith(f"params file {path}: not valid YAML: line 4, column ")
    assert "\n" not in message and "line 3" in message  # where the unclosed sequence started
    with pytest.raises(ParamsFileError, match="missing.yaml: cannot read"):
        parse_params_file(tmp_path / "missing.yaml")


def test_scalars_are_typed_like_rcl():
    assert scalar_value("08", False) == ("float", 8.0)  # strtol stops at 8; strtod reads it
    assert scalar_value("017", False) == ("integer", 15)
    assert scalar_value("1e999", False) == ("string", "1e999")  # strtod range error
    assert scalar_value("~", False) == ("string", "~")
    assert scalar_value("Off", False) == ("bool", False)
    assert scalar_value("tRue", False) == ("string", "tRue")
    assert scalar_value("99999999999999999999", False) == ("float", 1e20)


def test_params_files_and_param_rules_come_from_the_ros_args_sections():
    argv = ["exo_node", "--ros-args", "-r", "__node:=a", "--params-file", "a.yaml", "-p", "x:=1",
            "--params-file", "b.yaml", "--param", "n:y:=2", "--", "--params-file", "not-ros.yaml",
            "--ros-args", "--params-file", "c.yaml"]
    assert ros_params_files(argv) == ["a.yaml", "b.yaml", "c.yaml"]
    assert ros_param_rules(argv) == {"x", "y"}
    assert ros_params_files(["node", "--params-file", "x.yaml"]) == []


def _shadowing_files(tmp_path: Path) -> list[Path]:
    config = _file(tmp_path, "config.yaml", """\
        /**:
          ros__parameters:
            target: 0.2
        /**/controller:
          ros__parameters:
            kp: 344.0
        """)
    user = _file(tmp_path, "user.yaml", "/**:\n  ros__parameters:\n    kp: 100.0\n    target: 0.3\n")
    return [config, user]


def test_a_wildcard_value_that_loses_to_an_earlier_node_entry_is_named(tmp_path: Path):
    files = [parse_params_file(p) for p in _shadowing_files(tmp_path)]
    declared = {"kp": 1.0, "target": 0.0}
    assert {k: v[2].value for k, v in rcl_values(files, "controller", "/exo", declared).items()} == \
        {"kp": 344.0, "target": 0.3}
    [problem] = shadowed_values(files, "controller", "/exo", declared, {"kp": 344.0, "target": 0.3})
    assert problem.startswith(f"params file {files[1].path}:3: controller.kp = 100.0 does not take effect: "
                              f"the node gets 344.0 from params file {files[0].path}:6 (entry '/**/controller')")
    assert problem.endswith("set it under '/**/controller:' instead")
    assert shadowed_values(files, "controller", "/exo", declared, {"kp": 344.0, "target": 0.3}, {"kp"}) == []


_NODE_SCRIPT = """
import json, sys
import rclpy
from rclpy.node import Node
from exo.ros.parameters import Param, ParameterError, declare_all, use_command_line

argv = ["node", "--ros-args", *[a for f in sys.argv[1:] for a in ("--params-file", f)]]
use_command_line(argv)
rclpy.init(args=argv)
node = Node("{name}", namespace="/exo")
overrides = {{k: p.value for k, p in node._parameter_overrides.items()}}
try:
    result = {{"values": declare_all(node, [{params}])}}
except ParameterError as exc:
    result = {{"error": str(exc)}}
print(json.dumps({{"overrides": overrides, **result}}))
rclpy.shutdown()
"""


def _run_node(name: str, params: str, files: list[Path]) -> dict:
    script = _NODE_SCRIPT.format(name=name, params=params)
    proc = subprocess.run([sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ros
def test_declare_all_refuses_a_wrongly_typed_override_that_rcl_drops(ros_domain: int, tmp_path: Path):
    """rcl keeps config/safety.yaml's 70.0 when a later file gives the string "40" (root cause);
    declare_all refuses the start instead of running with the 70 N m cap."""
    user = _file(tmp_path, "user.yaml", "/**/safety_monitor:\n  ros__parameters:\n    user_torque_cap_nm: '40'\n")
    out = _run_node("safety_monitor", "Param('user_torque_cap_nm', 70.0, 'cap, N m', 0.0, 100.0)",
                    [CONFIG / "safety.yaml", user])
    assert out["overrides"]["user_torque_cap_nm"] == 70.0  # what rclpy alone delivers
    assert out["error"] == (f"params file {user}:3: safety_monitor.user_torque_cap_nm: expected a float, "
                            "got the string '40'")


@pytest.mark.ros
def test_declare_all_refuses_a_wildcard_value_that_rcl_drops(ros_domain: int, tmp_path: Path):
    files = _shadowing_files(tmp_path)
    out = _run_node("controller", "Param('kp', 1.0, 'gain'), Param('target', 0.0, 'rad')", files)
    assert out["overrides"] == {"kp": 344.0, "target": 0.3}  # rcl: the user's kp lost, its target won
    assert out["error"].startswith(f"params file {files[1]}:3: controller.kp = 100.0 does not take effect")
    out = _run_node("controller", "Param('kp', 1.0, 'gain'), Param('target', 0.0, 'rad')", files[:1])
    assert out["values"] == {"kp": 344.0, "target": 0.2}
