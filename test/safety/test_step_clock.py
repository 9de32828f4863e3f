"""When the safety monitor decides a step (exo.safety.step_clock): the node's scheduling, without ROS."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from exo.safety.step_clock import Step, StepClock, StepTiming

PERIOD = 0.01
SOURCES = ("joint_states", "interaction_thigh", "imu_thigh")


def timing(**kw) -> StepTiming:
    base = dict(control_period_s=PERIOD, request_deadline_s=0.02, sample_burst_s=0.005, startup_grace_s=5.0,
                stall_grace_s=0.1, stall_grace_startup_s=0.1, stall_warmup_s=0.0, sync_sources=())
    return StepTiming(**{**base, **kw})


class Rig:
    """A StepClock fed as the node feeds it; the 'core' accepts every request."""

    def __init__(self, **kw) -> None:
        self.held: list[int] = []
        self.fed: list[int] = []
        self.clock = StepClock(timing(**kw), self._feed_held)

    def _feed_held(self) -> float | None:
        ns = self.held.pop()
        self.fed.append(ns)
        return ns * 1e-9

    def sample(self, t: float, wall: float, source: str = "joint_states", accepted: bool = True) -> Step | None:
        return self.clock.on_sample(source, t, round(t * 1e9), accepted, wall)

    def answer(self, t: float, wall: float) -> Step | None:
        ns = round(t * 1e9)
        if self.clock.on_answer(t, ns, wall):
            self.fed.append(ns)
            return self.clock.fed(t)
        self.held.append(ns)
        return None


def test_a_step_is_decided_on_its_answer_and_waits_for_it_until_the_deadline():
    r = Rig()
    assert r.sample(0.0, 0.0) is None  # start-up: no request yet, the grace holds
    assert r.answer(0.0, 0.001) == Step(0.0, 0)
    assert r.sample(0.01, 0.010) is None  # waits for the controller's answer
    assert r.clock.tick(0.025) is None  # 15 ms: within the 20 ms deadline
    assert r.clock.tick(0.031) == Step(0.01, 10_000_000)  # the deadline: decided without it
    # the controller missed the previous step: the next is decided at once, not after another deadline
    assert r.sample(0.02, 0.032) == Step(0.02, 20_000_000)


def test_start_up_waits_for_the_first_request_at_most_the_grace():
    r = Rig(startup_grace_s=1.0, stall_grace_s=10.0, stall_grace_startup_s=10.0)  # (no stall here)
    assert r.sample(0.0, 0.0) is None
    assert r.clock.tick(0.5) is None  # in the grace: nothing decided though the deadline passed
    assert r.clock.tick(1.01) == Step(0.0, 0)  # the grace is over: decided (the core falls back)


def test_an_answer_before_its_sample_is_held_and_judged_with_it():
    r = Rig()
    r.sample(0.0, 0.0)
    r.answer(0.0, 0.001)
    assert r.answer(0.01, 0.009) is None and r.held == [10_000_000]  # its sample is not here yet
    assert r.fed == [0]
    assert r.sample(0.01, 0.011) == Step(0.01, 10_000_000)
    assert r.fed == [0, 10_000_000] and not r.held


def test_a_burst_after_a_gap_waits_for_the_answer_of_its_newest_sample():
    r = Rig()
    r.sample(0.0, 0.0)
    r.answer(0.0, 0.001)
    assert r.sample(0.01, 0.060) is None  # a late driver loop: the frames it owes come together
    assert r.sample(0.012, 0.0601) is None  # 2 ms later: a burst, not a missed step
    assert r.sample(0.014, 0.0602) is None
    assert r.clock.tick(0.070) is None
    assert r.answer(0.014, 0.071) == Step(0.014, 14_000_000)
    # a burst's wait is bounded from its first sample
    r.sample(0.024, 0.100)
    r.sample(0.026, 0.115)
    assert r.clock.tick(0.1201) == Step(0.026, 26_000_000)


def test_with_sync_a_step_waits_for_every_listed_source():
    r = Rig(sync_sources=SOURCES)
    r.sample(0.0, 0.0, "interaction_thigh")
    r.sample(0.0, 0.0, "imu_thigh")
    r.sample(0.0, 0.0)
    r.answer(0.0, 0.001)
    r.sample(0.01, 0.010)
    r.sample(0.01, 0.010, "interaction_thigh")
    assert r.answer(0.01, 0.011) is None  # imu_thigh's sample of this step is still on its way
    assert r.sample(0.01, 0.012, "imu_thigh") == Step(0.01, 10_000_000)


def test_a_stalled_stream_runs_sensor_time_on_with_the_wall_clock_after_the_warm_up():
    r = Rig(stall_grace_s=0.1, stall_grace_startup_s=3.0, stall_warmup_s=1.0)
    r.sample(0.0, 0.0)
    r.answer(0.0, 0.001)
    assert r.clock.tick(2.0) is None  # before 1 s of sensor time: the start-up grace (3 s)
    r2 = Rig(stall_grace_s=0.1, stall_grace_startup_s=3.0, stall_warmup_s=1.0)
    for k in range(150):
        r2.sample(k * PERIOD, k * PERIOD)
        r2.answer(k * PERIOD, k * PERIOD + 0.001)
    last = 149 * PERIOD
    assert r2.clock.tick(last + 0.09) is None
    step = r2.clock.tick(last + 0.11)
    assert step is not None and step.stamp_ns is None and math.isclose(step.t_s, last + 0.11)
    assert r2.clock.tick(last + 0.115) is None  # not within a period of the last decision
    assert r2.clock.sensor_time(last + 0.2) == last + 0.2


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.sampled_from(["sample", "answer", "tick", "other"]),
                                 st.integers(0, 40), st.floats(0.0, 0.05)), max_size=120))
def test_each_sample_is_decided_at_most_once_and_decisions_go_forward(events):
    r = Rig(startup_grace_s=0.2, sync_sources=SOURCES[:2])
    wall, steps = 0.0, []
    for kind, k, dt in events:
        wall += dt
        t = k * PERIOD
        if kind == "sample":
            step = r.sample(t, wall)
        elif kind == "other":
            step = r.sample(t, wall, "interaction_thigh")
        elif kind == "answer":
            step = r.answer(t, wall)
        else:
            step = r.clock.tick(wall)
        if step is not None:
            steps.append(step)
    stamps = [s.stamp_ns for s in steps if s.stamp_ns is not None]
    assert len(stamps) == len(set(stamps)), "a sample decided twice"
    times = [s.t_s for s in steps]
    assert all(b > a for a, b in zip(times[:-1], times[1:], strict=True)), times
    assert not r.held or len(r.held) == 1  # at most one held answer at a time
