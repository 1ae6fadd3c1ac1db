"""Behaviours of Django's own cache tests (tests/cache/tests.py, BaseCacheTests), written again
for the mock, plus every async method once: run by test_django_profile.py under
``cachemock_profiles = django`` and ``cachemock_autouse = true``, so every test starts with
empty mocked caches. The names say which Django test each follows; expiry runs on a frozen
clock (the profile's ``clock``) except in one test that sleeps for real.
"""

import asyncio
import pickle
import re
import time
import warnings
from zlib import compress, decompress

import pytest
from django.core.cache import CacheKeyWarning, cache, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

import pytest_cachemock.integrations.django as django_profile
from pytest_cachemock import Stats, global_stats

MEMCACHED_CHARS = "Cache key contains characters that will cause errors if used with memcached: %r"


def f():
    return 42


class C:
    def m(n):
        return 24


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError()


@pytest.fixture
def now(monkeypatch):
    """The mock's clock, frozen; ``now[0] += 5`` moves it on."""
    frozen = [1_000_000.0]
    monkeypatch.setattr(django_profile, "clock", lambda: frozen[0])
    return frozen


def test_every_object_is_mocked():
    assert type(caches["default"]).__module__ == "pytest_cachemock.integrations.django"


def test_simple():
    cache.set("key", "value")
    assert cache.get("key") == "value"


def test_default_used_when_none_is_set():
    cache.set("key_default_none", None)
    assert cache.get("key_default_none", default="default") is None


def test_add():
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_prefix():
    cache.set("somekey", "value")
    assert caches["prefix"].has_key("somekey") is False
    caches["prefix"].set("somekey", "value2")
    assert cache.get("somekey") == "value"
    assert caches["prefix"].get("somekey") == "value2"


def test_non_existent():
    assert cache.get("does_not_exist") is None
    assert cache.get("does_not_exist", "bang!") == "bang!"


def test_get_many():
    cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"})
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a", "b", "e"])) == {"a": "a", "b": "b"}
    cache.set_many({"x": None, "y": 1})
    assert cache.get_many(["x", "y"]) == {"x": None, "y": 1}


def test_delete():
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.delete("key1") is True
    assert cache.get("key1") is None
    assert cache.get("key2") == "eggs"


def test_delete_nonexistent():
    assert cache.delete("nonexistent_key") is False


def test_has_key():
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") is True
    assert cache.has_key("goodbye1") is False
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry") is True
    cache.set("null", None)
    assert cache.has_key("null") is True


def test_in():
    cache.set("hello2", "goodbye2")
    assert "hello2" in cache
    assert "goodbye2" not in cache
    cache.set("null", None)
    assert "null" in cache


def test_incr():
    cache.set("answer", 41)
    assert cache.incr("answer") == 42
    assert cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.incr("answer", -10) == 42
    with pytest.raises(ValueError, match="Key ':1:does_not_exist' not found"):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist", -1)
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.incr("null")


def test_decr():
    cache.set("answer", 43)
    assert cache.decr("answer") == 42
    assert cache.decr("answer", 10) == 32
    assert cache.decr("answer", -10) == 42
    with pytest.raises(ValueError, match="not found"):
        cache.decr("does_not_exist")
    cache.set("null", None)
    with pytest.raises(TypeError):
        cache.decr("null")


def test_close():
    assert hasattr(cache, "close")
    cache.close()


def test_data_types():
    tests = {
        "string": "this is a string",
        "int": 42,
        "bool": True,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": f,
        "class": C,
    }
    for key, value in tests.items():
        cache.set(key, value)
        assert cache.get(key) == value


def test_a_value_is_a_copy():
    value = {"list": [1]}
    cache.set("k", value)
    value["list"].append(2)
    got = cache.get("k")
    assert got == {"list": [1]}
    got["list"].append(3)
    assert cache.get("k") == {"list": [1]}


def test_expiration(now):
    cache.set("expire1", "very quickly", 1)
    cache.set("expire2", "very quickly", 1)
    cache.set("expire3", "very quickly", 1)
    now[0] += 2
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert cache.has_key("expire3") is False


def test_expiration_on_the_real_clock():
    cache.set("expire1", "very quickly", 1)
    assert cache.get("expire1") == "very quickly"
    time.sleep(1.1)
    assert cache.get("expire1") is None


