"""Product pages: hit/miss counts, per-test isolation, entries, seeding, a cache that fails."""

from __future__ import annotations

import pytest
from shop import catalog
from shop.pages import page_cache, product_page

from pytest_cachemock import MockBackend, Stats


def test_second_view_is_a_hit(global_stats):
    first = product_page("mug")
    second = product_page("mug")
    assert first == second == "<h1>Coffee mug</h1><p>12.00 EUR</p>"
    assert global_stats.pages == Stats(puts=1, hits=1, misses=1)


def test_each_test_starts_with_an_empty_cache(global_stats):
    # The previous test cached "mug"; here it is a miss again.
    product_page("mug")
    assert global_stats.pages == Stats(puts=1, hits=0, misses=1)


def test_module_level_cache_is_mocked(patch_caches):
    # page_cache was built at import, with a real MemoryBackend; during the test it uses a mock.
    assert isinstance(page_cache.backend, MockBackend)
    assert page_cache.backend is not page_cache.real_backend


def test_what_was_stored(patch_caches):
    product_page("tee")
    # Keys as the controller formats them; values as the serde encoded them (JSON bytes).
    assert dict(patch_caches.entries("pages")) == {
        "pages::product/tee:v2": b'"<h1>T-shirt</h1><p>25.00 EUR</p>"'
    }


def test_a_seeded_page_is_served_from_the_cache(patch_caches, global_stats):
    patch_caches.seed("pages", {"pages::product/cap:v2": b'"<h1>Cached cap</h1>"'})
    before = catalog.lookups
    assert product_page("cap") == "<h1>Cached cap</h1>"
    assert catalog.lookups == before  # the catalog was not asked
    assert global_stats.pages == Stats(hits=1)


def test_cache_down_still_renders(patch_caches, global_stats, caplog):
    patch_caches.fail("pages", on="get")  # every read fails, as if the server were gone
    before = catalog.lookups
    assert product_page("mug") == product_page("mug") == "<h1>Coffee mug</h1><p>12.00 EUR</p>"
    assert catalog.lookups == before + 2  # rendered both times
    assert global_stats.pages == Stats(errors=2)
    assert "page cache unavailable for product/mug" in caplog.text


def test_one_failed_write_is_survived(patch_caches, global_stats):
    patch_caches.fail("pages", on="put", exc=TimeoutError, times=1)
    product_page("tee")  # miss, the put times out: not cached
    product_page("tee")  # miss again, cached this time
    product_page("tee")  # hit
    assert global_stats.pages == Stats(puts=1, hits=1, misses=2, errors=1)


def test_library_counters_alongside(patch_caches):
    product_page("mug")
    product_page("mug")
    # What the toolkit's own cache_stats counted during this test, per name.
    assert patch_caches.library_stats()["PageCache"] == {
        "hit": 1,
        "miss": 1,
        "put": 1,
        "exception": 0,
    }


def test_unknown_product_is_not_cached(global_stats):
    with pytest.raises(LookupError):
        product_page("sofa")
    assert global_stats.pages == Stats(misses=1)
