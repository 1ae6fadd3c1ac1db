"""The contract every backend keeps, run against each of them: memory, file, log, sqlite,
redis (a real redis-server, see pytest_cachemock.integrations.redis_server) and the mock.

Misses, round trips and overwrites; NUL bytes, every byte value, an empty and a 1 MiB value;
odd keys; threads putting one key; add (put-if-absent); refusals (None to store, a key that is
not a str); exact ``cache_stats`` counts (one operation, one count: get a hit or a miss, put a
put, add a put or a hit, a refusal an exception, peek nothing); listing, deleting and clearing
(``lists_entries``); a time-to-live where a backend has one.

A backend joins with one factory fixture decorated ``@backend_factory``: it returns a
``Maker`` whose ``make(**kwargs)`` gives a new backend over the test's one store. What only
one backend does (its format, its files on disk, its faults, its security) stays in that
backend's own test file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from pytest_cachemock import (
    FileBackend,
    LogBackend,
    MemoryBackend,
    MockBackend,
    PatchCaches,
    SqliteBackend,
    cache_stats,
)
from pytest_cachemock.backends import Backend
from pytest_cachemock.errors import KeyEncodingError, UserError, ValueEncodingError
from pytest_cachemock.integrations.redis_server import RedisServer
from pytest_cachemock.kinds import Registry
from pytest_cachemock.mock import current_store

pytest_plugins = ["pytest_cachemock.integrations.redis_server"]
pytestmark = pytest.mark.usefixtures("fresh_stats")

KIND = "contract"  # the mock's kind


@dataclass
class Maker:
    """How a test makes backends over one store: ``make(**kwargs)``, any number of times."""

    make: Callable[..., Backend[Any]]
    sized: bool = True  # len(backend) works


BACKENDS: list[str] = []
TTL_BACKENDS: list[str] = []  # factories whose make() takes ttl= and clock=


def backend_factory(fn: Callable[..., Maker]) -> Any:
    """Register ``fn`` as a factory fixture the contract runs against."""
    BACKENDS.append(fn.__name__)
    return pytest.fixture(fn)


@backend_factory
def memory(tmp_path: Path) -> Maker:
    store: list[MemoryBackend] = []

    def make(**kwargs: Any) -> MemoryBackend:
        # One store per test: later calls share the first backend's (as a file is shared).
        if not store or kwargs:
            store.append(MemoryBackend(**kwargs))
        return store[-1]

    return Maker(make)


TTL_BACKENDS.append("memory")


@backend_factory
def file(tmp_path: Path) -> Maker:
    return Maker(lambda **kw: FileBackend(tmp_path / "files", **kw))


@backend_factory
def log(tmp_path: Path) -> Maker:
    return Maker(lambda **kw: LogBackend(tmp_path / "store.log", **kw))


@backend_factory
def sqlite(tmp_path: Path) -> Maker:
    return Maker(lambda **kw: SqliteBackend(tmp_path / "store.sqlite3", **kw))


@backend_factory
def redis(redis_server: RedisServer) -> Maker:
    """A RedisBackend on the session's redis-server, emptied for the test. Its TTL runs on the
    server's clock (no clock= to inject): test_redis_backend.py tests it."""
    from pytest_cachemock.backends.redis import RedisBackend

    redis_server.flush()
    return Maker(lambda **kw: RedisBackend(redis_server.url, **kw))


@backend_factory
def mock() -> Iterator[Maker]:
    registry = Registry()
    registry.add(KIND, origin="test_backend_contract")
    with PatchCaches(registry=registry):
        yield Maker(lambda: MockBackend(KIND), sized=False)


@backend_factory
def mock_of_log() -> Iterator[Maker]:
    """The mock standing in for a LogBackend (bytes only): the contract, and the log's refusals."""
    registry = Registry()
    registry.add(KIND, origin="test_backend_contract")
    with PatchCaches(registry=registry):
        yield Maker(lambda: MockBackend.replacing(KIND, LogBackend), sized=False)


