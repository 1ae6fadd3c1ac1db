"""LogBackend: entries, files and permissions, refusals, persistence and the index kept up to
date from the file, compaction, damage and killed writers, lock timeouts, fork and reopening.
What it does as SqliteBackend does (counting, refusals of a directory, a symlink or a bad
lock timeout, persistence, threads, processes sharing keys) is in test_disk_backends.py.

Values shared between threads or processes check themselves: each holds its key, its writer,
its size and a SHA-256 of the rest, so a reader tells a whole value of the right key from a
torn, mixed or foreign one without knowing which writer came last.

The log is read back here (``read_log``, in _formats) by the module's own record reader on a
fresh handle, so that what is on disk is checked without any backend's live index; the bytes
of one record are pinned by hand in ``test_the_format_read_here_is_the_modules``, so the
module's writer and reader cannot drift from the format together. Reading a file opens and
closes a descriptor of it, and closing any descriptor drops every POSIX lock the process
holds on the file: ``read_log`` is only called while no thread of this process is writing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import signal
import stat
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _formats import (
    DELETE,
    HEADER,
    MAGIC,
    PATH_KEYS,
    PUT,
    every_file,
    read_log,
    record_of,
    size_of,
    snap,
)
from _procs import KILLED_WRITER, PATIENCE, backend_args, driver, expect_line, workers
from _selfcheck import check_value, make_value

from pytest_cachemock import (
    FileLockTimeoutError,
    LockTimeoutError,
    LogBackend,
    cache_stats,
)
from pytest_cachemock import SystemError as CacheSystemError

pytestmark = pytest.mark.usefixtures("fresh_stats")

NAME = "backend:LogBackend"


# -- entries -------------------------------------------------------------------------------


def test_the_format_read_here_is_the_modules(tmp_path: Path) -> None:
    from pytest_cachemock.backends import log as log_module

    assert log_module.MAGIC == MAGIC
    assert log_module._HEADER.format == HEADER.format
    assert log_module._record(PUT, "ключ".encode(), b"v") == record_of("ключ", b"v")
    # One record written out by hand from the format in backends/log.py's docstring, with the
    # widths of its header struct (">4sB3xII8s": big-endian, three pad bytes after the type):
    key = "ключ".encode()  # d0ba d0bb d18e d187: 8 bytes
    digest = hashlib.blake2b(b"\x00" + b"\x00\x00\x00\x08" + key + b"v", digest_size=8)
    assert digest.hexdigest() == "ea2a1b4ee119c054"  # of the type, key length, key and value
    assert record_of("ключ", b"v") == bytes.fromhex(
        "434d4c01"  # magic: b"CML" and format version 1
        "00"  # record type: a put
        "000000"  # padding
        "00000008"  # key length
        "00000001"  # value length
        "ea2a1b4ee119c054"  # the digest
        "d0bad0bbd18ed187"  # the key, UTF-8
        "76"  # the value, b"v"
    )
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("a", b"1")
    backend.put("b", b"2")
    backend.delete("a")
    assert log.read_bytes() == record_of("a", b"1") + record_of("b", b"2") + record_of(
        "a", b"", DELETE
    )
    assert read_log(log) == ({"b": b"2"}, size_of(log))


# Get, put, replace, add, delete, clear, items and len, odd keys and their counts:
# tests/toolkit/test_backend_contract.py, as for every backend. Here: what they write to the log.


def test_replacements_deletes_and_clear_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("b", b"bee")
    backend.put("a", b"ay")
    backend.put("a", b"a much longer second value")  # a replacement
    backend.put("a", b"x")  # and a shorter one
    assert read_log(log) == ({"a": b"x", "b": b"bee"}, size_of(log))
    size = size_of(log)
    assert backend.delete("a") is True
    assert size_of(log) > size  # a delete is a record too
    size = size_of(log)
    assert backend.delete("a") is False
    assert backend.delete("never") is False
    assert size_of(log) == size  # nothing to delete: nothing written
    assert read_log(log) == ({"b": b"bee"}, size_of(log))
    backend.put("c", b"see")
    inode = log.stat().st_ino
    backend.clear()
    assert size_of(log) == 0  # clear() rewrites the log empty
    assert log.stat().st_ino != inode
    backend.put("b", b"again")  # usable after clear()
    assert read_log(log) == ({"b": b"again"}, size_of(log))


def test_a_refused_add_writes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    assert backend.add("k", b"first") is True
    size = size_of(log)
    assert backend.add("k", b"second") is False
    assert size_of(log) == size  # a refused add writes nothing
    backend.delete("k")
    assert backend.add("k", b"third") is True
    backend.put("k", b"replaced")
    assert read_log(log)[0] == {"k": b"replaced"}


def test_empty_and_five_megabyte_values_round_trip(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    big = os.urandom(5 * 1024 * 1024 + 3)  # more than the 1 MiB read while indexing
    backend.put("before", b"small before")
    backend.put("empty", b"")
    backend.put("big", big)
    backend.put("after", b"small after")
    got = backend.get("empty")
    assert got == b""
    assert got is not None  # an empty value is a hit, not a miss
    assert backend.add("empty", b"other") is False
    assert backend.get("big") == big
    expected = {"before": b"small before", "empty": b"", "big": big, "after": b"small after"}
    assert dict(backend.items()) == expected
    assert snap(NAME)["hit"] == 3  # get(empty), add(empty) refused, get(big)
    assert snap(NAME)["miss"] == 0
    # A fresh index, read from the file: close() forgets it, the next call reads it all.
    backend.close()
    assert backend.get("big") == big
    assert backend.get("empty") == b""
    assert dict(backend.items()) == expected
    assert read_log(log) == (expected, size_of(log))


def test_records_across_the_read_chunks_are_indexed(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    # Records of 300,000 and 1,048,600 bytes: their ends fall anywhere in the 1 MiB chunks.
    expected = {}
    for n in range(12):
        size = 1_048_600 if n % 5 == 2 else 300_000
        expected[f"k{n}"] = bytes([n]) * size
        backend.put(f"k{n}", expected[f"k{n}"])
    backend.put("tail", b"t")
    expected["tail"] = b"t"
    backend.close()
    assert len(backend) == len(expected)
    for key, value in expected.items():
        assert backend.get(key) == value
    assert snap(NAME)["exception"] == 0


@pytest.mark.slow
def test_empty_and_big_values_are_read_by_another_process(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    big = os.urandom(5 * 1024 * 1024 + 3)
    backend.put("empty", b"")
    backend.put("big", big)
    backend.put("after", b"a")
    with driver(LogBackend, log) as child:
        assert child("digest", "big") == [len(big), hashlib.sha256(big).hexdigest()]
        assert child.get("empty") == b""
        assert child.get("after") == b"a"
        assert child.get("absent") is None
        other = os.urandom(2 * 1024 * 1024)
        child("put", "from-child", other)
        child("put", "empty-from-child", b"")
    assert backend.get("from-child") == other  # the existing index reads what it appended
    assert backend.get("empty-from-child") == b""


ODD_KEYS = [
    *PATH_KEYS,
    "%_*?[]\t\n\r\x00\x01\x7f",
    "e\u0301 vs \u00e9",  # two spellings of é: two keys
    "cache.log.compact",
    "\ud800",  # a lone high surrogate
    "x\udfffy",  # a lone low surrogate
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:30])
def test_odd_keys_round_trip_and_make_no_files(tmp_path: Path, key: str) -> None:
    log = tmp_path / "inner" / "cache.log"
    backend = LogBackend(log)
    backend.put(key, b"value")
    assert every_file(tmp_path) == [log]
    backend.close()
    assert backend.get(key) == b"value"  # read back from the file
    assert read_log(log)[0] == {key: b"value"}
    assert backend.delete(key) is True
    backend.compact()
    assert every_file(tmp_path) == [log]


def test_all_odd_keys_together_are_distinct_entries(tmp_path: Path) -> None:
    log = tmp_path / "store" / "cache.log"
    backend = LogBackend(log)
    for n, key in enumerate(ODD_KEYS):
        backend.put(key, str(n).encode())
    expected = {key: str(n).encode() for n, key in enumerate(ODD_KEYS)}
    for key, value in expected.items():
        assert backend.get(key) == value
    assert len(backend) == len(ODD_KEYS)
    assert dict(backend.items()) == expected
    backend.compact()
    backend.close()
    assert dict(backend.items()) == expected
    # Nothing outside the directory, and nothing in it but the log.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert every_file(tmp_path) == [log]


# -- files, permissions and refusals -------------------------------------------------------


@pytest.mark.usefixtures("umask0")
def test_owner_only_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    log = directory / "cache.log"
    backend = LogBackend(log)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    for i in range(20):
        backend.put("k", str(i).encode())
    backend.compact()  # a new file, renamed over the log
    assert every_file(directory) == [log]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    backend.clear()  # and another
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert every_file(directory) == [log]


def test_a_symlink_planted_later_is_refused_on_reopen(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("k", b"v")
    # Replaced under the open descriptor (which sees its file unlinked and reopens the path).
    log.unlink()
    log.symlink_to(victim)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(log)))):
        backend.get("k")
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(log)))):
        backend.put("k", b"through the link")
    assert snap(NAME)["exception"] == 2
    backend.close()
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(log)))):
        backend.get("k")
    assert victim.read_bytes() == b"precious"


def test_a_planted_compaction_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("k", b"v")
    backend.put("k", b"w")
    Path(f"{log}.compact").symlink_to(victim)  # as if left by a compaction that died
    backend.compact()
    assert victim.read_bytes() == b"precious"
    assert not Path(f"{log}.compact").exists()
    assert not log.is_symlink()
    assert backend.get("k") == b"w"
    assert read_log(log) == ({"k": b"w"}, size_of(log))


@pytest.mark.parametrize(
    "content",
    [b"my precious notes, not a log\n" * 40, b"CML\x02" + b"\x00" * 60 + b"a newer format"],
    ids=["text", "newer-format"],
)
def test_a_file_that_is_not_a_log_is_not_destroyed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes"
    path.write_bytes(content)

    def open_and_write() -> None:
        LogBackend(path).put("k", b"v")

    with pytest.raises(CacheSystemError, match=re.escape(repr(str(path)))):
        open_and_write()
    assert path.read_bytes() == content


@pytest.mark.parametrize("compact_at", [-1, True, False, "x", 1.5, 4096.0])
def test_a_bad_compact_at_is_refused(tmp_path: Path, compact_at: object) -> None:
    with pytest.raises(ValueError, match="compact_at") as info:
        LogBackend(tmp_path / "store" / "cache.log", compact_at=compact_at)  # type: ignore[arg-type]
    assert repr(compact_at) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_good_compact_at_are_accepted(tmp_path: Path) -> None:
    # (and good lock timeouts: test_disk_backends.py)
    assert LogBackend(tmp_path / "c.log", compact_at=None).compact_at is None
    assert LogBackend(tmp_path / "d.log", compact_at=0).compact_at == 0
    assert LogBackend(tmp_path / "e.log").compact_at == 64 << 20


# -- persistence and the index ---------------------------------------------------------------


@pytest.mark.slow
def test_an_open_index_follows_another_processs_writes(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    for key in "abc":
        backend.put(key, f"{key} from the parent".encode())
    with driver(LogBackend, log) as child:
        assert backend.get("a") == b"a from the parent"  # indexed here
        child("put", "a", b"a overwritten by the child")
        assert child("delete", "b") is True
        child("put", "d", b"d from the child")
        assert backend.get("a") == b"a overwritten by the child"
        assert backend.get("b") is None
        assert backend.get("d") == b"d from the child"
        assert backend.add("d", b"refused") is False
        assert len(backend) == 3
        assert dict(backend.items()) == {
            "a": b"a overwritten by the child",
            "c": b"c from the parent",
            "d": b"d from the child",
        }

        child("clear")
        assert len(backend) == 0
        assert backend.get("a") is None
        child("put", "e", b"after the clear")
        assert dict(backend.items()) == {"e": b"after the clear"}

        # And the other way round, the child's index following the parent's writes.
        assert child.get("e") == b"after the clear"
        backend.put("e", b"overwritten by the parent")
        backend.delete("e")
        backend.put("f", b"f")
        assert child("items") == {"f": "f"}
        backend.clear()
        assert child("len") == 0
        assert child("stats")["exception"] == 0
    assert snap(NAME)["exception"] == 0


def test_a_log_removed_behind_its_back_is_made_again(tmp_path: Path) -> None:
    log = tmp_path / "store" / "cache.log"
    backend = LogBackend(log)
    backend.put("k", b"v")
    log.unlink()
    assert backend.get("k") is None  # what was in it went with it
    backend.put("k2", b"w")
    assert read_log(log)[0] == {"k2": b"w"}
    log.unlink()
    (tmp_path / "store").rmdir()
    backend.put("k3", b"x")  # the directory too
    assert read_log(log)[0] == {"k3": b"x"}
    assert snap(NAME)["exception"] == 0


# -- compaction ----------------------------------------------------------------------------


def test_compact_shrinks_the_log_and_keeps_every_live_entry(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log, compact_at=None)
    rng = random.Random(7)
    expected: dict[str, bytes] = {}
    for rnd in range(30):
        for n in range(30):
            key = f"key-{n}"
            expected[key] = f"{key}/{rnd}/".encode() * rng.randrange(1, 40)
            backend.put(key, expected[key])
    for n in range(0, 30, 6):
        backend.delete(f"key-{n}")
        del expected[f"key-{n}"]
    before, inode = size_of(log), log.stat().st_ino
    backend.compact()
    after = size_of(log)
    # Exactly one record per live entry is left.
    assert after == sum(len(record_of(k, v)) for k, v in expected.items())
    assert after < before / 10
    assert log.stat().st_ino != inode  # a new file renamed over the log
    assert every_file(tmp_path) == [log]
    for key, value in expected.items():
        assert backend.get(key) == value
    for n in range(0, 30, 6):
        assert backend.get(f"key-{n}") is None
    assert dict(backend.items()) == expected
    assert read_log(log) == (expected, after)
    backend.close()
    assert dict(backend.items()) == expected
    backend.put("key-0", b"after the compaction")  # appends to the new file
    assert backend.get("key-0") == b"after the compaction"
    assert read_log(log)[0] == {**expected, "key-0": b"after the compaction"}
    assert snap(NAME)["exception"] == 0


@pytest.mark.slow
def test_a_process_that_had_the_log_open_reads_the_compacted_one(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    # Short lock timeouts: a lock left behind on a replaced file would show as a timeout.
    backend = LogBackend(log, compact_at=None, lock_timeout=3)
    for n in range(10):
        backend.put(f"k{n}", f"first {n}".encode())
    with driver(LogBackend, log, compact_at=None, lock_timeout=3) as child:
        assert child.get("k3") == b"first 3"  # it has the log open and indexed
        old_inode = child("ino")
        assert old_inode == log.stat().st_ino
        for rnd in range(20):
            for n in range(10):
                backend.put(f"k{n}", f"round {rnd} of {n}".encode() * (rnd + 1))
        backend.delete("k9")
        backend.compact()
        new_inode = log.stat().st_ino
        assert new_inode != old_inode
        assert child("ino") == old_inode  # still on the replaced file...
        for n in range(9):
            assert child.get(f"k{n}") == f"round 19 of {n}".encode() * 20
        assert child.get("k9") is None
        assert child("ino") == new_inode  # ...until its next call

        # Compacted again; this time the child's first call after it is a write, which
        # must take the lock of the file now at the path, and append to it.
        backend.put("k8", b"eight")
        backend.compact()
        assert child("ino") == new_inode
        child("put", "from-child", b"into the new file")
        assert child("ino") == log.stat().st_ino
        assert backend.get("from-child") == b"into the new file"
        assert child.get("k8") == b"eight"

        # The child compacts; this process's descriptor is on the replaced file now, and
        # its first call is a write too.
        child("put", "k0", b"overwritten")
        child("compact")
        replaced = os.fstat(backend._file.fd).st_ino
        assert log.stat().st_ino != replaced
        backend.put("from-parent", b"p")
        assert os.fstat(backend._file.fd).st_ino == log.stat().st_ino
        assert backend.get("k0") == b"overwritten"
        assert backend.get("k1") == b"round 19 of 1" * 20
        assert backend.add("k1", b"refused") is False
        assert child.get("from-parent") == b"p"
        assert child("stats")["exception"] == 0
        expected = {f"k{n}": f"round 19 of {n}".encode() * 20 for n in range(1, 8)}
        expected.update({"k0": b"overwritten", "k8": b"eight"})
        expected.update({"from-child": b"into the new file", "from-parent": b"p"})
        assert dict(backend.items()) == expected
        assert {k: v.encode("latin-1") for k, v in child("items").items()} == expected
    assert read_log(log) == (expected, size_of(log))
    assert every_file(tmp_path) == [log]
    assert snap(NAME)["exception"] == 0


def test_automatic_compaction_keeps_the_file_bounded(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log, compact_at=4096)
    largest = size = compactions = 0
    expected: dict[str, bytes] = {}
    for i in range(2000):
        key = f"k{i % 10}"
        expected[key] = f"{key}:{i}:".encode() * (1 + i % 9)
        backend.put(key, expected[key])
        size, before = size_of(log), size
        largest = max(largest, size)
        compactions += size < before
    # Over 4096 bytes and more than half garbage: compacted by the write that got it there.
    assert largest <= 4096
    assert compactions > 20  # it did compact, many times
    assert dict(backend.items()) == expected
    assert read_log(log) == (expected, size_of(log))
    backend.close()
    assert dict(backend.items()) == expected
    assert every_file(tmp_path) == [log]
    assert snap(NAME) == {"hit": 0, "miss": 0, "put": 2000, "exception": 0}


def test_no_automatic_compaction_below_half_garbage_or_without_compact_at(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live.log"
    backend = LogBackend(live, compact_at=4096)
    inode = live.stat().st_ino
    for i in range(200):  # no garbage at all
        backend.put(f"k{i}", b"x" * 50)
    assert size_of(live) > 4096 * 3
    assert live.stat().st_ino == inode

    never = tmp_path / "never.log"
    backend = LogBackend(never, compact_at=None)
    inode = never.stat().st_ino
    for i in range(2000):
        backend.put(f"k{i % 10}", b"y" * 50)
    assert size_of(never) == 2000 * len(record_of("k0", b"y" * 50))
    assert never.stat().st_ino == inode


# -- damage --------------------------------------------------------------------------------

DAMAGE = ["half-a-record-appended", "last-record-cut-short", "garbage-appended", "flipped-byte"]


def damage(backend: LogBackend, log: Path, how: str) -> int:
    """Store "a" and "b", then damage what follows them; the end of "b"'s record."""
    backend.put("a", b"alpha" * 10)
    backend.put("b", b"beta" * 10)
    good_end = size_of(log)
    if how == "half-a-record-appended":  # a writer killed half-way through its write
        blob = record_of("c", b"gamma" * 20)
        with open(log, "ab") as f:
            f.write(blob[: len(blob) // 2])
    elif how == "last-record-cut-short":
        backend.put("c", b"gamma" * 20)
        assert backend.get("c") == b"gamma" * 20
        os.truncate(log, size_of(log) - 7)
    elif how == "garbage-appended":
        with open(log, "ab") as f:
            f.write(b"\xff" + random.Random(3).randbytes(332))
    else:
        backend.put("c", b"gamma" * 20)
        assert backend.get("c") == b"gamma" * 20
        data = bytearray(log.read_bytes())
        data[-1] ^= 1
        log.write_bytes(bytes(data))
    assert size_of(log) > good_end
    return good_end


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_tail_is_a_miss_then_cut_off_by_the_next_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    good_end = damage(backend, log, how)
    damaged_size = size_of(log)
    cache_stats.reset()

    # Readers see what comes before the damage, in this index and in a fresh one. (A byte
    # changed in place, in a record already indexed, is found by the CRC every read checks.)
    passes = (False, True)
    for fresh in passes:
        if fresh:
            backend.close()
        assert backend.get("a") == b"alpha" * 10
        assert backend.get("b") == b"beta" * 10
        assert backend.get("c") is None
        assert dict(backend.items()) == {"a": b"alpha" * 10, "b": b"beta" * 10}
    assert size_of(log) == damaged_size  # readers leave it alone
    hits, misses = 2 * len(passes), len(passes)
    assert snap(NAME) == {"hit": hits, "miss": misses, "put": 0, "exception": 0}
    assert read_log(log)[1] == good_end

    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        caplog.clear()
        backend.put("d", b"delta")
    assert size_of(log) == good_end + len(record_of("d", b"delta"))
    assert snap(NAME) == {"hit": hits, "miss": misses, "put": 1, "exception": 1}
    (warning,) = [r for r in caplog.records if r.name == "pytest_cachemock"]
    assert warning.levelno == logging.WARNING
    assert f"without the {damaged_size - good_end} bytes" in warning.getMessage()
    assert str(log) in warning.getMessage()

    caplog.clear()
    backend.put("c", b"gamma again")
    backend.put("a", b"alpha again")
    assert snap(NAME)["exception"] == 1  # cut once
    assert caplog.records == []
    expected = {"a": b"alpha again", "b": b"beta" * 10, "c": b"gamma again", "d": b"delta"}
    assert read_log(log) == (expected, size_of(log))
    backend.close()
    assert dict(backend.items()) == expected


@pytest.mark.parametrize("write", ["delete", "add", "clear"])
def test_other_writes_after_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, write: str
) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    good_end = damage(backend, log, "half-a-record-appended")
    cache_stats.reset()
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        if write == "delete":
            assert backend.delete("a") is True
            assert size_of(log) == good_end + len(record_of("a", b"", DELETE))
            expected = {"b": b"beta" * 10}
        elif write == "add":
            assert backend.add("a", b"refused") is False  # writes nothing, so cuts nothing
            assert size_of(log) > good_end
            assert backend.add("new", b"n") is True
            assert size_of(log) == good_end + len(record_of("new", b"n"))
            expected = {"a": b"alpha" * 10, "b": b"beta" * 10, "new": b"n"}
        else:
            backend.clear()  # rewrites the log, without the damage
            assert size_of(log) == 0
            expected = {}
    cut = [r for r in caplog.records if "rewriting" in r.getMessage()]
    assert len(cut) == (0 if write == "clear" else 1)
    assert snap(NAME)["exception"] == len(cut)
    assert read_log(log) == (expected, size_of(log))
    backend.close()
    assert dict(backend.items()) == expected


@pytest.mark.slow
@pytest.mark.parametrize("how", ["half-a-record-appended", "garbage-appended"])
def test_after_a_cut_a_fresh_process_reads_everything(tmp_path: Path, how: str) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    damage(backend, log, how)
    with driver(LogBackend, log) as child:  # a reader while the damage is there
        assert child.get("a") == b"alpha" * 10
        assert child.get("c") is None
        backend.put("c", b"gamma")  # cuts it off
        backend.put("e", b"epsilon")
        assert child.get("c") == b"gamma"  # the reader's index is past the cut: it reads on
        assert child.get("e") == b"epsilon"
    with driver(LogBackend, log) as fresh:
        assert fresh("items") == {
            "a": "alpha" * 10,
            "b": "beta" * 10,
            "c": "gamma",
            "e": "epsilon",
        }
        assert fresh("stats") == {}  # items() counts nothing, and nothing was cut


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize(
    ("round_", "compact_at"),
    [(0, None), (1, None), (2, None), (0, 1 << 20), (1, 1 << 20)],
    ids=["early", "later", "late", "compacting-early", "compacting-later"],
)
def test_sigkill_mid_write_leaves_whole_values(
    tmp_path: Path, round_: int, compact_at: int | None
) -> None:
    log = tmp_path / "cache.log"
    nkeys = 8
    backend = LogBackend(log)
    for i in range(nkeys):
        backend.put(f"k{i}", make_value(f"k{i}", "old", 0, 1000))
    start_size = size_of(log)

    args = [*backend_args(LogBackend, log, compact_at=compact_at), str(nkeys)]
    with workers(KILLED_WRITER, [args]) as (proc,):
        expect_line(proc, "writing")
        # Let it write for a moment (different lengths per round), then kill it mid-way.
        time.sleep(0.05 + 0.1 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait(PATIENCE)
    assert proc.returncode == -signal.SIGKILL
    if compact_at is None:
        assert size_of(log) > start_size + 50_000  # it did write

    cache_stats.reset()
    writers = set()
    for i in range(nkeys):
        value = backend.get(f"k{i}")
        # Puts only ever replace: a write cut short is lost, the one before it stays.
        assert value is not None
        who, _ = check_value(f"k{i}", value)  # raises on a torn or mixed value
        writers.add(who)
    assert writers <= {"old", "new"}
    assert len(backend) == nkeys
    assert snap(NAME)["exception"] == 0  # readers count nothing

    for i in range(nkeys):
        backend.put(f"k{i}", make_value(f"k{i}", "after", i, 3000))
    assert snap(NAME)["exception"] <= 1  # a torn last record, if any, cut off once
    backend.close()
    for i in range(nkeys):
        got = backend.get(f"k{i}")
        assert got is not None
        assert check_value(f"k{i}", got) == ("after", i)
    entries, end = read_log(log)
    assert end == size_of(log)
    assert sorted(entries) == [f"k{i}" for i in range(nkeys)]
    backend.compact()  # also removes a .compact file left by a compaction that was killed
    assert every_file(tmp_path) == [log]
    assert read_log(log)[0] == entries


# -- lock timeout --------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_APPEND)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
    os.write(fd, bytes.fromhex(sys.argv[2]))  # a writer holding the lock appends a record
    print("holding", flush=True)
    sys.stdin.readline()
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_a_write_waits_lock_timeout_then_raises_while_reads_go_on(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    backend = LogBackend(log, lock_timeout=0.2)
    backend.put("k", b"before")
    held = record_of("held", b"\x01")
    with workers(_HOLDER, [[str(log), held.hex()]]) as (holder,):
        assert holder.stdin is not None
        expect_line(holder, "holding")
        size = size_of(log)

        started = time.monotonic()
        with pytest.raises(FileLockTimeoutError) as info:
            backend.put("k", b"after")
        waited = time.monotonic() - started
        assert 0.15 <= waited < 2.0  # it waited about lock_timeout, and no longer
        assert isinstance(info.value, LockTimeoutError)
        assert isinstance(info.value, CacheSystemError)
        assert str(log) in str(info.value)
        assert "0.2 s" in str(info.value)
        assert info.value.timeout == 0.2

        for write in (
            lambda: backend.add("new", b"n"),
            lambda: backend.delete("k"),
            backend.compact,
            backend.clear,
        ):
            started = time.monotonic()
            with pytest.raises(LockTimeoutError):
                write()
            assert time.monotonic() - started < 2.0
        assert size_of(log) == size  # nothing was written

        # Readers take no lock: they go on, and see what the lock's holder appended.
        started = time.monotonic()
        assert backend.get("k") == b"before"
        assert backend.get("held") == b"\x01"
        assert backend.get("absent") is None
        assert len(backend) == 2
        assert time.monotonic() - started < 1.0
        assert snap(NAME) == {"hit": 2, "miss": 1, "put": 1, "exception": 2}

        # lock_timeout=0: one try, no wait.
        started = time.monotonic()
        with pytest.raises(FileLockTimeoutError):
            LogBackend(log, lock_timeout=0, name="log:now").put("k", b"now")
        assert time.monotonic() - started < 0.5
        assert snap("log:now")["exception"] == 1

        holder.stdin.write("release\n")
        holder.stdin.flush()
        expect_line(holder, "released")
        backend.put("k", b"after")  # the lock is free: it goes through
        assert backend.get("k") == b"after"
        assert backend.get("held") == b"\x01"
        holder.stdin.write("exit\n")
        holder.stdin.flush()
        holder.wait(PATIENCE)
        assert holder.returncode == 0
    assert read_log(log) == ({"k": b"after", "held": b"\x01"}, size_of(log))


# -- fork ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_os_fork_child_takes_its_own_lock(tmp_path: Path) -> None:
    """A POSIX lock is not inherited: the child must open the log again and lock it itself."""
    log = tmp_path / "cache.log"
    backend = LogBackend(log, lock_timeout=5)
    backend.put("before", b"b")
    done = tmp_path / "child-done"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            for i in range(300):
                backend.put(f"c{i % 10}", make_value(f"c{i % 10}", "child", i, 500))
            done.write_text(str(len(backend)))
            code = 0
        finally:
            os._exit(code)
    for i in range(300):
        backend.put(f"p{i % 10}", make_value(f"p{i % 10}", "parent", i, 500))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert int(done.read_text()) >= 11
    entries = dict(backend.items())
    assert len(entries) == 21
    for key, value in entries.items():
        if key != "before":
            check_value(key, value)
    assert read_log(log) == (entries, size_of(log))
    assert snap(NAME)["exception"] == 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_is_inside_the_backend(tmp_path: Path) -> None:
    """The thread lock of the log, held at the fork by a thread that the child does not
    have, must not be held in the child."""
    log = tmp_path / "cache.log"
    backend = LogBackend(log)
    backend.put("k", b"v")
    inside, leave = threading.Event(), threading.Event()

    def busy() -> None:
        with backend._file.guard:  # as a get, put or compaction in progress holds it
            inside.set()
            leave.wait(PATIENCE)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        assert inside.wait(PATIENCE)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = 1
            try:
                signal.alarm(10)  # a child stuck on the lock dies rather than hangs
                backend.put("child", b"c")
                code = 0 if backend.get("k") == b"v" else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        leave.set()
        thread.join(PATIENCE)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get("child") == b"c"


# -- close ---------------------------------------------------------------------------------


def test_close_of_one_backend_does_not_break_another_on_the_same_log(tmp_path: Path) -> None:
    log = tmp_path / "cache.log"
    one = LogBackend(log)
    two = LogBackend(log)
    one.put("a", b"1")
    one.close()
    assert two.get("a") == b"1"
    two.put("b", b"2")
    one.close()
    assert one.get("b") == b"2"
    assert dict(two.items()) == {"a": b"1", "b": b"2"}
