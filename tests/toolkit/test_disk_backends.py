"""What LogBackend and SqliteBackend do alike, each test run on both: the public name, values
that are bytes-like or not bytes, counting, refusals (a directory, a planted symlink, a bad
lock timeout), persistence into a second instance and into another process, closing and
reopening, threads with exact counts, processes sharing keys (no torn value, one add()
winner per key), and a fork.

Values shared between threads or processes check themselves (_selfcheck): each holds its key,
its writer, its size and a SHA-256 of the rest, so a reader tells a whole value of the right
key from a torn, mixed or foreign one.

What only one of them does (the log's format, compaction and damage; SQLite's WAL, schema and
connections) is in test_log_backend.py and test_sqlite_backend.py.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import random
import re
import sqlite3
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from _formats import every_file, read_log, record_of, size_of, snap
from _procs import (
    ADD_WORKER,
    PATIENCE,
    RW_WORKER,
    backend_args,
    driver,
    last_json,
    run_threads,
    start_together,
    workers,
)
from _selfcheck import check_value, make_value

import pytest_cachemock
from pytest_cachemock import (
    CacheError,
    LogBackend,
    SqliteBackend,
    ValueEncodingError,
    cache_stats,
)
from pytest_cachemock import SystemError as CacheSystemError
from pytest_cachemock.backends import Backend

pytestmark = pytest.mark.usefixtures("fresh_stats")


@dataclass(frozen=True)
class Disk:
    """One of the backends: its class, the ending of its file, its module."""

    cls: type[Backend[bytes]]
    suffix: str
    module: str

    def __str__(self) -> str:
        return self.module

    @property
    def name(self) -> str:
        """The name it counts under by default."""
        return f"backend:{self.cls.__name__}"

    @property
    def is_log(self) -> bool:
        return self.cls is LogBackend

    def file(self, tmp_path: Path, stem: str = "cache") -> Path:
        return tmp_path / f"{stem}{self.suffix}"

    def __call__(self, path: Path | str, **kwargs: Any) -> Any:
        return self.cls(path, **kwargs)


LOG = Disk(LogBackend, ".log", "log")
SQLITE = Disk(SqliteBackend, ".sqlite3", "sqlite")


@pytest.fixture(params=[LOG, SQLITE], ids=str)
def disk(request: pytest.FixtureRequest) -> Disk:
    return request.param  # type: ignore[no-any-return]


# -- entries -------------------------------------------------------------------------------


def test_public_name_and_repr(tmp_path: Path, disk: Disk) -> None:
    name = disk.cls.__name__
    from_backends = getattr(importlib.import_module("pytest_cachemock.backends"), name)
    from_module = getattr(importlib.import_module(f"pytest_cachemock.backends.{disk}"), name)
    assert getattr(pytest_cachemock, name) is from_backends is from_module is disk.cls
    backend = disk(disk.file(tmp_path))
    assert backend.path == disk.file(tmp_path)
    assert str(disk.file(tmp_path)) in repr(backend)


@pytest.mark.parametrize(
    "value",
    [bytearray(b"\x00from a bytearray\xff"), memoryview(b"\x00from a memoryview\xff")],
    ids=["bytearray", "memoryview"],
)
def test_bytes_like_values_come_back_as_bytes(tmp_path: Path, disk: Disk, value: Any) -> None:
    backend = disk(disk.file(tmp_path))
    backend.put("k", value)
    assert backend.add("new", value) is True
    for key in ("k", "new"):
        got = backend.get(key)
        assert type(got) is bytes
        assert got == bytes(value)
    assert all(type(v) is bytes for _, v in backend.items())


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("text", "str"), ({"a": 1}, "dict"), (12, "int")],
)
def test_non_bytes_values_are_refused(
    tmp_path: Path, disk: Disk, value: object, type_name: str
) -> None:
    path = disk.file(tmp_path)
    backend = disk(path)
    for method in (backend.put, backend.add):
        with pytest.raises(ValueEncodingError) as info:
            method("the/key", value)
        message = str(info.value)
        assert f"got a {type_name} for key 'the/key'" in message
        assert "serde" in message
        assert isinstance(info.value, CacheError)
    assert backend.get("the/key") is None
    assert len(backend) == 0
    if disk.is_log:
        assert size_of(path) == 0  # nothing was written
    assert snap(disk.name) == {"hit": 0, "miss": 1, "put": 0, "exception": 2}


def test_items_is_taken_at_the_call(tmp_path: Path, disk: Disk) -> None:
    backend = disk(disk.file(tmp_path))
    backend.put("a", b"1")
    listed = backend.items()
    backend.put("b", b"2")
    backend.delete("a")
    assert list(listed) == [("a", b"1")]


# -- counting ------------------------------------------------------------------------------


def test_cache_stats_count_under_the_backend_name(tmp_path: Path, disk: Disk) -> None:
    # What each operation counts: tests/toolkit/test_backend_contract.py. Here: the name, and the
    # calls only these two have.
    backend = disk(disk.file(tmp_path))
    assert backend.name == disk.name
    backend.put("k", b"v")  # put
    if disk.is_log:
        backend.compact()  # not counted
    backend.close()  # not counted
    assert backend.get("k") == b"v"  # hit
    assert snap(disk.name) == {"hit": 1, "miss": 0, "put": 1, "exception": 0}


def test_custom_name(tmp_path: Path, disk: Disk) -> None:
    one = disk(disk.file(tmp_path), name=f"{disk}:one")
    two = disk(disk.file(tmp_path), name=f"{disk}:two")
    assert one.name == f"{disk}:one"
    one.put("k", b"v")
    assert two.get("k") == b"v"
    assert two.get("absent") is None
    assert snap(f"{disk}:two") == {"hit": 1, "miss": 1, "put": 0, "exception": 0}
    with pytest.raises(ValueEncodingError):
        two.put("k", "not bytes")
    assert snap(f"{disk}:one") == {"hit": 0, "miss": 0, "put": 1, "exception": 0}
    assert snap(f"{disk}:two") == {"hit": 1, "miss": 1, "put": 0, "exception": 1}
    assert disk.name not in cache_stats.snapshot()


# -- files and refusals --------------------------------------------------------------------


def test_an_existing_directory_is_used_as_it_is(tmp_path: Path, disk: Disk) -> None:
    tmp_path.chmod(0o755)
    backend = disk(disk.file(tmp_path))
    backend.put("k", b"v")
    if disk.is_log:
        backend.compact()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert backend.get("k") == b"v"


def test_a_directory_path_is_refused_with_a_hint(tmp_path: Path, disk: Disk) -> None:
    with pytest.raises(IsADirectoryError) as info:
        disk(tmp_path)
    message = str(info.value)
    assert repr(str(tmp_path)) in message
    assert "is a directory" in message
    assert str(disk.file(tmp_path)) in message  # what to pass instead
    assert list(tmp_path.iterdir()) == []


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path, disk: Disk) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = disk.file(tmp_path)
    path.symlink_to(victim)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(path)))):
        disk(path)
    assert victim.read_bytes() == b"precious"
    assert path.is_symlink()
    # A dangling link: following it would create the file it names.
    dangling = disk.file(tmp_path, "other")
    dangling.symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(dangling)))):
        disk(dangling)
    assert not (tmp_path / "created-through-the-link").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, dangling.name, "victim"]


@pytest.mark.parametrize("timeout", [-1, -0.5, True, False, "x", None, float("nan")])
def test_a_bad_lock_timeout_is_refused(tmp_path: Path, disk: Disk, timeout: object) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        disk(disk.file(tmp_path / "store"), lock_timeout=timeout)
    assert list(tmp_path.iterdir()) == []  # refused before anything is made


def test_zero_and_integer_lock_timeouts_are_accepted(tmp_path: Path, disk: Disk) -> None:
    assert disk(disk.file(tmp_path, "a"), lock_timeout=0).lock_timeout == 0.0
    assert disk(disk.file(tmp_path, "b"), lock_timeout=3).lock_timeout == 3.0


# -- persistence ---------------------------------------------------------------------------


def test_entries_persist_into_a_second_instance(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = disk.file(tmp_path)
    first = disk(path)
    first.put("k", b"v")
    first.put("gone", b"x")
    first.delete("gone")
    second = disk(str(path))  # a str path works too
    assert second.get("k") == b"v"
    assert second.get("gone") is None
    second.put("from-second", b"2")
    assert first.get("from-second") == b"2"  # and back: no stale snapshot in the first
    monkeypatch.chdir(tmp_path)
    relative = disk(path.name)  # a relative path names the same file
    assert relative.path == path
    assert relative.get("from-second") == b"2"
    first.close()
    second.close()
    relative.close()
    assert disk(path).get("k") == b"v"
    if disk.is_log:
        assert every_file(tmp_path) == [path]


@pytest.mark.slow
def test_entries_persist_into_another_process(tmp_path: Path, disk: Disk) -> None:
    path = disk.file(tmp_path)
    backend = disk(path)
    backend.put("parent", b"from the parent")
    backend.put("unicode/ключ", "значение".encode())
    backend.put("gone", b"x")
    backend.delete("gone")
    with driver(disk.cls, path) as child:
        assert child.get("parent") == b"from the parent"
        assert child.get("unicode/ключ") == "значение".encode()
        assert child.get("gone") is None
        assert child.get("absent") is None
        assert child("len") == 2
        child("put", "child", b"from the child")
    assert backend.get("child") == b"from the child"  # the open backend sees it


# -- close ---------------------------------------------------------------------------------


def test_close_then_use_again_reopens(tmp_path: Path, disk: Disk) -> None:
    backend = disk(disk.file(tmp_path))
    backend.put("k", b"v")
    backend.close()
    backend.close()  # twice is fine
    assert backend.get("k") == b"v"  # reopened
    backend.close()
    backend.put("k2", b"w")
    backend.close()
    assert backend.add("k3", b"x") is True
    backend.close()
    assert len(backend) == 3
    backend.close()
    assert dict(backend.items()) == {"k": b"v", "k2": b"w", "k3": b"x"}
    backend.close()
    assert backend.delete("k") is True
    backend.close()
    if disk.is_log:
        backend.compact()
        backend.close()
    assert dict(backend.items()) == {"k2": b"w", "k3": b"x"}
    backend.close()
    backend.clear()
    assert len(backend) == 0
    assert snap(disk.name)["exception"] == 0


# -- threads -------------------------------------------------------------------------------

THREADS = 8
OPS_PER_THREAD = 2_000
THREAD_KEYS = 40


@pytest.mark.parametrize(
    ("disk", "layout", "compact_at"),
    [
        (SQLITE, "one-backend", None),
        (LOG, "one-backend", 64 << 20),
        (LOG, "two-backends", 64 << 20),
        (LOG, "two-backends", 64 << 10),  # compacting now and then, under the other threads
        (LOG, "two-spellings", 64 << 20),
    ],
    ids=["sqlite", "log-one-backend", "log-two-backends", "log-compacting", "log-two-spellings"],
)
def test_threads_share_a_file_with_exact_counts(
    tmp_path: Path, disk: Disk, layout: str, compact_at: Optional[int]
) -> None:
    path = disk.file(tmp_path)
    options = {"compact_at": compact_at} if disk.is_log else {}
    first = disk(path, **options)
    if layout == "one-backend":
        backends = [first]
    elif layout == "two-backends":
        backends = [first, disk(path, **options)]
    else:
        (tmp_path / "sub").mkdir()
        backends = [first, disk(tmp_path / "sub" / ".." / path.name)]
    deletes = 0.05 if disk.is_log else 0.0  # the log's deletes are records too

    def run(n: int, start: threading.Barrier) -> dict[str, int]:
        backend = backends[n % len(backends)]
        rng = random.Random(n)
        seen = {"hit": 0, "miss": 0, "put": 0, "delete": 0, "bad": 0}
        start.wait(PATIENCE)
        for i in range(OPS_PER_THREAD):
            key = f"key-{rng.randrange(THREAD_KEYS)}"
            roll = rng.random()
            if roll < 0.2:
                backend.put(key, make_value(key, f"t{n}", i, rng.choice((128, 700, 3000))))
                seen["put"] += 1
            elif roll < 0.3:
                added = backend.add(key, make_value(key, f"t{n}", i, 200))
                seen["put" if added else "hit"] += 1
            elif roll < 0.3 + deletes:
                backend.delete(key)
                seen["delete"] += 1
            else:
                value = backend.get(key)
                if value is None:
                    seen["miss"] += 1
                    continue
                seen["hit"] += 1
                try:
                    check_value(key, value)
                except ValueError:
                    seen["bad"] += 1
        return seen

    results = run_threads(THREADS, run)
    fields = ("hit", "miss", "put", "delete", "bad")
    total = {field: sum(r[field] for r in results) for field in fields}
    assert total["bad"] == 0
    assert sum(total[f] for f in ("hit", "miss", "put", "delete")) == THREADS * OPS_PER_THREAD
    assert total["hit"] > 0
    assert total["put"] > 0
    assert total["miss"] > 0
    assert snap(disk.name) == {
        "hit": total["hit"],
        "miss": total["miss"],
        "put": total["put"],
        "exception": 0,
    }
    entries = dict(first.items())
    for key, value in entries.items():
        check_value(key, value)
    assert 0 < len(entries) <= THREAD_KEYS
    assert len(first) == len(entries)
    if disk.is_log:
        assert read_log(path) == (entries, size_of(path))
    first.close()
    assert dict(first.items()) == entries


# -- processes -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("disk", "compact_at"),
    [(SQLITE, None), (LOG, None), (LOG, 1 << 20)],
    ids=["sqlite", "log-no-compaction", "log-compacting"],
)
def test_four_processes_share_keys_and_never_see_a_torn_value(
    tmp_path: Path, disk: Disk, compact_at: Optional[int]
) -> None:
    path = disk.file(tmp_path)
    if disk.is_log:
        options: dict[str, Any] = {"compact_at": compact_at}
        ops, sizes = 300, [128, 1000, 4000, 30000, 120000, 1_100_000]
    else:
        # Made here first: opening a fresh file from several processes at once is the bug of
        # test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode (test_sqlite_backend).
        disk(path).close()
        options, ops, sizes = {}, 400, [128, 1000, 4000, 30000, 120000]
    writers = [f"w{n}" for n in range(4)]
    args = [
        [*backend_args(disk.cls, path, **options), w, str(ops), str(n), "12", json.dumps(sizes)]
        for n, w in enumerate(writers)
    ]
    with workers(RW_WORKER, args) as procs:
        start_together(procs)
        reports = [last_json(p) for p in procs]
    for report in reports:
        assert report["bad"] == []
        assert report["stats"]["exception"] == 0
        assert report["stats"]["hit"] == report["hit"]
        assert report["stats"]["miss"] == report["get"] - report["hit"]
        assert report["stats"]["put"] == report["put"]
    assert sum(r["foreign"] for r in reports) > 0  # they really read each other's values
    backend = disk(path)
    entries = dict(backend.items())
    assert sorted(entries) == sorted(f"shared-{i}" for i in range(12))
    for key, value in entries.items():
        who, _ = check_value(key, value)  # a whole value of its own key...
        assert who in writers  # ...written by one of them
    if disk.is_log:
        assert read_log(path) == (entries, size_of(path))
        assert every_file(tmp_path) == [path]


@pytest.mark.slow
def test_add_from_four_processes_has_exactly_one_winner_per_key(tmp_path: Path, disk: Disk) -> None:
    path = disk.file(tmp_path)
    if not disk.is_log:
        disk(path).close()  # see test_four_processes_share_keys_and_never_see_a_torn_value
    nkeys = 300
    args = [[*backend_args(disk.cls, path), f"w{n}", str(nkeys)] for n in range(4)]
    with workers(ADD_WORKER, args) as procs:
        start_together(procs)
        reports = [last_json(p) for p in procs]
    winners: dict[str, list[str]] = {}
    for report in reports:
        for key in report["won"]:
            winners.setdefault(key, []).append(report["writer"])
    assert sum(len(r["won"]) for r in reports) == nkeys  # the True returns, all processes
    assert sorted(winners) == sorted(f"fresh-{i}" for i in range(nkeys))
    assert all(len(w) == 1 for w in winners.values())
    stored = dict(disk(path).items())
    assert {key: value.decode() for key, value in stored.items()} == {
        key: w[0] for key, w in winners.items()
    }
    if disk.is_log:
        # One record per key: no add wrote over another's.
        assert size_of(path) == sum(len(record_of(k, v)) for k, v in stored.items())


# -- fork ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_backend_used_before_a_fork_works_in_the_child_and_after(
    tmp_path: Path, disk: Disk
) -> None:
    path = disk.file(tmp_path)
    backend = disk(path)
    backend.put("parent", b"p")
    assert backend.get("parent") == b"p"  # the parent's descriptor or connection is open, used
    # What the parent holds of the file: the log's descriptor, or the SQLite connection.
    parents = backend._file.fd if disk.is_log else backend._conn
    if disk.is_log:
        assert parents >= 0
    else:
        assert parents is not None
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        try:
            seen = backend.get("parent")
            for i in range(200):
                backend.put(f"child-{i % 20}", f"c{i}".encode())
            added = backend.add("shared", b"child")
            # SQLite connections must not cross a fork: the child opened its own.
            own = disk.is_log or (backend._conn is not None and backend._conn is not parents)
            out.put(("ok", seen, added, len(backend), snap(disk.name)["exception"], own))
        except BaseException as exc:  # pragma: no cover - reported by the test
            out.put(("error", repr(exc), None, None, None, None))

    proc = ctx.Process(target=child)
    proc.start()
    for i in range(200):  # the parent writes at the same time
        backend.put(f"parent-{i % 20}", f"p{i}".encode())
    result = out.get(timeout=PATIENCE)
    proc.join(PATIENCE)
    assert result[0] == "ok", result
    assert proc.exitcode == 0
    assert result[1] == b"p"
    assert result[2] is True  # the child stored "shared" first
    assert result[3] >= 22  # parent, shared and its 20 keys
    assert result[4] == 0
    assert result[5] is True
    # The parent keeps working on its own descriptor or connection, and sees what the child
    # wrote.
    if disk.is_log:
        assert backend._file.fd == parents
    else:
        assert backend._conn is parents
    assert backend.get("child-19") == b"c199"
    assert backend.get("parent-19") == b"p199"
    assert backend.add("shared", b"parent") is False
    assert backend.get("shared") == b"child"
    backend.put("after", b"a")
    assert backend.get("after") == b"a"
    assert len(backend) == 43
    assert snap(disk.name)["exception"] == 0
    if disk.is_log:
        entries, end = read_log(path)
        assert end == size_of(path)  # every record whole: no write mixed with the other's
        assert entries == dict(backend.items())
    else:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
