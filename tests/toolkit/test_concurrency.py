"""Concurrency: exact counts under threads, no torn reads across processes, SIGKILL safety.

Values here check themselves: each holds its key, its writer, its size and a SHA-256 of the
rest, so a reader can tell a whole value from a torn or mixed one without knowing what was
written last.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from _procs import (
    KILLED_WRITER,
    PATIENCE,
    RW_WORKER,
    backend_args,
    expect_line,
    last_json,
    run_threads,
    start_together,
    workers,
)
from _selfcheck import check_value, make_value

from pytest_cachemock import FileBackend, MemoryBackend, RemoteCache, cache_stats

# -- self-checking values ------------------------------------------------------------------
# (in _selfcheck; also used, as source text, by the worker processes below)


def test_self_checking_values_catch_torn_and_mixed_ones() -> None:
    a = make_value("k", "w1", 1, 5000)
    b = make_value("k", "w2", 2, 5000)
    assert len(a) == 5000
    assert check_value("k", a) == ("w1", 1)
    with pytest.raises(ValueError, match="checksum"):
        check_value("k", a[:2500] + b[2500:])  # mixed
    with pytest.raises(ValueError, match="checksum"):
        check_value("k", a[:4000])  # torn
    with pytest.raises(ValueError, match="another key"):
        check_value("other", a)


# -- threads: exact counts -----------------------------------------------------------------

THREADS = 8
OPS_PER_THREAD = 10_000
KEYS = 50


class ConcurrencyCache(RemoteCache[Any]):
    pass


def hammer(cache: ConcurrencyCache, seed: int, start: threading.Barrier) -> dict[str, int]:
    """Mixed get/put; returns what this thread itself saw."""
    rng = random.Random(seed)
    seen = {"hit": 0, "miss": 0, "put": 0, "bad": 0}
    start.wait(PATIENCE)
    for i in range(OPS_PER_THREAD):
        key = f"key-{rng.randrange(KEYS)}"
        if rng.random() < 0.1:
            cache.put(key, {"key": key, "writer": seed, "seq": i, "pad": "x" * rng.randrange(400)})
            seen["put"] += 1
        else:
            value = cache.get(key)
            if value is None:
                seen["miss"] += 1
            else:
                seen["hit"] += 1
                if value["key"] != key:
                    seen["bad"] += 1
    return seen


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_stats")
@pytest.mark.parametrize("backend_kind", ["memory", "file"])
def test_threads_give_exact_counts(backend_kind: str, tmp_path: Path) -> None:
    backend = MemoryBackend() if backend_kind == "memory" else FileBackend(tmp_path / "store")
    cache = ConcurrencyCache(backend, namespace="conc")
    results = run_threads(THREADS, lambda n, start: hammer(cache, n, start))

    total = {field: sum(r[field] for r in results) for field in ("hit", "miss", "put", "bad")}
    assert total["bad"] == 0
    assert total["hit"] + total["miss"] + total["put"] == THREADS * OPS_PER_THREAD
    assert total["hit"] > 0
    assert total["put"] > 0
    expected = {"hit": total["hit"], "miss": total["miss"], "put": total["put"], "exception": 0}
    snap = cache_stats.snapshot()
    assert snap["ConcurrencyCache"] == expected
    assert snap[backend.name] == expected


@pytest.mark.usefixtures("fresh_stats")
def test_counters_are_exact_under_threads_for_any_name() -> None:
    """cache_stats itself: 8 threads bumping the same fresh names, nothing lost."""
    start = threading.Barrier(THREADS)

    def bump() -> None:
        start.wait(PATIENCE)
        for _ in range(5000):
            cache_stats.hit("conc:a")
            cache_stats.miss("conc:a")
            cache_stats.get("conc:b", None)
            cache_stats.put("conc:b", 2)

    threads = [threading.Thread(target=bump) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    snap = cache_stats.snapshot()
    n = THREADS * 5000
    assert snap["conc:a"] == {"hit": n, "miss": n, "put": 0, "exception": 0}
    assert snap["conc:b"] == {"hit": 0, "miss": n, "put": 2 * n, "exception": 0}


# -- processes: no torn reads --------------------------------------------------------------


@pytest.mark.slow
def test_processes_sharing_a_directory_never_read_a_torn_value(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    ops = 1500
    # Small values, values around the backend's first read (64 KiB), and up to ~200 KB.
    sizes = json.dumps([200, 4000, 65000, 65536, 66000, 120000, 199000])
    args = [
        [*backend_args(FileBackend, directory), f"w{n}", str(ops), str(n), "6", sizes]
        for n in range(4)
    ]
    with workers(RW_WORKER, args) as procs:
        start_together(procs)  # all four start together
        reports = [last_json(p) for p in procs]

    for report in reports:
        assert report["bad"] == []
        # A torn file is caught by the backend's own length check: it would count here.
        assert report["stats"].get("exception", 0) == 0
        assert report["stats"]["hit"] == report["hit"]
        assert report["stats"]["put"] == report["put"]
    # The processes really shared: they read each other's values, big ones included.
    assert sum(r["foreign"] for r in reports) > 0
    assert sum(r["big"] for r in reports) > 0
    assert sum(r["hit"] for r in reports) > 0


# -- SIGKILL in the middle of writes -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_write_leaves_absent_old_or_new(
    tmp_path: Path, round_: int, fresh_stats: None
) -> None:
    directory = tmp_path / "store"
    nkeys = 8
    backend = FileBackend(directory)
    for i in range(nkeys):
        backend.put(f"k{i}", make_value(f"k{i}", "old", 0, 1000))

    with workers(KILLED_WRITER, [[*backend_args(FileBackend, directory), str(nkeys)]]) as (proc,):
        expect_line(proc, "writing")
        # Let it write for a moment (different lengths per round), then kill it mid-way.
        threading.Event().wait(0.05 + 0.1 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait(PATIENCE)
        dead_pid = proc.pid
    assert proc.returncode == -signal.SIGKILL

    cache_stats.reset()
    writers = set()
    absent = 0
    for i in range(nkeys):
        value = backend.get(f"k{i}")
        if value is None:
            absent += 1
        else:
            who, _ = check_value(f"k{i}", value)  # raises on a torn or mixed value
            writers.add(who)
    assert writers <= {"old", "new"}
    # A write cut short by the kill is damage: that key reads as absent, counted once.
    assert cache_stats.snapshot().get(backend.name, {}).get("exception", 0) <= absent
    assert len(backend) == sum(backend.get(f"k{i}") is not None for i in range(nkeys))
    assert dead_pid > 0
    backend.clear()
    assert [p.name for p in directory.iterdir() if not p.name.startswith(".lock")] == []
    assert len(backend) == 0


def _child_add_after_fork(directory: str, out: Any) -> None:
    backend = _FORKED[0]
    try:
        added = backend.add("child", b"c")
        backend.clear()
        out.put(("ok", added, backend.get("parent")))
    except BaseException as exc:  # pragma: no cover - reported by the test
        out.put(("error", repr(exc), None))


_FORKED: list[FileBackend] = []


@pytest.mark.slow
@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_backend_used_before_a_fork_works_in_the_child(tmp_path: Path) -> None:
    """File locks made in the parent are not reused by a forked child (filelock refuses)."""
    backend = FileBackend(tmp_path)
    assert backend.add("parent", b"p")  # creates the parent's lock objects
    _FORKED[:] = [backend]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_add_after_fork, args=(str(tmp_path), out))
    child.start()
    result = out.get(timeout=PATIENCE)
    child.join(PATIENCE)
    assert result == ("ok", True, None)
    assert child.exitcode == 0
    assert backend.get("parent") is None  # the child's clear() emptied the shared directory
    assert backend.add("parent", b"p")  # and the parent's locks still work
