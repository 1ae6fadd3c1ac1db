"""Memoizer under faults: damaged stores, a full disk, copied signed entries, slow backends.

Every test uses real parts: the real on-disk backends on real damaged files, a real small
tmpfs filled up for real, real threads on a backend whose reads really take time.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from _formats import snap
from _procs import fill_disk, run_threads

from pytest_cachemock import (
    Backend,
    FileBackend,
    LogBackend,
    Memoizer,
    MemoryBackend,
    SignedPickleSerde,
    SqliteBackend,
)

KINDS = ["file", "log", "sqlite"]


def make_backend(kind: str, root: Path) -> Backend[Any]:
    if kind == "file":
        return FileBackend(root / "entries")
    if kind == "log":
        return LogBackend(root / "memo.log")
    return SqliteBackend(root / "memo.sqlite3")


def square(n: int) -> dict[str, Any]:
    return {"n": n, "square": n * n, "pad": "x" * 200}


def damage(kind: str, root: Path) -> None:
    """Damage the real store on disk: garbage over entries, pages or the middle of the log."""
    rng = random.Random(13)
    if kind == "file":
        files = sorted(p for p in (root / "entries").rglob("*") if p.is_file())
        assert len(files) >= 100
        for p in files[::2]:
            p.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        return
    path = root / ("memo.log" if kind == "log" else "memo.sqlite3")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        # Several stretches of garbage between a tenth of the file and its end; a SQLite
        # database keeps its first page (the header) so it still opens as a database.
        start = max(size // 10, 4096 if kind == "sqlite" else 0)
        for _ in range(8):
            at = rng.randrange(start, size - 64)
            f.seek(at)
            f.write(bytes(rng.randrange(256) for _ in range(rng.randrange(16, 600))))


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_store_never_makes_a_memoized_call_raise(
    tmp_path: Path, kind: str, fresh_stats: None
) -> None:
    name = f"damaged_{kind}"
    memo = Memoizer(kind=name, backend=make_backend(kind, tmp_path))
    fill = memo.memoize(square)
    for n in range(300):
        fill(n)
    memo.flush()
    if kind == "sqlite":
        # Everything in the main database file, none of it left in the WAL.
        with sqlite3.connect(tmp_path / "memo.sqlite3") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(kind, tmp_path)
    cache_stats_before = snap(name)

    later = Memoizer(kind=name, backend=make_backend(kind, tmp_path))
    calls = []

    def counted(n: int) -> dict[str, Any]:
        calls.append(n)
        return square(n)

    counted.__qualname__ = square.__qualname__  # the same function as far as keys go
    again = later.memoize(counted)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        results = [again(n) for n in range(400)]
        results += [again(n) for n in range(400)]
    later.flush()
    assert results == [square(n) for n in range(400)] * 2
    # Entries past the end (300..399) were computed; damaged ones were computed, none twice.
    assert sorted(set(calls)) == sorted(calls)
    assert set(range(300, 400)) <= set(calls)
    assert snap(name)["exception"] >= cache_stats_before["exception"]


def big(n: int) -> str:
    # Large enough that every stored entry needs new blocks of the file system.
    return f"{n}:" + "v" * 9000


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_disk_warns_once_per_outage(small_tmpfs: Path, kind: str, fresh_stats: None) -> None:
    name = f"full_disk_{kind}"
    memo = Memoizer(kind=name, backend=make_backend(kind, small_tmpfs))
    f = memo.memoize(big)
    assert f(0) == big(0)
    memo.flush()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filler = fill_disk(small_tmpfs)
        first_outage = [f(n) for n in range(1, 40)]
        memo.flush()
        during_first = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        filler.unlink()
        # The store works again: writes go through (no warning), then the next outage.
        assert f(1000) == big(1000)
        assert f(1001) == big(1001)
        memo.flush()
        after_recovery = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        filler = fill_disk(small_tmpfs)
        second_outage = [f(n) for n in range(2000, 2040)]
        memo.flush()
        filler.unlink()
    assert first_outage == [big(n) for n in range(1, 40)]
    assert second_outage == [big(n) for n in range(2000, 2040)]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(during_first) == 1, messages
    assert len(after_recovery) == 1, messages
    assert len(messages) == 2, messages
    assert "failed to write" in messages[0]
    assert "failed to write" in messages[1]
    assert snap(name)["exception"] >= 2


def test_a_signed_entry_copied_to_another_key_is_refused(fresh_stats: None) -> None:
    store = MemoryBackend()
    serde = SignedPickleSerde(b"alice's secret")
    v1 = Memoizer(kind="signed_copies", backend=store, serde=serde, version=1)
    v2 = Memoizer(kind="signed_copies", backend=store, serde=serde, version=2)

    def grant(user: str) -> dict[str, bool]:
        return {"admin": user == "alice"}

    assert v1.memoize(grant)("alice") == {"admin": True}
    alice_key = v1.key_for(grant, "alice")
    stored = store.get(alice_key)
    assert stored is not None
    # Copy alice's signed entry to bob's slot, and to alice's slot of another version.
    store.put(v1.key_for(grant, "bob"), stored)
    store.put(v2.key_for(grant, "alice"), stored)

    computed: list[str] = []

    def grant_again(user: str) -> dict[str, bool]:
        computed.append(user)
        return {"admin": False}

    before = snap("signed_copies")
    fresh_v1 = Memoizer(kind="signed_copies", backend=store, serde=serde, version=1)
    fresh_v2 = Memoizer(kind="signed_copies", backend=store, serde=serde, version=2)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert fresh_v1.memoize(grant_again, name=v1._spec_of(grant).qualname)("bob") == {
            "admin": False
        }
        assert fresh_v2.memoize(grant_again, name=v1._spec_of(grant).qualname)("alice") == {
            "admin": False
        }
        # The entry at its own key still reads.
        assert fresh_v1.memoize(grant_again, name=v1._spec_of(grant).qualname)("alice") == {
            "admin": True
        }
    assert computed == ["bob", "alice"]
    assert snap("signed_copies")["exception"] - before["exception"] == 2


class SlowReads(Backend[Any]):
    """A real backend (a dict under a lock) whose reads take 2 ms, as a remote store's do."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}
        self.guard = threading.Lock()

    def _get(self, key: str) -> Any:
        with self.guard:
            value = self.data.get(key)
        time.sleep(0.002)  # the answer travels back: it is what was stored when asked
        return value

    def _put(self, key: str, value: Any) -> None:
        with self.guard:
            self.data[key] = value


