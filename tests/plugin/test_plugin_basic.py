"""The plugin as users meet it: a small suite run by pytester."""

from __future__ import annotations

import pytest

APP = """
from pytest_cachemock import MemoryBackend, RemoteCache

class Prices(RemoteCache[dict]):
    kind = "prices"

prices = Prices(MemoryBackend())

def price(sku):
    found = prices.get(sku)
    if found is None:
        found = {"sku": sku, "cents": 100}
        prices.put(sku, found)
    return found
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(shopapp=APP)
    pytester.syspathinsert()
    return pytester


def test_hit_miss_counts_and_isolation(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import Stats
        from shopapp import price, prices

        def test_first(global_stats):
            price("a"); price("a")
            assert global_stats.prices == Stats(puts=1, hits=1, misses=1)

        def test_second_starts_empty(global_stats):
            price("a")
            assert global_stats.prices == Stats(1, 0, 1)

        def test_real_backend_outside():
            assert prices.backend is prices.real_backend
        """
    )
    app.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_failed_comparison_names_the_counter(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import Stats
        from shopapp import price

        def test_wrong(global_stats):
            price("a")
            assert global_stats.prices == Stats(puts=1, hits=1, misses=1)
        """
    )
    for args in ((), ("--assert=plain",)):
        result = app.runpytest(*args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*hits: expected 1, got 0*", "*cachemock (call)*"])
