"""Scheduling priority of the real-time processes of the real graph.

On hardware the drivers, the controller and the safety monitor run 10 ms loops with 30-50 ms
timeouts (config/safety.yaml, config/drivers.yaml); a computer busy with something else must
not delay them. ``exo real`` therefore lowers their nice value (default -10: CFS gives a
nice -10 task about 87 times the CPU share of a nice 10 one and ten times that of a nice 0
one) right after starting them, before they spawn their DDS threads (which inherit it), and
that of their session's autogroup where the kernel groups by session (see
:func:`raise_priority`).
Needs CAP_SYS_NICE (root, or a ``nice`` entry in limits.conf); without it the processes
run at their normal priority and the caller is told so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable


def _threads(pid: int) -> list[int]:
    """Thread ids of ``pid`` existing now (the pid itself if /proc cannot tell)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def _apply_to_threads(pids: Iterable[int], apply: Callable[[int], None], what: str) -> list[str]:
    """Call ``apply(tid)`` for every thread of every pid; one message per process it failed for.

    A thread that ended meanwhile is skipped; a refusal (permission, or another OSError such as
    EINVAL) stops that process's threads and is reported with ``what``.
    """
    problems = []
    for pid in pids:
        for tid in _threads(pid):
            try:
                apply(tid)
            except ProcessLookupError:
                continue
            except PermissionError:
                problems.append(f"pid {pid}: no permission for {what} (needs CAP_SYS_NICE)")
                break
            except OSError as exc:  # EINVAL: bad value; EPERM in a container without rt budget
                problems.append(f"pid {pid}: {what} refused: {exc}")
                break
    return problems


AUTOGROUP_SWITCH = "/proc/sys/kernel/sched_autogroup_enabled"


def _autogroup_enabled() -> bool:
    try:
        with open(AUTOGROUP_SWITCH) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def raise_priority(pids: Iterable[int], nice: int) -> list[str]:
    """Set the nice value of each pid (and of its threads existing now) to ``nice``.

    With the kernel's autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``, the
    default of most desktop and many cloud kernels), CFS first shares the CPU equally between
    *sessions*, and a thread's nice value only ranks it inside its own session. A node that
    ``exo.runner`` started (its own session, ``start_new_session``) then competes with a training
    in another session as an equal, whatever either's nice value: measured here, a training at
    nice 19 pushed the emulated real graph at nice -10 into 10-40 % fallback commands. So for a
    pid that leads its own session, the session's autogroup gets ``nice`` too
    (``/proc/<pid>/autogroup``). A pid inside someone else's session (a terminal's) is left
    alone there: that would re-prioritise the whole session.

    Returns one message per process that could not be changed (empty if all were).
    """
    pids = list(pids)
    problems = _apply_to_threads(pids, lambda tid: os.setpriority(os.PRIO_PROCESS, tid, nice), f"nice {nice}")
    if _autogroup_enabled():
        for pid in pids:
            try:
                if os.getsid(pid) != pid:
                    continue
                with open(f"/proc/{pid}/autogroup", "w") as f:
                    f.write(str(nice))
            except ProcessLookupError:
                continue
            except PermissionError:
                problems.append(f"pid {pid}: no permission for autogroup nice {nice} (needs CAP_SYS_NICE)")
            except OSError as exc:
                problems.append(f"pid {pid}: autogroup nice {nice} refused: {exc}")
    return problems


def autogroup_nice(pid: int) -> int | None:
    """The nice value of ``pid``'s autogroup, or None without autogroup scheduling."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split("nice")[-1])
    except (OSError, ValueError):
        return None


def set_realtime(pids: Iterable[int], priority: int) -> list[str]:
    """Run each pid (every thread existing now) under SCHED_FIFO at ``priority`` (1-99).

    A SCHED_FIFO thread runs as soon as it is runnable, ahead of every normal (CFS) thread,
    whatever their nice values; threads it creates later inherit the policy. ``exo real``
    uses it for the control loop's processes and the emulated rig: measured on the 2-core
    development machine (docs/drivers.md, "Timing"), the graph at nice -10 still waited on the
    run queue 30-47 % of the time behind its own other processes, and the controller's answer
    then missed its 10 ms step a few times a minute (FALLBACK). The kernel's real-time
    throttling (sched_rt_runtime_us, 95 % by default) keeps a runaway loop from freezing the
    machine. Needs CAP_SYS_NICE (or an rtprio entry in limits.conf).

    Returns:
        One message per process that could not be changed (empty if all were).
    """
    param = os.sched_param(priority)
    return _apply_to_threads(pids, lambda tid: os.sched_setscheduler(tid, os.SCHED_FIFO, param),
                             f"SCHED_FIFO priority {priority}")


def freeze_startup_heap() -> int:
    """Collect garbage once, then exclude every object alive now from later collections.

    Python's cyclic garbage collector stops the whole process (every thread: the GIL) while it
    runs; a full (generation 2) collection traverses every tracked object. An rclpy node or the
    emulated rig holds 45 000-100 000 objects after start-up (modules, message classes, the twin),
    and a full collection of them took 28-43 ms here (docs/drivers.md, "Timing"): close to the
    50 ms sensor timeouts, and it stops every emulated device at once. Objects alive at the end
    of start-up live as long as the process, so :func:`gc.freeze` moves them to the permanent
    generation; later collections only traverse what the loop allocates (a full one then takes
    well under 1 ms). Call it once, after start-up, from the process's main thread.

    Returns:
        The number of objects frozen.
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
