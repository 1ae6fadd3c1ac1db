"""A mock enforces the value contract of the backend it stands in for (issue 15, item 8).

A bytes-only backend (FileBackend, LogBackend, SqliteBackend: ``stores_bytes``) refuses a value
that is not bytes; the mock that replaces one, in a RemoteCache, a Memoizer or an attribute
target, refuses it too, with the real message plus that it is the mock, counted as an error
of the kind and as an exception in cache_stats. A MemoryBackend's stand-in still stores objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_cachemock import (
    FileBackend,
    LogBackend,
    MemoryBackend,
    MockBackend,
    PatchCaches,
    RemoteCache,
    Stats,
)
from pytest_cachemock.backends import Backend
from pytest_cachemock.backends.sqlite import SqliteBackend
from pytest_cachemock.errors import MemoizerWarning, ValueDecodingError, ValueEncodingError
from pytest_cachemock.kinds import Registry
from pytest_cachemock.memoize import Memoizer
from pytest_cachemock.serde import PassthroughSerde, SignedPickleSerde


class StrJsonSerde:
    """A user's serde that yields str (JSON text), not bytes."""

    def encode(self, value: Any) -> str:
        return json.dumps(value)

    def decode(self, stored: Any) -> Any:
        return json.loads(stored)


class Weather(RemoteCache[Any]):
    pass


def _patch(kind: str, *targets: Any) -> PatchCaches:
    registry = Registry()
    registry.add(kind, targets=list(targets), origin="test")
    return PatchCaches(registry=registry)


def _error(call: Callable[[], Any]) -> str:
    with pytest.raises(ValueEncodingError) as caught:
        call()
    return str(caught.value)


BYTES_ONLY: dict[str, Callable[[Path], Backend[Any]]] = {
    "FileBackend": lambda tmp: FileBackend(tmp / "files"),
    "SqliteBackend": lambda tmp: SqliteBackend(tmp / "c.sqlite"),
    "LogBackend": lambda tmp: LogBackend(tmp / "c.log"),
}


def test_the_flag_says_which_backends_store_only_bytes(tmp_path: Path) -> None:
    assert [name for name, make in BYTES_ONLY.items() if make(tmp_path).stores_bytes] == list(
        BYTES_ONLY
    )
    assert MemoryBackend.stores_bytes is False
    assert Backend.stores_bytes is False
    assert MockBackend("any").stores_bytes is False


@pytest.mark.parametrize("name", list(BYTES_ONLY))
@pytest.mark.parametrize("op", ["put", "add"])
def test_a_str_serde_fails_under_the_mock_as_over_the_real_backend(
    tmp_path: Path, name: str, op: str, fresh_stats: None
) -> None:
    weather = Weather(BYTES_ONLY[name](tmp_path), StrJsonSerde(), namespace="weather")
    real = _error(lambda: getattr(weather, op)("oslo", {"t": 3}))
    assert real.startswith(f"{name} stores bytes, got a str for key 'weather::oslo:v1'")
    with _patch("wx", Weather) as patch:
        assert isinstance(weather.backend, MockBackend)
        mocked = _error(lambda: getattr(weather, op)("oslo", {"t": 3}))
        assert mocked == (
            f"{real} (the mock of kind 'wx' stands in for a {name} and refuses what it refuses)"
        )
        assert weather.get("oslo") is None
        assert dict(patch.entries("wx")) == {}
        assert patch.stats()["wx"] == Stats(misses=1, errors=1)
        assert patch.library_stats()["mock:wx"]["exception"] == 1
        assert patch.library_stats()["Weather"]["exception"] == 1


def test_bytes_like_values_are_stored_as_bytes_as_the_real_backend_does(
    tmp_path: Path, fresh_stats: None
) -> None:
    log = LogBackend(tmp_path / "c.log")
    log.put("k", bytearray(b"ab"))
    assert type(log.get("k")) is bytes
    weather = Weather(log, PassthroughSerde(), namespace="weather")
    with _patch("wx", Weather) as patch:
        weather.put("a", bytearray(b"xy"))
        weather.add("b", memoryview(b"zw"))
        assert dict(patch.entries("wx")) == {
            "weather::a:v1": b"xy",
            "weather::b:v1": b"zw",
        }
        assert all(type(v) is bytes for v in patch.entries("wx").values())
        assert patch.stats()["wx"] == Stats(puts=2)


def test_a_memory_backend_stand_in_still_stores_objects(fresh_stats: None) -> None:
    weather = Weather(MemoryBackend(), PassthroughSerde(), namespace="weather")
    with _patch("wx", Weather) as patch:
        weather.put("oslo", {"t": 3})
        assert weather.get("oslo") == {"t": 3}
        assert patch.stats()["wx"] == Stats(puts=1, hits=1)


def test_a_memoizer_over_a_log_backend_warns_under_the_mock_as_in_production(
    tmp_path: Path, fresh_stats: None
) -> None:
    def double(x: int) -> int:
        return 2 * x

    real_memo = Memoizer(backend=LogBackend(tmp_path / "real.log"), serde=StrJsonSerde())
    with pytest.warns(MemoizerWarning) as real:
        assert real_memo.memoize(double)(2) == 4
    assert "LogBackend stores bytes, got a str" in str(real[0].message)

    memo = Memoizer(kind="notes", backend=LogBackend(tmp_path / "m.log"), serde=StrJsonSerde())
    mocked_double = memo.memoize(double)
    with PatchCaches(registry=Registry()) as patch:
        assert isinstance(memo.backend, MockBackend)
        assert memo.backend.stores_bytes
        with pytest.warns(MemoizerWarning) as mocked:
            result = mocked_double(3)
        assert result == 6
        assert patch.stats()["notes"] == Stats(misses=1, errors=1)
        assert patch.library_stats()["mock:notes"]["exception"] == 1
        assert dict(patch.entries("notes")) == {}
    text = str(mocked[0].message)
    assert "LogBackend stores bytes, got a str" in text
    assert "the mock of kind 'notes' stands in for a LogBackend" in text


