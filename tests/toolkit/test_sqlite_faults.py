"""SqliteBackend under faults and hostile files: two backends on one file while other processes
come and go (POSIX locks), a database deleted or replaced under an open backend, pages damaged
after open, a foreign SQLite database passed by mistake, a FIFO at the path.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _formats import every_file, snap
from _procs import PATIENCE, driver, fill_disk

from pytest_cachemock import CacheError, FileLockTimeoutError, RemoteCache, SqliteBackend
from pytest_cachemock import SystemError as CacheSystemError
from pytest_cachemock.backends import sqlite as sqlite_module

pytestmark = pytest.mark.usefixtures("fresh_stats")

NAME = "backend:SqliteBackend"


def db_files(db: Path) -> set[Path]:
    """The files SQLite may keep for ``db``."""
    return {db, Path(f"{db}-wal"), Path(f"{db}-shm")}


def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh Python process; its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- two backends on one file, other processes coming and going ----------------------------

# Opens the database, says whether it sees the key in argv[2], stores 50 keys named
# argv[3]<n>, and closes: the last connection to close checkpoints and removes the WAL.
_VISITOR = """
import sys
from pytest_cachemock import SqliteBackend
backend = SqliteBackend(sys.argv[1])
print(backend.get(sys.argv[2]))
for n in range(50):
    backend.put(f"{sys.argv[3]}{n}", bytes(1000))
backend.close()
"""


@pytest.mark.slow
def test_two_backends_on_one_file_lose_nothing_when_other_processes_come_and_go(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite3"
    first = SqliteBackend(db)
    first.put("first", b"1")
    second = SqliteBackend(db)  # a second object on the same file, as docs/toolkit.md does
    second.put("second", b"2")
    assert run_python(_VISITOR, str(db), "second", "one").strip() == "b'2'"
    first.put("after-one", b"3")
    # The next visitor sees what the first backend wrote after the last visitor left.
    assert run_python(_VISITOR, str(db), "after-one", "two").strip() == "b'3'"
    assert first.get("two49") == bytes(1000)
    second.put("after-two", b"4")
    first.close()
    second.close()
    fresh = SqliteBackend(db)
    assert {k for k, _ in fresh.items()} == {
        "first",
        "second",
        "after-one",
        "after-two",
        *(f"one{n}" for n in range(50)),
        *(f"two{n}" for n in range(50)),
    }
    fresh.close()
    assert integrity(db) == "ok"


@pytest.mark.slow
def test_a_backend_made_while_another_is_open_leaves_its_locks_alone(tmp_path: Path) -> None:
    # Made, used and closed again and again while the first one stays open: the first one's
    # locks stay, so a visitor never takes the database for unused.
    db = tmp_path / "db.sqlite3"
    kept = SqliteBackend(db)
    kept.put("kept", b"k")
    for n in range(3):
        other = SqliteBackend(db)
        other.put(f"other{n}", b"o")
        other.close()
        assert run_python(_VISITOR, str(db), "kept", f"v{n}-").strip() == "b'k'"
        kept.put(f"kept{n}", b"k")
        assert run_python(_VISITOR, str(db), f"kept{n}", f"w{n}-").strip() == "b'k'"
    kept.close()
    assert len(SqliteBackend(db)) == 1 + 3 + 3 * 2 * 50 + 3
    assert integrity(db) == "ok"


# -- a database deleted or replaced under an open backend ----------------------------------


def test_a_deleted_database_is_made_again_by_the_next_write(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("before", b"b")
    for f in db_files(db):  # rm db.sqlite3*, as a user cleaning up would
        f.unlink(missing_ok=True)
    backend.put("after", b"a")
    fresh = SqliteBackend(db)
    assert fresh.get("after") == b"a"
    assert fresh.get("before") is None
    assert backend.get("before") is None  # the backend reads the new file too
    assert dict(backend.items()) == {"after": b"a"}
    assert snap(NAME)["exception"] == 0


def test_a_database_renamed_over_is_followed_by_reads_and_writes(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("old", b"o")
    new = tmp_path / "new.sqlite3"
    run_python(
        """
        import sys
        from pytest_cachemock import SqliteBackend
        b = SqliteBackend(sys.argv[1])
        b.put("theirs", b"t")
        b.close()
        """,
        str(new),
    )
    os.replace(new, db)
    # With the old file's -wal and -shm: left at the path, they would be read as the new
    # file's by whoever opens it next (SQLite binds a WAL to a file name, not to a file).
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink()
    time.sleep(sqlite_module._READ_CHECK_EVERY)  # a read looks at the path this often
    assert backend.get("theirs") == b"t"  # a read notices the new file
    backend.put("mine", b"m")
    fresh = SqliteBackend(db)
    assert dict(fresh.items()) == {"theirs": b"t", "mine": b"m"}


@pytest.mark.slow
def test_a_replaced_database_in_use_by_another_process_keeps_its_wal(tmp_path: Path) -> None:
    # Leaving the old file must not checkpoint into it or remove the -wal and -shm at the
    # path, which are the new file's now, in use by another process.
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("old", b"o")
    for f in db_files(db):
        f.unlink(missing_ok=True)
    with driver(SqliteBackend, db) as child:
        child("put", "child-1", b"c1")  # in the new file's WAL, which the child keeps open
        backend.put("mine", b"m")
        child("put", "child-2", b"c2")
        assert child.get("mine") == b"m"
        assert Path(f"{db}-wal").exists()
        backend.close()
        assert Path(f"{db}-wal").exists()
        child("put", "child-3", b"c3")
        assert SqliteBackend(db).get("child-3") == b"c3"
    fresh = SqliteBackend(db)
    assert dict(fresh.items()) == {
        "child-1": b"c1",
        "child-2": b"c2",
        "child-3": b"c3",
        "mine": b"m",
    }
    fresh.close()
    assert integrity(db) == "ok"


def test_two_backends_on_one_path_both_follow_a_replacement(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    one, two = SqliteBackend(db), SqliteBackend(db)
    one.put("k", b"before")
    for f in db_files(db):
        f.unlink(missing_ok=True)
    two.put("k", b"after")  # a write looks at the path every time
    time.sleep(sqlite_module._READ_CHECK_EVERY)  # a read, this often
    assert one.get("k") == b"after"
    one.put("j", b"j")
    assert two.get("j") == b"j"


# -- damage found after open ---------------------------------------------------------------

_DAMAGE = """
import os, sys
path, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(start)
    f.write(os.urandom(stop - start))
