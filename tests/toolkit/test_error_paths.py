"""Error paths of the public toolkit not covered elsewhere: each ``raise`` in the code, seen
the way a caller sees it (type, message, what was counted).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_cachemock import (
    Backend,
    CacheError,
    FileBackend,
    JsonSerde,
    MemoryBackend,
    PassthroughSerde,
    RemoteCache,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
    cache_stats,
)
from pytest_cachemock.backends import file as file_module

pytestmark = pytest.mark.usefixtures("fresh_stats")


# -- cache_stats ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["hit", "miss", "put", "exception"])
def test_counts_only_go_up(field: str) -> None:
    with pytest.raises(ValueError, match=rf"only go up; got {field} \+= -1 for 'errs'"):
        getattr(cache_stats, field)("errs", -1)
    assert "errs" not in cache_stats.snapshot()


def test_stats_str_repr_raw_and_reset() -> None:
    assert str(cache_stats) == "cache_stats: (nothing counted)"
    cache_stats.hit("errs:b", 2)
    cache_stats.exception("errs:a")
    assert str(cache_stats) == (
        "cache_stats:\n"
        "  errs:a: hit: 0, miss: 0, put: 0, exception: 1\n"
        "  errs:b: hit: 2, miss: 0, put: 0, exception: 0"
    )
    assert "errs:b" in repr(cache_stats)
    assert cache_stats.raw()["errs:b"]["hit"] >= 2
    cache_stats.reset()
    assert cache_stats.snapshot() == {}
    assert cache_stats.raw()["errs:b"]["hit"] >= 2  # raw() ignores reset()


# -- RemoteCache ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [True, 1.0, "1", None, -3])
def test_version_must_be_a_non_negative_int(version: Any) -> None:
    with pytest.raises(UserError, match="version must be an int >= 0") as info:
        RemoteCache(version=version)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, CacheError)


@pytest.mark.parametrize("namespace", ["", 3, b"ns"])
def test_namespace_must_be_a_non_empty_str(namespace: Any) -> None:
    with pytest.raises(UserError, match="namespace must be a non-empty str"):
        RemoteCache(namespace=namespace)


def test_add_errors_are_counted_and_raised() -> None:
    cache: RemoteCache[Any] = RemoteCache(MemoryBackend())
    with pytest.raises(UserError, match="None means a miss"):
        cache.add("k", None)
    with pytest.raises(ValueEncodingError, match="set"):
        cache.add("k", {1})
    with pytest.raises(UserError, match="keys are str"):
        cache.add(1, "v")  # type: ignore[arg-type]
    assert cache_stats.snapshot()["RemoteCache"] == {
        "hit": 0,
        "miss": 0,
        "put": 0,
        "exception": 3,
    }
    assert cache.add("k", "v") is True
    assert cache.add("k", "w") is False
    assert cache_stats.snapshot()["RemoteCache"]["put"] == 1
    assert cache_stats.snapshot()["RemoteCache"]["hit"] == 1


class _Unavailable(Backend[Any]):
    def _get(self, key: str) -> Any:
        raise OSError(errno.EIO, "disk gone")

    def _put(self, key: str, value: Any) -> None:
        raise OSError(errno.EIO, "disk gone")


def test_backend_add_error_is_counted_and_reraised() -> None:
    cache: RemoteCache[Any] = RemoteCache(_Unavailable())
    with pytest.raises(OSError, match="disk gone"):
        cache.add("k", 1)
    snap = cache_stats.snapshot()
    assert snap["RemoteCache"]["exception"] == 1
    assert snap["backend:_Unavailable"]["exception"] == 1


def test_override_factory_errors_are_counted_and_raised() -> None:
    def broken_factory() -> Backend[Any]:
        raise RuntimeError("no mock for you")

    class Overridden(RemoteCache[Any]):
        backend_override_cls = broken_factory

    cache = Overridden()
    with pytest.raises(RuntimeError, match="no mock for you"):
        cache.get("k")
    with pytest.raises(RuntimeError, match="no mock for you"):
        cache.put("k", 1)
    assert cache_stats.snapshot()["Overridden"]["exception"] == 2


def test_decode_error_of_a_passthrough_value_through_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    backend.put("RemoteCache::k:v1", {"not": "bytes"})
    cache: RemoteCache[Any] = RemoteCache(backend, JsonSerde())
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        assert cache.get("k") is None
    assert "expects stored bytes" in caplog.records[0].getMessage()
    with pytest.raises(ValueDecodingError, match="expects stored bytes, got a dict"):
        JsonSerde().decode({"not": "bytes"})


def test_passthrough_cache_keeps_objects() -> None:
    cache: RemoteCache[Any] = RemoteCache(MemoryBackend(), PassthroughSerde())
    value = {1, 2}
    cache.put("k", value)
    assert cache.get("k") is value


@pytest.mark.parametrize("kind", ["class", "with-dash", "1st", 3, ""])
def test_kind_names_are_identifiers(kind: Any) -> None:
    with pytest.raises(ValueError, match="not a valid cache kind name") as info:
        type("Bad", (RemoteCache,), {"kind": kind})  # checked when the class is created
    assert f".Bad.kind = {kind!r}" in str(info.value)


# -- Backend base class --------------------------------------------------------------------


class _Incomplete(Backend[Any]):
    pass


def test_a_backend_without_get_or_put_says_what_to_implement() -> None:
    with pytest.raises(TypeError, match=r"_Incomplete.*abstract methods? .*_get.*_put"):
        _Incomplete()  # type: ignore[abstract]


class _NoSuperInit(Backend[Any]):
    def __init__(self) -> None:  # forgets super().__init__()
        self.data: dict[str, Any] = {}

    def _get(self, key: str) -> Any:
        return self.data.get(key)

    def _put(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_a_backend_that_skips_super_init_still_counts() -> None:
    backend = _NoSuperInit()
    assert backend.name == "backend:_NoSuperInit"
    assert backend.get("k") is None
    backend.put("k", 1)
    assert backend.add("k", 2) is False
    assert backend.add("j", 2) is True
    assert cache_stats.snapshot()["backend:_NoSuperInit"] == {
        "hit": 1,
        "miss": 1,
        "put": 2,
        "exception": 0,
    }
    assert repr(backend) == "<_NoSuperInit 'backend:_NoSuperInit'>"


def test_custom_backend_names() -> None:
    backend = MemoryBackend(name="sessions-store")
    backend.put("k", 1)
    assert cache_stats.snapshot()["sessions-store"]["put"] == 1


# -- MemoryBackend -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_entries": -1}, ValueError, "max_entries must be a positive int"),
        ({"max_entries": 2.5}, ValueError, "max_entries"),
        ({"ttl": -1}, ValueError, "ttl must be a positive number"),
        ({"ttl": True}, ValueError, "ttl"),
        ({"ttl": float("nan")}, ValueError, "ttl"),
        ({"clock": 5}, TypeError, "clock must be a callable"),
    ],
)
def test_memory_backend_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        MemoryBackend(**kwargs)


def test_memory_delete_and_clear() -> None:
    backend = MemoryBackend()
    backend.put("k", 1)
    assert backend.delete("k") is True
    assert backend.delete("k") is False
    backend.put("k", 1)
    backend.clear()
    assert len(backend) == 0


# -- FileBackend ---------------------------------------------------------------------------


def test_file_backend_on_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file; pass another path"):
        FileBackend(path)


@pytest.mark.parametrize("value", ["text", 3, ["b"]])
def test_file_backend_refuses_non_bytes(tmp_path: Path, value: Any) -> None:
    backend = FileBackend(tmp_path)
    with pytest.raises(ValueEncodingError, match="FileBackend stores bytes"):
        backend.put("k", value)
    with pytest.raises(ValueEncodingError, match="FileBackend stores bytes"):
        backend.add("k", value)
    assert cache_stats.snapshot()[backend.name]["exception"] == 2
    assert list(tmp_path.iterdir()) == []


def test_file_backend_takes_bytearray_and_memoryview(tmp_path: Path) -> None:
    import array

    backend = FileBackend(tmp_path)
    backend.put("a", bytearray(b"ba"))
    backend.put("m", memoryview(array.array("i", [1, 2])))
    assert backend.get("a") == b"ba"
    assert backend.get("m") == array.array("i", [1, 2]).tobytes()


def test_a_failed_write_leaves_the_old_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"old")

    def fail_write(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_module.os, "write", fail_write)
    with pytest.raises(OSError, match="No space left"):
        backend.put("k", b"new")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(backend.path_for("k"))]
    assert backend.get("k") == b"old"
    assert cache_stats.snapshot()[backend.name]["exception"] == 1


def test_clear_removes_entries_only(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"v")
    (tmp_path / "unrelated.txt").write_bytes(b"?")
    backend.clear()
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock"))
    assert left == ["unrelated.txt"]


def test_items_on_a_vanished_directory(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    store.rmdir()
    assert list(backend.items()) == []
    assert backend.get("k") is None
