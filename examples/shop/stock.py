"""Stock levels, cached for a minute with cachetools (a ``TTLCache`` behind ``@cached``).

The example's ``pytest.ini`` lists ``stock_level`` in ``cachemock_cachetools``: each test sees an
empty cache of the same type and size, counted in ``global_stats.stock_level``, and the real
cache's contents come back after the test.
"""

from __future__ import annotations

from cachetools import TTLCache, cached

WAREHOUSE = {"mug": 40, "tee": 0, "cap": 7}
WAREHOUSE_CALLS: list[str] = []  # what reached the (pretend) warehouse


@cached(cache=TTLCache(maxsize=256, ttl=60))
def stock_level(sku: str) -> int:
    WAREHOUSE_CALLS.append(sku)
    return WAREHOUSE.get(sku, 0)


def in_stock(sku: str) -> bool:
    return stock_level(sku) > 0