"""

ENTRIES = 3000


def _many_entries(db: Path) -> dict[str, bytes]:
    """A database of ENTRIES entries, all in the main file (checkpointed, no WAL left)."""
    entries = {f"k{n:05d}": bytes([n % 251]) * 300 for n in range(ENTRIES)}
    maker = SqliteBackend(db)
    for key, value in entries.items():
        maker.put(key, value)
    maker.close()
    assert every_file(db.parent) == [db]
    return entries


def _damage_the_middle(db: Path) -> None:
    """Garbage over the middle fifth of the file, written by another process (a descriptor
    opened here would drop this process's locks)."""
    size = db.stat().st_size
    page = 4096
    start = (size * 2 // 5) // page * page
    stop = (size * 3 // 5) // page * page
    run_python(_DAMAGE, str(db), str(start), str(stop))


def _check_damaged_reads(
    backend: SqliteBackend, entries: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Every get returns the right value or None; the keys that missed."""
    missed = []
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        for key, value in entries.items():
            got = backend.get(key)
            if got is None:
                missed.append(key)
            else:
                assert got == value, key
    return missed


def test_damage_after_open_is_a_counted_miss_on_get_and_a_cache_error_on_put(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "db.sqlite3"
    entries = _many_entries(db)
    backend = SqliteBackend(db)  # opened while the file is whole
    _damage_the_middle(db)
    missed = _check_damaged_reads(backend, entries, caplog)
    assert missed  # the damage was found
    assert len(missed) < ENTRIES  # and the rest still read
    stats = snap(NAME)
    assert stats["exception"] >= 1
    assert stats["miss"] == len(missed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    assert all(str(db) in w and "delete" in w for w in warnings), warnings[0]

    failures = []
    for key in missed:
        for write in (backend.put, backend.add):
            try:
                write(key, b"new")
            except CacheError as exc:
                failures.append(exc)
    assert failures
    for exc in failures:
        assert isinstance(exc, CacheSystemError)
        assert repr(str(db)) in str(exc)
        assert "delete it" in str(exc)
        assert isinstance(exc.__cause__, sqlite3.DatabaseError)
    for whole in (len, lambda b: list(b.items())):
        with pytest.raises(CacheSystemError, match=re.escape(repr(str(db)))):
            whole(backend)


def test_damage_after_open_through_a_remote_cache_and_a_fresh_backend(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "db.sqlite3"
    made = SqliteBackend(db)
    maker = RemoteCache[str](made, namespace="rows")
    values = {f"k{n:05d}": f"value {n} " * 30 for n in range(ENTRIES)}
    for key, value in values.items():
        maker.put(key, value)
    made.close()
    backend = SqliteBackend(db)
    cache = RemoteCache[str](backend, namespace="rows")
    _damage_the_middle(db)
    missed = []
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        for key, value in values.items():
            got = cache.get(key)  # never a raw sqlite3 error
            if got is None:
                missed.append(key)
            else:
                assert got == value
    assert missed  # the damage was found (it may sit on a page every lookup goes through)
    assert snap(NAME)["exception"] >= 1
    assert snap("RemoteCache")["miss"] == len(missed)
    failures = []
    for key in missed:
        try:
            cache.put(key, "new")
        except CacheError as exc:
            failures.append(exc)
    assert failures
    assert all(isinstance(e, CacheSystemError) and "delete it" in str(e) for e in failures)
    # A fresh backend opens it (the first pages, with the schema, are whole) and finds the
    # same damage, as misses.
    fresh = RemoteCache[str](SqliteBackend(db), namespace="rows")
    assert sum(fresh.get(key) is None for key in values) == len(missed)


# -- a SQLite database that is not ours ----------------------------------------------------


def _foreign(path: Path, *, user_version: int = 0, app_id: int = 0, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {n}",) for n in range(50)])
    if user_version:
        conn.execute(f"PRAGMA user_version = {user_version}")
    if app_id:
        conn.execute(f"PRAGMA application_id = {app_id}")
    conn.commit()
    conn.close()


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    "kind",
    ["plain", "user-version-1", "application-id", "wal", "with-our-table-too"],
)
def test_a_foreign_database_is_refused_and_left_byte_for_byte(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "app.db"
    _foreign(
        path,
        user_version=1 if kind == "user-version-1" else 0,
        app_id=0x12345678 if kind == "application-id" else 0,
        wal=kind == "wal",
    )
    if kind == "with-our-table-too":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE cachemock_entries (key BLOB PRIMARY KEY, value BLOB)")
        conn.commit()
        conn.close()
    before = path.read_bytes()
    mode = _journal_mode(path)
    with pytest.raises(CacheSystemError) as info:
        SqliteBackend(path)
    message = str(info.value)
    assert repr(str(path)) in message
    assert "not a SqliteBackend database" in message
    assert "notes" in message  # what it holds instead
    assert "pass another path" in message
    assert path.read_bytes() == before
    assert _journal_mode(path) == mode
    assert every_file(tmp_path) == [path]
    assert snap(NAME)["put"] == 0


def test_a_database_made_by_the_previous_release_is_still_read(tmp_path: Path) -> None:
    # What SqliteBackend 0.x made: WAL, our table, user_version 1, no application_id.
    path = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE cachemock_entries "
        "(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
    )
    conn.execute("INSERT INTO cachemock_entries VALUES (CAST('k' AS BLOB), x'76')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    backend = SqliteBackend(path)
    assert backend.get("k") == b"v"
    backend.put("j", b"w")
    backend.close()
    assert dict(SqliteBackend(path).items()) == {"k": b"v", "j": b"w"}


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_a_missing_or_empty_file_becomes_ours(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "db.sqlite3"
    if kind == "empty":
        path.write_bytes(b"")
    SqliteBackend(path).put("k", b"v")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("PRAGMA application_id").fetchone() != (0,)
    conn.close()
    assert SqliteBackend(path).get("k") == b"v"


def test_a_fifo_at_the_path_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    os.mkfifo(path)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(path)))):
        SqliteBackend(path)


# -- other promises of docs/toolkit.md -----------------------------------------------------

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO cachemock_entries VALUES (CAST('held' AS BLOB), x'01')")
print("holding", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@pytest.mark.slow
def test_backends_on_one_file_each_wait_their_own_lock_timeout(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    impatient = SqliteBackend(db, lock_timeout=0)
    patient = SqliteBackend(db, lock_timeout=PATIENCE)  # shares impatient's connection
    impatient.put("k", b"v")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(FileLockTimeoutError) as info:
            impatient.put("k", b"w")
        assert info.value.timeout == 0
        outcome: list[object] = []
        writer = threading.Thread(target=lambda: outcome.append(patient.put("k", b"p")))
        writer.start()
        with pytest.raises(FileLockTimeoutError):  # still its own timeout, while patient waits
            SqliteBackend(db, lock_timeout=0).put("k", b"x")
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        writer.join(PATIENCE)
        assert outcome == [None]  # patient waited for the holder instead of giving up
        assert impatient.get("k") == b"p"
        assert impatient.get("held") == b"\x01"
    finally:
        holder.kill()
        holder.wait()


def test_a_write_that_fills_the_disk_keeps_the_old_value(small_tmpfs: Path) -> None:
    db = small_tmpfs / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"old")
    filler = fill_disk(small_tmpfs, keep=0)
    with pytest.raises(CacheSystemError) as info:
        backend.put("k", os.urandom(1 << 20))
    assert repr(str(db)) in str(info.value)
    assert "Free space" in str(info.value)
    assert backend.get("k") == b"old"
    filler.unlink()
    backend.put("k", b"new")
    assert SqliteBackend(db).get("k") == b"new"
    backend.close()
    assert integrity(db) == "ok"
