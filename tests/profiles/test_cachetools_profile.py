"""The ``cachetools`` profile, as a user meets it: pytest runs on small test files over a
small app with cachetools caches, ``@cached`` functions and a ``@cachedmethod``."""

from __future__ import annotations

import pytest

pytest.importorskip("cachetools")

FX = """
import threading
from cachetools import Cache, LRUCache, RRCache, TTLCache, cached, cachedmethod

NOW = [0.0]

def clock():
    return NOW[0]

SESSIONS = TTLCache(maxsize=10, ttl=5, timer=clock)
SESSIONS["boot"] = "kept"                 # the cache's own contents, from before any test
PLAIN = Cache(maxsize=100, getsizeof=len)
RATES = LRUCache(maxsize=2)
PICKS = RRCache(maxsize=4)
computed = []

@cached(LRUCache(maxsize=32), info=True)
def convert(amount, currency):
    computed.append((amount, currency))
    return amount * 2

@cached(RATES)
def rate(currency):
    return {"EUR": 1.1}.get(currency, 1.0)

@cached(cache={})
def in_a_dict(x):
    return x

@cached(cache=None)
def uncached(x):
    return x

class Repo:
    def __init__(self):
        self.cache = LRUCache(maxsize=8)
        self.lock = threading.Lock()

    @cachedmethod(lambda self: self.cache, lock=lambda self: self.lock)
    def find(self, key):
        return key * 3

def not_cached(x):
    return x
"""

ENTRIES = (
    "cachemock_cachetools =\n"
    "    fx:SESSIONS\n"
    "    fx:convert\n"
    "    fx:rate\n"
    "    fx:Repo.find\n"
    "    sizes=fx:PLAIN\n"
    "    fx:PICKS\n"
)


def _app(pytester: pytest.Pytester, ini: str = ENTRIES) -> None:
    pytester.makepyfile(fx=FX)
    pytester.syspathinsert()
    pytester.makeini("[pytest]\ncachemock_profiles = cachetools\n" + ini)


