"""Memoizer over a LogBackend: counting, persistence in one process and across processes
(other hash seeds), the per-key lock file next to the log, single flight between processes,
first writer wins, dumps, cache_clear, compaction under a memoizer, and writes made in the
call (no writer thread).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_cachemock.memoize as memoize_module
from pytest_cachemock import LogBackend, Memoizer, ReplayMissError, cache_stats

pytestmark = pytest.mark.usefixtures("fresh_stats")

PATIENCE = 60.0

HEADER = struct.Struct(">4sB3xII8s")  # magic, type, key length, value length, digest


def read_log(path: Path) -> dict[str, bytes]:
    """The entries of the log at ``path``, replayed from its bytes by a parser of our own
    (the format of pytest_cachemock/backends/log.py): what is on disk, not in an index.

    Opening and closing the file drops this process's POSIX locks on it: call it only while
    nothing of this process is writing to the log.
    """
    data = path.read_bytes()
    entries: dict[str, bytes] = {}
    at = 0
    while len(data) - at >= HEADER.size:
        magic, kind, klen, vlen, digest = HEADER.unpack_from(data, at)
        total = HEADER.size + klen + vlen
        if magic != b"CML\x01" or kind > 2 or len(data) - at < total:
            break
        kb = data[at + HEADER.size : at + HEADER.size + klen]
        value = data[at + HEADER.size + klen : at + total]
        h = hashlib.blake2b(bytes((kind,)), digest_size=8)
        h.update(len(kb).to_bytes(4, "big"))
        h.update(kb)
        h.update(value)
        if h.digest() != digest:
            break
        key = kb.decode("utf-8", "surrogatepass")
        if kind == 0:
            entries[key] = value
        elif kind == 1:
            entries.pop(key, None)
        else:
            entries.clear()
        at += total
    assert at == len(data), f"{len(data) - at} bytes after the last whole record of {path}"
    return entries


def rows(log: Path, prefix: str = "") -> dict[str, bytes]:
    return {k: v for k, v in read_log(log).items() if k.startswith(prefix)}


def stats(name: str) -> dict[str, int]:
    return cache_stats.snapshot().get(name, {"hit": 0, "miss": 0, "put": 0, "exception": 0})


@pytest.fixture
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


class Calls:
    def __init__(self) -> None:
        self.args: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.args.append(args)


# -- in one process ------------------------------------------------------------------------


@pytest.mark.usefixtures("umask0")
def test_first_call_misses_and_stores_the_second_hits(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    backend = LogBackend(log, name="lg:first")
    memo = Memoizer(kind="lg_first", backend=backend)
    calls = Calls()

    @memo.memoize
    def tags_of(x: int, tags: set[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    assert tags_of(1, {"b", "a"}) == ["a", "b"]
    assert stats("lg_first") == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert stats("lg:first")["put"] == 1
    # In the log as the call returns: written in the call, not behind it.
    (stored,) = rows(log).items()
    assert stored[0] == memo.key_for(tags_of, 1, {"a", "b"})
    assert stored[0].startswith("lg_first/")
    record = json.loads(stored[1])
    assert record["result"] == ["a", "b"]
    assert record["fn"].endswith("tags_of")

    assert tags_of(1, {"a", "b"}) == ["a", "b"]
    assert calls.args == [(1,)]
    assert stats("lg_first") == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    # The per-key lock between processes is a byte-range lock in a file next to the log;
    # nothing else is made.
    lock_file = Path(f"{log}.memoize.lock")
    assert memoize_module._range_lock_path(backend) == str(lock_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memo.log", "memo.log.memoize.lock"]
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_fresh_memoizer_and_backend_in_the_same_process_hit(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    calls = Calls()

    def tags_of(x: int, tags: frozenset[str]) -> list[str]:
        calls(x)
        return sorted(tags)

    first = Memoizer(kind="lg_fresh", backend=LogBackend(log, name="lg:one"))
    assert first.memoize(tags_of)(1, frozenset({"b", "a"})) == ["a", "b"]

    fresh_backend = LogBackend(log, name="lg:two")
    fresh_backend.close()  # and the index read again from the file
    fresh = Memoizer(kind="lg_fresh", backend=fresh_backend)
    again = fresh.memoize(tags_of)
    spec = getattr(again, memoize_module._SPEC_ATTR)
    assert spec.front == {}  # nothing in memory: a hit can only come from the log
    assert again(1, frozenset({"a", "b"})) == ["a", "b"]
    assert calls.args == [(1,)]
    assert stats("lg:two") == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert stats("lg_fresh") == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
    assert len(spec.front) == 1  # the hit filled the front
    assert again(1, frozenset({"b", "a"})) == ["a", "b"]
    assert stats("lg:two")["hit"] == 1  # served by the front this time
    assert stats("lg_fresh")["hit"] == 2


def test_entries_survive_compactions_of_the_log(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    calls = Calls()

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
    entries = rows(log)
    assert sorted(entries) == sorted(memo.key_for(square, x) for x in range(40))
    live = sum(HEADER.size + len(k.encode()) + len(v) for k, v in entries.items())
    assert os.path.getsize(log) <= 2 * live  # over compact_at: never more than half garbage
    backend.compact()
    assert os.path.getsize(log) == live
    calls.args.clear()
    later = Memoizer(kind="lg_compact", backend=LogBackend(log))
    again = later.memoize(square)
    assert [again(x) for x in range(40)] == [x * x for x in range(40)]
    assert calls.args == []  # every one was a hit in the compacted log
    assert stats("lg_compact")["exception"] == 0


def test_single_flight_threads_on_a_log_backend(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    memo = Memoizer(kind="lg_threads", backend=LogBackend(log))
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
    assert stats("lg_threads") == {"hit": 7, "miss": 1, "put": 1, "exception": 0}
    assert len(rows(log, "lg_threads/")) == 1


def test_no_writer_thread_and_flush_returns_at_once(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    writer = memoize_module._writer
    thread_before = writer._thread
    memo = Memoizer(kind="lg_sync", backend=LogBackend(log))
    assert memo._write_behind is False
    assert memo._range_lock is True

    @memo.memoize
    def double(x: int) -> int:
        return 2 * x

    for i in range(20):
        assert double(i) == 2 * i
        assert writer._pending == {}
        assert writer._outstanding == 0
        assert len(rows(log)) == i + 1  # each entry is in the log as its call returns
    assert writer._thread is thread_before
    if thread_before is None:
        names = [t.name for t in threading.enumerate()]
        assert "pytest-cachemock-memoize-writer" not in names
    started = time.monotonic()
    assert memo.flush() is True
    assert memo.flush(timeout=0) is True
    assert time.monotonic() - started < 0.5
    assert stats("lg_sync") == {"hit": 0, "miss": 20, "put": 20, "exception": 0}


QUOTE_CALLS: list[tuple[str, int]] = []


def quote(sku: str, qty: int) -> dict[str, object]:
    QUOTE_CALLS.append((sku, qty))
    return {"sku": sku, "total": qty * 3}


def test_dump_and_strict_load_between_logs(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    recorder_log = tmp_path / "recorder.log"
    recorder = Memoizer(kind="lg_dump", backend=LogBackend(recorder_log))
    recorded = recorder.memoize(quote)
    QUOTE_CALLS.clear()
    recorded("A1", 2)
    recorded("B2", 5)
    assert recorder.dump(path) == 2
    data = json.loads(path.read_text())
    (block,) = data["scopes"].values()
    assert sorted(block["entries"]) == sorted(rows(recorder_log, "lg_dump/"))

    # A later run: another log file, nothing in it, nothing in memory.
    replayer_log = tmp_path / "replayer.log"
    replayer = Memoizer(kind="lg_dump", backend=LogBackend(replayer_log))
    quote_again = replayer.memoize(quote)
    QUOTE_CALLS.clear()
    assert replayer.load(path, strict=True) == 2
    assert rows(replayer_log) == rows(recorder_log)  # the very same stored records
    assert quote_again("A1", 2) == {"sku": "A1", "total": 6}
    assert quote_again("B2", 5) == {"sku": "B2", "total": 15}
    with pytest.raises(ReplayMissError, match="strict"):
        quote_again("C3", 1)
    assert QUOTE_CALLS == []

    # Dumping what was loaded gives the same file back.
    second = tmp_path / "again.json"
    assert replayer.dump(second) == 2
    assert json.loads(second.read_text()) == data


def test_cache_clear_removes_only_this_memoizers_entries(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    shared = LogBackend(log)
    shared.put("someone-else", b"keep")
    ours = Memoizer(kind="lg_clear", backend=shared)
    theirs = Memoizer(kind="lg_clear_other", backend=LogBackend(log))  # same file
    calls = Calls()

    def f(x: int) -> int:
        calls(x)
        return x * 10

    mine, other = ours.memoize(f), theirs.memoize(f)
    assert (mine(1), mine(2), other(1), other(3)) == (10, 20, 10, 30)
    assert len(rows(log, "lg_clear/")) == 2
    assert len(rows(log, "lg_clear_other/")) == 2

    ours.cache_clear()
    assert rows(log, "lg_clear/") == {}
    assert len(rows(log, "lg_clear_other/")) == 2
    assert rows(log, "someone-else") == {"someone-else": b"keep"}

    calls.args.clear()
    assert mine(1) == 10  # computed again: gone from the front and from the log
    assert calls.args == [(1,)]
    later = Memoizer(kind="lg_clear_other", backend=LogBackend(log))
    assert later.memoize(f)(3) == 30  # the other memoizer's entry is still in the log
    assert calls.args == [(1,)]


# -- across processes ----------------------------------------------------------------------

# Each child memoizes one function into a shared LogBackend file and prints a JSON line:
# what it returned, whether it computed, the key, and whether a writer thread was started.
# "go" (when given) is a file the child waits for, after printing "ready", so that children
# started one by one call at the same moment. Mirrors test_memoize_processes.py.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import pytest_cachemock.memoize as memoize_module
    from pytest_cachemock import LogBackend, Memoizer, cache_stats

    log, mode, go, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    memo = Memoizer(kind="lg_procs", backend=LogBackend(log), deterministic=mode == "record")
    computed = []
    runs_path = os.path.join(os.path.dirname(log), "runs.log")

    def work(tags, options):
        computed.append(os.getpid())
        with open(runs_path, "a") as runs:
            runs.write(f"{os.getpid()}\\n")
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
        "stats": cache_stats.snapshot().get("lg_procs", {}),
        "writer_thread": memoize_module._writer._thread is not None,
        "outstanding": memoize_module._writer._outstanding,
    }))
    """
)


