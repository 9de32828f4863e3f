"""Between-session adaptation: a session recorded through the graph becomes off-policy transitions (the
observations the controller saw, the policy's own actions, interventions penalised), and
`exo personalize --from-sessions` adapts the policy from them and gates it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from exo import contract
from exo.bags.reader import open_session
from exo.control.sac import SacController
from exo.envs.config import load_env_config
from exo.personalize.policy import start_policy
from exo.personalize.run import recorded_sessions
from exo.personalize.sessions import user_session_transitions
from exo.ros.convert import stamp_ns
from exo.twin.config import load_twin_config
from exo.twin.reflex import NOISY_PARAMETERS
from exo.users import Caps, UserStore

pytestmark = pytest.mark.ros

TINY = {"personalize": {
    "twin": "reduced", "search_subjects": 2, "gate": {"subjects": 2},
    "policy": {"transitions": 480, "warmup_transitions": 160, "batch_size": 32, "train_freq": 16, "subjects": 4,
               "reference_states": 256, "max_action_change": 0.05, "seed": 3},
}}


def _identified(level: int, seed: int) -> dict:
    subject = load_twin_config().spasticity.subject(level, seed)
    params = {n: getattr(subject, n) for n in NOISY_PARAMETERS}
    return {"params": params, "ci": {n: [v * 0.95, v * 1.05] for n, v in params.items()}, "mas_level": level,
            "residual_nm": 0.4, "method": "test-fixture"}


def test_a_recorded_session_becomes_transitions_and_adapts_the_policy(exo, ros_domain: int, tmp_path: Path):
    store, key = tmp_path / "store", tmp_path / "store.key"
    common = ("--store", str(store), "--key-file", str(key))
    assert exo("user", "init-key", "--key-file", str(key)).code == 0
    opened = UserStore.open(store, key_file=key, create=True)
    opened.create_user("p-between", mas_level=2, caps=Caps(torque_cap_nm=70.0))
    opened.set_identified_twin("p-between", _identified(2, 4))
    # nothing recorded yet: a clear error, exit 2
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    none = exo("personalize", "--user", "p-between", "--from-sessions", "--config", str(config), *common)
    assert none.code == 2 and "no recorded session to adapt from" in none.stderr, none

    # the controller waits for every input of a step (its real-time default gives up after 5 ms of wall time
    # and uses the previous samples, which a reconstruction from the bag cannot know: on a loaded CI runner
    # that moved the recorded actions by up to 0.025 from the policy's on the reconstructed observations)
    params = tmp_path / "controller.yaml"
    params.write_text("/**/controller:\n  ros__parameters:\n    sync_timeout_s: 1.0\n")
    run = exo("sim", "--user", "p-between", "--controller", "sac", "--level", "2", "--duration", "6",
              "--domain-id", str(ros_domain), "--log-dir", str(tmp_path / "logs"), "--params-file", str(params),
              *common, timeout=240)
    assert run.code == 0, run
    assert recorded_sessions(opened, "p-between") == [1]

    # the transitions: the observation the controller built, the policy's own action, the penalty
    start = start_policy("")
    env = load_env_config()
    plain = user_session_transitions(opened, "p-between", [1], start.card, env, intervention_penalty=0.0)
    penalised = user_session_transitions(opened, "p-between", [1], start.card, env, intervention_penalty=1.0)
    # every control step but the last (the graph stopped before answering it) is a transition
    assert len(plain) > 500 and plain.dones.sum() >= 1, plain.summary()
    assert sum(plain.dropped.values()) <= 2 and set(plain.dropped) <= {"no request or command at the step"}
    assert plain.intervened.any()  # the generic policy asks up to 85 N m, the user's cap is 70
    np.testing.assert_allclose(plain.rewards - penalised.rewards, plain.intervened.astype(np.float32), atol=1e-5)
    policy = SacController("").action(plain.observations)[:, 0]
    residual = start.card["residual"]
    free = np.abs(policy) < 0.999  # the policy's own correction inside its range
    # where the combination was not at its limit the recorded action is exactly the deployed policy's
    with opened.open_session("p-between", 1) as bag:
        name = contract.TORQUE_REQUEST.resolved("/exo")
        requests = {stamp_ns(m.msg.header.stamp): m.msg.torque for m in open_session(bag).read_all({name})[name]}
    torques = np.array([requests[int(t)] for t in plain.stamps_ns])
    at_limit = np.abs(torques) >= 100.0 * residual["limit"] - 1e-6
    inside = free & ~at_limit
    assert inside.sum() > 20
    assert np.max(np.abs(policy[inside] - plain.actions[inside, 0])) < 1e-5
    # at the limit the smallest correction that reaches it: never beyond the policy's own
    assert np.all(np.abs(plain.actions[at_limit, 0]) <= np.abs(policy[at_limit]) + 1e-5)

    adapted = exo("personalize", "--user", "p-between", "--from-sessions", "--config", str(config), "--json",
                  *common, timeout=600)
    assert adapted.code == 0, adapted
    outcome = json.loads(adapted.stdout)
    assert set(outcome["searches"]) == {"policy"}  # only the policy is adapted, no baseline search
    recorded = outcome["searches"]["policy"]["recorded"]
    assert recorded["transitions"] == len(plain) and recorded["sessions"] == [1]
    assert recorded["intervened"] == int(plain.intervened.sum())
    version = opened.profile("p-between").controllers[-1]
    assert version.controller == "sac" and version.metrics["from_sessions"] == [1]
    assert version.status in ("deployed", "rejected") and version.reason

    bad = exo("personalize", "--user", "p-between", "--from-sessions", "--sessions", "9", *common)
    assert bad.code == 2 and "9" in bad.stderr, bad
    wrong_kind = exo("personalize", "--user", "p-between", "--from-sessions", "--sessions",
                     str(outcome["session"]), *common)
    assert wrong_kind.code == 2 and "without a graph recording" in wrong_kind.stderr, wrong_kind
