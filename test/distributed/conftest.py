"""A real local Ray instance of 2 CPUs, started once per module that asks for it and always shut down.

Test modules are not importable on Ray's workers (pytest puts their folder on this process's path
only), so the module's own functions and classes travel to the workers by value.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def ray_instance(request: pytest.FixtureRequest) -> Iterator[object]:
    """``ray`` connected to a fresh local instance (2 CPUs, no dashboard); shut down after the module."""
    ray = pytest.importorskip("ray")
    cloudpickle = pytest.importorskip("ray.cloudpickle")
    assert not ray.is_initialized(), "another test left Ray running"
    cloudpickle.register_pickle_by_value(request.module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    try:
        yield ray
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(request.module)