def spawn(
    log: Path, mode: str, go: str = "-", sleep: float = 0.0, seed: str = "0"
) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log), mode, go, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


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
    assert result["outstanding"] == 0
    return result


def runs(log: Path) -> list[str]:
    path = log.parent / "runs.log"
    return path.read_text().split() if path.exists() else []


def race(log: Path, mode: str, n: int, sleep: float = 0.0) -> list[dict[str, Any]]:
    """``n`` children that call at the same moment."""
    go = log.parent / f"go-{mode}-{time.monotonic_ns()}"
    procs = [spawn(log, mode, str(go), sleep=sleep, seed=str(i + 1)) for i in range(n)]
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
    log = tmp_path / "memo.log"
    first = finish(spawn(log, "memoize", seed="1"))
    second = finish(spawn(log, "memoize", seed="2"))
    third = finish(spawn(log, "memoize", seed="random"))
    assert first["computed"] is True
    assert first["stats"] == {"hit": 0, "miss": 1, "put": 1, "exception": 0}
    assert second["computed"] is False
    assert third["computed"] is False
    assert second["stats"] == third["stats"] == {"hit": 1, "miss": 0, "put": 0, "exception": 0}
    assert first["key"] == second["key"] == third["key"]
    assert first["result"] == second["result"] == third["result"]
    assert first["result"] == {"pid": first["pid"], "tags": ["alpha", "beta", "delta", "gamma"]}
    assert runs(log) == [str(first["pid"])]
    assert list(rows(log)) == [first["key"]]


