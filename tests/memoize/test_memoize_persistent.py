"""Memoizer over the backends that write in the call, LogBackend and SqliteBackend: counting,
persistence in one process and across processes (other hash seeds), the per-key lock file
next to the backend's file, single flight between processes, first writer wins, dumps,
cache_clear, compaction under a memoizer (LogBackend), and writes made in the call (no writer
thread).

The children are the MEMO_CHILD of _helpers, shared with test_memoize_processes.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from _formats import HEADER, read_log, snap
from _procs import Counter, probe, race, runs, spawn
from _procs import finish as finish_child

import pytest_cachemock.memoize as memoize_module
from pytest_cachemock import LogBackend, Memoizer, ReplayMissError, SqliteBackend, _route
from pytest_cachemock.backends import Backend

pytestmark = pytest.mark.usefixtures("fresh_stats")


def read_whole_log(path: Path) -> dict[str, bytes]:
    """The entries of the log at ``path``, replayed from its bytes by a parser of our own
    (_helpers.read_log): what is on disk, not in an index. It must end with a whole record.

    Opening and closing the file drops this process's POSIX locks on it: call it only while
    nothing of this process is writing to the log.
    """
    entries, end = read_log(path)
    assert end == len(path.read_bytes()), f"bytes after the last whole record of {path}"
    return entries


def read_sqlite(db: Path) -> dict[str, bytes]:
    """The entries of ``db``, read by a backend of its own."""
    reader = SqliteBackend(db, name="test:reader")
    try:
        return dict(reader.items())
    finally:
        reader.close()


@dataclass(frozen=True)
class Store:
    """One kind of backend: how to make it, where its file goes, how to read that file."""

    cls: type[Backend[bytes]]
    suffix: str
    prefix: str  # of the memoizer kinds and backend names, so that each run has its own
    read: Callable[[Path], dict[str, bytes]]
    side_files: bool  # whether the backend keeps files of its own next to its path

    def __str__(self) -> str:
        return self.cls.__name__

    def file(self, tmp_path: Path, stem: str = "memo") -> Path:
        return tmp_path / f"{stem}{self.suffix}"

    def make(self, path: Path, **kwargs: Any) -> Backend[bytes]:
        return self.cls(path, **kwargs)

    def rows(self, path: Path, prefix: str = "") -> dict[str, bytes]:
        """The entries in the file at ``path`` whose key starts with ``prefix``."""
        return {k: v for k, v in self.read(path).items() if k.startswith(prefix)}

    def prepare(self, path: Path) -> None:
        """Make the file before several processes open it at once."""
        if self.cls is SqliteBackend:
            # Opening a fresh database from several processes at once is the bug of
            # test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode
            # (test_sqlite_backend).
            self.make(path).close()


LOG = Store(LogBackend, ".log", "lg", read_whole_log, side_files=False)
SQLITE = Store(SqliteBackend, ".sqlite3", "sq", read_sqlite, side_files=True)


@pytest.fixture(params=[LOG, SQLITE], ids=str)
def store(request: pytest.FixtureRequest) -> Store:
    return request.param  # type: ignore[no-any-return]


# -- in one process ------------------------------------------------------------------------


@pytest.mark.usefixtures("umask0")
def test_first_call_misses_and_stores_the_second_hits(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    kind, name = f"{store.prefix}_first", f"{store.prefix}:first"
    backend = store.make(path, name=name)
    memo = Memoizer(kind=kind, backend=backend)
    calls = Counter()

    @memo.memoize
    def tags_of(x: int, tags: set[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    assert tags_of(1, {"b", "a"}) == ["a", "b"]
    assert snap(kind) == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert snap(name)["put"] == 1
    # In the file as the call returns: written in the call, not behind it.
    (stored,) = store.rows(path).items()
    assert stored[0] == memo.key_for(tags_of, 1, {"a", "b"})
    assert stored[0].startswith(f"{kind}/")
    record = json.loads(stored[1])
    assert record["result"] == ["a", "b"]
    # A function defined in another: its name, and a digest of its code and captures.
    assert record["fn"].split("#")[0].endswith("tags_of")

    assert tags_of(1, {"a", "b"}) == ["a", "b"]
    assert calls.calls == [(1,)]
    assert snap(kind) == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    # The per-key lock between processes is a byte-range lock in a file next to the
    # backend's; nothing else is made (but SQLite's own -wal and -shm).
    lock_file = Path(f"{path}.memoize.lock")
    assert _route._range_lock_path(backend) == str(lock_file)
    assert lock_file.is_file()
    names = sorted(p.name for p in tmp_path.iterdir())
    if store.side_files:
        names = [n for n in names if "-" not in n]
    assert names == [path.name, lock_file.name]
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_fresh_memoizer_and_backend_in_the_same_process_hit(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    kind, one, two = f"{store.prefix}_fresh", f"{store.prefix}:one", f"{store.prefix}:two"
    calls = Counter()

    def tags_of(x: int, tags: frozenset[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    first = Memoizer(kind=kind, backend=store.make(path, name=one))
    assert first.memoize(tags_of)(1, frozenset({"b", "a"})) == ["a", "b"]

    fresh_backend = store.make(path, name=two)
    fresh_backend.close()  # and its index or connection made again from the file
    fresh = Memoizer(kind=kind, backend=fresh_backend)
    again = fresh.memoize(tags_of)
    spec = getattr(again, memoize_module._SPEC_ATTR)
    assert spec.front == {}  # nothing in memory: a hit can only come from the file
    assert again(1, frozenset({"a", "b"})) == ["a", "b"]
    assert calls.calls == [(1,)]
    assert snap(two) == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert snap(kind) == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    assert len(spec.front) == 1  # the hit filled the front
    assert again(1, frozenset({"b", "a"})) == ["a", "b"]
    assert snap(two)["hit"] == 1  # served by the front this time
    assert snap(kind)["hit"] == 2


def test_entries_survive_compactions_of_the_log(tmp_path: Path) -> None:
    log = LOG.file(tmp_path)
    calls = Counter()

    def square(x: int) -> int:
        calls(x)
        return x * x

    backend = LogBackend(log, compact_at=4096)
    memo = Memoizer(kind="lg_compact", backend=backend)
    recorded = memo.record(square)  # record stores every call: garbage for the compactions
    size = compactions = 0
    for _ in range(5):
        for x in range(40):
            assert recorded(x) == x * x
            size, before = os.path.getsize(log), size
            compactions += size < before
    assert compactions >= 2  # the log was compacted under the memoizer, more than once
    entries = read_whole_log(log)
    assert sorted(entries) == sorted(memo.key_for(square, x) for x in range(40))
    live = sum(HEADER.size + len(k.encode()) + len(v) for k, v in entries.items())
    assert os.path.getsize(log) <= 2 * live  # over compact_at: never more than half garbage
    backend.compact()
    assert os.path.getsize(log) == live
    calls.calls.clear()
    later = Memoizer(kind="lg_compact", backend=LogBackend(log))
    again = later.memoize(square)
    assert [again(x) for x in range(40)] == [x * x for x in range(40)]
    assert calls.calls == []  # every one was a hit in the compacted log
    assert snap("lg_compact")["exception"] == 0


def test_no_writer_thread_and_flush_returns_at_once(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    kind = f"{store.prefix}_sync"
    writer = memoize_module._writer
    thread_before = writer._thread
    memo = Memoizer(kind=kind, backend=store.make(path))
    assert memo._route.write_behind is False
    assert bool(memo._route.lock_path) is True

    @memo.memoize
    def double(x: int) -> int:
        return 2 * x

    for i in range(20):
        assert double(i) == 2 * i
        assert writer._pending == {}
        assert writer._outstanding == 0
        assert len(store.rows(path)) == i + 1  # each entry is in the file as its call returns
    assert writer._thread is thread_before
    if thread_before is None:
        names = [t.name for t in threading.enumerate()]
        assert "pytest-cachemock-memoize-writer" not in names
    started = time.monotonic()
    assert memo.flush() is True
    assert memo.flush(timeout=0) is True
    assert time.monotonic() - started < 0.5
    assert snap(kind) == {"hit": 0, "miss": 20, "put": 20, "exception": 0}


QUOTE_CALLS: list[tuple[str, int]] = []


def quote(sku: str, qty: int) -> dict[str, object]:
    QUOTE_CALLS.append((sku, qty))
    return {"sku": sku, "total": qty * 3}


def test_dump_and_strict_load_between_files(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "memo.json"
    kind = f"{store.prefix}_dump"
    recorder_file = store.file(tmp_path, "recorder")
    recorder = Memoizer(kind=kind, backend=store.make(recorder_file))
    recorded = recorder.memoize(quote)
    QUOTE_CALLS.clear()
    recorded("A1", 2)
    recorded("B2", 5)
    assert recorder.dump(path) == 2
    data = json.loads(path.read_text())
    (block,) = data["scopes"].values()
    assert sorted(block["entries"]) == sorted(store.rows(recorder_file, f"{kind}/"))

    # A later run: another file, nothing in it, nothing in memory.
    replayer_file = store.file(tmp_path, "replayer")
    replayer = Memoizer(kind=kind, backend=store.make(replayer_file))
    quote_again = replayer.memoize(quote)
    QUOTE_CALLS.clear()
    assert replayer.load(path, strict=True) == 2
    assert store.rows(replayer_file) == store.rows(recorder_file)  # the very same records
    assert quote_again("A1", 2) == {"sku": "A1", "total": 6}
    assert quote_again("B2", 5) == {"sku": "B2", "total": 15}
    with pytest.raises(ReplayMissError, match="strict"):
        quote_again("C3", 1)
    assert QUOTE_CALLS == []

    # Dumping what was loaded gives the same file back.
    second = tmp_path / "again.json"
    assert replayer.dump(second) == 2
    assert json.loads(second.read_text()) == data


def test_cache_clear_removes_only_this_memoizers_entries(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    kind, other_kind = f"{store.prefix}_clear", f"{store.prefix}_clear_other"
    shared = store.make(path)
    shared.put("someone-else", b"keep")
    ours = Memoizer(kind=kind, backend=shared)
    theirs = Memoizer(kind=other_kind, backend=store.make(path))  # same file
    calls = Counter()

    def f(x: int) -> int:
        calls(x)
        return x * 10

    mine, other = ours.memoize(f), theirs.memoize(f)
    assert (mine(1), mine(2), other(1), other(3)) == (10, 20, 10, 30)
    assert len(store.rows(path, f"{kind}/")) == 2
    assert len(store.rows(path, f"{other_kind}/")) == 2

    ours.cache_clear()
    assert store.rows(path, f"{kind}/") == {}
    assert len(store.rows(path, f"{other_kind}/")) == 2
    assert store.rows(path, "someone-else") == {"someone-else": b"keep"}

    calls.calls.clear()
    assert mine(1) == 10  # computed again: gone from the front and from the file
    assert calls.calls == [(1,)]
    later = Memoizer(kind=other_kind, backend=store.make(path))
    assert later.memoize(f)(3) == 30  # the other memoizer's entry is still in the file
    assert calls.calls == [(1,)]


# -- across processes ----------------------------------------------------------------------


def made_in_the_call(result: dict[str, Any]) -> dict[str, Any]:
    """A child's JSON line, checked: its stores were made in the call, by no writer thread."""
    assert result["writer_thread"] is False  # stores are made in the call
    assert result["outstanding"] == 0
    return result


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    return made_in_the_call(finish_child(proc))


