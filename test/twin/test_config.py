"""config/twin.yaml and config/env.yaml: they load, and malformed values give clear errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from exo.envs.config import load_env_config, parse_env_config
from exo.params import ConfigError
from exo.twin import make_twin
from exo.twin.config import load_twin_config, parse_twin_config

REPO = Path(__file__).resolve().parents[2]


def _params(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / name).read_text())["/**"]["ros__parameters"]


def test_files_load_with_expected_values() -> None:
    cfg = load_twin_config()
    assert cfg.sim.physics_timestep_s == 0.001 and cfg.sim.physics_steps_per_control == 10
    assert cfg.sim.control_timestep_s == pytest.approx(0.01)
    assert cfg.exo.max_torque_nm == 100.0 and cfg.exo.knee_range_deg == (-105.0, 5.0)
    assert cfg.exo.upper_link_mass_kg == 1.1 and cfg.exo.lower_link_mass_kg == 7.4
    assert cfg.spasticity.table == "paper" and cfg.spasticity.angle_mapping == "seated_extension"
    assert len(cfg.human.flexor_muscles) + len(cfg.human.extensor_muscles) == 11
    env = load_env_config()
    assert env.control_steps == 512 and env.target_knee_angle_rad == 0.2
    assert set(env.reward.weights) == {"pose", "interaction", "smoothness", "acceleration", "range", "peak"}


def test_every_number_has_unit_and_source() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "value" in node:
                assert node.get("unit") is not None and str(node.get("source", "")).strip(), path
                return
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            raise AssertionError(f"bare number at {path}")

    walk(_params("twin.yaml"), "twin.yaml")
    walk(_params("env.yaml"), "env.yaml")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["twin"]["exo"]["max_torque_nm"].update(value="lots"), "max_torque_nm.value must be a finite number"),
        (lambda p: p["twin"]["exo"]["max_torque_nm"].update(unit="kN m"), "expected 'N m'"),
        (lambda p: p["twin"]["exo"]["max_torque_nm"].pop("source"), "needs a 'source'"),
        (lambda p: p["twin"]["simulation"].pop("physics_timestep_s"), "missing key 'twin.simulation.physics_timestep_s'"),
        (lambda p: p["twin"]["exo"]["knee_range_deg"].update(value=[-105.0]), "list of 2 numbers"),
        (lambda p: p["twin"]["spasticity"].update(table="nope"), "spasticity.table must be one of"),
        (lambda p: p["twin"]["spasticity"]["tables"]["paper"]["a_ext_deg"].update(value=[95.0, 80.0, -75.0, 60.0]), "a_flex_deg"),
        (lambda p: p["twin"]["exo"]["strap_slide_stiffness_n_m"].update(value=-1.0), "strap_slide_stiffness_n_m must be >"),
        (lambda p: p["twin"]["human"].update(flexor_muscles="bflh_r"), "list of names"),
    ],
)
def test_malformed_twin_config(mutate: Any, message: str) -> None:
    params = copy.deepcopy(_params("twin.yaml"))
    mutate(params)
    with pytest.raises(ConfigError, match=message) as err:
        parse_twin_config(params, "twin.yaml")
    assert str(err.value).startswith("twin.yaml")


def test_malformed_env_config() -> None:
    params = copy.deepcopy(_params("env.yaml"))
    params["knee_extension"]["reward"]["weights"]["novelty"] = {"value": 1.0, "unit": "1", "source": "x"}
    with pytest.raises(ConfigError, match="unknown term"):
        parse_env_config(params, "env.yaml")
    params = copy.deepcopy(_params("env.yaml"))
    params["knee_extension"]["episode"]["control_steps"]["value"] = 12.5
    with pytest.raises(ConfigError, match="must be an integer"):
        parse_env_config(params, "env.yaml")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "twin.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    twin: [1, 2]\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_twin_config(bad)
    with pytest.raises(ConfigError):
        load_twin_config(tmp_path / "missing.yaml")


def test_overrides() -> None:
    cfg = load_twin_config()
    assert cfg.with_overrides(subject_noise=False).spasticity.subject_noise is False
    assert cfg.with_overrides(exo__max_torque_nm=50.0).exo.max_torque_nm == 50.0
    with pytest.raises(ConfigError, match="unknown field"):
        cfg.with_overrides(warp_drive=1)
    with pytest.raises(ConfigError):
        cfg.with_overrides(exo__max_torque_nm=-5.0)
    with pytest.raises(ValueError, match="unknown twin kind"):
        make_twin("hologram")
    twin = make_twin("reduced", max_torque_nm=40.0)
    assert twin.max_exo_torque_nm == 40.0 and twin.kind == "reduced"
