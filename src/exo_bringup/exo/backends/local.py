"""The ``local`` backend: a pool of spawned worker processes on this machine (no Ray)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


def local_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(item) for item in items]`` with ``workers`` processes (1: in this process), in the items' order.

    ``on_result(index, result)`` is called as each item finishes.
    """
    results: list[Any] = [None] * len(items)
    if workers <= 1:
        for index, item in enumerate(items):
            results[index] = fn(item)
            if on_result:
                on_result(index, results[index])
        return results
    # spawn: workers start clean (no inherited MuJoCo/torch/OpenMP state).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if on_result:
                on_result(index, results[index])
    return results