def test_each_test_sees_an_empty_cache_like_it_and_the_contents_come_back(
    pytester: pytest.Pytester,
) -> None:
    _app(pytester)
    pytester.makepyfile(
        """
        import cachetools
        import fx
        from pytest_cachemock import Stats

        def test_a_plain_test_sees_the_real_contents():
            assert dict(fx.SESSIONS) == {"boot": "kept"}
            fx.SESSIONS["plain"] = 1

        def test_the_plugin_test_sees_an_empty_one_of_the_same_type(global_stats):
            cache = fx.SESSIONS
            assert len(cache) == 0 and "boot" not in cache
            assert isinstance(cache, cachetools.TTLCache)
            assert (cache.maxsize, cache.ttl, cache.timer()) == (10, 5, 0.0)
            assert fx.PLAIN.getsizeof("abc") == 3
            assert fx.PICKS.maxsize == 4 and type(fx.PICKS).__mro__[1] is cachetools.RRCache
            cache["k"] = "v"
            assert cache.get("k") == "v" and cache.get("other") is None
            assert cache["k"] == "v"
            assert global_stats.SESSIONS == Stats(puts=1, hits=2, misses=1)

        def test_what_the_plugin_test_stored_is_gone():
            assert dict(fx.SESSIONS) == {"boot": "kept", "plain": 1}
            assert type(fx.SESSIONS) is cachetools.TTLCache

        def test_a_cached_function_counts(global_stats, patch_caches):
            assert fx.convert(1, "EUR") == 2
            fx.convert(1, "EUR"); fx.convert(2, "EUR")
            assert global_stats.convert == Stats(puts=2, hits=1, misses=2)
            info = fx.convert.cache_info()          # cachetools' own numbers, for comparison
            assert (info.hits, info.misses) == (1, 2)
            assert dict(patch_caches.entries("convert")) == {(1, "EUR"): 2, (2, "EUR"): 4}

        def test_evictions_are_not_lookups(global_stats):
            for currency in ("EUR", "USD", "GBP", "EUR"):
                fx.rate(currency)
            assert len(fx.RATES) == 2
            assert global_stats.rate == Stats(puts=4, misses=4)

        def test_a_cachedmethod_gets_a_cache_per_instance(global_stats, patch_caches):
            one, two = fx.Repo(), fx.Repo()
            one.find(1); one.find(1); two.find(1)
            assert global_stats.find == Stats(puts=2, hits=1, misses=2)
            assert len(one.cache) == 0          # the instance's own cache is not touched
            assert dict(patch_caches.entries("find")) == {(1,): 3}
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=6)


def test_a_thread_the_test_starts_counts_into_the_test(pytester: pytest.Pytester) -> None:
    _app(pytester)
    pytester.makepyfile(
        """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        import fx
        from pytest_cachemock import Stats

        def test_threads(global_stats):
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda n: fx.convert(n, "EUR"), [1, 2, 3, 1]))
            counted = global_stats.convert
            assert counted.puts + counted.hits == 4 and counted.misses == counted.puts
            assert counted.puts >= 3
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_ttl_cache_expires_with_its_own_timer(pytester: pytest.Pytester) -> None:
    _app(pytester)
    pytester.makepyfile(
        """
        import fx
        from pytest_cachemock import Stats

        def test_expiry(global_stats, patch_caches):
            fx.NOW[0] = 100.0
            fx.SESSIONS["token"] = "abc"
            fx.NOW[0] = 104.0
            assert fx.SESSIONS.get("token") == "abc"
            fx.NOW[0] = 106.0                   # past ttl=5: the fake timer expires it
            assert fx.SESSIONS.get("token") is None
            assert dict(patch_caches.entries("SESSIONS")) == {}
            assert global_stats.SESSIONS == Stats(puts=1, hits=1, misses=1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_seed_fail_and_reset(pytester: pytest.Pytester) -> None:
    _app(pytester)
    pytester.makepyfile(
        """
        import pytest
        import fx
        from pytest_cachemock import Stats, UserError

        def test_seed_a_cached_function_by_its_arguments(patch_caches, global_stats):
            patch_caches.seed("convert", {(5, "EUR"): 99})
            patch_caches.seed("rate", {"USD": 7.0})      # one argument: the value itself
            fx.computed.clear()
            assert fx.convert(5, "EUR") == 99 and fx.rate("USD") == 7.0
            assert fx.computed == []
            assert global_stats.convert == Stats(hits=1)   # seeding counts nothing

        def test_seed_a_cache_object(patch_caches):
            patch_caches.seed("SESSIONS", {"s1": "alice"})
            assert fx.SESSIONS["s1"] == "alice"

        def test_fail_makes_lookups_raise(patch_caches, global_stats):
            patch_caches.fail("convert", on="get", times=1)
            with pytest.raises(ConnectionError, match="injected failure on get of kind 'convert'"):
                fx.convert(1, "EUR")
            assert fx.convert(1, "EUR") == 2
            assert global_stats.convert == Stats(puts=1, misses=1, errors=1)

        def test_fail_on_put(patch_caches):
            patch_caches.fail("SESSIONS", on="put", exc=OSError("disk"))
            with pytest.raises(OSError):
                fx.SESSIONS["x"] = 1

        def test_seed_a_cachedmethod_is_refused(patch_caches):
            with pytest.raises(UserError) as info:
                patch_caches.seed("find", {(1,): 2})
            assert str(info.value) == (
                "seed('find', ...): fx.Repo.find is a @cachedmethod, whose caches are per "
                "instance: call the method on the instance in the test to fill its cache"
            )

        def test_reset_empties(patch_caches, global_stats):
            fx.SESSIONS["a"] = 1
            patch_caches.reset()
            assert len(fx.SESSIONS) == 0 and global_stats.SESSIONS == Stats()
        """
    )
    pytester.runpytest().assert_outcomes(passed=6)


def test_a_whole_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        store="""
        from cachetools import LRUCache, cached
        from fx import SESSIONS            # imported: another module's cache (still found)

        USERS = LRUCache(maxsize=4)

        @cached(USERS)
        def user(uid):                     # counts into USERS, its cache at the top level
            return {"id": uid}

        @cached(LRUCache(maxsize=4))
        def avatar(uid):
            return f"{uid}.png"
        """
    )
    _app(pytester, "cachemock_cachetools =\n    st=store\n")
    pytester.makepyfile(
        """
        from pytest_cachemock import Stats

        def test_module(global_stats):
            import store
            store.user(1); store.user(1); store.avatar(1)
            assert global_stats.st_USERS == Stats(puts=1, hits=1, misses=1)
            assert global_stats.st_avatar == Stats(puts=1, misses=1)
            assert "st_user" not in list(global_stats)
            # A cache object has no module of its own: one imported into the module counts.
            assert "st_SESSIONS" in list(global_stats)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_hook_form_and_autouse(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(fx=FX)
    pytester.syspathinsert()
    pytester.makeini("[pytest]\ncachemock_autouse = true\n")
    pytester.makeconftest(
        """
        import pytest
        import fx

        def pytest_cachemock_register_kinds(registry):
            registry.load_profile("cachetools", entries=["sessions=fx:SESSIONS"])

        @pytest.fixture
        def logged_in():
            fx.SESSIONS["me"] = "alice"     # after the plugin swapped in the test's cache
        """
    )
    pytester.makepyfile(
        """
        import fx
        from pytest_cachemock import Stats, global_stats

        def test_fixture_writes_into_the_tests_cache(logged_in):
            assert fx.SESSIONS["me"] == "alice"
            assert global_stats.sessions == Stats(puts=1, hits=1)

        def test_next_starts_empty():
            assert "me" not in fx.SESSIONS and "boot" not in fx.SESSIONS
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_counts_under_xdist_reach_the_summary(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    _app(pytester)
    pytester.makepyfile(
        """
        import fx

        def test_a(global_stats):
            fx.convert(1, "EUR"); fx.convert(1, "EUR")

        def test_b(global_stats):
            fx.convert(1, "EUR")
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--cachemock-report", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["convert *2 *2 *1 *2 *0", "*summed over 2 pytest-xdist workers*"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "fx:not_cached",
            "ini option cachemock_cachetools, entry 'fx:not_cached': fx:not_cached is not a "
            "cachetools cache, @cached function or @cachedmethod: it holds a function",
        ),
        (
            "fx:in_a_dict",
            "ini option cachemock_cachetools, entry 'fx:in_a_dict': fx:in_a_dict caches in a "
            "dict, which cannot be emptied and counted per test in place; give @cached a "
            "cachetools cache (LRUCache(...))",
        ),
        (
            "fx:uncached",
            "ini option cachemock_cachetools, entry 'fx:uncached': fx:uncached is decorated "
            "with cache=None, which caches nothing",
        ),
        (
            "fx:MISSING",
            "ini option cachemock_cachetools, entry 'fx:MISSING': fx has no attribute 'MISSING'",
        ),
        (
            "fx:Repo.nope",
            "ini option cachemock_cachetools, entry 'fx:Repo.nope': fx.Repo has no attribute "
            "'nope'",
        ),
        (
            "fx:SESSIONS\n    fx:SESSIONS",
            "ini option cachemock_cachetools, entry 'fx:SESSIONS': cache kind 'SESSIONS' is "
            "already declared by ini option cachemock_cachetools, entry 'fx:SESSIONS'; give one "
            "of them an alias: 'other_name=fx:SESSIONS'",
        ),
    ],
    ids=["not-cached", "dict", "cache-none", "missing", "missing-method", "twice"],
)
def test_a_bad_entry_stops_the_run_at_start_up(
    pytester: pytest.Pytester, entry: str, message: str
) -> None:
    _app(pytester, f"cachemock_cachetools =\n    {entry}\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: cachemock: {message}"])


def test_an_lru_cache_function_points_to_the_other_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(lru="import functools\n\n@functools.cache\ndef f(x):\n    return x\n")
    _app(pytester, "cachemock_cachetools =\n    lru:f\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_cachetools, entry 'lru:f': lru:f is not a "
            "cachetools cache, @cached function or @cachedmethod: it is an lru_cache "
            "function: list it in cachemock_functools"
        ]
    )


def test_a_cache_that_cannot_be_copied_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        odd="""
        from cachetools import LRUCache

        class Tagged(LRUCache):
            def __init__(self, tag):
                super().__init__(maxsize=10)

        TAGGED = Tagged("t")
        """
    )
    _app(pytester, "cachemock_cachetools =\n    odd:TAGGED\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_cachetools, entry 'odd:TAGGED': odd.TAGGED: "
            "cannot make an empty Tagged like it for each test: "
            "its __init__ takes 'tag', which the cache does not keep as an attribute of that "
            "name; keep it as self.tag, or name another cache"
        ]
    )
