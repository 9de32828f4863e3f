"""Start-up heap freezing (exo.priority.freeze_startup_heap): later full collections skip it."""

from __future__ import annotations

import gc

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
