# unittest assertions are the point of this file.
# ruff: noqa: PT009
"""The seed's unittest style (as PyTorch's own tests use PatchCaches), unchanged under pytest."""

from __future__ import annotations

import unittest

from shop.pages import product_page
from shop.prices import PriceClient, settings

from pytest_cachemock import PatchCaches, Stats, global_stats


class TestPagesUnittest(unittest.TestCase):
    def setUp(self):
        super().setUp()
        PatchCaches.setUp()  # every real cache off for the test

    def tearDown(self):
        super().tearDown()
        PatchCaches.tearDown()  # and back on

    def test_hit_after_miss(self):
        with PatchCaches():
            product_page("mug")
            product_page("mug")
        # Stats stay readable after the block, until the next one starts.
        self.assertEqual(global_stats.pages, Stats(1, 1, 1))
        self.assertEqual(list(global_stats.pages.cache), ["pages::product/mug:v2"])

    def test_switches_off_then_enabled(self):
        self.assertFalse(settings.cache_prices)
        with PatchCaches(enable=["prices"]):
            PriceClient().quote("tee", 1)
        self.assertEqual(global_stats.prices, Stats(puts=1, misses=1))


class CacheMockTestCase(unittest.TestCase):
    """A mixin: mocks installed for the whole test, removed by a cleanup even on failure."""

    enable: tuple[str, ...] = ()

    def setUp(self):
        super().setUp()
        self.caches = PatchCaches(enable=self.enable, switches="off").start()
        self.addCleanup(self.caches.stop)


class TestWithMixin(CacheMockTestCase):
    enable = ("prices",)

    def test_quote_cached(self):
        client = PriceClient()
        client.quote("cap", 3)
        client.quote("cap", 3)
        self.assertEqual(global_stats.prices, Stats(puts=1, hits=1, misses=1))
