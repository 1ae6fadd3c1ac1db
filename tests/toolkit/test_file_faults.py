"""FileBackend under faults: hostile files at an entry's name (random bytes, a directory, a
FIFO), a full disk, and many threads writing values of different sizes to one key.
"""

from __future__ import annotations

import json
import logging
import os
import random
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _procs import (
    PATIENCE,
    RW_WORKER,
    backend_args,
    fill_disk,
    last_json,
    run_threads,
    start_together,
    workers,
)
from _selfcheck import check_value, make_value

from pytest_cachemock import FileBackend, cache_stats

pytestmark = pytest.mark.usefixtures("fresh_stats")


def _in_thread(call: Callable[[], Any], unblock: Callable[[], None] | None = None) -> Any:
    """``call()`` run in a thread that must finish within a few seconds; its result."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5.0)
    hung = thread.is_alive()
    if hung and unblock is not None:
        unblock()  # let the stuck thread go, so it does not outlive the test
        thread.join(PATIENCE)
    assert not hung, "the call did not return within 5 s"
    if errors:
        raise errors[0]
    return out[0]


def _counted_miss(
    backend: FileBackend, key: str, caplog: pytest.LogCaptureFixture, **thread: Any
) -> str:
    """get(key) is a miss with one exception count and one warning; the warning's text."""
    before = cache_stats.snapshot().get(backend.name, {})
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        caplog.clear()
        assert _in_thread(lambda: backend.get(key), **thread) is None
    after = cache_stats.snapshot()[backend.name]
    assert after["miss"] - before.get("miss", 0) == 1
    assert after["exception"] - before.get("exception", 0) == 1
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "treated as a miss" in message
    assert backend.path_for(key) in message
    return message


# -- random bytes ----------------------------------------------------------------------------

HEADER = struct.Struct(">4sIQ8s")


def _blobs() -> list[tuple[str, bytes]]:
    rng = random.Random(13)
    found = [(f"random-{n}", rng.randbytes(n)) for n in (1, 23, 24, 25, 100, 70_000)]
    # Header-sized and slightly larger, with our magic and lengths no file can hold.
    huge = HEADER.pack(b"CMF\x02", 2**32 - 1, 2**64 - 1, b"\0" * 8)
    found.append(("huge-lengths", huge))
    found.append(("huge-lengths-plus", huge + b"k" * 100))
    found.append(("huge-value", HEADER.pack(b"CMF\x02", 1, 2**40, b"\0" * 8) + b"kv"))
    # Random bytes behind someone else's magic, with lengths that overflow an index.
    found.append(("foreign-huge", b"\xff" * 24 + rng.randbytes(1000)))
    return found


@pytest.mark.parametrize(("name", "blob"), _blobs(), ids=[n for n, _ in _blobs()])
def test_an_entry_of_random_bytes_is_a_counted_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, blob: bytes
) -> None:
    backend = FileBackend(tmp_path)
    Path(backend.path_for("k")).write_bytes(blob)
    _counted_miss(backend, "k", caplog)
    # items() and len() skip it (counting it), add() and put() replace it.
    assert list(backend.items()) == []
    assert len(backend) == 0
    assert backend.add("k", b"mine") is True
    assert backend.get("k") == b"mine"
    Path(backend.path_for("k")).write_bytes(blob)
    backend.put("k", b"again")
    assert backend.get("k") == b"again"


# -- a directory or a FIFO at an entry's name ------------------------------------------------


def test_a_directory_at_an_entrys_name_is_a_counted_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FileBackend(tmp_path / "store")
    path = Path(backend.path_for("k"))
    path.mkdir()
    assert "not a regular file" in _counted_miss(backend, "k", caplog)
    assert list(backend.items()) == []
    assert len(backend) == 0
    # An empty directory is no one's data: put and add replace it with the entry.
    backend.put("k", b"v")
    assert backend.get("k") == b"v"
    backend.delete("k")
    path.mkdir()
    assert backend.add("k", b"w") is True
    assert backend.get("k") == b"w"


