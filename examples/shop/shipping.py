"""Shipping quotes from a carrier, memoized on disk.

A ``Memoizer`` with a ``kind`` is a cache kind: the plugin finds it without configuration,
gives every test a fresh mock store (the log file is not touched while tests run), and counts
it in ``global_stats.shipping``. Outside tests the quotes persist in one ``LogBackend`` file,
so the next run of the shop asks the carrier nothing it asked before.
"""

from __future__ import annotations

import os
import tempfile

from pytest_cachemock import LogBackend, Memoizer

STORE = os.environ.get(
    "SHOP_SHIPPING_LOG", os.path.join(tempfile.gettempdir(), "shop-shipping.log")
)
shipping = Memoizer(kind="shipping", backend=LogBackend(STORE))
CARRIER_CALLS: list[tuple[str, int]] = []  # what reached the (pretend) carrier

RATES = {"DE": 4, "FR": 5, "US": 12}  # euros per parcel


@shipping.memoize
def shipping_quote(country: str, weight_g: int = 500) -> dict[str, object]:
    """The carrier's price for a parcel, in cents."""
    CARRIER_CALLS.append((country, weight_g))
    return {"country": country, "cents": RATES[country] * 100 + weight_g // 10}
