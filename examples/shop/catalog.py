"""The product catalog: the slow source of truth the caches sit in front of."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    cents: int


PRODUCTS = {
    "mug": Product("mug", "Coffee mug", 1200),
    "tee": Product("tee", "T-shirt", 2500),
    "cap": Product("cap", "Baseball cap", 1800),
}

# How often the catalog was asked: the work a cache hit saves.
lookups = 0


def product(sku: str) -> Product:
    """Look a product up (imagine a database query)."""
    global lookups
    lookups += 1
    try:
        return PRODUCTS[sku]
    except KeyError:
        raise LookupError(f"no product {sku!r}") from None
