"""The SAC policies committed under ``models/``: intact, the same in every format, and still scoring
what their card records on the card's own evaluation subjects (so a change to the twin, the env, the
residual base or the controller that silently changes a published result fails here)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted(p for p in (REPO / "models").glob("sac*") if (p / "policy.json").is_file())


def test_the_published_policies_are_committed():
    assert {p.name for p in POLICIES} >= {"sac-reduced", "sac-residual-peak-reduced", "sac-residual-limited-reduced"}


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("folder", POLICIES, ids=lambda p: p.name)
def test_a_committed_policy_matches_its_card_in_every_format(folder: Path):
    from exo.control.sac import NumpyActor, OnnxActor
    from exo.learn.export import TOLERANCE, check_observations

    card = json.loads((folder / "policy.json").read_text())
    for fmt, entry in card["files"].items():
        digest = hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{folder.name}/{entry['name']} ({fmt}) differs from its card"
    import torch

    # the observations of the card's consistency record (half realistic, half uniform over the env's
    # bounds); off them, float32 runtimes can differ by up to ~2e-5 at the extreme bounds
    obs = check_observations(card["consistency"]["observations"])
    scripted = torch.jit.load(str(folder / card["files"]["torchscript"]["name"]))
    with torch.no_grad():
        torch32 = scripted(torch.from_numpy(obs)).numpy().astype(np.float64)
        torch64 = scripted.double()(torch.from_numpy(obs).double()).numpy()
    numpy_actions = NumpyActor.from_npz(folder / card["files"]["npz"]["name"])(obs)
    onnx_actions = OnnxActor(folder / card["files"]["onnx"]["name"])(obs)
    assert numpy_actions.shape == (len(obs), 1) and np.all(np.abs(numpy_actions) <= 1.0)
    # like with like (exo.learn.export.consistency): the float32 runtimes against each other, the float64
    # numpy actor against the same weights in float64
    assert np.max(np.abs(onnx_actions - torch32)) < TOLERANCE
    assert np.max(np.abs(numpy_actions - torch64)) < 1e-9


@pytest.mark.parametrize("folder", POLICIES, ids=lambda p: p.name)
def test_a_committed_policy_scores_what_its_card_records(folder: Path):
    from exo.control.sac import SacController
    from exo.learn.evaluation import evaluate_controller

    card = json.loads((folder / "policy.json").read_text())
    recorded = card["evaluation"]
    overrides = dict(card["training"]["config"].get("env_overrides") or {})
    result = evaluate_controller(SacController(str(folder)), recorded["twin"], tuple(recorded["levels"]),
                                 recorded["trials_per_level"], recorded["seed"], overrides)
    measured = result.per_level()
    for level in recorded["levels"]:
        for name, want in recorded["per_level"][str(level)].items():
            got = measured[level][name]
            if want is None:  # no trial settled
                assert got is None or math.isnan(got), f"L{level} {name}: {got} vs card None"
                continue
            assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), f"L{level} {name}: {got} vs card {want}"