def test_put_over_a_directory_with_files_in_it_raises_and_removes_nothing(
    tmp_path: Path,
) -> None:
    backend = FileBackend(tmp_path / "store")
    path = Path(backend.path_for("k"))
    path.mkdir()
    (path / "someone's").write_bytes(b"precious")
    with pytest.raises(IsADirectoryError, match="is a directory, not an entry") as info:
        backend.put("k", b"v")
    assert str(path) in str(info.value)
    assert "remove it" in str(info.value)
    assert (path / "someone's").read_bytes() == b"precious"
    assert cache_stats.snapshot()[backend.name]["exception"] == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_at_an_entrys_name_is_a_counted_miss_and_nothing_hangs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FileBackend(tmp_path / "store")
    path = backend.path_for("k")
    os.mkfifo(path, 0o600)

    def unblock() -> None:
        # A reader stuck in open() of a FIFO is let go by a writer opening it (and back).
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        os.close(fd)

    assert "not a regular file" in _counted_miss(backend, "k", caplog, unblock=unblock)
    assert _in_thread(lambda: list(backend.items()), unblock) == []
    assert _in_thread(lambda: len(backend), unblock) == 0
    # put replaces the FIFO with an entry and writes nothing into the FIFO.
    _in_thread(lambda: backend.put("k", b"v"), unblock)
    assert Path(path).is_file()
    assert backend.get("k") == b"v"
    # The same with someone holding the FIFO open for reading (its data would go to them).
    os.unlink(path)
    os.mkfifo(path, 0o600)
    listener = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert _in_thread(lambda: backend.add("k", b"w"), unblock) is True
        assert os.read(listener, 100) == b""  # nothing was written through it
    finally:
        os.close(listener)
    assert backend.get("k") == b"w"


# -- a full disk -----------------------------------------------------------------------------


def test_a_put_that_fails_on_a_full_disk_leaves_the_old_value(small_tmpfs: Path) -> None:
    backend = FileBackend(small_tmpfs / "store")
    backend.put("k", b"old value")
    filler = fill_disk(small_tmpfs, keep=0)
    try:
        with pytest.raises(OSError, match="No space left") as info:
            backend.put("k", b"x" * 500_000)
        assert backend.path_for("k") in str(info.value)
        assert cache_stats.snapshot()[backend.name]["exception"] == 1
        assert backend.get("k") == b"old value"
        # A value that fits in the old entry's space is still written.
        backend.put("k", b"new")
        assert backend.get("k") == b"new"
    finally:
        filler.unlink()
    backend.put("k", b"x" * 500_000)
    assert backend.get("k") == b"x" * 500_000


def test_a_new_key_that_fails_on_a_full_disk_is_a_plain_miss(small_tmpfs: Path) -> None:
    backend = FileBackend(small_tmpfs / "store")
    backend.put("other", b"there before")
    filler = fill_disk(small_tmpfs, keep=0)
    try:
        with pytest.raises(OSError, match="No space left"):
            backend.put("new", b"y" * 300_000)
        with pytest.raises(OSError, match="No space left"):
            backend.add("new2", b"y" * 300_000)
        assert backend.get("new") is None
        assert backend.get("new2") is None
        snap = cache_stats.snapshot()[backend.name]
        assert snap["exception"] == 2  # the two failed writes; the misses are plain ones
        assert dict(backend.items()) == {"other": b"there before"}
    finally:
        filler.unlink()


# -- many writers of one key -----------------------------------------------------------------


def test_threads_writing_one_key_in_many_sizes_never_show_a_torn_entry(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    sizes = [100, 5_000, 64_000, 65_536, 70_000, 150_000]
    backend.put("k", make_value("k", "w0", 0, 100))
    writers, readers, rounds = 3, 3, 300

    def work(n: int, start: threading.Barrier) -> dict[str, int]:
        rng = random.Random(n)
        seen = {"hit": 0, "miss": 0}
        start.wait(PATIENCE)
        for i in range(rounds):
            if n < writers:
                backend.put("k", make_value("k", f"w{n}", i, rng.choice(sizes)))
            else:
                value = backend.get("k")
                if value is None:
                    seen["miss"] += 1
                else:
                    check_value("k", value)  # raises on a torn or mixed value
                    seen["hit"] += 1
        return seen

    results = run_threads(writers + readers, work)
    snap = cache_stats.snapshot()[backend.name]
    assert snap["exception"] == 0
    # The key is always there: every read finds a whole value (old or new), never a miss.
    assert sum(r["miss"] for r in results) == 0
    assert sum(r["hit"] for r in results) == readers * rounds


@pytest.mark.slow
def test_processes_writing_one_key_in_big_sizes_never_count_a_torn_entry(tmp_path: Path) -> None:
    """More processes than cores, all on one key, values up to 2 MB: a writer is often
    descheduled half-way through a write, and its readers must still see whole entries."""
    directory = tmp_path / "shared"
    sizes = json.dumps([1000, 70_000, 500_000, 1_000_000, 2_000_000])
    args = [
        [*backend_args(FileBackend, directory), f"w{n}", "150", str(n), "1", sizes]
        for n in range(6)
    ]
    with workers(RW_WORKER, args) as procs:
        start_together(procs)
        reports = [last_json(p) for p in procs]
    for report in reports:
        assert report["bad"] == []
        assert report["stats"].get("exception", 0) == 0
    assert sum(r["foreign"] for r in reports) > 0
    assert sum(r["big"] for r in reports) > 0
