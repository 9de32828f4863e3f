"""Timing aids of the real graph (exo.priority, the rig's step log): heap freezing, priorities, lateness stats."""

from __future__ import annotations

import gc

import pytest

from exo.priority import freeze_startup_heap


def test_freezing_the_start_up_heap_takes_it_out_of_later_collections():
    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the cyclic collector frees it

    gc.unfreeze()
    try:
        keep = [Node() for _ in range(1000)]
        garbage = [Node() for _ in range(10)]
        del garbage  # unreachable cycles at freeze time: collected first, never frozen
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > len(keep)
        tracked = len(gc.get_objects(generation=2))
        assert tracked < frozen  # the frozen objects are no longer in any generation
    finally:
        gc.unfreeze()


def test_the_rigs_step_log_gives_lateness_stats_over_a_window():
    import threading
    import time

    import can

    from exo.emulation.devices import EmulatedRig, lateness_stats

    rig = EmulatedRig(can_bus=can.Bus(interface="virtual", channel="exo-test-timing"))
    try:
        thread = threading.Thread(target=rig.run, args=(0.3,))
        thread.start()
        thread.join(timeout=10.0)
        timing = rig.timing()
    finally:
        rig.close()
    assert timing["period_ms"] == rig.period_s * 1e3
    assert len(timing["start_s"]) == len(timing["late_ms"]) == rig.steps > 0
    assert all(b >= a for a, b in zip(timing["start_s"][:-1], timing["start_s"][1:], strict=True))
    stats = lateness_stats(timing)
    assert stats["steps"] == rig.steps
    assert stats["lateness_p50_ms"] <= stats["lateness_p99_ms"] <= stats["lateness_max_ms"] == max(timing["late_ms"])
    # a window that holds only the first step
    assert lateness_stats(timing, end_s=timing["start_s"][0])["steps"] == 1
    assert lateness_stats(timing, start_s=time.monotonic() + 1.0) == {"steps": 0}


def test_lateness_stats_count_steps_later_than_a_period_and_than_50_ms():
    from exo.emulation.devices import lateness_stats

    timing = {"period_ms": 10.0, "start_s": [0.0, 0.01, 0.02, 0.03, 0.04], "late_ms": [0.1, 12.0, 60.0, 0.2, 0.3]}
    stats = lateness_stats(timing)
    assert stats == {"steps": 5, "lateness_p50_ms": 0.3, "lateness_p99_ms": 60.0, "lateness_max_ms": 60.0,
                     "steps_late_over_period": 2, "steps_late_over_50ms": 1}
    assert lateness_stats(timing, 0.015, 0.035)["lateness_max_ms"] == 60.0
    assert lateness_stats(timing, 0.025)["steps"] == 2


def test_worst_sensor_gap_is_the_largest_interval_inside_the_window():
    import math

    from exo.cli.real import worst_gap_s

    stamps = [0.0, 0.01, 0.02, 0.07, 0.08, 0.2]
    assert abs(worst_gap_s(stamps, 0.0, 0.1) - 0.05) < 1e-12
    assert abs(worst_gap_s(stamps, 0.05, 0.25) - 0.12) < 1e-12
    assert abs(worst_gap_s(stamps, 0.05, 1.0) - 0.8) < 1e-12  # silent since 0.2 s: its age at the end
    assert math.isnan(worst_gap_s(stamps, 0.3, 1.0))


def test_cpu_times_and_realtime_priority_of_a_child_process():
    import os
    import subprocess
    import sys

    from exo.cli.real import cpu_times
    from exo.priority import set_realtime

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        times = cpu_times({"child": child.pid, "gone": 2**22 + 12345})
        assert set(times) == {"child"}  # a process that does not exist is left out
        cpu, wait = times["child"]
        assert cpu >= 0.0 and wait >= 0.0
        problems = set_realtime([child.pid], 1)
        if problems:  # no CAP_SYS_NICE here: a clear message, the process unchanged
            assert "SCHED_FIFO" in problems[0] and os.sched_getscheduler(child.pid) != os.SCHED_FIFO
        else:
            assert os.sched_getscheduler(child.pid) == os.SCHED_FIFO
            assert os.sched_getparam(child.pid).sched_priority == 1
    finally:
        child.kill()
        child.wait()


def test_raising_priority_reaches_the_autogroup_of_a_session_leader_only():
    """Under autogroup scheduling a nice value only ranks a thread inside its session: the session's group gets it too."""
    import os
    import subprocess
    import sys

    from exo.priority import _autogroup_enabled, autogroup_nice, raise_priority

    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    member = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # in the test's session
    try:
        before = autogroup_nice(member.pid)
        problems = raise_priority([leader.pid, member.pid], 5)  # raising nice needs no privilege
        assert problems == []
        assert os.getpriority(os.PRIO_PROCESS, leader.pid) == 5 and os.getpriority(os.PRIO_PROCESS, member.pid) == 5
        if not _autogroup_enabled():
            pytest.skip("this kernel does not group by session (sched_autogroup_enabled is 0 or missing)")
        assert autogroup_nice(leader.pid) == 5
        assert autogroup_nice(member.pid) == before  # the test's own session is not re-prioritised
    finally:
        for child in (leader, member):
            child.kill()
            child.wait()
