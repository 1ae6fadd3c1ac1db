from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from pytest_cachemock import (
    Backend,
    JsonSerde,
    MemoryBackend,
    PickleSerde,
    RemoteCache,
    UserError,
    ValueEncodingError,
    cache_stats,
)

pytestmark = pytest.mark.usefixtures("fresh_stats")


class Broken(Backend[Any]):
    def _get(self, key: str) -> Any:
        raise ConnectionError("down")

    def _put(self, key: str, value: Any) -> None:
        raise ConnectionError("down")


def test_put_get_round_trip_and_counts() -> None:
    backend = MemoryBackend()
    cache: RemoteCache[dict[str, int]] = RemoteCache(backend)
    assert cache.get("k") is None
    cache.put("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    snap = cache_stats.snapshot()
    assert snap["RemoteCache"] == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    assert snap["backend:MemoryBackend"] == {"hit": 1, "miss": 1, "put": 1, "exception": 0}


def test_keys_are_namespaced_and_versioned() -> None:
    backend = MemoryBackend()
    RemoteCache(backend, namespace="pages", version=3).put("home", [1])
    assert dict(backend.items()) == {"pages::home:v3": b"[1]"}
    assert RemoteCache(backend, namespace="pages", version=4).get("home") is None


def test_default_namespace_is_the_kind_or_the_class() -> None:
    class Plain(RemoteCache[Any]):
        pass

    class Kinded(RemoteCache[Any]):
        kind = "kinded_ns_test"

    assert (
        Plain().key_for("x")
        == "test_default_namespace_is_the_kind_or_the_class.<locals>.Plain::x:v1"
    )
    assert Kinded().key_for("x") == "kinded_ns_test::x:v1"


def test_put_none_is_a_user_error() -> None:
    cache: RemoteCache[Any] = RemoteCache()
    with pytest.raises(UserError, match="None means a miss"):
        cache.put("k", None)
    assert cache_stats.snapshot()["RemoteCache"]["exception"] == 1


@pytest.mark.parametrize("key", [1, b"k", None, ("a",)])
def test_non_str_key_is_a_user_error(key: Any) -> None:
    cache: RemoteCache[Any] = RemoteCache()
    with pytest.raises(UserError, match="keys are str"):
        cache.get(key)
    with pytest.raises(UserError, match="keys are str"):
        cache.put(key, 1)


def test_encoding_error_is_counted_and_raised() -> None:
    cache: RemoteCache[Any] = RemoteCache(MemoryBackend(), JsonSerde())
    with pytest.raises(ValueEncodingError, match="set"):
        cache.put("k", {1, 2})
    assert cache_stats.snapshot()["RemoteCache"]["exception"] == 1


def test_undecodable_value_is_a_miss_an_exception_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    backend.put("RemoteCache::k:v1", b"{broken")
    cache: RemoteCache[Any] = RemoteCache(backend)
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        assert cache.get("k") is None
    assert cache_stats.snapshot()["RemoteCache"] == {"hit": 0, "miss": 1, "put": 0, "exception": 1}
    assert len(caplog.records) == 1
    assert "RemoteCache::k:v1" in caplog.records[0].getMessage()


def test_backend_errors_are_counted_and_reraised() -> None:
    cache: RemoteCache[Any] = RemoteCache(Broken())
    with pytest.raises(ConnectionError):
        cache.get("k")
    with pytest.raises(ConnectionError):
        cache.put("k", 1)
    snap = cache_stats.snapshot()
    assert snap["RemoteCache"]["exception"] == 2
    assert snap["backend:Broken"]["exception"] == 2


def test_add_never_overwrites() -> None:
    cache: RemoteCache[int] = RemoteCache()
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is False
    assert cache.get("k") == 1


class _Recording(Backend[Any]):
    made: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).made += 1
        self.data: dict[str, Any] = {}

    def _get(self, key: str) -> Any:
        return self.data.get(key)

    def _put(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_override_is_per_class_and_read_at_use_time() -> None:
    class Parent(RemoteCache[Any]):
        pass

    class Child(Parent):
        pass

    class Sibling(Parent):
        pass

    real = MemoryBackend()
    built_before = Child(real)
    Child.backend_override_cls = _Recording
    try:
        built_before.put("k", 1)
        assert isinstance(built_before.backend, _Recording)
        assert built_before.backend is built_before.backend  # one override instance per factory
        assert len(real) == 0
        assert Sibling(real).backend is real
        assert Parent(real).backend is real
    finally:
        del Child.backend_override_cls
    assert built_before.backend is real
    assert built_before.get("k") is None


def test_kind_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="not a valid cache kind name"):

        class Bad(RemoteCache[Any]):
            kind = "not-valid"


def test_pickle_serde_with_memory_backend() -> None:
    cache: RemoteCache[Any] = RemoteCache(MemoryBackend(), PickleSerde())
    cache.put("k", {1, 2})
    assert cache.get("k") == {1, 2}


def test_invalid_constructor_arguments() -> None:
    with pytest.raises(UserError, match="needs a backend"):
        RemoteCache(object())  # type: ignore[arg-type]

    class GetPutOnly:  # get/put, but none of what a Backend counts and declares
        def get(self, key: str) -> Any:
            return None

        def put(self, key: str, value: Any) -> None:
            pass

    with pytest.raises(UserError, match=r"RemoteCache needs a backend \(a subclass of "):
        RemoteCache(GetPutOnly())  # type: ignore[arg-type]
    with pytest.raises(UserError, match="version"):
        RemoteCache(version=-1)
    with pytest.raises(UserError, match="namespace"):
        RemoteCache(namespace="")