def test_touch(now):
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1", timeout=4) is True
    now[0] += 2
    assert cache.has_key("expire1") is True
    now[0] += 3
    assert cache.has_key("expire1") is False
    cache.set("expire1", "very quickly", timeout=1)
    assert cache.touch("expire1") is True  # the default timeout, 300 s
    now[0] += 2
    assert cache.has_key("expire1") is True
    assert cache.touch("nonexistent") is False


def test_unicode():
    stuff = {
        "ascii": "ascii_value",
        "unicode_ascii": "Iñtërnâtiônàlizætiøn1",
        "Iñtërnâtiônàlizætiøn": "Iñtërnâtiônàlizætiøn2",
        "ascii2": {"x": 1},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        for key, value in stuff.items():
            cache.set(key, value)
            assert cache.get(key) == value
        for key, value in stuff.items():
            assert cache.delete(key) is True
            assert cache.add(key, value) is True
            assert cache.get(key) == value
        for key in stuff:
            assert cache.delete(key) is True
        cache.set_many(stuff)
        for key, value in stuff.items():
            assert cache.get(key) == value


def test_binary_string():
    value = "value_to_be_compressed"
    compressed = compress(value.encode())
    cache.set("binary1", compressed)
    assert decompress(cache.get("binary1")).decode() == value
    assert cache.add("binary1-add", compressed) is True
    assert cache.get("binary1-add") == compressed
    cache.set_many({"binary1-set_many": compressed})
    assert cache.get("binary1-set_many") == compressed


def test_set_many():
    cache.set_many({"key1": "spam", "key2": "eggs"})
    assert cache.get("key1") == "spam"
    assert cache.get("key2") == "eggs"


def test_set_many_returns_empty_list_on_success():
    assert cache.set_many({"key1": "spam", "key2": "eggs"}) == []


def test_set_many_expiration(now):
    cache.set_many({"key1": "spam", "key2": "eggs"}, 1)
    now[0] += 2
    assert cache.get("key1") is None
    assert cache.get("key2") is None


def test_set_many_empty_data():
    assert cache.set_many({}) == []


def test_delete_many():
    cache.set_many({"key1": "spam", "key2": "eggs", "key3": "ham"})
    cache.delete_many(["key1", "key2"])
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert cache.get("key3") == "ham"


def test_delete_many_no_keys():
    assert cache.delete_many([]) is None


def test_clear():
    cache.set_many({"key1": "spam", "key2": "eggs"})
    caches["other"].set("key1", "other")
    cache.clear()
    assert cache.get("key1") is None
    assert cache.get("key2") is None
    assert caches["other"].get("key1") == "other"  # another LOCATION: another store


def test_long_timeout(now):
    month = 60 * 60 * 24 * 30 + 1
    cache.set("key1", "eggs", month)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", month) is True
    assert cache.get("key2") == "ham"
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, month)
    assert cache.get("key3") == "sausage"
    now[0] += month - 1
    assert cache.get("key4") == "lobster bisque"


def test_forever_timeout(now):
    cache.set("key1", "eggs", None)
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", None) is True
    assert cache.add("key1", "new eggs", None) is False
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
    cache.set("key5", "belgian fries", timeout=1)
    assert cache.touch("key5", timeout=None) is True
    now[0] += 10**9
    assert cache.get_many(["key1", "key2", "key3", "key4", "key5"]) == {
        "key1": "eggs",
        "key2": "ham",
        "key3": "sausage",
        "key4": "lobster bisque",
        "key5": "belgian fries",
    }


def test_zero_timeout():
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True
    assert cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get("key3") is None
    assert cache.get("key4") is None
    cache.set("key5", "belgian fries", timeout=5)
    assert cache.touch("key5", timeout=0) is True
    assert cache.get("key5") is None


def test_float_timeout():
    cache.set("key1", "spam", 100.2)
    assert cache.get("key1") == "spam"


