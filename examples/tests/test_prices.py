"""Price quotes: a kind declared in pytest.ini, whose real cache is off unless enabled."""

from __future__ import annotations

import pytest
from shop.prices import PriceClient, settings

from pytest_cachemock import Stats


def test_cache_is_off_by_default(global_stats):
    # The plugin turned the switch (settings.cache_prices) off: no cache traffic at all.
    assert settings.cache_prices is False
    assert PriceClient().quote("mug", 2) == {"sku": "mug", "qty": 2, "cents": 2400}
    assert global_stats.prices == Stats()


@pytest.mark.cachemock(enable=["prices"])
def test_enabled_by_the_marker(global_stats):
    client = PriceClient()
    assert client.quote("tee", 10) == {"sku": "tee", "qty": 10, "cents": 22500}
    assert client.quote("tee", 10) == {"sku": "tee", "qty": 10, "cents": 22500}
    assert global_stats.prices == Stats(puts=1, hits=1, misses=1)


def test_enabled_half_way(patch_caches, global_stats):
    client = PriceClient()
    client.quote("cap", 1)
    patch_caches.enable("prices")
    client.quote("cap", 1)
    assert global_stats.prices == Stats(puts=1, misses=1)
    assert list(patch_caches.entries("prices")) == ["quote:cap:1"]


@pytest.mark.cachemock(enable=["prices"])
class TestWithPricesOn:
    """A marker on the class applies to every test in it; one on a method wins over it."""

    def test_on(self):
        assert settings.cache_prices is True

    @pytest.mark.cachemock(enable=[])
    def test_closest_marker_wins(self):
        assert settings.cache_prices is False


def test_switch_is_back_on_outside_the_plugin():
    assert settings.cache_prices is True
