"""An on-disk backend in one SQLite database file; several processes may share it.

Why a second on-disk backend: :class:`FileBackend` keeps one file per key, so the first
store of a key creates a file (an inode), which costs 20 to 850 us on the ext4 of
docs/performance.md, and the first read of a key in a process opens one (about 7 us).
Here the entries are rows of one table: a store is an ``INSERT`` into a file that already
exists (about 12 us) and a read is one indexed ``SELECT`` (about 4 us), which is what a
persistent :class:`~pytest_cachemock.Memoizer` needs for its first calls and its hits in a
fresh process. Large values (megabytes) are better served by ``FileBackend``.

The database runs in WAL mode with ``synchronous=NORMAL``: readers never wait for a writer,
a committed entry survives a crash of the process (not necessarily of the machine), and
writers queue for up to ``lock_timeout`` seconds, past which they raise
:class:`FileLockTimeoutError`. A database is ours when its ``application_id`` is
:data:`APPLICATION_ID` (or, as made before that, when our table is all it holds); the schema
version is kept in ``user_version``.

Nothing here ever opens an existing database file but SQLite: closing any descriptor of a
file drops every POSIX lock the process holds on it, SQLite's included, and another process
would then take the database for unused and remove the WAL that this one still writes into.
Each backend has its own connection (SQLite shares the locks of a process's connections to
one file); a file deleted or replaced at the path is noticed and the new one opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import FileLockTimeoutError, SystemError
from .base import Backend, bytes_value, lock_timeout_seconds, store_file

__all__ = ["SqliteBackend"]

log = logging.getLogger("pytest_cachemock")


def _key(key: str) -> bytes:
    # Stored as UTF-8 bytes, lone surrogates included (as FileBackend does): SQLite's TEXT
    # refuses them, and os.fsdecode makes them from undecodable file names.
    return key.encode("utf-8", "surrogatepass")


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


SCHEMA_VERSION = 1
APPLICATION_ID = 0x70636D6B  # b"pcmk": PRAGMA application_id of a SqliteBackend database
_TABLE = "cachemock_entries"
_NEW_FILE = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)
# How long a read may go on using the file it has open without checking that it is still the
# file at the path (an lstat, about 0.8 us: a fifth of a read). A write always checks.
_READ_CHECK_EVERY = 0.05

_SELECT = f"SELECT value FROM {_TABLE} WHERE key = ?"
_REPLACE = f"INSERT OR REPLACE INTO {_TABLE} (key, value) VALUES (?, ?)"
_INSERT_NEW = f"INSERT OR IGNORE INTO {_TABLE} (key, value) VALUES (?, ?)"
_DELETE = f"DELETE FROM {_TABLE} WHERE key = ?"
_SCHEMA_NAMES = "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite^_%' ESCAPE '^'"


class _Connection:
    """A backend's connection to its file, and which file that is."""

    def __init__(self, path: str) -> None:
        self.path = path  # with the directory's links resolved
        self.guard = threading.Lock()  # the threads of a process take turns on it
        self.conn: sqlite3.Connection | None = None
        self.cursor: sqlite3.Cursor | None = None
        self.ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file conn is on
        self.checked = 0.0  # time.monotonic() of the last look at the path

    def forget(self) -> None:
        """Stop using the connection without closing it."""
        self.conn = self.cursor = None
        self.ident = (0, 0)

    def close(self) -> None:
        conn = self.conn
        self.forget()
        if conn is not None:
            # For a file deleted or replaced at the path, SQLite sees that it has moved and
            # neither checkpoints into it nor removes the -wal and -shm at the path (which
            # may be the new file's, in use by another process).
            with contextlib.suppress(sqlite3.Error):
                conn.close()


# Opening a file is done under one lock per file (every spelling of its path: ``..``, linked
# directories) in the process: the descriptor that makes a missing file is closed again, and
# closing it must not drop a lock that a SQLite connection of ours took on that new file.
_opening: dict[str, threading.Lock] = {}
_opening_guard = threading.Lock()
_live: weakref.WeakSet[_Connection] = weakref.WeakSet()
# Connections a forked child inherited: never used or closed there (closing one closes
# descriptors, and might checkpoint under the parent's feet), so kept for its lifetime.
_inherited: list[sqlite3.Connection] = []


def _opening_lock(path: str) -> threading.Lock:
    with _opening_guard:
        found = _opening.get(path)
        if found is None:
            found = _opening[path] = threading.Lock()
        return found


