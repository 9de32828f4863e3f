"""Assist-as-needed: the rule between sessions, the profile's record of it, and the twin's trainees."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exo.users import (
    Assistance,
    AssistanceSchedule,
    ProfileError,
    SessionOutcome,
    StoreError,
    next_assistance,
)
from exo.users.profile import Profile

SCHEDULE = AssistanceSchedule(floor=0.2, error_tolerance_deg=8.0, contribution_target=0.15, raise_step=0.1,
                              lower_step=0.1, max_change_per_session=0.2)


def test_a_failed_session_raises_the_level_by_its_shortfall_bounded_per_session():
    mild = next_assistance(0.5, SessionOutcome(final_error_deg=10.0, contribution=0.3), SCHEDULE)
    assert mild.decision == "raise" and mild.level == pytest.approx(0.6 + 0.025)  # 0.1 x 10/8
    bad = next_assistance(0.5, SessionOutcome(final_error_deg=40.0, contribution=0.3), SCHEDULE)
    assert bad.level == pytest.approx(0.7)  # 0.1 x 3 capped by max_change 0.2
    top = next_assistance(0.95, SessionOutcome(final_error_deg=40.0), SCHEDULE)
    assert top.level == 1.0


def test_a_success_with_the_users_contribution_lowers_it_and_a_passive_success_holds_it():
    active = next_assistance(0.5, SessionOutcome(final_error_deg=3.0, contribution=0.2), SCHEDULE)
    assert active.decision == "lower" and active.level == pytest.approx(0.4)
    passive = next_assistance(0.5, SessionOutcome(final_error_deg=3.0, contribution=0.05), SCHEDULE)
    assert passive.decision == "hold" and passive.level == 0.5 and "exo did the work" in passive.reason
    no_emg = next_assistance(0.5, SessionOutcome(final_error_deg=3.0), SCHEDULE)
    assert no_emg.decision == "lower"
    floor = next_assistance(0.25, SessionOutcome(final_error_deg=3.0, contribution=0.5), SCHEDULE)
    assert floor.level == 0.2 and floor.decision == "lower"
    at_floor = next_assistance(0.2, SessionOutcome(final_error_deg=3.0, contribution=0.5), SCHEDULE)
    assert at_floor.decision == "hold" and "floor" in at_floor.reason


def test_a_session_with_a_safety_intervention_never_raises_assistance():
    decision = next_assistance(0.5, SessionOutcome(final_error_deg=30.0, interventions=12), SCHEDULE)
    assert decision.level == 0.5 and decision.decision == "hold" and "safety monitor intervened" in decision.reason


@settings(max_examples=400, deadline=None)
@given(level=st.floats(0.2, 1.0), error=st.floats(0.0, 90.0), contribution=st.one_of(st.none(), st.floats(0.0, 1.0)),
       interventions=st.integers(0, 1000), floor=st.floats(0.0, 0.2), max_change=st.floats(0.01, 1.0))
def test_the_rule_stays_in_bounds(level, error, contribution, interventions, floor, max_change):
    schedule = AssistanceSchedule(floor=floor, max_change_per_session=max_change)
    d = next_assistance(level, SessionOutcome(error, contribution, interventions), schedule)
    assert floor - 1e-12 <= d.level <= 1.0
    assert abs(d.level - level) <= max_change + 1e-12
    if interventions > 0:
        assert d.level <= level + 1e-12


@pytest.mark.parametrize(("values", "named"), [
    ({"floor": 1.5}, "floor"), ({"error_tolerance_deg": 0.0}, "error_tolerance_deg"),
    ({"contribution_target": 0.0}, "contribution_target"), ({"max_change_per_session": 2.0}, "max_change"),
    ({"lower_step": float("nan")}, "lower_step"), ({"speed": 1.0}, "unknown assistance schedule parameter"),
])
def test_bad_schedule_values_are_refused_naming_the_field(values, named):
    with pytest.raises(ProfileError, match=named):
        AssistanceSchedule.from_dict(values)


def test_a_profile_written_before_assist_as_needed_loads_at_full_assistance():
    old = {"format": "exo-user-profile/1", "user_id": "p-old", "created": "2026-01-02", "caps": {},
           "controllers": [], "sessions": []}
    profile = Profile.from_dict(old)
    assert profile.assistance == Assistance() and profile.assistance.level == 1.0
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile


def test_the_store_keeps_the_level_its_schedule_and_history_encrypted(tmp_path):
    from exo.users import UserStore

    store = UserStore.open(tmp_path / "store", key=b"k" * 32, create=True)
    store.create_user("p-aan", mas_level=2)
    a = store.set_assistance("p-aan", level=0.6, schedule={"floor": 0.3, "error_tolerance_deg": 6.0})
    assert a.level == 0.6 and a.schedule.floor == 0.3 and a.history[-1].decision == "set"
    with pytest.raises(ProfileError, match="below the schedule's floor"):
        store.set_assistance("p-aan", level=0.1)
    assert store.set_assistance("p-aan", schedule={"floor": 0.7}).level == 0.7  # a floor above lifts the level
    store.create_session("p-aan", "sim", {"controller": "pid"})
    d = store.record_assistance("p-aan", 1, SessionOutcome(final_error_deg=20.0, contribution=0.1))
    assert d.decision == "raise" and store.profile("p-aan").assistance.level == d.level > 0.7
    with pytest.raises(StoreError, match="already adjusted"):
        store.record_assistance("p-aan", 1, SessionOutcome(final_error_deg=1.0))
    with pytest.raises(StoreError, match="no session 2"):
        store.record_assistance("p-aan", 2, SessionOutcome(final_error_deg=1.0))
    history = UserStore.open(tmp_path / "store", key=b"k" * 32).profile("p-aan").assistance.history
    assert [h.decision for h in history] == ["set", "set", "raise"] and history[-1].session == 1
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            assert b"error_tolerance_deg" not in f.read_bytes()


# -- the twin: a trainee who gets stronger, one who fatigues --------------------------------------------
@pytest.fixture(scope="module")
def trainee_runs():
    from exo.personalize.assist import fatiguing, generated_subject, growing, simulate_sessions
    from exo.personalize.evaluation import user_limits
    from exo.personalize.run import generic_choice

    subject = generated_subject("full", 2, 3)
    common = {"schedule": SCHEDULE, "limits": user_limits(), "twin": "full", "trials_per_session": 2}
    choice = generic_choice(70.0)
    return {"growing": simulate_sessions(choice, subject, growing(8), initial_level=1.0, **common),
            "fatiguing": simulate_sessions(choice, subject, fatiguing(8), initial_level=0.4, **common)}


def test_a_trainee_getting_stronger_gets_less_help_and_still_achieves_the_task(trainee_runs):
    rows = trainee_runs["growing"]
    assert rows[-1].next_level <= 0.8  # fell from full assistance
    assert all(r.decision != "raise" for r in rows)
    assert all(r.final_error_deg <= SCHEDULE.error_tolerance_deg for r in rows[-3:])  # still achieved
    assert rows[-1].peak_motor_torque_nm < rows[0].peak_motor_torque_nm - 10.0  # the exo does less


def test_a_trainee_who_fatigues_gets_more_help(trainee_runs):
    rows = trainee_runs["fatiguing"]
    assert rows[-1].next_level >= 0.8 and any(r.decision == "raise" for r in rows)
    assert rows[-1].contribution < rows[0].contribution
