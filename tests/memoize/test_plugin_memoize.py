"""Memoizers as cache kinds, the way users meet them: pytester suites of small test files."""

from __future__ import annotations

import pytest

APP = """
from pytest_cachemock import Memoizer

quotes = Memoizer(kind="quotes")          # created at import time, as applications do
plain = Memoizer()                         # no kind: counted under "memoize"
CALLS = []


@quotes.memoize
def quote(sku: str, qty: int = 1) -> dict:
    CALLS.append((sku, qty))
    return {"sku": sku, "total": 10 * qty}


@plain.memoize
def double(x: int) -> int:
    return 2 * x


@quotes.replay
def replayed(sku: str) -> dict:
    raise AssertionError("replay never computes")
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(memoapp=APP)
    pytester.syspathinsert()
    return pytester


TESTS = """
import json

import pytest

from pytest_cachemock import ReplayMissError, Stats
from memoapp import CALLS, double, quote, quotes, replayed


def test_first_miss_then_hit(global_stats):
    CALLS.clear()
    assert quote("a", 2) == {"sku": "a", "total": 20}
    assert quote("a", qty=2) == {"sku": "a", "total": 20}
    assert global_stats.quotes == Stats(puts=1, hits=1, misses=1)
    assert CALLS == [("a", 2)]


def test_another_test_starts_empty(global_stats):
    CALLS.clear()
    quote("a", 2)  # memoized by the other test, but not in this test's store
    assert CALLS == [("a", 2)]
    assert global_stats.quotes == Stats(puts=1, hits=0, misses=1)


def test_no_kind_counts_under_memoize(global_stats):
    assert double(4) == 8
    assert double(4) == 8
    assert global_stats.memoize == Stats(puts=1, hits=1, misses=1)


def test_entries_show_the_arguments(patch_caches):
    quote("b", 3)
    ((key, stored),) = patch_caches.entries("quotes").items()
    record = json.loads(stored)
    assert record["result"] == {"sku": "b", "total": 30}
    assert "b" in json.dumps(record["args"])
    assert key == quotes.key_for(quote, "b", 3)


def test_seed_makes_the_call_return_without_computing(patch_caches, global_stats):
    CALLS.clear()
    patch_caches.seed("quotes", dict([quotes.entry_for(quote, {"total": -1}, "c", 1)]))
    assert quote("c") == {"total": -1}
    assert CALLS == []
    assert global_stats.quotes == Stats(puts=0, hits=1, misses=0)


def test_replay_miss_under_the_mock(patch_caches):
    with pytest.raises(ReplayMissError, match="replayed"):
        replayed("zzz")


def test_fault_injection_never_loses_the_result(patch_caches, global_stats):
    patch_caches.fail("quotes", on="both")
    assert quote("d", 1) == {"sku": "d", "total": 10}
    assert global_stats.quotes.errors >= 1


def test_library_stats_are_this_tests_only(patch_caches):
    quote("e"); quote("e")
    counted = patch_caches.library_stats()
    assert counted["quotes"]["hit"] == 1 and counted["quotes"]["miss"] == 1
"""


@pytest.mark.parametrize("order", ["as written", "reversed"])
def test_memoizers_are_kinds_in_any_test_order(app: pytest.Pytester, order: str) -> None:
    body = TESTS
    if order == "reversed":
        head, *tests = body.split("\n\ndef ")
        body = "\n\ndef ".join([head, *reversed(tests)])
    app.makepyfile(test_memo=body)
    result = app.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::UserWarning")
    result.assert_outcomes(passed=8)


def test_real_memoizer_is_untouched_after_the_tests(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_after="""
        from memoapp import CALLS, quote, quotes

        def test_mocked(global_stats):
            quote("x")

        def test_real_again():
            CALLS.clear()
            assert "backend_override_cls" not in vars(quotes)
            quote("x")  # the front holds nothing from the mocked test: computed
            quote("x")  # now from the real front
            assert CALLS == [("x", 1)]
        """
    )
    app.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("backend", "filename"), [("SqliteBackend", "memo.sqlite3"), ("LogBackend", "memo.log")]
)
def test_persistent_memoizer_is_mocked(
    pytester: pytest.Pytester, backend: str, filename: str
) -> None:
    # A memoizer over a real file (database or log): tests count on the mock, the file is
    # not touched, and the real store works again after the tests.
    pytester.makepyfile(
        dbapp="""
        import os
        from pytest_cachemock import Memoizer, BACKEND

        DB = os.path.join(os.getcwd(), "FILENAME")
        rates = Memoizer(kind="rates", backend=BACKEND(DB))
        CALLS = []

        @rates.memoize
        def rate(currency: str) -> float:
            CALLS.append(currency)
            return {"EUR": 1.08, "GBP": 1.27}[currency]
        """.replace("BACKEND", backend).replace("FILENAME", filename),
        test_db="""
        import json

        from pytest_cachemock import BACKEND, Stats
        from dbapp import CALLS, DB, rate

        def test_counts_on_the_mock(global_stats, patch_caches):
            assert rate("EUR") == 1.08
            assert rate("EUR") == 1.08
            assert global_stats.rates == Stats(puts=1, hits=1, misses=1)
            ((stored),) = patch_caches.entries("rates").values()
            assert json.loads(stored)["args"] == {"currency": "EUR"}
            assert len(BACKEND(DB)) == 0          # nothing reached the real file

        def test_real_store_afterwards():
            CALLS.clear()
            assert rate("GBP") == 1.27
            assert len(BACKEND(DB)) == 1
            assert CALLS == ["GBP"]
        """.replace("BACKEND", backend),
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
