"""SqliteBackend: entries, files and permissions, refusals, schema versions, lock timeouts,
fork and reopening. What it does as LogBackend does (counting, refusals of a directory, a
symlink or a bad lock timeout, persistence, threads, processes sharing keys) is in
test_disk_backends.py.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import textwrap
import time
from pathlib import Path

import pytest
from _formats import PATH_KEYS, every_file, snap
from _procs import PATIENCE, workers

from pytest_cachemock import (
    CacheError,
    FileLockTimeoutError,
    LockTimeoutError,
    SqliteBackend,
)
from pytest_cachemock import SystemError as CacheSystemError

pytestmark = pytest.mark.usefixtures("fresh_stats")

NAME = "backend:SqliteBackend"


# -- helpers -------------------------------------------------------------------------------


def db_files(db: Path) -> set[Path]:
    """The files SQLite may keep for ``db``."""
    return {db, Path(f"{db}-wal"), Path(f"{db}-shm")}


# -- entries -------------------------------------------------------------------------------


# Get, put, replace, add, delete, clear, items and len, odd keys (lone surrogates too) and
# their counts: tests/toolkit/test_backend_contract.py, as for every backend.


def test_items_come_in_key_order(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    for key in ("b", "c", "a"):
        backend.put(key, key.encode())
    assert list(backend.items()) == [("a", b"a"), ("b", b"b"), ("c", b"c")]


def test_empty_and_five_megabyte_values_round_trip(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    big = os.urandom(5 * 1024 * 1024 + 3)
    backend.put("empty", b"")
    backend.put("big", big)
    got = backend.get("empty")
    assert got == b""
    assert got is not None  # an empty value is a hit, not a miss
    assert backend.add("empty", b"other") is False
    assert backend.get("big") == big
    assert dict(backend.items()) == {"big": big, "empty": b""}
    again = SqliteBackend(tmp_path / "db.sqlite3")
    assert again.get("big") == big
    assert snap(NAME)["hit"] == 4  # get(empty), add(empty) refused, get(big) twice
    assert snap(NAME)["miss"] == 0


ODD_KEYS = [
    *PATH_KEYS,
    "'; DROP TABLE cachemock_entries; --",
    "%_*?[]\t\n\r\x01\x7f",
    "e\u0301 vs \u00e9",  # two spellings of é: two keys
    "db.sqlite3-wal",
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:30])
def test_odd_keys_round_trip_and_make_no_files(tmp_path: Path, key: str) -> None:
    db = tmp_path / "inner" / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put(key, b"value")
    assert backend.get(key) == b"value"
    assert set(every_file(tmp_path)) <= db_files(db)


def test_all_odd_keys_together_are_distinct_entries(tmp_path: Path) -> None:
    db = tmp_path / "store" / "db.sqlite3"
    backend = SqliteBackend(db)
    for n, key in enumerate(ODD_KEYS):
        backend.put(key, str(n).encode())
    for n, key in enumerate(ODD_KEYS):
        assert backend.get(key) == str(n).encode()
    assert len(backend) == len(ODD_KEYS)
    assert dict(backend.items()) == {key: str(n).encode() for n, key in enumerate(ODD_KEYS)}
    # Nothing outside the directory, and nothing in it but the database's own files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert set(every_file(tmp_path)) <= db_files(db)


# -- files, permissions and refusals -------------------------------------------------------


@pytest.mark.usefixtures("umask0")
def test_owner_only_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    db = directory / "db.sqlite3"
    backend = SqliteBackend(db)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    backend.put("k", b"v")
    files = every_file(directory)
    assert set(files) == db_files(db)  # the -wal and -shm exist while it is open
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


@pytest.mark.parametrize(
    "content",
    [os.urandom(8192), b"this is a text file, not a database\n" * 40],
    ids=["random-bytes", "text"],
)
def test_a_non_database_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(CacheSystemError) as info:
        SqliteBackend(path)
    message = str(info.value)
    assert isinstance(info.value, CacheError)
    assert repr(str(path)) in message
    assert "delete it or pass another path" in message
    assert path.read_bytes() == content  # left alone


def test_a_symlink_planted_after_close_is_refused_on_reopen(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"v")
    backend.close()
    for f in db_files(db):
        f.unlink(missing_ok=True)
    db.symlink_to(victim)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(db)))):
        backend.get("k")
    assert victim.read_bytes() == b"precious"
    assert snap(NAME)["exception"] == 1


def _newer_database(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cachemock_entries (key TEXT PRIMARY KEY, value BLOB)")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _newer_database(path, 7)
    with pytest.raises(CacheSystemError) as info:
        SqliteBackend(path)
    message = str(info.value)
    assert repr(str(path)) in message
    assert "schema version 7" in message
    assert "reads version 1" in message
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (7,)  # not downgraded
    conn.close()


def test_a_refused_newer_database_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _newer_database(path, 7)
    before = path.read_bytes()
    with pytest.raises(CacheSystemError):
        SqliteBackend(path)
    assert path.read_bytes() == before


def test_an_older_unversioned_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).close()  # an empty database, user_version 0
    backend = SqliteBackend(path)
    backend.put("k", b"v")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("SELECT key, value FROM cachemock_entries").fetchall() == [
        (b"k", b"v")
    ]  # keys are UTF-8 bytes
    conn.close()


# -- lock timeout --------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT OR REPLACE INTO cachemock_entries (key, value) VALUES (CAST('held' AS BLOB), x'01')"
    )
    print("holding", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    print("committed", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_a_write_waits_lock_timeout_then_raises_while_reads_go_on(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db, lock_timeout=0.2)
    backend.put("k", b"before")
    with workers(_HOLDER, [[str(db)]]) as (holder,):
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"

        started = time.monotonic()
        with pytest.raises(FileLockTimeoutError) as info:
            backend.put("k", b"after")
        waited = time.monotonic() - started
        assert 0.15 <= waited < 2.0  # it waited about lock_timeout, and no longer
        assert isinstance(info.value, LockTimeoutError)
        assert isinstance(info.value, CacheSystemError)
        assert str(db) in str(info.value)
        assert "0.2 s" in str(info.value)
        assert info.value.timeout == 0.2

        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            backend.add("new", b"n")
        assert time.monotonic() - started < 2.0

        # WAL: readers do not wait for the writer, and see only what was committed.
        started = time.monotonic()
        assert backend.get("k") == b"before"
        assert backend.get("held") is None
        assert len(backend) == 1
        assert time.monotonic() - started < 1.0  # had they waited, they would have raised
        assert snap(NAME) == {"hit": 1, "miss": 1, "put": 1, "exception": 2}

        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "committed"
        backend.put("k", b"after")  # the writer is gone: it goes through
        assert backend.get("k") == b"after"
        assert backend.get("held") == b"\x01"
        holder.stdin.write("exit\n")
        holder.stdin.flush()
        holder.wait(PATIENCE)
        assert holder.returncode == 0


_SLOW_WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO cachemock_entries VALUES (x'01', x'02')")
    print("holding", flush=True)
    time.sleep(0.3)
    conn.execute("COMMIT")
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    # Ours but in rollback-journal mode (as made by hand, or restored from a copy): the
    # state of a file another process is still setting up.
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE cachemock_entries (key BLOB PRIMARY KEY, value BLOB)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with workers(_SLOW_WRITER, [[str(db)]]) as (holder,):
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        backend = SqliteBackend(db, lock_timeout=5)  # the writer is done in 0.3 s
        backend.put("k", b"v")
        assert backend.get("k") == b"v"


# -- fork ----------------------------------------------------------------------------------


# -- close ---------------------------------------------------------------------------------


def test_close_lets_sqlite_checkpoint_and_remove_its_side_files(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"v" * 10_000)
    assert Path(f"{db}-wal").exists()
    backend.close()  # the last connection: SQLite checkpoints and removes -wal and -shm
    assert every_file(tmp_path) == [db]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM cachemock_entries").fetchone() == (b"v" * 10_000,)
    conn.close()
