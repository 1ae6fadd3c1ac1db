"""Memoizer on a FileBackend across real processes: other hash seeds, single flight, first
writer wins, and the key's lock in a directory made again. The children are the MEMO_CHILD
of _helpers, shared with test_memoize_persistent.py (LogBackend and SqliteBackend).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _helpers import finish, probe, race, runs, spawn

from pytest_cachemock import FileBackend, Memoizer

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
