"""urdf/exo_knee.urdf agrees with the twin's configuration (joint limits, masses, inertias)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exo.twin.config import load_twin_config
from exo.twin.full import MyoLegKneeTwin

URDF = Path(__file__).resolve().parents[2] / "urdf" / "exo_knee.urdf"
CFG = load_twin_config()


@pytest.fixture(scope="module")
def robot() -> ET.Element:
    return ET.parse(URDF).getroot()


def joint(robot: ET.Element, name: str) -> ET.Element:
    el = robot.find(f"joint[@name='{name}']")
    assert el is not None, f"URDF has no joint {name}"
    return el


def link(robot: ET.Element, name: str) -> ET.Element:
    el = robot.find(f"link[@name='{name}']")
    assert el is not None, f"URDF has no link {name}"
    return el


def limits(j: ET.Element) -> tuple[float, float, float]:
    lim = j.find("limit")
    assert lim is not None
    return float(lim.get("lower")), float(lim.get("upper")), float(lim.get("effort"))  # type: ignore[arg-type]


def inertial(lk: ET.Element) -> tuple[float, list[float], list[float]]:
    inn = lk.find("inertial")
    assert inn is not None
    mass = float(inn.find("mass").get("value"))  # type: ignore[union-attr, arg-type]
    i = inn.find("inertia")
    diag = [float(i.get(k)) for k in ("ixx", "iyy", "izz")]  # type: ignore[union-attr, arg-type]
    com = [float(x) for x in inn.find("origin").get("xyz").split()]  # type: ignore[union-attr]
    return mass, diag, com


def bar(mass: float, length: float, width: float) -> tuple[float, float]:
    """(along, across) inertia of the twin's square bar model."""
    return mass * 2 * width**2 / 12, mass * (length**2 + width**2) / 12


def test_knee_joint_matches_twin(robot: ET.Element) -> None:
    lo, hi, effort = limits(joint(robot, "exo_knee"))
    mj_lo, mj_hi = CFG.exo.knee_range_deg  # MuJoCo exo_flexion, negative = flexion
    assert (lo, hi) == pytest.approx((-math.radians(mj_hi), -math.radians(mj_lo)))
    assert effort == pytest.approx(CFG.exo.max_torque_nm)
    assert joint(robot, "exo_knee").find("axis").get("xyz") == "0 1 0"  # type: ignore[union-attr]
    damping = float(joint(robot, "exo_knee").find("dynamics").get("damping"))  # type: ignore[union-attr, arg-type]
    assert damping == pytest.approx(CFG.exo.knee_damping_nm_s_rad)


def test_strap_joints_match_twin(robot: ET.Element) -> None:
    e = CFG.exo
    assert limits(joint(robot, "exo_strap_slide"))[:2] == pytest.approx((-e.strap_slide_range_m, e.strap_slide_range_m))
    h = math.radians(e.strap_hinge_range_deg)
    assert limits(joint(robot, "exo_strap_hinge"))[:2] == pytest.approx((-h, h))
    assert limits(joint(robot, "exo_cuff_lateral"))[:2] == pytest.approx((-e.cuff_lateral_range_m, e.cuff_lateral_range_m))
    assert joint(robot, "exo_strap_slide").get("type") == "prismatic"
    assert joint(robot, "exo_cuff_lateral").get("type") == "prismatic"


def test_masses_and_inertias_match_twin(robot: ET.Element) -> None:
    e = CFG.exo
    m, diag, com = inertial(link(robot, "exo_upper"))
    along, across = bar(e.upper_link_mass_kg, e.upper_link_length_m, e.link_width_m)
    assert m == pytest.approx(e.upper_link_mass_kg)
    assert diag == pytest.approx([along, across, across])
    assert com == pytest.approx([e.upper_link_length_m / 2, 0, 0])
    m, diag, com = inertial(link(robot, "exo_lower"))
    along, across = bar(e.lower_link_mass_kg, e.lower_link_length_m, e.link_width_m)
    assert m == pytest.approx(e.lower_link_mass_kg)
    assert diag == pytest.approx([along, across, across])
    assert com == pytest.approx([e.lower_link_com_m, 0, 0])
    assert inertial(link(robot, "exo_cuff"))[0] == pytest.approx(e.cuff_mass_kg)
    knee_origin = [float(x) for x in joint(robot, "exo_knee").find("origin").get("xyz").split()]  # type: ignore[union-attr]
    assert knee_origin == pytest.approx([e.upper_link_length_m, 0, 0])


def test_compiled_twin_has_the_same_masses_and_limits(robot: ET.Element) -> None:
    model = MyoLegKneeTwin(CFG).model
    for body, link_name in (("exo_upper", "exo_upper"), ("exo_lower", "exo_lower"), ("exo_cuff", "exo_cuff")):
        assert model.body_mass[model.body(body).id] == pytest.approx(inertial(link(robot, link_name))[0])
    lo, hi, _ = limits(joint(robot, "exo_knee"))
    assert model.jnt_range[model.joint("exo_flexion").id] == pytest.approx([-hi, -lo])
    assert model.jnt_range[model.joint("exo_strap_slide").id] == pytest.approx(limits(joint(robot, "exo_strap_slide"))[:2])
    gear = model.actuator_gear[model.actuator("exo_motor").id][0]
    assert gear * model.actuator_ctrlrange[model.actuator("exo_motor").id][1] == pytest.approx(limits(joint(robot, "exo_knee"))[2])
    for name in ("thigh_imu", "shank_imu", "thigh_strap", "shank_strap"):
        link(robot, name)
