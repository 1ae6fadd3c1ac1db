"""A memoized function is a cache kind like the others: mocked per test, counted per kind."""

from __future__ import annotations

from shop.shipping import CARRIER_CALLS, shipping_quote

from pytest_cachemock import Stats


def test_a_quote_is_asked_once(global_stats):
    CARRIER_CALLS.clear()
    assert shipping_quote("DE", 800) == {"country": "DE", "cents": 480}
    # The same call spelled differently: the arguments are bound to the signature.
    assert shipping_quote(country="DE", weight_g=800) == {"country": "DE", "cents": 480}
    assert CARRIER_CALLS == [("DE", 800)]
    assert global_stats.shipping == Stats(puts=1, hits=1, misses=1)


def test_no_test_sees_what_another_memoized(global_stats):
    CARRIER_CALLS.clear()
    shipping_quote("DE", 800)  # memoized by the test above, yet asked again here
    assert CARRIER_CALLS == [("DE", 800)]
    assert global_stats.shipping == Stats(puts=1, hits=0, misses=1)


def test_entries_show_the_arguments(patch_caches):
    shipping_quote("FR")
    (stored,) = patch_caches.entries("shipping").values()
    assert b'"args":{"country":"FR","weight_g":500}' in stored