@pytest.mark.slow
def test_single_flight_four_processes(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    results = race(log, "memoize", 4, sleep=0.3)
    assert len(runs(log)) == 1
    computed = [r for r in results if r["computed"]]
    assert len(computed) == 1
    assert runs(log) == [str(computed[0]["pid"])]
    assert len({json.dumps(r["result"]) for r in results}) == 1
    assert results[0]["result"]["pid"] == computed[0]["pid"]
    # The three that waited found the entry once the lock was theirs: hits, no exceptions.
    for r in results:
        expected = {"hit": 0, "miss": 1, "put": 1} if r["computed"] else {"hit": 1, "miss": 0}
        assert {k: r["stats"].get(k, 0) for k in expected} == expected
        assert r["stats"].get("exception", 0) == 0
    assert len(rows(log)) == 1


@pytest.mark.slow
def test_deterministic_first_writer_wins_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    # record always computes (each child its own pid); with deterministic=True every
    # process returns what the first one stored.
    racing = race(log, "record", 4)
    assert len(runs(log)) == 4
    assert all(r["computed"] for r in racing)
    pids = {r["result"]["pid"] for r in racing}
    assert len(pids) == 1
    (winner,) = pids
    assert winner in {r["pid"] for r in racing}
    assert sum(r["stats"].get("put", 0) for r in racing) == 1  # one add() won
    (stored,) = rows(log).values()
    assert json.loads(stored)["result"]["pid"] == winner

    later = finish(spawn(log, "record", seed="99"))
    assert later["computed"] is True
    assert later["pid"] != winner
    assert later["result"]["pid"] == winner
    assert len(runs(log)) == 5
    assert len(rows(log)) == 1  # the later add wrote nothing


# Tries, from another process, to lock the byte that a key's single flight locks.
PROBE = textwrap.dedent(
    """
    import fcntl, os, sys
    path, offset = sys.argv[1], int(sys.argv[2])
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:
        print("held")
    else:
        print("free")
    """
)


def probe(path: Path, offset: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(offset)],
        capture_output=True,
        text=True,
        check=True,
        timeout=PATIENCE,
    )
    return done.stdout.strip()


@pytest.mark.slow
def test_the_key_is_locked_in_the_lock_file_while_it_computes(tmp_path: Path) -> None:
    log = tmp_path / "memo.log"
    lock_file = Path(f"{log}.memoize.lock")
    memo = Memoizer(kind="lg_probe", backend=LogBackend(log))
    seen: list[str] = []

    @memo.memoize
    def work(n: int) -> int:
        seen.append(probe(lock_file, int(memo.key_for(work, n)[-10:], 16)))
        return n

    assert work(1) == 1
    assert seen == ["held"]  # another process could not take the key's byte meanwhile
    assert probe(lock_file, int(memo.key_for(work, 1)[-10:], 16)) == "free"  # released
    assert probe(log, 0) == "free"  # and the log's own lock is not held between calls
