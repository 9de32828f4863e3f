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
