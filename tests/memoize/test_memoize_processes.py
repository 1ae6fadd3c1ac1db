"""Memoizer on a FileBackend across real processes: other hash seeds, single flight, first
writer wins, and the key's lock in a directory made again. The children are the MEMO_CHILD
of _helpers, shared with test_memoize_persistent.py (LogBackend and SqliteBackend).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from _procs import (
    backend_args,
    finish,
    last_json,
    probe,
    race,
    runs,
    spawn,
    start_together,
    worker_script,
    workers,
)

from pytest_cachemock import FileBackend, LogBackend, Memoizer, SqliteBackend

pytestmark = pytest.mark.slow


def test_disk_entries_survive_other_hash_seeds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = finish(spawn(FileBackend, store, "memoize", seed="1"))
    second = finish(spawn(FileBackend, store, "memoize", seed="2"))
    third = finish(spawn(FileBackend, store, "memoize", seed="3"))
    assert first["computed"] is True
    assert second["computed"] is False
    assert third["computed"] is False
    assert first["key"] == second["key"] == third["key"]
    assert first["result"] == second["result"] == third["result"]
    assert len(runs(store)) == 1


def test_single_flight_four_processes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    results = race(FileBackend, store, "memoize", 4, sleep=0.5)
    assert len(runs(store)) == 1
    assert sum(bool(r["computed"]) for r in results) == 1
    assert len({json.dumps(r["result"]) for r in results}) == 1


def test_first_writer_wins_across_processes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # record always computes; with deterministic=True every process returns what the
    # first one stored, even though each computed its own pid.
    results = [finish(spawn(FileBackend, store, "record", seed=str(i))) for i in range(3)]
    assert len(runs(store)) == 3
    pids = {r["result"]["pid"] for r in results}
    assert len(pids) == 1

    racing = race(FileBackend, store, "record", 3)
    assert {r["result"]["pid"] for r in racing} == pids


def test_lock_follows_a_directory_that_was_deleted_and_made_again(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    memo = Memoizer(kind="relock", backend=FileBackend(directory))
    seen: list[str] = []

    @memo.memoize
    def work(n: int) -> int:
        key = memo.key_for(work, n)
        seen.append(probe(directory / ".memoize.lock", int(key[-10:], 16)))
        return n

    assert work(1) == 1
    memo.flush()
    shutil.rmtree(directory)
    directory.mkdir()
    assert work(2) == 2  # the lock file was removed with the directory: it is made again
    memo.flush()
    # While each call computed, another process could not take its key's byte of the lock
    # file that is in the directory now.
    assert seen == ["held", "held"]
    assert (directory / ".memoize.lock").exists()


# A deterministic memoizer whose function is slow and returns this process's pid: each child
# calls it once with the others and prints what it returned, or the CacheError it raised.
# args: sleep.
DETERMINISTIC_CHILD = worker_script(
    """
    import os, time
    from pytest_cachemock import CacheError, Memoizer

    sleep = float(args[0])
    memo = Memoizer(kind="detprocs", backend=backend, deterministic=True)
    computed = []

    def work(n):
        computed.append(os.getpid())
        time.sleep(sleep)
        return {"pid": os.getpid(), "n": n}

    fn = memo.memoize(name="det-work")(work)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        out = {"result": fn(7)}
    except CacheError as exc:
        out = {"error": type(exc).__name__, "message": str(exc)}
    memo.flush()
    out.update(pid=os.getpid(), computed=bool(computed), key=memo.key_for(fn, 7))
    print(json.dumps(out), flush=True)
    """
)

LOCK_TIMEOUT = 0.05


def _open_det(kind: str, root: Path) -> tuple[Any, Path]:
    if kind == "file":
        return FileBackend, root / "entries"
    if kind == "log":
        return LogBackend, root / "memo.log"
    return SqliteBackend, root / "memo.sqlite3"


@pytest.mark.parametrize("holder", ["slow-first-caller", "another-process"])
@pytest.mark.parametrize("kind", ["file", "log", "sqlite"])
def test_deterministic_every_process_returns_the_first_stored_result(
    tmp_path: Path, kind: str, holder: str
) -> None:
    """Four processes call one slow deterministic function that returns its own pid; their
    key locks time out (the function sleeps 8x the lock_timeout, or another process holds
    the key's lock all along), so several compute. Each returns the one stored result or
    raises the documented error, never the pid it computed but could not store."""
    cls, path = _open_det(kind, tmp_path)
    backend = cls(path, lock_timeout=LOCK_TIMEOUT)
    memo = Memoizer(kind="detprocs", backend=backend, deterministic=True)
    key = memo.key_for(memo.memoize(name="det-work")(lambda n: n), 7)
    lock_fd = -1
    if holder == "another-process":
        # The key's byte of the lock file, as the memoizer locks it (see _range_lock).
        sidecar = backend.sidecar_path(".memoize.lock")
        lock_fd = os.open(sidecar, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.lockf(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(key[-10:], 16))
    try:
        args = [[*backend_args(cls, path, lock_timeout=LOCK_TIMEOUT), "0.4"] for _ in range(4)]
        with workers(DETERMINISTIC_CHILD, args) as procs:
            start_together(procs)
            outs = [last_json(p) for p in procs]
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    assert {o["key"] for o in outs} == {key}
    stored = backend.get(key)
    assert stored is not None
    first = json.loads(stored)["result"]
    returned = [o["result"] for o in outs if "result" in o]
    errors = [o for o in outs if "result" not in o]
    assert returned  # whoever stored first returns what it stored
    assert all(r == first for r in returned), (first, outs)
    for e in errors:
        assert e["error"] == "SystemError", e
        assert "deterministic" in e["message"], e
    # The locks did time out: more than the first caller computed (else nothing was tested).
    assert sum(o["computed"] for o in outs) >= 2, outs


@pytest.mark.parametrize("kind", ["file", "log", "sqlite"])
def test_deterministic_never_returns_its_own_result_over_an_unreadable_entry(
    tmp_path: Path, kind: str
) -> None:
    """An entry that cannot be decoded is there: add() refuses every process's result, and
    no stored result can be read. Each process raises; none returns the pid it computed."""
    cls, path = _open_det(kind, tmp_path)
    backend = cls(path, lock_timeout=LOCK_TIMEOUT)
    memo = Memoizer(kind="detprocs", backend=backend, deterministic=True)
    key = memo.key_for(memo.memoize(name="det-work")(lambda n: n), 7)
    backend.put(key, b"\xff not a record")
    args = [[*backend_args(cls, path, lock_timeout=LOCK_TIMEOUT), "0.1"] for _ in range(3)]
    with workers(DETERMINISTIC_CHILD, args) as procs:
        start_together(procs)
        outs = [last_json(p) for p in procs]
    assert [o.get("result") for o in outs] == [None, None, None], outs
    for o in outs:
        assert o["error"] == "SystemError", o
        assert key in o["message"], o
