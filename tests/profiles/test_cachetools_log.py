"""The cachetools profile's kinds in the operation log: one operation per counted lookup and
store, with the cache's own keys, within the log's bound."""

from __future__ import annotations

import pytest

pytest.importorskip("cachetools")

STOCK = """
import cachetools

CALLS = []

@cachetools.cached(cachetools.LRUCache(maxsize=100))
def level(sku):
    CALLS.append(sku)
    return len(sku)
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(stock=STOCK)
    pytester.makeini(
        "[pytest]\npythonpath = .\ncachemock_profiles = cachetools\n"
        "cachemock_cachetools = stock:level\ncachemock_log_size = 3\n"
    )
    return pytester


def test_lookups_and_stores_are_logged_with_their_keys(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import CacheOp, PatchCaches, Stats
        from stock import level

        def test_log(patch_caches):
            level("mug")
            level("mug")
            assert list(patch_caches.log("level")) == [
                CacheOp("level", "get", "('mug',)", "miss"),
                CacheOp("level", "put", "('mug',)", "stored"),
                CacheOp("level", "get", "('mug',)", "hit"),
            ]
            level("tee")  # past the bound of 3: the oldest go, and the log says how many
            log = patch_caches.log()
            assert [op.key for op in log] == ["('mug',)", "('tee',)", "('tee',)"]
            assert log.dropped == 2
            assert patch_caches.stats()["level"] == Stats(puts=2, hits=1, misses=2)

        def test_a_fault_is_an_error(patch_caches):
            patch_caches.fail("level", on="get", times=1)
            with pytest.raises(Exception):
                level("cap")
            assert list(patch_caches.log("level"))[-1] == CacheOp(
                "level", "get", "('cap',)", "error"
            )

        def test_expect_lists_them(patch_caches):
            level("mug")
            patch_caches.assert_stats(level=Stats(hits=1))
        """
    )
    result = app.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       level: expected 1 hit, got 0*",
            "E           get \"('mug',)\" -> miss",
            "E           put \"('mug',)\" -> stored",
        ]
    )
