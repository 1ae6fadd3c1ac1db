"""Price quotes. The client keeps its backend in a class attribute and has a settings flag.

Neither is a ``RemoteCache`` with a ``kind``, so the example's ``pytest.ini`` declares them:

    prices target=shop.prices:PriceClient.backend switch=shop.prices:settings.cache_prices
"""

from __future__ import annotations

from typing import Any

from pytest_cachemock import Backend, JsonSerde, MemoryBackend

from . import catalog


class Settings:
    def __init__(self) -> None:
        self.cache_prices = True  # production default; the plugin turns it off in tests


settings = Settings()


class PriceClient:
    # In production, say, a RedisBackend; the plugin swaps in a mock for tests.
    backend: Backend[Any] = MemoryBackend(ttl=300)
    serde = JsonSerde()

    def quote(self, sku: str, qty: int) -> dict[str, Any]:
        """The price of ``qty`` items of ``sku``, with the bulk discount applied."""
        if not settings.cache_prices:
            return self._compute(sku, qty)
        key = f"quote:{sku}:{qty}"
        stored = self.backend.get(key)
        if stored is not None:
            found: dict[str, Any] = self.serde.decode(stored)
            return found
        result = self._compute(sku, qty)
        self.backend.put(key, self.serde.encode(result))
        return result

    @staticmethod
    def _compute(sku: str, qty: int) -> dict[str, Any]:
        unit = catalog.product(sku).cents
        discount = 10 if qty >= 10 else 0
        return {"sku": sku, "qty": qty, "cents": unit * qty * (100 - discount) // 100}
