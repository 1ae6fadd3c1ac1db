"""Verify mode and the key check on function kinds: ``lru_cache`` and cachetools functions.

Pytester suites over real ``functools.lru_cache`` and cachetools ``@cached`` /
``@cachedmethod`` functions named in the ini, each key broken on purpose (or not): an
lru_cache function that reads a module global, a ``key=`` that drops an argument, a method
whose result reads an instance attribute its key leaves out.
"""

from __future__ import annotations

import pytest

pytest.importorskip("cachetools")

APP = """
import functools
import threading

from cachetools import LRUCache, cached, cachedmethod
from cachetools.keys import hashkey

RATE = {"EUR": 1}
CALLS = []
LOCK = threading.Lock()


# Broken: the result reads the module global RATE, which is not an argument.
@functools.lru_cache(maxsize=None)
def price(qty):
    CALLS.append(("price", qty))
    return qty * RATE["EUR"]


# Right: every input is an argument.
@functools.lru_cache(maxsize=None)
def area(w, h):
    CALLS.append(("area", w, h))
    return w * h


@functools.lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# Broken: the key= function drops qty.
@cached(LRUCache(100), key=lambda sku, qty: hashkey(sku))
def quote(sku, qty):
    CALLS.append(("quote", sku, qty))
    return {"sku": sku, "qty": qty, "total": 3 * qty}


# Right, and under a lock (the check must not run inside it).
@cached(LRUCache(100), lock=LOCK)
def volume(w, h, d):
    return w * h * d


STORE = LRUCache(10)   # a cache object: what fills it is not known


class Cart:
    def __init__(self):
        self.cache = LRUCache(10)
        self.rate = 1

    # Broken: reads self.rate, which the per-instance key leaves out.
    @cachedmethod(lambda self: self.cache)
    def total(self, n):
        return n * self.rate
"""

INI = """
[pytest]
cachemock_profiles = functools cachetools
cachemock_functools =
    fnapp:price
    fnapp:area
    fnapp:fib
cachemock_cachetools =
    fnapp:STORE
    fnapp:quote
    fnapp:volume
    fnapp:Cart.total
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(fnapp=APP)
    pytester.makeini(INI)
    pytester.syspathinsert()
    return pytester


def test_an_lru_cache_function_that_reads_a_module_global_is_found(
    app: pytest.Pytester,
) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import Stats
        from fnapp import RATE, price

        @pytest.mark.cachemock(verify=True)
        def test_price(monkeypatch, global_stats):
            assert price(2) == 2
            monkeypatch.setitem(RATE, "EUR", 3)
            assert price(2) == 2      # a hit: the price at the old rate
            assert global_stats.price == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cachemock verify: 1 stale cache hit",
            "*- kind 'price', key '(2,)'",
            "*  call: fnapp.price(2)",
            "*  cached: 2",
            "*  fresh:  6",
            "*an lru_cache function's arguments*",
        ]
    )


def test_the_lru_cache_test_passes_without_verify_with_the_same_counts(
    app: pytest.Pytester,
) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import Stats
        import fnapp
        from fnapp import RATE, price

        def test_price(monkeypatch, global_stats):
            price(2)
            monkeypatch.setitem(RATE, "EUR", 3)
            price(2)
            assert global_stats.price == Stats(puts=1, hits=1, misses=1)
            assert fnapp.price is price   # nothing is replaced without verify mode
        """
    )
    app.runpytest().assert_outcomes(passed=1)


