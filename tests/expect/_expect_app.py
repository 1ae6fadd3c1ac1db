"""The small application of the expectation suites: a price cache and a rate cache."""

from __future__ import annotations

import gc

import pytest

PRICEAPP = """
from pytest_cachemock import MemoryBackend, RemoteCache

class PriceCache(RemoteCache[dict]):
    kind = "prices"

class RateCache(RemoteCache[float]):
    kind = "rates"

prices = PriceCache(MemoryBackend(), namespace="prices", version=1)
rates = RateCache(MemoryBackend(), namespace="rates", version=1)

def quote(sku):
    found = prices.get(sku)
    if found is None:
        found = {"sku": sku, "price": 100}
        prices.put(sku, found)
    return found

def rate(currency):
    found = rates.get(currency)
    if found is None:
        found = 1.0
        try:
            rates.put(currency, found)
        except Exception:       # swallows everything, a forbidden put too
            pass
    return found
"""


def make_priceapp(pytester: pytest.Pytester, ini: str | None = None) -> None:
    gc.collect()  # classes of earlier inline runs, declaring the same kinds, are gone
    pytester.makepyfile(priceapp=PRICEAPP)
    pytester.syspathinsert()
    if ini is not None:
        pytester.makeini(ini)
