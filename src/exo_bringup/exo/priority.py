"""Scheduling priority of the real-time processes of the real graph.

On hardware the drivers, the controller and the safety monitor run 10 ms loops with 30-50 ms
timeouts (config/safety.yaml, config/drivers.yaml); a computer busy with something else must
not delay them. ``exo real`` therefore lowers their nice value (default -10: CFS gives a
nice -10 task about 87 times the CPU share of a nice 10 one and ten times that of a nice 0
one) right after starting them, before they spawn their DDS threads (which inherit it).
Needs CAP_SYS_NICE (root, or a ``nice`` entry in limits.conf); without it the processes
run at their normal priority and the caller is told so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def raise_priority(pids: Iterable[int], nice: int) -> list[str]:
    """Set the nice value of each pid (and of its threads existing now) to ``nice``.

    Returns one message per process that could not be changed (empty if all were).
    """
    problems = []
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = [pid]
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except PermissionError:
                problems.append(f"pid {pid}: no permission to set nice {nice} (needs CAP_SYS_NICE)")
                break
            except ProcessLookupError:
                continue
    return problems