def _counting(calls: list[int], guard: threading.Lock) -> Callable[[int], int]:
    def work(n: int) -> int:
        with guard:
            calls.append(n)
        return n * 7

    return work


def test_single_flight_on_a_slow_backend_computes_once() -> None:
    for round_ in range(5):
        memo = Memoizer(kind="slow_reads", backend=SlowReads())
        calls: list[int] = []
        f = memo.memoize(_counting(calls, threading.Lock()))

        def call(
            n: int, start: threading.Barrier, f: Callable[[int], int] = f, r: int = round_
        ) -> int:
            start.wait()
            time.sleep(n * 0.0005)  # staggered: later callers read while the first computes
            return f(r)

        assert run_threads(8, call) == [round_ * 7] * 8
        assert calls == [round_], f"round {round_}: computed {len(calls)} times"


def test_single_flight_in_memory_under_stress_computes_each_key_once() -> None:
    memo = Memoizer(kind="stress_flight")
    calls: list[int] = []
    f = memo.memoize(_counting(calls, threading.Lock()))
    keys = 4000

    def call(n: int, start: threading.Barrier) -> list[int]:
        start.wait()
        order = list(range(keys))
        random.Random(n).shuffle(order)
        return [f(k) for k in order]

    results = run_threads(8, call)
    assert all(sorted(r) == [k * 7 for k in range(keys)] for r in results)
    assert len(calls) == keys, f"{len(calls) - len(set(calls))} extra computations"


class GatedReads(SlowReads):
    """A real backend whose first ``n`` reads each read the store, then wait until all ``n``
    have: every one of those callers misses, and they all go on together."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.gate = threading.Barrier(n)
        self.left = n

    def _get(self, key: str) -> Any:
        with self.guard:
            value = self.data.get(key)
            gated = self.left > 0
            self.left -= 1
        if gated:
            self.gate.wait(10)
        return value


def test_single_flight_error_is_raised_once_for_every_overlapping_caller() -> None:
    for round_ in range(20):
        memo = Memoizer(kind="gated_errors", backend=GatedReads(8))
        runs: list[int] = []

        def fails(n: int) -> int:
            runs.append(n)  # noqa: B023 - called within this round only
            raise ValueError(f"no quote for {n}")

        f = memo.memoize(fails)

        def call(
            n: int, start: threading.Barrier, f: Callable[[int], int] = f, r: int = round_
        ) -> str:
            start.wait()
            try:
                f(r)
            except ValueError as exc:
                return str(exc)
            return "returned"

        assert run_threads(8, call) == [f"no quote for {round_}"] * 8
        assert runs == [round_], f"round {round_}: ran {len(runs)} times"
        # A call that begins after the error is a new call: it runs again.
        with pytest.raises(ValueError, match="no quote"):
            f(round_)
        assert runs == [round_, round_]


def test_the_damage_helpers_damage(tmp_path: Path) -> None:
    # The damage above is real: a damaged SQLite store fails to read at least one entry.
    memo = Memoizer(kind="damage_check", backend=make_backend("sqlite", tmp_path))
    f = memo.memoize(square)
    for n in range(300):
        f(n)
    with sqlite3.connect(tmp_path / "memo.sqlite3") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage("sqlite", tmp_path)
    with sqlite3.connect(tmp_path / "memo.sqlite3") as conn:
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
    assert rows != [("ok",)]


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_never_returns_a_result_it_could_not_store(
    small_tmpfs: Path, kind: str, fresh_stats: None
) -> None:
    from pytest_cachemock import SystemError as CacheSystemError

    memo = Memoizer(
        kind=f"det_full_{kind}", backend=make_backend(kind, small_tmpfs), deterministic=True
    )
    f = memo.memoize(big)
    assert f(0) == big(0)
    filler = fill_disk(small_tmpfs)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert f(0) == big(0)  # stored before: the stored result
            with pytest.raises(CacheSystemError, match="deterministic"):
                [f(n) for n in range(1, 40)]  # one of them cannot be stored
    finally:
        filler.unlink()
    assert f(1) == big(1)  # the disk has room again: stored and returned
