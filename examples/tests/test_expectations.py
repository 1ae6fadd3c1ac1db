"""Checks that say which operations a test made: count checks, snapshots, verify mode.

- ``patch_caches.expect(...)`` checks the counts of a block, and its failure lists the
  kind's operations with their keys (docs/expectations.md);
- ``snapshot=True`` compares the test's cache traffic with the file
  ``__cachemock__/test_expectations/test_a_quote_twice_makes_this_traffic.txt`` next to this
  module, committed with it (rewrite it with ``--cachemock-snapshot=all``);
- ``verify=`` recomputes every hit of ``vat_rate`` and fails the test on a stale one
  (docs/verify.md): its key, the country, is all the rate depends on, so it passes.
"""

from __future__ import annotations

import pytest
from shop import taxes
from shop.prices import PriceClient

from pytest_cachemock import Expect, Stats, at_least


@pytest.mark.cachemock(enable=["prices"])
def test_the_second_quote_is_a_hit(patch_caches):
    client = PriceClient()
    client.quote("mug", 2)
    with patch_caches.expect(prices=Stats(hits=1)):
        client.quote("mug", 2)
    patch_caches.assert_stats(prices=Expect(puts=1, hits=at_least(1)))


@pytest.mark.cachemock(enable=["prices"], snapshot=True)
def test_a_quote_twice_makes_this_traffic():
    client = PriceClient()
    client.quote("tee", 10)
    client.quote("tee", 10)
    client.quote("cap", 1)


@pytest.mark.cachemock(verify=["vat_rate"])
def test_vat_rates_are_verified(global_stats):
    assert taxes.gross_cents(1000, "DE") == 1190
    assert taxes.gross_cents(1000, "FR") == 1200
    assert taxes.gross_cents(2000, "DE") == 2380  # a hit, recomputed and compared
    assert global_stats.vat_rate == Stats(puts=2, hits=1, misses=2)