class Holder:
    backend: Any = None
    backend_cls: Any = LogBackend


def test_an_attribute_holding_a_bytes_only_backend_gets_a_strict_mock(
    tmp_path: Path, fresh_stats: None
) -> None:
    Holder.backend = LogBackend(tmp_path / "p.log")
    real = _error(lambda: Holder.backend.put("k", 1.5))
    with _patch("prices", (Holder, "backend")) as patch:
        mock = Holder.backend
        assert isinstance(mock, MockBackend)
        assert mock.stores_bytes
        assert _error(lambda: mock.put("k", 1.5)) == (
            f"{real} (the mock of kind 'prices' stands in for a LogBackend and refuses what it "
            "refuses)"
        )
        mock.put("k", b"1.5")
        assert patch.stats()["prices"] == Stats(puts=1, errors=1)
        assert patch.library_stats()["mock:prices"]["exception"] == 1


def test_an_attribute_holding_a_bytes_only_backend_class_makes_strict_mocks(
    fresh_stats: None,
) -> None:
    with _patch("prices", (Holder, "backend_cls")) as patch:
        mock = Holder.backend_cls()
        assert isinstance(mock, MockBackend)
        assert mock.kind == "prices"
        assert "LogBackend stores bytes, got a float" in _error(lambda: mock.add("k", 1.5))
        assert patch.stats()["prices"] == Stats(errors=1)
    assert Holder.backend_cls is LogBackend


def test_an_attribute_holding_a_memory_backend_gets_a_mock_that_stores_objects(
    fresh_stats: None,
) -> None:
    Holder.backend = MemoryBackend()
    with _patch("prices", (Holder, "backend")) as patch:
        Holder.backend.put("k", 1.5)
        assert dict(patch.entries("prices")) == {"k": 1.5}


# -- seed: by the cache's own keys and values, and what a raw seed cannot be --------------------


def test_seed_by_a_caches_own_keys_goes_through_its_keyed_serde(
    tmp_path: Path, fresh_stats: None
) -> None:
    signed = Weather(
        SqliteBackend(tmp_path / "s.sqlite"), SignedPickleSerde("secret"), namespace="w", version=3
    )
    with _patch("wx", Weather) as patch:
        patch.seed("wx", {"oslo": {"t": 3}}, cache=signed)
        (stored_key,) = patch.entries("wx")
        assert stored_key == "w::oslo:v3"
        assert signed.get("oslo") == {"t": 3}
        assert patch.stats()["wx"] == Stats(hits=1)
        # The signature binds the entry to its key: copied under another key, it is refused.
        copied = patch.entries("wx")[stored_key]
        with pytest.raises(
            ValueDecodingError, match=r"cannot decode the value seeded for 'w::x:v3'"
        ):
            patch.seed("wx", {"w::x:v3": copied})


def test_a_memoizer_is_not_a_cache_to_seed_by_key(tmp_path: Path, fresh_stats: None) -> None:
    memo = Memoizer(kind="notes2", backend=LogBackend(tmp_path / "m.log"))
    with PatchCaches(registry=Registry()) as patch:
        with pytest.raises(
            TypeError, match=r"a Memoizer has no key -> value of its own; .*entry_for"
        ):
            patch.seed("notes2", {"k": 1}, cache=memo)
        with pytest.raises(
            ValueEncodingError, match=r"LogBackend stores bytes, got a int for key 'k'"
        ):
            patch.seed("notes2", {"k": 1})
        assert dict(patch.entries("notes2")) == {}


def test_a_raw_seed_readable_by_one_mock_of_the_kind_is_kept(
    tmp_path: Path, fresh_stats: None
) -> None:
    Holder.backend = MemoryBackend()
    Holder.backend_cls = LogBackend
    with _patch("prices", (Holder, "backend"), (Holder, "backend_cls")) as patch:
        patch.seed("prices", {"k": 1.5})  # the MemoryBackend's mock reads it back
        assert Holder.backend.get("k") == 1.5
    with _patch("prices", (Holder, "backend_cls")) as patch:
        with pytest.raises(ValueEncodingError, match="got a float for key 'k'"):
            patch.seed("prices", {"k": 1.5})
        patch.seed("prices", {"k": memoryview(b"1.5")})
        assert patch.entries("prices")["k"] == b"1.5"
        assert type(patch.entries("prices")["k"]) is bytes


def test_seed_by_a_caches_own_keys_fails_where_its_put_would(
    tmp_path: Path, fresh_stats: None
) -> None:
    weather = Weather(FileBackend(tmp_path / "f"), StrJsonSerde(), namespace="weather")
    with _patch("wx", Weather) as patch:
        with pytest.raises(ValueEncodingError) as caught:
            patch.seed("wx", {"oslo": {"t": 3}}, cache=weather)
        assert str(caught.value) == (
            "seed('wx', ...): Weather.put('oslo', ...) would fail: FileBackend stores bytes, got "
            "a str for key 'weather::oslo:v1'; put it through a serde (JsonSerde, PickleSerde) "
            "first (the mock of kind 'wx' stands in for a FileBackend and refuses what it "
            "refuses)"
        )
        assert dict(patch.entries("wx")) == {}
        assert patch.stats()["wx"] == Stats()
