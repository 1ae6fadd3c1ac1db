"""Memoizer over a SqliteBackend: counting, persistence in one process and across processes
(other hash seeds), single flight between processes, first writer wins, dumps, cache_clear,
and writes made in the call (no writer thread).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import pytest_cachemock.memoize as memoize_module
from pytest_cachemock import Memoizer, ReplayMissError, SqliteBackend, cache_stats

pytestmark = pytest.mark.usefixtures("fresh_stats")

PATIENCE = 60.0


def stats(name: str) -> dict[str, int]:
    return cache_stats.snapshot().get(name, {"hit": 0, "miss": 0, "put": 0, "exception": 0})


def rows(db: Path, prefix: str = "") -> dict[str, bytes]:
    """The entries of ``db`` whose key starts with ``prefix``, read by a backend of its own."""
    reader = SqliteBackend(db, name="test:reader")
    try:
        return {k: v for k, v in reader.items() if k.startswith(prefix)}
    finally:
        reader.close()


class Calls:
    def __init__(self) -> None:
        self.args: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.args.append(args)


# -- in one process ------------------------------------------------------------------------


def test_first_call_misses_and_stores_the_second_hits(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    backend = SqliteBackend(db, name="sq:first")
    memo = Memoizer(kind="sq_first", backend=backend)
    calls = Calls()

    @memo.memoize
    def tags_of(x: int, tags: set[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    assert tags_of(1, {"b", "a"}) == ["a", "b"]
    assert stats("sq_first") == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert stats("sq:first")["put"] == 1
    # In the database as the call returns: written in the call, not behind it.
    (stored,) = rows(db).items()
    assert stored[0] == memo.key_for(tags_of, 1, {"a", "b"})
    assert stored[0].startswith("sq_first/")
    record = json.loads(stored[1])
    assert record["result"] == ["a", "b"]
    assert record["fn"].endswith("tags_of")

    assert tags_of(1, {"a", "b"}) == ["a", "b"]
    assert calls.args == [(1,)]
    assert stats("sq_first") == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    # The per-key lock between processes is a byte-range lock in a file next to the database.
    lock_file = Path(f"{db}.memoize.lock")
    assert memoize_module._range_lock_path(backend) == str(lock_file)
    assert lock_file.is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if "-" not in p.name) == [
        "memo.sqlite3",
        "memo.sqlite3.memoize.lock",
    ]


def test_a_fresh_memoizer_and_backend_in_the_same_process_hit(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    calls = Calls()

    def tags_of(x: int, tags: frozenset[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    first = Memoizer(kind="sq_fresh", backend=SqliteBackend(db, name="sq:one"))
    assert first.memoize(tags_of)(1, frozenset({"b", "a"})) == ["a", "b"]

    fresh_backend = SqliteBackend(db, name="sq:two")
    fresh = Memoizer(kind="sq_fresh", backend=fresh_backend)
    again = fresh.memoize(tags_of)
    spec = getattr(again, memoize_module._SPEC_ATTR)
    assert spec.front == {}  # nothing in memory: a hit can only come from the database
    assert again(1, frozenset({"a", "b"})) == ["a", "b"]
    assert calls.args == [(1,)]
    assert stats("sq:two") == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert stats("sq_fresh") == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    assert len(spec.front) == 1  # the hit filled the front
    assert again(1, frozenset({"b", "a"})) == ["a", "b"]
    assert stats("sq:two")["hit"] == 1  # served by the front this time
    assert stats("sq_fresh")["hit"] == 2


def test_single_flight_threads_on_a_sqlite_backend(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    memo = Memoizer(kind="sq_threads", backend=SqliteBackend(db))
    calls = Calls()
    barrier = threading.Barrier(8)

    @memo.memoize
    def slow(x: int) -> dict[str, int]:
        calls(x)
        time.sleep(0.2)
        return {"x": x}

    results: list[object] = []

    def worker() -> None:
        barrier.wait(PATIENCE)
        results.append(slow(4))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert results == [{"x": 4}] * 8
    assert calls.args == [(4,)]
    assert stats("sq_threads") == {"hit": 7, "miss": 1, "put": 1, "exception": 0}
    assert len(rows(db, "sq_threads/")) == 1


def test_no_writer_thread_and_flush_returns_at_once(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    writer = memoize_module._writer
    thread_before = writer._thread
    memo = Memoizer(kind="sq_sync", backend=SqliteBackend(db))
    assert memo._write_behind is False
    assert memo._range_lock is True

    @memo.memoize
    def double(x: int) -> int:
        return 2 * x

    for i in range(20):
        assert double(i) == 2 * i
        assert len(rows(db)) == i + 1  # each entry is in the database as its call returns
        assert writer._pending == {}
        assert writer._outstanding == 0
    assert writer._thread is thread_before
    if thread_before is None:
        names = [t.name for t in threading.enumerate()]
        assert "pytest-cachemock-memoize-writer" not in names
    started = time.monotonic()
    assert memo.flush() is True
    assert memo.flush(timeout=0) is True
    assert time.monotonic() - started < 0.5
    assert stats("sq_sync") == {"hit": 0, "miss": 20, "put": 20, "exception": 0}


QUOTE_CALLS: list[tuple[str, int]] = []


def quote(sku: str, qty: int) -> dict[str, object]:
    QUOTE_CALLS.append((sku, qty))
    return {"sku": sku, "total": qty * 3}


def test_dump_and_strict_load_between_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    recorder_db = tmp_path / "recorder.sqlite3"
    recorder = Memoizer(kind="sq_dump", backend=SqliteBackend(recorder_db))
    recorded = recorder.memoize(quote)
    QUOTE_CALLS.clear()
    recorded("A1", 2)
    recorded("B2", 5)
    assert recorder.dump(path) == 2
    data = json.loads(path.read_text())
    (block,) = data["scopes"].values()
    assert sorted(block["entries"]) == sorted(rows(recorder_db, "sq_dump/"))

    # A later run: another database file, nothing in it, nothing in memory.
    replayer_db = tmp_path / "replayer.sqlite3"
    replayer = Memoizer(kind="sq_dump", backend=SqliteBackend(replayer_db))
    quote_again = replayer.memoize(quote)
    QUOTE_CALLS.clear()
    assert replayer.load(path, strict=True) == 2
    assert rows(replayer_db) == rows(recorder_db)  # the very same stored records
    assert quote_again("A1", 2) == {"sku": "A1", "total": 6}
    assert quote_again("B2", 5) == {"sku": "B2", "total": 15}
    with pytest.raises(ReplayMissError, match="strict"):
        quote_again("C3", 1)
    assert QUOTE_CALLS == []

    # Dumping what was loaded gives the same file back.
    second = tmp_path / "again.json"
    assert replayer.dump(second) == 2
    assert json.loads(second.read_text()) == data


def test_cache_clear_removes_only_this_memoizers_rows(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    shared = SqliteBackend(db)
    shared.put("someone-else", b"keep")
    ours = Memoizer(kind="sq_clear", backend=shared)
    theirs = Memoizer(kind="sq_clear_other", backend=SqliteBackend(db))  # same file
    calls = Calls()

    def f(x: int) -> int:
        calls(x)
        return x * 10

    mine, other = ours.memoize(f), theirs.memoize(f)
    assert (mine(1), mine(2), other(1), other(3)) == (10, 20, 10, 30)
    assert len(rows(db, "sq_clear/")) == 2
    assert len(rows(db, "sq_clear_other/")) == 2

    ours.cache_clear()
    assert rows(db, "sq_clear/") == {}
    assert len(rows(db, "sq_clear_other/")) == 2
    assert rows(db, "someone-else") == {"someone-else": b"keep"}

    calls.args.clear()
    assert mine(1) == 10  # computed again: gone from the front and from the database
    assert calls.args == [(1,)]
    later = Memoizer(kind="sq_clear_other", backend=SqliteBackend(db))
    assert later.memoize(f)(3) == 30  # the other memoizer's row is still in the database
    assert calls.args == [(1,)]


# -- across processes ----------------------------------------------------------------------

# Each child memoizes one function into a shared SqliteBackend file and prints a JSON line:
# what it returned, whether it computed, the key, and whether a writer thread was started.
# "go" (when given) is a file the child waits for, after printing "ready", so that
# children started one by one call at the same moment. Mirrors test_memoize_processes.py.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import pytest_cachemock.memoize as memoize_module
    from pytest_cachemock import Memoizer, SqliteBackend, cache_stats

    db, mode, go, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    memo = Memoizer(kind="sq_procs", backend=SqliteBackend(db), deterministic=mode == "record")
    computed = []
    log_path = os.path.join(os.path.dirname(db), "runs.log")

    def work(tags, options):
        computed.append(os.getpid())
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()}\\n")
        time.sleep(sleep)
        return {"pid": os.getpid(), "tags": sorted(tags)}

    work.__qualname__ = "work"
    fn = memo.record(work) if mode == "record" else memo.memoize(work)
    args = (frozenset({"alpha", "beta", "gamma", "delta"}), {"b": {"y", "x"}, "a": (1, 2.0)})
    print("ready", flush=True)
    if go != "-":
        while not os.path.exists(go):
            time.sleep(0.002)
    result = fn(*args)
    print(json.dumps({
        "pid": os.getpid(),
        "result": result,
        "computed": bool(computed),
        "key": memo.key_for(work, *args),
        "stats": cache_stats.snapshot().get("sq_procs", {}),
        "writer_thread": memoize_module._writer._thread is not None,
    }))
    """
)