@pytest.fixture(params=BACKENDS)
def maker(request: pytest.FixtureRequest) -> Maker:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def backend(maker: Maker) -> Backend[Any]:
    return maker.make()


def counts(backend: Backend[Any]) -> dict[str, int]:
    """What ``cache_stats`` counted under the backend's name; for the mock, checked to agree
    with the counts of its kind in the current store."""
    got = cache_stats.snapshot().get(backend.name, dict.fromkeys(("hit", "miss", "put"), 0))
    got = {"exception": 0, **got}
    if isinstance(backend, MockBackend):
        record = current_store().record(backend.kind)
        assert (record.hits, record.misses, record.puts, record.errors) == (
            got["hit"],
            got["miss"],
            got["put"],
            got["exception"],
        )
    return got


def counted(hit: int = 0, miss: int = 0, put: int = 0, exception: int = 0) -> dict[str, int]:
    return {"hit": hit, "miss": miss, "put": put, "exception": exception}


# -- entries -------------------------------------------------------------------------------


def test_a_get_on_an_empty_store_is_a_miss(backend: Backend[Any]) -> None:
    assert backend.get("absent") is None
    assert list(backend.items()) == []
    assert counts(backend) == counted(miss=1)


def test_a_put_is_read_back(backend: Backend[Any], maker: Maker) -> None:
    backend.put("k", b"value")
    assert backend.get("k") == b"value"
    assert maker.make().get("k") == b"value"  # another backend over the same store
    assert counts(backend) == counted(hit=2, put=1)  # both count under the class's name


def test_a_put_replaces_longer_and_shorter_values(backend: Backend[Any], maker: Maker) -> None:
    backend.put("k", b"first")
    backend.put("other", b"stays")
    backend.put("k", b"a much longer second value " * 10)
    assert backend.get("k") == b"a much longer second value " * 10
    backend.put("k", b"short")
    assert backend.get("k") == b"short"
    assert dict(backend.items()) == {"k": b"short", "other": b"stays"}
    if maker.sized:
        assert len(backend) == 2  # type: ignore[arg-type]
    assert counts(backend) == counted(hit=2, put=4)


@pytest.mark.parametrize(
    "value",
    [bytes(range(256)) * 4, b"\x00", b"\x00" * 1000 + b"end", b"", b"\xff\xfe\x00\x01"],
    ids=["every-byte", "nul", "nuls-then-text", "empty", "bom-like"],
)
def test_every_byte_value_round_trips(backend: Backend[Any], value: bytes) -> None:
    backend.put("k", value)
    got = backend.get("k")
    assert got == value
    assert type(got) is bytes
    assert dict(backend.items()) == {"k": value}
    assert counts(backend) == counted(hit=1, put=1)  # an empty value is a hit, not a miss


def test_a_one_mebibyte_value_round_trips(backend: Backend[Any], maker: Maker) -> None:
    value = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and 4 bytes
    backend.put("big", value)
    backend.put("after", b"small")
    assert backend.get("big") == value
    assert maker.make().get("big") == value
    assert backend.get("after") == b"small"


ODD_KEYS = [
    "",
    "ключ/日本語/🔑",
    "e\u0301 vs \u00e9",
    "\u00e9",  # é, and
    "e\u0301",  # é spelled another way: two keys
    "/",
    "a/b/c",
    "/etc/passwd",
    "..",
    "../x",
    ".",
    "\x00",
    "a\x00b",
    "\n",
    "line one\nline two\r\n",
    "\t %_*?[]'\"\\",
    "%_*?[]\t\n\r\x00\x01\x7f",
    "'; DROP TABLE cachemock_entries; --",
    "../../../../../../../../tmp/escaped",
    "C:\\Windows\\system32",
    "~/.ssh/id_rsa",
    "\ud800",  # a lone high surrogate
    "x\udfffy",  # a lone low surrogate
    "k" * 10_000,
    "k" * 100_000,
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:24])
def test_an_odd_key_round_trips_alone(backend: Backend[Any], key: str) -> None:
    backend.put(key, b"value")
    assert backend.get(key) == b"value"
    assert dict(backend.items()) == {key: b"value"}
    assert backend.delete(key) is True
    assert backend.get(key) is None
    assert list(backend.items()) == []
    assert counts(backend) == counted(hit=1, miss=1, put=1)