def test_a_cachetools_key_that_drops_an_argument_is_found(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import Stats
        from fnapp import Cart, quote

        @pytest.mark.cachemock(verify=True)
        def test_quote(global_stats):
            quote("A1", 1)
            quote("A1", 5)            # a hit: the total of qty=1
            assert global_stats.quote == Stats(puts=1, hits=1, misses=1)

        @pytest.mark.cachemock(verify="total")
        def test_method(global_stats):
            cart = Cart()
            cart.total(2)
            cart.rate = 7
            assert cart.total(2) == 2  # a hit: at the old rate
            assert global_stats.total == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- kind 'quote', key \"('A1',)\"",
            "*  call: fnapp.quote('A1', 5)",
            "*  cached: {'sku': 'A1', 'qty': 1, 'total': 3}",
            "*  fresh:  {'sku': 'A1', 'qty': 5, 'total': 15}",
            "*  first difference: at ?'qty'?: 1 (cached) != 5 (fresh)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*- kind 'total', key '(2,)'", "*  call: fnapp.Cart.total(2)", "*  fresh:  14"]
    )


def test_correct_keys_pass_and_count_as_without_verify(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import warnings
        import pytest
        from pytest_cachemock import Stats
        import fnapp
        from fnapp import CALLS, area, fib, volume

        def run(global_stats):
            CALLS.clear()
            assert [area(2, 3), area(2, 3), area(3, 2), area(w=2, h=3)] == [6, 6, 6, 6]
            assert fib(15) == 610
            assert volume(1, 2, 3) == volume(1, 2, 3) == 6
            return {k: global_stats[k] for k in ("area", "fib", "volume")}

        @pytest.mark.cachemock(verify=True)
        def test_on(global_stats):
            counts = run(global_stats)
            # The hit of area(2, 3) ran the function again, outside the cache.
            assert CALLS == [("area", 2, 3), ("area", 2, 3), ("area", 3, 2), ("area", 2, 3)]
            assert fnapp.area is not area.__cachemock_original__   # the stand-in
            fnapp.COUNTS_ON = counts

        def test_off(global_stats):
            counts = run(global_stats)
            assert CALLS == [("area", 2, 3), ("area", 3, 2), ("area", 2, 3)]
            assert counts == fnapp.COUNTS_ON
            assert counts["area"] == Stats(puts=3, hits=1, misses=3)
            assert counts["fib"] == Stats(puts=16, hits=13, misses=16)
            assert counts["volume"] == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = app.runpytest("-W", "error", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_stand_ins_leave_when_the_test_ends(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import functools
        import pytest
        import fnapp
        from fnapp import price, quote

        ORIGINALS = (fnapp.price, fnapp.quote)

        @pytest.mark.cachemock(verify=True)
        def test_on():
            assert fnapp.price is not ORIGINALS[0] and price is not ORIGINALS[0]
            assert fnapp.quote is not ORIGINALS[1]

        def test_after():
            assert (fnapp.price, fnapp.quote) == ORIGINALS
            assert (price, quote) == ORIGINALS
            assert isinstance(price, functools._lru_cache_wrapper)
        """
    )
    app.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_hits_in_threads_are_this_threads_own(app: pytest.Pytester) -> None:
    # Eight threads call a correct lru_cache function and a correct @cached one at once:
    # the hits of one thread move cache_info() under the calls of the others, and none of
    # that may be taken for a stale hit, nor change the counts.
    app.makepyfile(
        """
        import threading
        import pytest
        from fnapp import area, quote, volume

        def work():
            for i in range(300):
                area(i % 7, 2)
                volume(i % 5, 1, 1)

        @pytest.mark.cachemock(verify=True)
        def test_threads(global_stats):
            threads = [threading.Thread(target=work) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            s = global_stats.area
            assert s.hits + s.misses == 8 * 300 and s.puts == 7
            v = global_stats.volume
            assert v.hits + v.misses == 8 * 300 and v.puts == 5

        @pytest.mark.cachemock(verify=True)
        def test_a_stale_hit_in_a_thread(global_stats):
            quote("B2", 1)
            out = []
            t = threading.Thread(target=lambda: out.append(quote("B2", 4)))
            t.start()
            t.join()
        """
    )
    result = app.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*call: fnapp.quote('B2', 4)"])


def test_check_keys_takes_function_kinds(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import warnings
        import pytest
        from pytest_cachemock import KeyCollisionError
        from fnapp import CALLS, Cart, area, price, quote

        def test_a_key_function_that_drops_an_argument(patch_caches, global_stats):
            with pytest.raises(KeyCollisionError) as found:
                patch_caches.check_keys(quote, [("A1", 1), ("B2", 1), ("A1", 5)])
            text = str(found.value)
            assert text.startswith(
                "cachemock check_keys: fnapp.quote('A1', 1) and fnapp.quote('A1', 5) get "
                "one key, ('A1',), but the function gives them different results"
            )
            assert "the key= function of @cached" in text
            assert global_stats.quote.hits + global_stats.quote.misses == 0

        def test_correct_keys_no_failure_no_note(patch_caches, global_stats):
            CALLS.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                found = patch_caches.check_keys(area, [(2, 3), (3, 2), {"w": 4, "h": 5}])
                assert found.notes == [] and (found.calls, found.keys) == (3, 3)
                found = patch_caches.check_keys(Cart.total, [(Cart(), 1), (Cart(), 2)])
                assert found.notes == [] and found.keys == 2
                cart = Cart()
                assert patch_caches.check_keys(cart.total, [1, 2, 3]).keys == 3
            assert CALLS == [("area", 2, 3), ("area", 3, 2), ("area", 4, 5)]
            assert global_stats.area.hits + global_stats.area.misses == 0

        def test_lru_keys_are_equal_where_functools_keys_are(patch_caches):
            # price(1) and price(1.0, ) share no entry in functools (one int argument is
            # its own key), while area(1, 2) and area(1.0, 2) do: both equal 2, no failure.
            assert patch_caches.check_keys(price, [1, 1.0]).keys == 2
            assert patch_caches.check_keys(area, [(1, 2), (1.0, 2)]).keys == 1
        """
    )
    result = app.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_the_module_global_is_found_by_verify_not_by_check_keys(app: pytest.Pytester) -> None:
    # A global outside the arguments is out of the key check's reach (the examples vary the
    # arguments only); verify mode finds it.
    app.makepyfile(
        """
        from fnapp import price

        def test_keys(patch_caches):
            assert patch_caches.check_keys(price, [1, 2, 3]).notes == []
        """
    )
    app.runpytest("-W", "error").assert_outcomes(passed=1)


def test_check_keys_needs_no_profile_loaded() -> None:
    # check_keys knows lru_cache and cachetools functions by themselves (the profiles'
    # modules need not be loaded, nor the functions be kinds).
    import functools

    from cachetools import LRUCache, cached

    from pytest_cachemock import KeyCollisionError, PatchCaches, Registry

    @functools.lru_cache(maxsize=8)
    def double(x: int) -> int:
        return 2 * x

    @cached(LRUCache(8), key=lambda a, b: a)
    def add(a: int, b: int) -> int:
        return a + b

    with PatchCaches(registry=Registry()) as patch:
        assert patch.check_keys(double, [1, 2, {"x": 1}]).keys == 3
        with pytest.raises(KeyCollisionError, match="get one key, 1, but"):
            patch.check_keys(add, [(1, 2), (1, 3)])
    assert double.cache_info().currsize == 0  # nothing was cached
    assert len(add.cache) == 0  # type: ignore[attr-defined]


def test_a_cache_object_kind_cannot_be_verified(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import PatchCaches

        def test_named():
            with pytest.raises(ValueError) as found:
                PatchCaches(verify="STORE").start()
            assert str(found.value) == (
                "verify: cache kind 'STORE' is a cachetools cache object (fnapp.STORE), "
                "filled by code the plugin does not know, so its hits cannot be checked: "
                "verify the @cached function that fills it (name the function in "
                "cachemock_cachetools), or do not verify this kind"
            )

        @pytest.mark.cachemock(verify=True)
        def test_every_kind_leaves_it_alone(global_stats):
            from fnapp import STORE
            STORE["a"] = 1
            assert STORE["a"] == 1
            assert global_stats.STORE.hits == 1
        """
    )
    app.runpytest().assert_outcomes(passed=2)
