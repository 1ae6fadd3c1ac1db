"""VAT rates, cached for the life of the process with ``functools.lru_cache``.

Nothing here knows about tests. The example's ``pytest.ini`` lists the function in
``cachemock_functools``, so every test that uses the plugin starts with its cache empty and
counts its hits and misses (read from ``vat_rate.cache_info()``) in ``global_stats.vat_rate``.
"""

from __future__ import annotations

import functools

RATE_LOOKUPS: list[str] = []  # what reached the (pretend) tax service

_RATES = {"DE": 19, "FR": 20, "US": 0}


@functools.lru_cache(maxsize=64)
def vat_rate(country: str) -> int:
    """The VAT rate of ``country``, in percent."""
    RATE_LOOKUPS.append(country)
    return _RATES[country]


def gross_cents(net_cents: int, country: str) -> int:
    return net_cents + net_cents * vat_rate(country) // 100
