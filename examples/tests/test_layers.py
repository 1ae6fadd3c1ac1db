"""Caches the application builds on functools and cachetools, isolated and counted per test.

The ``functools`` and ``cachetools`` profiles (``pytest.ini``) make ``vat_rate`` and
``stock_level`` cache kinds: emptied for each test, counted from the caches themselves.
"""

from __future__ import annotations

from shop import stock, taxes

from pytest_cachemock import Stats


def test_a_rate_is_looked_up_once(global_stats):
    taxes.RATE_LOOKUPS.clear()
    assert taxes.gross_cents(1000, "DE") == 1190
    assert taxes.gross_cents(2000, "DE") == 2380
    assert taxes.RATE_LOOKUPS == ["DE"]
    # The counts are functools' own (vat_rate.cache_info()), for this test alone.
    assert global_stats.vat_rate == Stats(puts=1, hits=1, misses=1)


def test_the_next_test_starts_with_the_cache_empty(global_stats):
    taxes.RATE_LOOKUPS.clear()
    taxes.vat_rate("DE")  # cached by the test above, yet looked up again here
    assert taxes.RATE_LOOKUPS == ["DE"]
    assert global_stats.vat_rate == Stats(puts=1, misses=1)


def test_stock_is_cached_per_test(patch_caches, global_stats):
    stock.WAREHOUSE_CALLS.clear()
    assert stock.in_stock("mug")
    assert stock.in_stock("mug")
    assert not stock.in_stock("tee")
    assert stock.WAREHOUSE_CALLS == ["mug", "tee"]
    assert global_stats.stock_level == Stats(puts=2, hits=1, misses=2)
    assert sorted(patch_caches.entries("stock_level").values()) == [0, 40]