def spawn(
    db: Path, mode: str, go: str = "-", sleep: float = 0.0, seed: str = "0"
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), mode, go, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return proc


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":  # pragma: no cover - a failed child: show why
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child did not start: {line!r} {err}")


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on a timeout
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert result["writer_thread"] is False  # stores are made in the call
    return result


def runs(db: Path) -> list[str]:
    log = db.parent / "runs.log"
    return log.read_text().split() if log.exists() else []


def race(db: Path, mode: str, n: int, sleep: float = 0.0) -> list[dict[str, Any]]:
    """``n`` children that call at the same moment."""
    go = db.parent / f"go-{mode}-{time.monotonic_ns()}"
    procs = [spawn(db, mode, str(go), sleep=sleep, seed=str(i + 1)) for i in range(n)]
    try:
        for p in procs:
            wait_ready(p)
        go.touch()
        return [finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # pragma: no cover - a failed test
                p.kill()
                p.communicate()


@pytest.mark.slow
def test_entries_survive_other_hash_seeds(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    first = finish(spawn(db, "memoize", seed="1"))
    second = finish(spawn(db, "memoize", seed="2"))
    third = finish(spawn(db, "memoize", seed="random"))
    assert first["computed"] is True
    assert first["stats"] == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert second["computed"] is False
    assert third["computed"] is False
    assert second["stats"] == third["stats"] == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert first["key"] == second["key"] == third["key"]
    assert first["result"] == second["result"] == third["result"]
    assert first["result"] == {"pid": first["pid"], "tags": ["alpha", "beta", "delta", "gamma"]}
    assert runs(db) == [str(first["pid"])]
    assert list(rows(db)) == [first["key"]]


@pytest.mark.slow
def test_single_flight_four_processes(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    # Made here first: opening a fresh file from several processes at once is the bug of
    # test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode (test_sqlite_backend).
    SqliteBackend(db).close()
    results = race(db, "memoize", 4, sleep=0.3)
    assert len(runs(db)) == 1
    computed = [r for r in results if r["computed"]]
    assert len(computed) == 1
    assert runs(db) == [str(computed[0]["pid"])]
    assert len({json.dumps(r["result"]) for r in results}) == 1
    assert results[0]["result"]["pid"] == computed[0]["pid"]
    # The three that waited found the entry once the lock was theirs: hits, no exceptions.
    for r in results:
        expected = {"hit": 0, "miss": 1, "put": 1} if r["computed"] else {"hit": 1, "miss": 0}
        assert {k: r["stats"].get(k, 0) for k in expected} == expected
        assert r["stats"].get("exception", 0) == 0
    assert len(rows(db)) == 1


@pytest.mark.slow
def test_deterministic_first_writer_wins_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "memo.sqlite3"
    SqliteBackend(db).close()  # see test_single_flight_four_processes
    # record always computes (each child its own pid); with deterministic=True every
    # process returns what the first one stored.
    racing = race(db, "record", 4)
    assert len(runs(db)) == 4
    assert all(r["computed"] for r in racing)
    pids = {r["result"]["pid"] for r in racing}
    assert len(pids) == 1
    (winner,) = pids
    assert winner in {r["pid"] for r in racing}
    assert sum(r["stats"].get("put", 0) for r in racing) == 1  # one add() won
    (stored,) = rows(db).values()
    assert json.loads(stored)["result"]["pid"] == winner

    later = finish(spawn(db, "record", seed="99"))
    assert later["computed"] is True
    assert later["pid"] != winner
    assert later["result"]["pid"] == winner
    assert len(runs(db)) == 5