@pytest.mark.slow
def test_entries_survive_other_hash_seeds(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    first = finish(spawn(store.cls, path, "memoize", seed="1"))
    second = finish(spawn(store.cls, path, "memoize", seed="2"))
    third = finish(spawn(store.cls, path, "memoize", seed="random"))
    assert first["computed"] is True
    assert first["stats"] == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert second["computed"] is False
    assert third["computed"] is False
    assert second["stats"] == third["stats"] == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert first["key"] == second["key"] == third["key"]
    assert first["result"] == second["result"] == third["result"]
    assert first["result"] == {"pid": first["pid"], "tags": ["alpha", "beta", "delta", "gamma"]}
    assert runs(path) == [str(first["pid"])]
    assert list(store.rows(path)) == [first["key"]]


@pytest.mark.slow
def test_single_flight_four_processes(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    store.prepare(path)
    results = [made_in_the_call(r) for r in race(store.cls, path, "memoize", 4, sleep=0.3)]
    assert len(runs(path)) == 1
    computed = [r for r in results if r["computed"]]
    assert len(computed) == 1
    assert runs(path) == [str(computed[0]["pid"])]
    assert len({json.dumps(r["result"]) for r in results}) == 1
    assert results[0]["result"]["pid"] == computed[0]["pid"]
    # The three that waited found the entry once the lock was theirs: hits, no exceptions.
    for r in results:
        expected = {"hit": 0, "miss": 1, "put": 1} if r["computed"] else {"hit": 1, "miss": 0}
        assert {k: r["stats"].get(k, 0) for k in expected} == expected
        assert r["stats"].get("exception", 0) == 0
    assert len(store.rows(path)) == 1


@pytest.mark.slow
def test_deterministic_first_writer_wins_across_processes(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    store.prepare(path)
    # record always computes (each child its own pid); with deterministic=True every
    # process returns what the first one stored.
    racing = [made_in_the_call(r) for r in race(store.cls, path, "record", 4)]
    assert len(runs(path)) == 4
    assert all(r["computed"] for r in racing)
    pids = {r["result"]["pid"] for r in racing}
    assert len(pids) == 1
    (winner,) = pids
    assert winner in {r["pid"] for r in racing}
    assert sum(r["stats"].get("put", 0) for r in racing) == 1  # one add() won
    (stored,) = store.rows(path).values()
    assert json.loads(stored)["result"]["pid"] == winner

    later = finish(spawn(store.cls, path, "record", seed="99"))
    assert later["computed"] is True
    assert later["pid"] != winner
    assert later["result"]["pid"] == winner
    assert len(runs(path)) == 5
    assert len(store.rows(path)) == 1  # the later add wrote nothing


@pytest.mark.slow
def test_the_key_is_locked_in_the_lock_file_while_it_computes(tmp_path: Path, store: Store) -> None:
    path = store.file(tmp_path)
    lock_file = Path(f"{path}.memoize.lock")
    memo = Memoizer(kind=f"{store.prefix}_probe", backend=store.make(path))
    seen: list[str] = []

    @memo.memoize
    def work(n: int) -> int:
        seen.append(probe(lock_file, int(memo.key_for(work, n)[-10:], 16)))
        return n

    assert work(1) == 1
    assert seen == ["held"]  # another process could not take the key's byte meanwhile
    assert probe(lock_file, int(memo.key_for(work, 1)[-10:], 16)) == "free"  # released
    if store.cls is LogBackend:
        assert probe(path, 0) == "free"  # and the log's own lock is not held between calls
