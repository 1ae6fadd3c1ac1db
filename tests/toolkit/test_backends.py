from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
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
    ValueEncodingError,
    cache_stats,
)
from pytest_cachemock.backends import Backend
from pytest_cachemock.errors import KeyEncodingError, UserError
from pytest_cachemock.kinds import Registry
from pytest_cachemock.mock import current_store

pytestmark = pytest.mark.usefixtures("fresh_stats")


def test_memory_lru_evicts_least_recently_used() -> None:
    backend = MemoryBackend(max_entries=2)
    backend.put("a", 1)
    backend.put("b", 2)
    assert backend.get("a") == 1  # a is now the most recent
    backend.put("c", 3)
    assert backend.get("b") is None
    assert dict(backend.items()) == {"a": 1, "c": 3}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": "5"}, "ttl"),
    ],
)
def test_memory_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MemoryBackend(**kwargs)  # type: ignore[arg-type]


def test_file_permissions_and_one_file_per_entry(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    backend = FileBackend(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert os.listdir(directory) == []
    backend.put("k", b"value")
    (entry,) = os.listdir(directory)
    assert stat.S_IMODE((directory / entry).stat().st_mode) == 0o600
    backend.put("k", b"second")
    assert os.listdir(directory) == [entry]  # replaced in place


def test_file_rejects_non_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueEncodingError, match="stores bytes, got a dict for key 'k'"):
        FileBackend(tmp_path).put("k", {"a": 1})  # type: ignore[arg-type]


def test_file_corrupt_entry_is_a_miss_and_an_exception(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"value")
    path = Path(backend.path_for("k"))
    path.write_bytes(path.read_bytes()[:-2])
    assert backend.get("k") is None
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 1
    assert cache_stats.snapshot()["backend:FileBackend"]["miss"] == 1


def test_file_damaged_value_is_a_miss_an_exception_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"value")
    path = Path(backend.path_for("k"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same length, same key: only the digest tells
    path.write_bytes(bytes(data))
    assert backend.get("k") is None
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 1
    assert "digest mismatch" in caplog.text


def test_file_read_overlapping_a_write_waits_for_the_whole_entry(tmp_path: Path) -> None:
    """A writer holds the entry's exclusive flock while the file is half old, half new: a
    reader does not count damage, it waits for the writer and reads the new entry."""
    fcntl = pytest.importorskip("fcntl")
    backend = FileBackend(tmp_path)
    backend.put("k", b"old value " * 10)
    backend.put("k", b"new value " * 10)
    path = backend.path_for("k")
    new = Path(path).read_bytes()
    backend.put("k", b"old value " * 10)
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, new[: len(new) // 2], 0)  # torn: the digest cannot match
        got: list[bytes | None] = []
        reader = threading.Thread(target=lambda: got.append(backend.get("k")))
        reader.start()
        reader.join(0.2)  # the reader is behind the lock (or about to be)
        os.pwrite(fd, new[len(new) // 2 :], len(new) // 2)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    reader.join(10)
    assert got == [b"new value " * 10]
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 0


def test_file_empty_entry_is_a_plain_miss(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    Path(backend.path_for("k")).write_bytes(b"")  # a writer that has only created the file
    assert backend.get("k") is None
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 0


# -- capabilities: each flag is true exactly where its methods work ----------------------------


class BareBackend(Backend[Any]):
    """A backend as a user writes one: _get and _put only, no capability declared."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}

    def _get(self, key: str) -> Any:
        return self.data.get(key)

    def _put(self, key: str, value: Any) -> None:
        self.data[key] = value


@pytest.fixture
def mock_store() -> Iterator[None]:
    registry = Registry()
    registry.add("flagged", origin="test")
    with PatchCaches(registry=registry):
        yield


def make_backend(kind: str, tmp_path: Path) -> Backend[Any]:
    if kind == "memory":
        return MemoryBackend()
    if kind == "file":
        return FileBackend(tmp_path / "files", lock_timeout=0.5)
    if kind == "log":
        return LogBackend(tmp_path / "store.log", lock_timeout=0.5)
    if kind == "sqlite":
        return SqliteBackend(tmp_path / "store.db", lock_timeout=0.5)
    if kind == "mock":
        return MockBackend("flagged")
    assert kind == "bare"
    return BareBackend()


KINDS = ["memory", "file", "log", "sqlite", "mock", "bare"]
# What each backend declares: (lists_entries, locks_keys, writes_behind).
DECLARED = {
    "memory": (True, False, False),
    "file": (True, True, True),
    "log": (True, False, False),
    "sqlite": (True, False, False),
    "mock": (True, False, False),
    "bare": (False, False, False),
}


def _works(call: Callable[[], object]) -> bool:
    """False when ``call`` raises the base class's "cannot" UserError, True when it works."""
    try:
        call()
    except UserError as exc:
        if "this backend cannot" not in str(exc):
            raise
        return False
    return True


@pytest.mark.usefixtures("mock_store")
@pytest.mark.parametrize("kind", KINDS)
def test_each_flag_is_true_exactly_where_its_methods_work(kind: str, tmp_path: Path) -> None:
    backend = make_backend(kind, tmp_path)
    value = b"v" if kind in ("file", "log", "sqlite") else "v"
    backend.put("a", value)
    backend.put("b", value)
    assert (backend.lists_entries, backend.locks_keys, backend.writes_behind) == DECLARED[kind]

    listed: list[object] = []
    assert _works(lambda: listed.extend(backend.items())) is backend.lists_entries
    deleted: list[bool] = []
    assert _works(lambda: deleted.append(backend.delete("a"))) is backend.lists_entries
    assert _works(backend.clear) is backend.lists_entries
    if backend.lists_entries:
        assert sorted(listed) == [("a", value), ("b", value)]
        assert deleted == [True]
        assert backend.get("a") is None  # cleared
        assert backend.get("b") is None
        assert backend.delete("b") is False
    else:
        assert backend.get("a") == value  # nothing was removed

    def locked() -> None:
        with backend.lock("a"):
            pass

    assert _works(locked) is backend.locks_keys


@pytest.mark.usefixtures("mock_store")
@pytest.mark.parametrize(
    ("kind", "call", "what"),
    [
        ("bare", "items", "items(): this backend cannot list its entries (its lists_entries is"),
        ("bare", "delete", "delete(): this backend cannot delete entries (its lists_entries is"),
        ("bare", "clear", "clear(): this backend cannot clear its entries (its lists_entries"),
        ("bare", "lock", "lock(): this backend cannot lock keys between processes (its "),
        ("memory", "lock", "lock(): this backend cannot lock keys between processes (its "),
        ("mock", "lock", "lock(): this backend cannot lock keys between processes (its "),
        ("sqlite", "lock", "lock(): this backend cannot lock keys between processes (its "),
    ],
)
def test_what_a_backend_cannot_do_is_a_user_error_naming_it_and_the_flag(
    kind: str, call: str, what: str, tmp_path: Path
) -> None:
    backend = make_backend(kind, tmp_path)
    args = () if call in ("items", "clear") else ("k",)
    with pytest.raises(UserError) as caught:
        getattr(backend, call)(*args)
    message = str(caught.value)
    assert message.startswith(f"{type(backend).__qualname__}.{what}")
    flag = "locks_keys" if call == "lock" else "lists_entries"
    assert f"check backend.{flag} before calling it, or use a backend that can (" in message


def test_a_file_backend_lock_holds_between_processes(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path, lock_timeout=0.05)
    child = (
        "import sys\n"
        "from pytest_cachemock import FileBackend\n"
        "from pytest_cachemock.errors import FileLockTimeoutError\n"
        "try:\n"
        f"    with FileBackend({str(tmp_path)!r}, lock_timeout=0.05).lock('k'):\n"
        "        sys.exit(0)\n"
        "except FileLockTimeoutError:\n"
        "    sys.exit(3)\n"
    )

    def run_child() -> int:
        return subprocess.run([sys.executable, "-c", child], check=False).returncode

    with backend.lock("k"):
        assert run_child() == 3  # held here: the other process times out
    assert run_child() == 0


@pytest.mark.usefixtures("mock_store")
def test_lock_timeout_sidecar_path_and_keeps_limits(tmp_path: Path) -> None:
    assert BareBackend().lock_timeout == MemoryBackend().lock_timeout == 10.0
    for kind in ("file", "log", "sqlite"):
        assert make_backend(kind, tmp_path).lock_timeout == 0.5
    assert FileBackend(tmp_path / "d", lock_timeout=2).lock_timeout == 2.0

    for kind in ("memory", "mock", "bare"):
        assert make_backend(kind, tmp_path).sidecar_path("x.lock") is None
    assert make_backend("file", tmp_path).sidecar_path("x.lock") == str(tmp_path / "files/x.lock")
    assert make_backend("log", tmp_path).sidecar_path(".x") == str(tmp_path / "store.log.x")
    assert make_backend("sqlite", tmp_path).sidecar_path(".x") == str(tmp_path / "store.db.x")

    assert MemoryBackend(max_entries=3).keeps_limits is True
    assert MemoryBackend(ttl=5).keeps_limits is True
    for kind in KINDS:
        assert make_backend(kind, tmp_path).keeps_limits is False


@pytest.mark.usefixtures("mock_store")
@pytest.mark.parametrize("kind", KINDS)
def test_peek_reads_without_counting(kind: str, tmp_path: Path) -> None:
    backend = make_backend(kind, tmp_path)
    backend.put("k", b"v")
    cache_stats.reset()
    assert backend.peek("k") == b"v"
    assert backend.peek("missing") is None
    with pytest.raises(KeyEncodingError, match=r"\.peek: keys are str, got a int \(3\)"):
        backend.peek(3)  # type: ignore[arg-type]
    assert cache_stats.snapshot() == {}
    if isinstance(backend, MockBackend):
        assert current_store().record("flagged").hits == 0
        assert current_store().record("flagged").misses == 0
        assert current_store().record("flagged").errors == 0