def test_default_timeout_comes_from_the_alias(now):
    short = caches["short"]  # TIMEOUT = 2
    short.set("k", "v")
    short.set("explicit", "v", DEFAULT_TIMEOUT)
    short.set("long", "v", 10)
    now[0] += 3
    assert short.get_many(["k", "explicit", "long"]) == {"long": "v"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("key with spaces and 清", MEMCACHED_CHARS % "key with spaces and 清"),
        (
            ("a" * 250) + "清",
            "Cache key will cause errors if used with memcached: %r (longer than 250)"
            % (("a" * 250) + "清"),
        ),
    ],
)
def test_invalid_key_characters_and_length(key, expected):
    old = cache.key_func
    cache.key_func = lambda key, *args: key  # the default key never warns
    calls = [
        ("add", [key, 1]),
        ("get", [key]),
        ("set", [key, 1]),
        ("touch", [key]),
        ("delete", [key]),
        ("get_many", [[key, "b"]]),
        ("set_many", [{key: 1, "b": 2}]),
        ("delete_many", [[key, "b"]]),
    ]
    try:
        for operation, args in calls:
            with pytest.warns(CacheKeyWarning) as record:
                getattr(cache, operation)(*args)
            assert str(record[0].message) == expected, operation
        with pytest.warns(CacheKeyWarning):
            cache.set(key, 1)
        for operation in ("incr", "decr"):
            with pytest.warns(CacheKeyWarning):
                getattr(cache, operation)(key)
    finally:
        cache.key_func = old


def test_cache_versioning_get_set():
    cache.set("answer1", 42)
    assert cache.get("answer1") == 42
    assert cache.get("answer1", version=1) == 42
    assert cache.get("answer1", version=2) is None
    assert caches["v2"].get("answer1") is None
    assert caches["v2"].get("answer1", version=1) == 42
    cache.set("answer2", 42, version=2)
    assert cache.get("answer2") is None
    assert cache.get("answer2", version=2) == 42
    assert caches["v2"].get("answer2") == 42
    caches["v2"].set("answer4", 42, version=1)
    assert cache.get("answer4") == 42
    assert caches["v2"].get("answer4") is None


def test_cache_versioning_add():
    assert cache.add("answer1", 42, version=2) is True
    assert cache.get("answer1", version=1) is None
    assert cache.get("answer1", version=2) == 42
    assert cache.add("answer1", 37, version=2) is False
    assert cache.add("answer1", 37, version=1) is True
    assert cache.get("answer1", version=1) == 37
    assert caches["v2"].add("answer2", 42) is True
    assert cache.get("answer2", version=2) == 42
    assert caches["v2"].add("answer2", 37) is False


def test_cache_versioning_has_key_and_delete():
    cache.set("answer1", 42)
    assert cache.has_key("answer1")
    assert cache.has_key("answer1", version=1)
    assert not cache.has_key("answer1", version=2)
    assert not caches["v2"].has_key("answer1")
    assert caches["v2"].has_key("answer1", version=1)
    cache.set("answer1", 37, version=2)
    assert cache.delete("answer1", version=2) is True
    assert cache.get("answer1", version=1) == 42


def test_incr_version():
    cache.set("answer", 42, version=2)
    assert cache.get("answer") is None
    assert cache.get("answer", version=2) == 42
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None
    assert cache.get("answer", version=3) == 42
    caches["v2"].set("answer2", 42)
    assert caches["v2"].incr_version("answer2") == 3
    assert caches["v2"].get("answer2") is None
    assert caches["v2"].get("answer2", version=3) == 42
    with pytest.raises(ValueError, match="Key 'does_not_exist' not found"):
        cache.incr_version("does_not_exist")
    cache.set("null", None)
    assert cache.incr_version("null") == 2


def test_decr_version():
    cache.set("answer", 42, version=2)
    assert cache.decr_version("answer", version=2) == 1
    assert cache.get("answer") == 42
    assert cache.get("answer", version=2) is None
    with pytest.raises(ValueError, match="not found"):
        cache.decr_version("does_not_exist", version=2)


def test_custom_key_func():
    cache.set("answer1", 42)
    assert caches["custom_key"].get("answer1") is None
    assert caches["custom_key2"].get("answer1") is None
    caches["custom_key"].set("answer2", 42)
    assert cache.get("answer2") is None
    assert caches["custom_key"].get("answer2") == 42
    assert caches["custom_key2"].get("answer2") == 42  # the same function, by its path
    assert "CUSTOM--1-answer2" in global_stats.django_custom_key.cache


def test_get_or_set():
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("null", None) is None
    assert cache.get_or_set("null", "default") is None  # None was stored


def test_get_or_set_callable():
    def my_callable():
        return "value"

    assert cache.get_or_set("mykey", my_callable) == "value"
    assert cache.get_or_set("mykey", my_callable()) == "value"
    assert cache.get_or_set("null", lambda: None) is None
    assert cache.get_or_set("null", lambda: "default") is None


