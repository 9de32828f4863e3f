"""Fixtures of the identification tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def reduced_twin():
    """One reduced twin for the whole session (building one takes a while)."""
    from exo.twin import make_twin

    return make_twin("reduced")
