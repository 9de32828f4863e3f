"""The personalised policy: SAC fine-tuning on a user's twin inside a trust region, kept encrypted in the store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from exo.control import make_controller
from exo.personalize.evaluation import UserTwin, user_limits
from exo.personalize.gate import GateConfig
from exo.personalize.policy import (
    PolicyTuneConfig,
    TunedPolicy,
    parse_store_reference,
    start_policy,
    store_reference,
    tune_policy,
)
from exo.personalize.run import PersonalizeConfig, personalize_user, version_choice
from exo.twin.config import load_twin_config

TINY = PolicyTuneConfig(transitions=480, warmup_transitions=160, batch_size=32, train_freq=16, subjects=4,
                        reference_states=256, max_action_change=0.05, seed=3)


@pytest.fixture(scope="module")
def tuned():
    subject = load_twin_config().spasticity.subject(2, 11)
    user_twin = UserTwin(subject=subject, limits=dataclasses.replace(user_limits(), user_torque_cap_nm=60.0),
                         twin="reduced")
    start = start_policy("")
    return start, tune_policy(user_twin, start, TINY)


def test_the_fine_tuned_actor_stays_inside_the_trust_region(tuned):
    start, policy = tuned
    assert policy.stats["transitions"] >= TINY.transitions and policy.stats["largest_action_change"] <= 0.05 + 1e-6
    moved = max(float(np.abs(w1 - w0).max()) for (w1, _), (w0, _) in zip(policy.hidden, start.hidden, strict=True))
    assert moved > 0.0  # it did learn something
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, size=(64, start.hidden[0][0].shape[1]))
    assert np.all(np.isfinite(policy.actor()(obs)))
    assert policy.card["personalisation"]["method"] == "sac-finetune-trust-region"
    assert policy.card["residual"] == start.card["residual"]  # the same base controller


def test_a_tuned_policy_round_trips_through_json_and_a_policy_folder(tuned, tmp_path):
    _, policy = tuned
    again = TunedPolicy.from_json(policy.to_json())
    for (w, b), (w2, b2) in zip(policy.hidden, again.hidden, strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
    folder = again.write_folder(tmp_path / "p")
    controller = make_controller("sac", policy=str(folder), torque_limit_nm=60.0)
    obs = np.zeros(again.hidden[0][0].shape[1], dtype=np.float32)
    assert float(controller._actor(obs)[0, 0]) == pytest.approx(float(policy.actor()(obs)[0, 0]), abs=1e-9)
    with pytest.raises(ValueError, match="not a tuned policy"):
        TunedPolicy.from_json({"format": "something else"})
    assert parse_store_reference(store_reference(7)) == (7, "policy")
    with pytest.raises(ValueError, match="malformed"):
        parse_store_reference("store:sessionX/policy")


def test_personalize_with_the_learned_policy_keeps_its_weights_encrypted(tmp_path):
    from exo.twin.reflex import NOISY_PARAMETERS
    from exo.users import Caps, UserStore

    store = UserStore.open(tmp_path / "store", key=b"p" * 32, create=True)
    store.create_user("p-policy", mas_level=2, caps=Caps(torque_cap_nm=60.0))
    subject = load_twin_config().spasticity.subject(2, 11)
    store.set_identified_twin("p-policy", {"params": {n: getattr(subject, n) for n in NOISY_PARAMETERS},
                                           "ci": {}, "mas_level": 2, "residual_nm": 0.1,
                                           "method": "test-fixture"})
    config = PersonalizeConfig(twin="reduced", baselines=("pid",), search_subjects=2, popsize=4,
                               gate=GateConfig(subjects=2), policy=TINY, policy_budget_share=0.5)
    outcome = personalize_user(store, "p-policy", config, budget_s=600, max_evaluations=4)
    assert "policy" in outcome.searches and outcome.searches["policy"]["best_cost"] is not None
    session = outcome.session
    assert "policy" in store.session("p-policy", session).artefacts
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            assert b"sac-finetune-trust-region" not in f.read_bytes()
    # a version pointing at the stored policy runs it (decrypted into a private folder only)
    version = store.add_controller("p-policy", store_reference(session), controller="sac",
                                   params={"torque_limit_nm": 60.0}, status="candidate")
    choice = version_choice(store, "p-policy", version)
    assert choice.name == "sac" and not str(choice.params["policy"]).startswith(str(tmp_path))
    controller = choice.factory()()
    assert abs(controller.act(np.zeros(controller._actor.obs_dim, dtype=np.float32))) <= 60.0