def _after_fork() -> None:
    global _opening_guard
    _opening_guard = threading.Lock()
    for path in list(_opening):
        _opening[path] = threading.Lock()
    for c in list(_live):
        if c.conn is not None:
            _inherited.append(c.conn)
        c.guard = threading.Lock()
        c.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SqliteBackend(Backend[bytes]):
    """Stores bytes as rows of one SQLite database file at ``path``.

    The file (and its directory, owner-only) is made when missing; ``-wal`` and ``-shm``
    files appear next to it while it is in use. ``lock_timeout`` bounds how long a write waits
    for another process's write before raising :class:`FileLockTimeoutError`.
    """

    lists_entries = True
    stores_bytes = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        timeout = lock_timeout_seconds(lock_timeout)
        super().__init__(name=name)
        self.path = store_file(path, "SqliteBackend needs a database file", "cache.sqlite3")
        self.lock_timeout = timeout
        self._path = os.fspath(self.path)
        real = os.path.join(
            os.path.realpath(os.path.dirname(self._path)), os.path.basename(self._path)
        )
        self._db = _Connection(real)
        _live.add(self._db)
        with self._db.guard:  # fail here, naming the file, rather than at the first get
            self._cursor_for(write=True)

    @property
    def _conn(self) -> sqlite3.Connection | None:
        """This backend's connection to its file, if open."""
        return self._db.conn

    def sidecar_path(self, name: str) -> str:
        """The path of a helper file next to this one: its path with ``name`` appended (a
        memoizer's lock file, ``<path>.memoize.lock``, say)."""
        return self._path + name

    # -- the connection ----------------------------------------------------------------------

    def _cursor_for(self, write: bool) -> sqlite3.Cursor:
        """The shared cursor, on the file now at the path. Caller holds the guard.

        The path is looked at (an lstat: it opens nothing, so it drops no lock) before every
        write and at most every _READ_CHECK_EVERY seconds before a read; when the file there
        is not the one open, because it was deleted or replaced, the file at the path is
        opened instead.
        """
        db = self._db
        cursor = db.cursor
        if cursor is not None:
            now = time.monotonic()
            if write or now - db.checked >= _READ_CHECK_EVERY:
                try:
                    st = os.lstat(db.path)
                    moved = st.st_ino != db.ident[1] or st.st_dev != db.ident[0]
                except OSError:
                    moved = True
                if moved:
                    db.close()
                    cursor = None
                else:
                    db.checked = now
        if cursor is None:
            self._open()
            assert db.conn is not None
            cursor = db.cursor = db.conn.cursor()
        return cursor

    def _file_ident(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the regular file at the path, made (owner-only) when missing.

        Never opens an existing file: only SQLite does, so that no lock of it is dropped.
        """
        path = self._db.path
        for _ in range(10):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                try:
                    # Made owner-only before SQLite opens it (SQLite gives its -wal and -shm
                    # files the mode of the database file). A new file: nobody's lock is on it.
                    fd = os.open(path, _NEW_FILE, 0o600)
                except FileExistsError:
                    continue  # made by someone else meanwhile: look at it
                except OSError as exc:
                    raise self._cannot_open(exc) from exc
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise self._cannot_open(exc) from exc
            if stat.S_ISLNK(st.st_mode):
                raise self._cannot_open("it is a symbolic link")
            if not stat.S_ISREG(st.st_mode):
                raise self._cannot_open("it is not a regular file")
            if not os.access(path, os.R_OK | os.W_OK):
                raise self._cannot_open("no permission to read and write it")
            return st.st_dev, st.st_ino
        raise self._cannot_open("it keeps being replaced")

    def _cannot_open(self, why: object) -> SystemError:
        return SystemError(
            f"SqliteBackend cannot open {self._path!r}: {why}; pass a path to a regular file "
            "you can write"
        )

    def _open(self) -> None:
        """Connect to the file at the path, check that it is ours, set it up. Hold guard."""
        db = self._db
        try:
            os.makedirs(os.path.dirname(db.path), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise self._cannot_open(exc) from exc
        # mode=rw: SQLite never creates the file (we do, owner-only, and never through a link).
        uri = Path(db.path).as_uri() + "?mode=rw"
        with _opening_lock(db.path):
            conn, ident = self._connect(uri)
        try:
            self._setup(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            raise self._translate(exc) from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SystemError(
                f"{self._path!r} is not a database SqliteBackend can use ({exc}); delete it "
                "or pass another path"
            ) from exc
        except BaseException:
            conn.close()
            raise
        db.conn, db.ident, db.checked = conn, ident, time.monotonic()

    def _connect(self, uri: str) -> tuple[sqlite3.Connection, tuple[int, int]]:
        """A connection to the regular file at the path, and its (st_dev, st_ino)."""
        for _ in range(10):
            ident = self._file_ident()
            try:
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self.lock_timeout,
                    isolation_level=None,  # autocommit: every statement is its own transaction
                    check_same_thread=False,  # shared by the threads of a process, under guard
                )
            except sqlite3.Error as exc:
                raise SystemError(f"SqliteBackend cannot open {self._path!r}: {exc}") from exc
            try:
                again = self._file_ident()
            except BaseException:
                conn.close()
                raise
            if again == ident:
                return conn, ident  # SQLite opened the file we looked at
            conn.close()  # replaced while SQLite opened it; nothing was read
        raise self._cannot_open("it keeps being replaced")

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Refuse a database that is not ours or is newer, before anything is written; then
        WAL mode, and the table and marks of ours where they are missing."""
        app = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        names = [str(name) for (name,) in conn.execute(_SCHEMA_NAMES)]
        # Ours: our mark; or, unmarked, our table alone (made before the mark) or nothing at
        # all (an empty or new file).
        if not (app == APPLICATION_ID or (app == 0 and names in ([_TABLE], []))) or (
            not names and app == 0 and version != 0
        ):
            held = ", ".join(sorted(names)[:8]) or "no tables"
            raise SystemError(
                f"{self._path!r} is not a SqliteBackend database: it is another application's "
                f"SQLite database (it holds {held}; application_id {app}, user_version "
                f"{version}), left as it was; pass another path"
            )
        if version > SCHEMA_VERSION:
            raise SystemError(
                f"{self._path!r} holds SqliteBackend schema version {version}; this "
                f"pytest-cachemock reads version {SCHEMA_VERSION}. Upgrade it, or pass "
                "another path"
            )
        self._wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        if names != [_TABLE] or app != APPLICATION_ID or version != SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_TABLE} "
                    "(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switching to WAL does not wait for a writer in another process (SQLite answers
        "locked" at once), so it is tried again until lock_timeout."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _translate(self, exc: sqlite3.OperationalError) -> Exception:
        text = str(exc)
        if _busy(exc):
            return FileLockTimeoutError(
                self._path, self.lock_timeout, "another process is writing to the database"
            )
        if "full" in text:
            return SystemError(
                f"SqliteBackend {self._path!r}: {text}; nothing was stored. Free space on its "
                "file system"
            )
        return SystemError(f"SqliteBackend {self._path!r}: {text}")

    def _damaged(self, exc: sqlite3.DatabaseError) -> SystemError:
        return SystemError(
            f"SqliteBackend {self._path!r} is damaged ({exc}); delete it (and its -wal and "
            "-shm files): the next use makes a new, empty one"
        )

    def _run(self, sql: str, params: tuple[object, ...], write: bool, fetch: str) -> Any:
        """Run one statement on the shared cursor; what ``fetch`` asks for: "one" row, "all"
        rows, or the "rowcount". SQLite errors come out as SystemError naming the file."""
        with self._db.guard:
            cursor = self._cursor_for(write)
            try:
                cursor.execute(sql, params)
                if fetch == "one":
                    return cursor.fetchone()
                if fetch == "all":
                    return cursor.fetchall()
                return cursor.rowcount
            except sqlite3.OperationalError as exc:
                raise self._translate(exc) from exc
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from exc

    # -- entries -----------------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        try:
            row = self._run(_SELECT, (_key(key),), False, "one")
        except SystemError as exc:
            cause = exc.__cause__
            if not isinstance(cause, sqlite3.DatabaseError) or isinstance(
                cause, sqlite3.OperationalError
            ):
                raise
            # Damage is a miss, counted and logged: a cache carries on without its entry.
            next(self._live_counters().exception)
            log.warning("%s; key %r treated as a miss", exc, key)
            return None
        if row is None:
            return None
        value = row[0]
        return value if type(value) is bytes else bytes(value)

    def _put(self, key: str, value: bytes) -> None:
        value = bytes_value("SqliteBackend", key, value)
        self._run(_REPLACE, (_key(key), value), True, "rowcount")

    def _add(self, key: str, value: bytes) -> bool:
        # One statement, so atomic between processes: the first writer's row stays.
        value = bytes_value("SqliteBackend", key, value)
        return bool(self._run(_INSERT_NEW, (_key(key), value), True, "rowcount") == 1)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        return bool(self._run(_DELETE, (_key(key),), True, "rowcount") == 1)

    def clear(self) -> None:
        """Remove every entry."""
        self._run(f"DELETE FROM {_TABLE}", (), True, "rowcount")

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every entry as (key, value), as of the moment of the call, in key order."""
        rows = self._run(f"SELECT key, value FROM {_TABLE} ORDER BY key", (), False, "all")
        return iter([(bytes(k).decode("utf-8", "surrogatepass"), bytes(v)) for k, v in rows])

    def __len__(self) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM {_TABLE}", (), False, "one")[0])

    def close(self) -> None:
        """Close this backend's connection; the next use opens the file at the path again."""
        with self._db.guard:
            self._db.close()

    def __repr__(self) -> str:
        return f"<SqliteBackend {self._path!r}>"
