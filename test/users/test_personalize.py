"""Personalisation on a user's twin: the safety monitor in the loop, the search, the gate, versions, rollback, resume.

Small settings on the reduced twin (a few candidates, 2-3 subjects): these check the behaviour, not the
numbers; the full-scale runs are in docs/personalisation.md.
"""

from __future__ import annotations

import dataclasses

import pytest

from exo import graph
from exo.personalize.evaluation import ControllerChoice, UserTwin, evaluate_on_user, run_user_trial
from exo.personalize.gate import GateConfig, judge
from exo.personalize.run import PersonalizeConfig, generic_choice, personalize_user
from exo.twin.config import load_twin_config
from exo.twin.reflex import NOISY_PARAMETERS
from exo.users import Caps, StoreError, UserStore

CAP_NM = 60.0
SMALL = PersonalizeConfig(twin="reduced", search_subjects=2, popsize=4, sigma0=0.2, gate=GateConfig(subjects=3),
                          learned_policy=False)
#: The same with a gate that lets 3 deg more final error pass (a search of 8 candidates per baseline
#: does not always find a better final error at a 60 N m cap; peak and RMS it does)
LENIENT = dataclasses.replace(SMALL, gate=GateConfig(subjects=3, final_error_tolerance_deg=3.0))


def _identified(level: int = 1, seed: int = 5) -> dict:
    subject = load_twin_config().spasticity.subject(level, seed)
    params = {n: getattr(subject, n) for n in NOISY_PARAMETERS}
    ci = {n: [v * 0.95, v * 1.05] for n, v in params.items()}
    return {"params": params, "ci": ci, "mas_level": level, "residual_nm": 0.4, "method": "test-fixture"}


@pytest.fixture
def user(store: UserStore, store_dir, key_file, monkeypatch) -> str:
    store.create_user("p-pers", mas_level=1, caps=Caps(torque_cap_nm=CAP_NM))
    store.set_identified_twin("p-pers", _identified())
    monkeypatch.setenv("EXO_STORE", str(store_dir))
    monkeypatch.setenv("EXO_KEY_FILE", str(key_file))
    monkeypatch.setattr(graph, "_USER_CAPS", {})
    monkeypatch.setattr(graph, "_USER_ASSISTANCE", {})
    monkeypatch.setattr(graph, "_USER_CONTROLLERS", {})
    return "p-pers"


def test_the_users_twin_carries_the_identified_subject_the_intervals_and_the_users_cap(store, user):
    twin = UserTwin.from_store(store, user, twin="reduced")
    assert twin.subject.level == 1 and twin.limits.user_torque_cap_nm == CAP_NM
    subjects = twin.subjects(6, seed=3)
    assert subjects[0] == twin.subject and len(set(subjects)) == 6
    for s in subjects[1:]:
        for n in NOISY_PARAMETERS:
            lo, hi = twin.ci[n]
            assert min(lo, hi) <= getattr(s, n) <= max(lo, hi)
    assert subjects == twin.subjects(6, seed=3)  # deterministic per seed


def test_no_identified_twin_is_a_clear_error(store):
    store.create_user("p-new")
    with pytest.raises(StoreError, match="no identified twin yet; run exo identify --user p-new"):
        UserTwin.from_store(store, "p-new")


def test_every_trial_goes_through_the_safety_monitor_with_the_users_cap(store, user):
    """A controller asking for 100 N m all along: the knee never gets more than the user's 60 N m cap."""
    twin = UserTwin.from_store(store, user, twin="reduced")
    greedy = ControllerChoice("pid", {"kp": 5000.0, "ki": 0.0, "kd": 0.0, "torque_limit_nm": 100.0})
    result = run_user_trial(greedy, twin.subject, twin.limits, "reduced", seed=0)
    assert result.limited_steps > 0 and result.peak_request_nm >= 100.0
    assert result.peak_motor_torque_nm <= CAP_NM + 1e-4  # (float32 actions)


def test_the_gate_rejects_a_worse_candidate_and_names_why(store, user):
    twin = UserTwin.from_store(store, user, twin="reduced")
    subjects = twin.subjects(2, seed=1000)
    deployed = generic_choice(CAP_NM)
    sluggish = ControllerChoice("pid", {**deployed.params, "kp": 5.0, "ki": 0.0})
    verdict = judge(evaluate_on_user(sluggish, twin, subjects), evaluate_on_user(deployed, twin, subjects), GateConfig())
    assert not verdict.passed
    assert verdict.reason.startswith("rejected: ") and "deployed" in verdict.reason
    same = judge(evaluate_on_user(deployed, twin, subjects), evaluate_on_user(deployed, twin, subjects), GateConfig())
    assert not same.passed and "peak interaction torque" in same.reason  # equal is not better


def test_personalize_stores_a_gated_version_and_rollback_restores_the_previous_one_bit_for_bit(store, user):
    first = personalize_user(store, user, LENIENT, budget_s=600, max_evaluations=8)
    v1 = first.version
    assert v1.id == "c1" and v1.parent is None and v1.controller in ("pid", "reference_pid")
    assert first.verdict.passed and v1.status == "deployed", first.verdict.reason
    assert v1.metrics["candidate_peak_torque_nm"] == pytest.approx(first.verdict.candidate["peak_torque_nm"])
    assert float(v1.params["torque_limit_nm"]) <= CAP_NM  # the search never goes above the user's cap
    assert store.get_json(user, first.session, "outcome")["version"]["id"] == "c1"
    # the graph runs it: controller:=user gives the controller node the stored parameters, as stored
    name, params, version = graph.user_controller(user)
    assert (name, params, version) == (v1.controller, v1.params, "c1")

    second = personalize_user(store, user, dataclasses.replace(LENIENT, search_seed=1), budget_s=600,
                              max_evaluations=8)
    v2 = second.version
    assert v2.id == "c2" and v2.parent == "c1"  # judged against c1, the deployed one
    assert second.deployed_before.params == v1.params
    store.deploy_controller(user, "c1", reason="rolled back")
    profile = store.profile(user)
    assert profile.deployed.id == "c1" and profile.deployed.params == v1.params
    assert [c.status for c in profile.controllers] == ["deployed", "retired" if v2.status == "deployed" else "rejected"]
    graph._USER_CONTROLLERS.clear()
    assert graph.user_controller(user)[1] == v1.params


