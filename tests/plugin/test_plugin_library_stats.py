"""``patch_caches.library_stats()``: what this test added to the toolkit's ``cache_stats``."""

from __future__ import annotations

import pytest
from _plugin_app import make_app


def test_library_stats_show_only_this_tests_traffic(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import MemoryBackend, cache_stats

        shopapp.render("at-import")                   # real traffic before any test

        def test_0_real_traffic():
            shopapp.render("x"); shopapp.render("x")

        def test_1_only_this_test(patch_caches):
            assert patch_caches.library_stats() == {}
            shopapp.render("a"); shopapp.render("a")
            added = patch_caches.library_stats()
            assert added == {
                "Pages": {"hit": 1, "miss": 1, "put": 1, "exception": 0},
                "mock:pages": {"hit": 1, "miss": 1, "put": 1, "exception": 0},
            }
            # The library-wide counters kept counting, with what came before.
            assert cache_stats.snapshot()["Pages"]["miss"] >= 3

        def test_2_next_test_starts_from_zero(patch_caches):
            assert patch_caches.library_stats() == {}
            shopapp.render("b")
            assert patch_caches.library_stats()["Pages"]["miss"] == 1

        def test_3_real_backends_count_too(patch_caches):
            other = MemoryBackend(name="scratch")
            other.put("k", 1); other.get("k"); other.get("nope")
            assert patch_caches.library_stats() == {
                "scratch": {"hit": 1, "miss": 1, "put": 1, "exception": 0}
            }
        """
    )
    pytester.runpytest().assert_outcomes(passed=4)
