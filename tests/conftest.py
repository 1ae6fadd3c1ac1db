from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_cachemock import cache_stats


@pytest.fixture
def fresh_stats() -> Iterator[None]:
    """cache_stats counted from zero for the test."""
    cache_stats.reset()
    yield
    cache_stats.reset()
