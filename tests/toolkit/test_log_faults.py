"""LogBackend under faults: damage in the middle of a log that another process indexed,
in-place damage of an indexed value, files that are not regular files at the path, a
compaction that cannot make its file, and a full disk (a real small tmpfs)."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from pathlib import Path

import pytest
from _formats import read_log, record_of, size_of, snap
from _procs import driver, fill_disk
from _selfcheck import check_value, make_value

from pytest_cachemock import LogBackend
from pytest_cachemock import SystemError as CacheSystemError

pytestmark = pytest.mark.usefixtures("fresh_stats")

NAME = "backend:LogBackend"


# -- damage in the middle, then a writer in another process -----------------------------------


@pytest.mark.slow
def test_a_reader_that_indexed_before_a_cut_never_returns_another_records_bytes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "cache.log"
    writer = LogBackend(log)
    old = {f"k{i}": make_value(f"k{i}", "old", i, 200) for i in range(100)}
    for key, value in old.items():
        writer.put(key, value)
    writer.close()
    starts = [0]
    for key, value in old.items():
        starts.append(starts[-1] + len(record_of(key, value)))

    with driver(LogBackend, log) as a, driver(LogBackend, log) as b:
        assert a("len") == 100  # A indexes the whole log
        # Damage in the middle: one byte of k50's value.
        with open(log, "r+b") as f:
            f.seek(starts[50] + 100)
            byte = f.read(1)
            f.seek(starts[50] + 100)
            f.write(bytes((byte[0] ^ 0xFF,)))
        # B indexes up to k50's record and writes: what follows it goes, new records come.
        new = {f"n{i}": make_value(f"n{i}", "new", i, 200) for i in range(100)}
        for key, value in new.items():
            b("put", key, value)
        b("put", "k10", make_value("k10", "new", 10, 300))
        assert size_of(log) > starts[100]  # A's indexed end is inside B's records now

        for key in old:
            got = a.get(key)
            if got is not None:  # a miss is allowed for what followed the damage
                assert check_value(key, got)[0] in ("old", "new"), key
        assert check_value("k10", a.get("k10") or b"") == ("new", 10)  # the last written
        for i in (0, 49):
            assert a.get(f"k{i}") == old[f"k{i}"]
        for key, value in new.items():
            assert a.get(key) == value
        assert b.get("k60") is None  # lost with the damage, for everyone
        assert a.get("k60") is None


def test_a_value_damaged_in_place_after_it_was_indexed_is_a_miss(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("a", b"alpha" * 10)
    backend.put("b", b"beta" * 10)
    assert backend.get("b") == b"beta" * 10  # indexed
    data = bytearray(log.read_bytes())
    data[-3] ^= 1  # a byte of b's value
    log.write_bytes(bytes(data))
    assert backend.get("a") == b"alpha" * 10
    assert backend.get("b") is None
    assert dict(backend.items()) == {"a": b"alpha" * 10}
    backend.put("c", b"gamma")  # rewrites the log without the damage
    assert read_log(log) == ({"a": b"alpha" * 10, "c": b"gamma"}, size_of(log))


# -- what is at the path -----------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


@pytest.mark.parametrize("make", [_fifo, _socket], ids=["fifo", "socket"])
def test_a_path_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, make: object) -> None:
    path = tmp_path / "cache.log"
    make(path)  # type: ignore[operator]
    result: list[BaseException] = []

    def open_it() -> None:
        try:
            LogBackend(path)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=open_it, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "LogBackend hung on the path"
    (exc,) = result
    assert isinstance(exc, CacheSystemError), repr(exc)
    assert repr(str(path)) in str(exc)
    assert "not a regular file" in str(exc)
    assert "pass a path" in str(exc)


def test_a_device_at_the_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.log"
    os.symlink("/dev/null", path)  # a symlink is refused as one
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(path)))):
        LogBackend(path)
    with pytest.raises(CacheSystemError, match="not a regular file"):
        LogBackend("/dev/null")


@pytest.mark.parametrize("plant", ["fifo", "directory"])
def test_a_fifo_or_directory_planted_after_open_is_refused_on_reopen(
    tmp_path: Path, plant: str
) -> None:
    path = tmp_path / "cache.log"
    backend = LogBackend(path)
    backend.put("k", b"v")
    backend.close()
    path.unlink()
    if plant == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(CacheSystemError, match=f"it is a {plant.replace('fifo', 'FIFO')} "):
        backend.get("k")
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(path)))):
        backend.put("k", b"w")
    assert snap(NAME)["exception"] == 2


# -- a compaction that cannot make its file ------------------------------------------------------


def test_an_automatic_compaction_that_fails_never_fails_the_put(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log, compact_at=0)
    blocker = Path(f"{log}.compact")
    blocker.mkdir()  # fails for root too
    (blocker / "x").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        for n in range(200):
            backend.put("k", str(n).encode())  # each one past half garbage
    assert backend.get("k") == b"199"
    warnings = [r for r in caplog.records if "compact" in r.getMessage()]
    assert 1 <= len(warnings) <= 10  # backs off: not a try on every put
    assert str(log) in warnings[0].getMessage()
    assert snap(NAME)["put"] == 200
    assert snap(NAME)["exception"] == len(warnings)
    assert read_log(log)[0] == {"k": b"199"}

    with pytest.raises(CacheSystemError, match=re.escape(repr(str(blocker)))):
        backend.compact()  # asked for: told
    assert backend.get("k") == b"199"

    (blocker / "x").unlink()
    blocker.rmdir()
    for n in range(2000):
        backend.put("k", str(n).encode())
    assert size_of(log) < 2000 * len(record_of("k", b"1999")) // 2  # compacted again
    assert backend.get("k") == b"1999"


# -- a full disk ---------------------------------------------------------------------------------


def test_a_put_on_a_full_disk_raises_stores_nothing_and_keeps_old_values(
    small_tmpfs: Path,
) -> None:
    log = small_tmpfs / "cache.log"
    backend = LogBackend(log, compact_at=None)
    backend.put("a", b"alpha")
    backend.put("b", b"beta")
    before = size_of(log)
    filler = fill_disk(small_tmpfs, keep=4096)
    with pytest.raises(CacheSystemError, match="nothing was stored") as info:
        backend.put("b", b"x" * 100_000)
    assert repr(str(log)) in str(info.value)
    assert size_of(log) == before  # no torn record left behind
    assert backend.get("b") == b"beta"
    backend.close()
    assert backend.get("a") == b"alpha"
    assert backend.get("b") == b"beta"
    filler.unlink()
    backend.put("b", b"x" * 100_000)
    assert read_log(log) == ({"a": b"alpha", "b": b"x" * 100_000}, size_of(log))


def test_an_automatic_compaction_on_a_full_disk_never_fails_the_put(
    small_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = small_tmpfs / "cache.log"
    backend = LogBackend(log, compact_at=1 << 30)
    for size in (50_000, 40_000):  # more than half garbage, 400 kB live
        for i in range(10):
            backend.put(f"k{i}", bytes(size))
    filler = fill_disk(small_tmpfs, keep=16384)
    backend.compact_at = 0
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        backend.put("k1", b"small too")  # fits; its compaction does not
    assert backend.get("k1") == b"small too"
    assert any("compact" in r.getMessage() for r in caplog.records)
    assert not Path(f"{log}.compact").exists()
    filler.unlink()
    backend.close()
    assert backend.get("k1") == b"small too"
    assert len(backend) == 10
    assert backend.get("k2") == bytes(40_000)


@pytest.mark.slow
def test_a_log_cut_behind_every_index_and_written_again_is_read_afresh(tmp_path: Path) -> None:
    # Cut at a record boundary by something else than a LogBackend, then written past the
    # old end by another process: a reader's index is stale, and its scan lands mid-record.
    log = tmp_path / "cache.log"
    writer = LogBackend(log)
    old = {f"k{i}": make_value(f"k{i}", "old", i, 200) for i in range(40)}
    for key, value in old.items():
        writer.put(key, value)
    writer.close()
    cut_at = sum(len(record_of(f"k{i}", old[f"k{i}"])) for i in range(20))

    with driver(LogBackend, log) as a:
        assert a("len") == 40
        os.truncate(log, cut_at)
        with driver(LogBackend, log) as b:
            b("put", "k5", make_value("k5", "new", 5, 300))
            for i in range(40):
                b("put", f"n{i}", make_value(f"n{i}", "new", i, 250))
        assert size_of(log) > 2 * cut_at
        assert check_value("k5", a.get("k5") or b"") == ("new", 5)
        assert a.get("n39") == make_value("n39", "new", 39, 250)
        assert a.get("k30") is None
        assert a.get("k3") == old["k3"]


def test_a_damaged_log_on_a_full_disk_refuses_writes_and_keeps_its_values(
    small_tmpfs: Path,
) -> None:
    log = small_tmpfs / "cache.log"
    backend = LogBackend(log)
    for i in range(10):
        backend.put(f"k{i}", bytes([i]) * 50_000)
    with open(log, "ab") as f:
        f.write(b"\xff" * 333)  # damage after the last record
    damaged = log.read_bytes()
    filler = fill_disk(small_tmpfs, keep=16384)  # no room for the rewrite
    with pytest.raises(CacheSystemError, match=r"could not be rewritten.*nothing was stored"):
        backend.put("new", b"n")
    assert log.read_bytes() == damaged
    assert not Path(f"{log}.compact").exists()
    assert backend.get("k9") == bytes([9]) * 50_000
    assert backend.get("new") is None
    filler.unlink()
    backend.put("new", b"n")
    entries, end = read_log(log)
    assert end == size_of(log)
    assert entries == {**{f"k{i}": bytes([i]) * 50_000 for i in range(10)}, "new": b"n"}