def test_a_rejected_version_cannot_be_deployed(store, user):
    store.add_controller(user, controller="pid", params={"kp": 1.0}, status="rejected", reason="rejected: test")
    with pytest.raises(StoreError, match="rejected by the acceptance gate"):
        store.deploy_controller(user, "c1")
    with pytest.raises(StoreError, match="no controller version 'c9'"):
        store.deploy_controller(user, "c9")


def test_a_run_cut_off_resumes_where_it_stopped(store, user):
    """Interrupted after its first generation (as by Ctrl-C): the next run continues the same search."""

    class Cut(Exception):
        pass

    def cut(family, state, budget):
        raise Cut

    with pytest.raises(Cut):
        personalize_user(store, user, SMALL, budget_s=600, max_evaluations=8, progress=cut)
    [session] = [s for s in store.sessions(user) if s.kind == "personalization"]
    assert "search" in session.artefacts and "outcome" not in session.artefacts
    seen = []
    outcome = personalize_user(store, user, SMALL, budget_s=600, max_evaluations=8,
                               progress=lambda f, st, b: seen.append((f, st.generations)))
    assert outcome.session == session.number  # the same run, continued
    assert seen[0] == ("reference_pid", 2)  # generation 1 was done before the cut
    assert outcome.searches["reference_pid"]["evaluations"] == 8
    assert [s.kind for s in store.sessions(user)].count("personalization") == 1


def test_the_user_controller_before_any_version_is_the_generic_pid_at_the_users_cap(user):
    name, params, version = graph.user_controller(user)
    assert (name, version) == ("pid", "generic") and params["torque_limit_nm"] == CAP_NM


def test_controller_user_without_a_user_is_refused():
    from exo.graph import NODES

    spec = next(n for n in NODES if n.name == "controller")
    with pytest.raises(ValueError, match="give user:=ID"):
        spec.parameters_from({"controller": "user", "policy": "", "sync_inputs": "latest", "user": ""})


def test_settings_file_errors_name_the_key(tmp_path):
    from exo.params import ConfigError

    bad = tmp_path / "p.yaml"
    bad.write_text("personalize:\n  twin: full\n  budgit_min: 3\n")
    with pytest.raises(ConfigError, match="personalize.budgit_min"):
        PersonalizeConfig.from_yaml(bad)
    bad.write_text("personalize:\n  gate:\n    min_peak_improvement: 1.5\n")
    with pytest.raises(ConfigError, match="gate.min_peak_improvement"):
        PersonalizeConfig.from_yaml(bad)
    assert PersonalizeConfig.from_yaml().gate.subjects >= 1


# -- the commands ---------------------------------------------------------------------------------------------------
def test_exo_personalize_and_rollback_from_the_command_line(store, user, exo_in_process, tmp_path):
    settings = tmp_path / "personalize.yaml"
    settings.write_text("personalize:\n  twin: reduced\n  search_subjects: 2\n  popsize: 4\n  learned_policy: false\n"
                        "  gate:\n    subjects: 3\n    final_error_tolerance_deg: 3.0\n")
    run = exo_in_process("personalize", "--user", user, "--config", str(settings), "--max-evaluations", "4",
                         "--workers", "1")
    assert run.code == 0, run
    assert "version c1" in run.stdout and "gate on 3 held-out subjects" in run.stdout
    run2 = exo_in_process("personalize", "--user", user, "--config", str(settings), "--max-evaluations", "4",
                          "--workers", "1", "--json")
    assert run2.code == 0, run2
    import json

    outcome = json.loads(run2.stdout)
    assert outcome["version"]["id"] == "c2" and outcome["version"]["parent"] in ("c1", None)
    shown = exo_in_process("user", "show", user)
    assert "c1 [" in shown.stdout and "c2 [" in shown.stdout
    c1, c2 = store.profile(user).controllers
    assert c1.status in ("deployed", "retired")  # the lenient gate passes c1 (peak and RMS well below the PID's)
    if c2.status == "deployed":
        back = exo_in_process("user", "rollback", user, "c1")
        assert back.code == 0 and "controller c1" in back.stdout and "c2 retired" in back.stdout, back
    else:
        refused = exo_in_process("user", "rollback", user, "c2")
        assert refused.code == 2 and "rejected by the acceptance gate" in refused.stderr, refused
    assert store.profile(user).deployed.id == "c1"


@pytest.mark.parametrize("args, message", [
    (["--user", "p-new"], "no identified twin yet; run exo identify --user p-new"),
    (["--user", "nobody"], "nobody"),
    (["--user", "Bad_Name"], "invalid user id"),
])
def test_exo_personalize_bad_input_is_one_line_and_exit_2(store, user, exo_in_process, args, message):
    store.create_user("p-new")
    run = exo_in_process("personalize", *args, "--max-evaluations", "2", "--budget-min", "0.05")
    assert run.code == 2, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("exo personalize: error: ") and message in lines[0], lines