def test_odd_keys_together_are_distinct_entries(backend: Backend[Any], maker: Maker) -> None:
    expected = {key: str(n).encode() for n, key in enumerate(ODD_KEYS)}
    for key, value in expected.items():
        backend.put(key, value)
    again = maker.make()
    for key, value in expected.items():
        assert backend.get(key) == value
        assert again.get(key) == value
    assert dict(backend.items()) == expected
    if maker.sized:
        assert len(backend) == len(ODD_KEYS)  # type: ignore[arg-type]


def test_threads_putting_one_key_leave_one_whole_value(backend: Backend[Any]) -> None:
    """8 real threads put values of 8 sizes under one key, 10 times each: every read is one
    of the values whole, never a mix. The mock's threads share one store: threads started
    while a ``PatchCaches`` runs use its store (isolation ``thread`` follows the test)."""
    values = [bytes([n]) * (20_000 * (n + 1)) for n in range(8)]
    start = threading.Barrier(8)
    written = threading.Barrier(8)
    read: list[bytes | None] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for _ in range(10):
                backend.put("shared", values[n])
            written.wait()
            read.append(backend.get("shared"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(read) == 8
    final = backend.get("shared")
    assert final in values
    assert all(got == final for got in read)  # all were read after every put
    assert cache_stats.snapshot()[backend.name] == counted(hit=9, put=80)


# -- add -----------------------------------------------------------------------------------


def test_add_stores_only_where_nothing_is(backend: Backend[Any]) -> None:
    assert backend.add("k", b"first") is True  # a put
    assert backend.add("k", b"second") is False  # a hit: the entry stays
    assert backend.get("k") == b"first"
    assert backend.add("empty", b"") is True
    assert backend.add("empty", b"other") is False  # an empty value is an entry too
    assert backend.delete("k") is True
    assert backend.add("k", b"third") is True
    backend.put("k", b"replaced")  # put replaces what add stored
    assert backend.get("k") == b"replaced"
    assert dict(backend.items()) == {"k": b"replaced", "empty": b""}
    assert counts(backend) == counted(hit=4, put=4)


# -- refusals ------------------------------------------------------------------------------


class StrKey(str):
    pass


@pytest.mark.parametrize("bad", [b"bytes-key", 3, None, ("a",), StrKey("k")], ids=repr)
def test_a_key_that_is_not_a_str_is_refused_and_counted(backend: Backend[Any], bad: Any) -> None:
    name = type(backend).__qualname__
    for op, call in (
        ("get", lambda: backend.get(bad)),
        ("put", lambda: backend.put(bad, b"v")),
        ("add", lambda: backend.add(bad, b"v")),
    ):
        with pytest.raises(KeyEncodingError, match=rf"^{name}\.{op}: keys are str, got a "):
            call()
    with pytest.raises(KeyEncodingError, match=rf"^{name}\.peek: keys are str"):
        backend.peek(bad)  # refused too, but counted nowhere
    assert list(backend.items()) == []
    assert counts(backend) == counted(exception=3)


def test_storing_none_is_refused_and_counted(backend: Backend[Any]) -> None:
    name = type(backend).__qualname__
    for store in (backend.put, backend.add):
        with pytest.raises(UserError, match=rf"^{name}: cannot store None for key 'new'"):
            store("new", None)
    backend.put("k", b"v")
    with pytest.raises(UserError, match="cannot store None for key 'k'"):
        backend.put("k", None)
    assert backend.get("k") == b"v"  # what was stored stays
    assert backend.get("new") is None
    assert dict(backend.items()) == {"k": b"v"}
    assert counts(backend) == counted(hit=1, miss=1, put=1, exception=3)


@pytest.mark.parametrize("value", [1.5, "text", {"a": 1}, [b"x"]], ids=repr)
def test_stores_bytes_says_what_is_refused(backend: Backend[Any], value: Any) -> None:
    """A backend whose ``stores_bytes`` is True refuses a value that is not bytes-like (a
    ValueEncodingError, counted) and stores bytearray and memoryview as bytes; one whose flag
    is False stores it."""
    if not backend.stores_bytes:
        backend.put("k", value)
        assert backend.get("k") == value
        return
    for store in (backend.put, backend.add):
        with pytest.raises(
            ValueEncodingError,
            match=rf" stores bytes, got a {type(value).__qualname__} for key 'k'",
        ):
            store("k", value)
    backend.put("a", bytearray(b"ab"))
    backend.add("m", memoryview(b"mv"))
    assert (backend.get("a"), backend.get("m")) == (b"ab", b"mv")
    assert type(backend.get("a")) is bytes
    assert counts(backend) == counted(hit=3, put=2, exception=2)


# -- counting ------------------------------------------------------------------------------


def test_cache_stats_count_each_operation_once(backend: Backend[Any], maker: Maker) -> None:
    assert backend.get("k") is None  # miss
    backend.put("k", b"v")  # put
    assert backend.get("k") == b"v"  # hit
    assert backend.add("k", b"w") is False  # hit
    assert backend.add("new", b"n") is True  # put
    backend.put("k", b"v2")  # put
    assert backend.peek("k") == b"v2"  # nothing
    assert backend.peek("absent") is None  # nothing
    assert sorted(backend.items()) == [("k", b"v2"), ("new", b"n")]  # nothing
    if maker.sized:
        assert len(backend) == 2  # type: ignore[arg-type]  # nothing
    assert backend.delete("k") is True  # nothing
    assert backend.delete("k") is False  # nothing
    backend.clear()  # nothing
    assert counts(backend) == counted(hit=2, miss=1, put=3)


def test_peek_counts_nothing(backend: Backend[Any]) -> None:
    backend.put("k", b"v")
    assert backend.peek("k") == b"v"
    assert backend.peek("absent") is None
    assert counts(backend) == counted(put=1)


# -- listing, deleting, clearing -----------------------------------------------------------


def test_delete_clear_and_items(backend: Backend[Any], maker: Maker) -> None:
    assert backend.lists_entries
    for key in ("a", "b", "c"):
        backend.put(key, key.encode() * 3)
    assert sorted(backend.items()) == [("a", b"aaa"), ("b", b"bbb"), ("c", b"ccc")]
    assert backend.delete("b") is True
    assert backend.delete("b") is False
    assert backend.delete("never") is False
    assert backend.get("b") is None
    assert sorted(backend.items()) == [("a", b"aaa"), ("c", b"ccc")]
    if maker.sized:
        assert len(backend) == 2  # type: ignore[arg-type]
    backend.clear()
    assert list(backend.items()) == []
    assert backend.get("a") is None
    if maker.sized:
        assert len(backend) == 0  # type: ignore[arg-type]
    backend.put("a", b"again")  # usable after clear()
    assert backend.get("a") == b"again"
    assert counts(backend) == counted(hit=1, miss=2, put=4)


# -- time to live --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=TTL_BACKENDS)
def ttl_maker(request: pytest.FixtureRequest) -> Maker:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_entries_expire_after_their_ttl(ttl_maker: Maker) -> None:
    clock = FakeClock()
    backend = ttl_maker.make(ttl=10, clock=clock)
    backend.put("k", b"v")
    clock.now = 9.99
    assert backend.get("k") == b"v"
    assert backend.peek("k") == b"v"
    assert backend.add("k", b"w") is False  # still live
    clock.now = 10.0
    assert backend.get("k") is None
    assert list(backend.items()) == []
    if ttl_maker.sized:
        assert len(backend) == 0  # type: ignore[arg-type]
    assert backend.add("k", b"w") is True  # an expired entry is no entry
    clock.now = 19.0
    assert backend.get("k") == b"w"  # the ttl runs from the add
    assert counts(backend) == counted(hit=3, miss=1, put=2)  # a refused add is a hit