def test_get_or_set_version():
    msg = re.escape("get_or_set() missing 1 required positional argument: 'default'")
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    with pytest.raises(TypeError, match=msg):
        cache.get_or_set("brian")
    with pytest.raises(TypeError, match=msg):
        cache.get_or_set("brian", version=1)
    assert cache.get("brian", version=1) is None
    assert cache.get_or_set("brian", 42, version=1) == 42
    assert cache.get_or_set("brian", 1979, version=2) == 1979
    assert cache.get("brian", version=3) is None


def test_set_fail_on_pickleerror():
    with pytest.raises(pickle.PickleError):
        cache.add("unpicklable", Unpicklable())
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())
    assert cache.get("unpicklable") is None


def test_async_variants():
    async def main():
        await cache.aset("key", "value")
        assert await cache.aget("key") == "value"
        assert await cache.aadd("key", "other") is False
        assert await cache.ahas_key("key") is True
        assert await cache.aget_many(["key", "nope"]) == {"key": "value"}
        assert await cache.aset_many({"n": 1, "m": 2}) == []
        assert await cache.aincr("n") == 2
        assert await cache.adecr("m") == 1
        assert await cache.aget_or_set("g", lambda: "made") == "made"
        assert await cache.atouch("key", None) is True
        assert await cache.adelete("key") is True
        await cache.adelete_many(["n", "m"])
        assert await cache.aincr_version("g") == 2
        assert await cache.adecr_version("g", version=2) == 1
        await cache.aclear()
        assert await cache.aget("g") is None
        await cache.aclose()

    asyncio.run(main())


# -- what counts as what (docs/profiles.md) ----------------------------------------------------


def test_counts_of_each_call():
    kind = "django_default"

    def counted(call):
        before = global_stats[kind]
        call()
        after = global_stats[kind]
        return (
            after.puts - before.puts,
            after.hits - before.hits,
            after.misses - before.misses,
        )

    assert counted(lambda: cache.set("a", 1)) == (1, 0, 0)
    assert counted(lambda: cache.get("a")) == (0, 1, 0)
    assert counted(lambda: cache.get("b")) == (0, 0, 1)
    assert counted(lambda: cache.get_many(["a", "b", "c"])) == (0, 1, 2)
    assert counted(lambda: cache.set_many({"x": 1, "y": 2})) == (2, 0, 0)
    assert counted(lambda: cache.add("a", 2)) == (0, 1, 0)
    assert counted(lambda: cache.add("z", 2)) == (1, 0, 0)
    assert counted(lambda: cache.has_key("a")) == (0, 1, 0)
    assert counted(lambda: "nope" in cache) == (0, 0, 1)
    assert counted(lambda: cache.get_or_set("a", 5)) == (0, 1, 0)
    assert counted(lambda: cache.get_or_set("new", 5)) == (1, 0, 1)
    assert counted(lambda: cache.incr("a")) == (1, 1, 0)
    assert counted(lambda: cache.decr("a")) == (1, 1, 0)
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert global_stats[kind].misses == 6  # b, b and c, nope, new, missing
    assert counted(lambda: cache.incr_version("a")) == (1, 1, 0)
    assert counted(lambda: cache.touch("x")) == (0, 0, 0)
    assert counted(lambda: cache.delete("x")) == (0, 0, 0)
    assert counted(lambda: cache.delete_many(["y", "z"])) == (0, 0, 0)
    assert counted(lambda: cache.clear()) == (0, 0, 0)
    assert global_stats.django_v2 == Stats(0, 0, 0)  # another alias counts on its own


def test_seed_refuses_a_value_that_cannot_be_pickled(patch_caches):
    with pytest.raises(TypeError) as info:
        patch_caches.seed("django_default", {":1:ok": 1, ":1:f": lambda: 1})
    assert str(info.value).startswith(
        "seed: a django kind stores values pickled, as Django's backends do; the value of "
        "':1:f', a function, cannot be pickled ("
    )
    assert str(info.value).endswith("); nothing was stored")
    assert dict(patch_caches.entries("django_default")) == {}
    with pytest.raises(TypeError, match="keys are str, got 3"):
        patch_caches.seed("django_default", {3: "three"})
