from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from pytest_cachemock import FileBackend, MemoryBackend, ValueEncodingError, cache_stats

pytestmark = pytest.mark.usefixtures("fresh_stats")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_lru_evicts_least_recently_used() -> None:
    backend = MemoryBackend(max_entries=2)
    backend.put("a", 1)
    backend.put("b", 2)
    assert backend.get("a") == 1  # a is now the most recent
    backend.put("c", 3)
    assert backend.get("b") is None
    assert dict(backend.items()) == {"a": 1, "c": 3}


def test_memory_ttl_by_injected_clock() -> None:
    clock = FakeClock()
    backend = MemoryBackend(ttl=10, clock=clock)
    backend.put("k", "v")
    clock.now = 9.99
    assert backend.get("k") == "v"
    clock.now = 10.0
    assert backend.get("k") is None
    assert len(backend) == 0
    assert cache_stats.snapshot()["backend:MemoryBackend"] == {
        "hit": 1,
        "miss": 1,
        "put": 1,
        "exception": 0,
    }


def test_memory_add_replaces_only_expired() -> None:
    clock = FakeClock()
    backend = MemoryBackend(ttl=1, clock=clock)
    assert backend.add("k", 1)
    assert not backend.add("k", 2)
    clock.now = 5
    assert backend.add("k", 3)
    assert backend.get("k") == 3


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


def test_file_round_trip_and_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    backend = FileBackend(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert os.listdir(directory) == []
    assert backend.get("k") is None
    backend.put("k", b"value")
    assert backend.get("k") == b"value"
    (entry,) = os.listdir(directory)
    assert stat.S_IMODE((directory / entry).stat().st_mode) == 0o600
    backend.put("k", b"second")
    assert backend.get("k") == b"second"
    assert dict(backend.items()) == {"k": b"second"}


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


def test_file_add_and_clear(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    assert backend.add("k", b"1")
    assert not backend.add("k", b"2")
    assert backend.get("k") == b"1"
    backend.clear()
    assert backend.get("k") is None
    assert len(backend) == 0


def test_file_shorter_value_over_longer_one(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"a long first value " * 10)
    backend.put("k", b"short")
    assert backend.get("k") == b"short"
    assert dict(backend.items()) == {"k": b"short"}
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 0


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
