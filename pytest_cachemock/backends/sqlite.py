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
:class:`FileLockTimeoutError`. The schema version is kept in ``PRAGMA user_version``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator

from ..errors import FileLockTimeoutError, SystemError
from .base import Backend, bytes_value, lock_timeout_seconds, store_file

__all__ = ["SqliteBackend"]


def _key(key: str) -> bytes:
    # Stored as UTF-8 bytes, lone surrogates included (as FileBackend does): SQLite's TEXT
    # refuses them, and os.fsdecode makes them from undecodable file names.
    return key.encode("utf-8", "surrogatepass")


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


SCHEMA_VERSION = 1
_TABLE = "cachemock_entries"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_SELECT = f"SELECT value FROM {_TABLE} WHERE key = ?"
_REPLACE = f"INSERT OR REPLACE INTO {_TABLE} (key, value) VALUES (?, ?)"
_INSERT_NEW = f"INSERT OR IGNORE INTO {_TABLE} (key, value) VALUES (?, ?)"
_DELETE = f"DELETE FROM {_TABLE} WHERE key = ?"

# Connections must not cross a fork: a child opens its own (the parent's is left alone).
_live: weakref.WeakSet[SqliteBackend] = weakref.WeakSet()


def _after_fork() -> None:
    for backend in list(_live):
        backend._forget_connection()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SqliteBackend(Backend[bytes]):
    """Stores bytes as rows of one SQLite database file at ``path``.

    The file (and its directory, owner-only) is made when missing; ``-wal`` and ``-shm``
    files appear next to it while it is in use. ``lock_timeout`` bounds how long a write waits
    for another process's write before raising :class:`FileLockTimeoutError`.
    """

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
        self._guard = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        self._connect()  # fail here, naming the file, rather than at the first get
        _live.add(self)

    def sidecar_path(self, name: str) -> str:
        """The path of a helper file next to this one: its path with ``name`` appended (a
        memoizer's lock file, ``<path>.memoize.lock``, say)."""
        return self._path + name

    # -- the connection ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self._path), mode=0o700, exist_ok=True)
        try:
            # Made owner-only before SQLite opens it (SQLite gives its -wal and -shm files
            # the mode of the database file); O_NOFOLLOW: never through a planted link.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SystemError(
                f"SqliteBackend cannot open {self._path!r}: {exc}; pass a path to a regular "
                "file you can write"
            ) from exc
        os.close(fd)
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self.lock_timeout,
                isolation_level=None,  # autocommit: every statement is its own transaction
                check_same_thread=False,  # shared by the threads of a process, under _guard
            )
        except sqlite3.Error as exc:
            raise SystemError(f"SqliteBackend cannot open {self._path!r}: {exc}") from exc
        try:
            # The version first, before anything is written: a newer database is left as it was.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SystemError(
                    f"{self._path!r} holds SqliteBackend schema version {version}; this "
                    f"pytest-cachemock reads version {SCHEMA_VERSION}. Upgrade it, or pass "
                    "another path"
                )
            self._setup(conn, version)
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
        self._conn = conn
        return conn

    def _setup(self, conn: sqlite3.Connection, version: int) -> None:
        """WAL mode and the table. Switching to WAL does not wait for a writer in another
        process (SQLite answers "locked" at once), so it is tried again until lock_timeout."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} "
            "(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
        )
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _forget_connection(self) -> None:
        # In a forked child: the parent's connection is not ours to use or to close.
        self._guard = threading.Lock()
        self._conn = None
        self._cursor = None

    def _translate(self, exc: sqlite3.OperationalError) -> Exception:
        text = str(exc)
        if _busy(exc):
            return FileLockTimeoutError(
                self._path, self.lock_timeout, "another process is writing to the database"
            )
        return SystemError(f"SqliteBackend {self._path!r}: {text}")

    def _run(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        # Caller holds _guard. One cursor per connection, reused: about 1.5 us less a write.
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = (self._conn or self._connect()).cursor()
        try:
            return cursor.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise self._translate(exc) from exc

    # -- entries -----------------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        with self._guard:
            row = self._run(_SELECT, (_key(key),)).fetchone()
        if row is None:
            return None
        value = row[0]
        return value if type(value) is bytes else bytes(value)

    def _put(self, key: str, value: bytes) -> None:
        value = bytes_value("SqliteBackend", key, value)
        with self._guard:
            self._run(_REPLACE, (_key(key), value))

    def _add(self, key: str, value: bytes) -> bool:
        # One statement, so atomic between processes: the first writer's row stays.
        value = bytes_value("SqliteBackend", key, value)
        with self._guard:
            return self._run(_INSERT_NEW, (_key(key), value)).rowcount == 1

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        with self._guard:
            return self._run(_DELETE, (_key(key),)).rowcount == 1

    def clear(self) -> None:
        """Remove every entry."""
        with self._guard:
            self._run(f"DELETE FROM {_TABLE}", ())

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every entry as (key, value), as of the moment of the call, in key order."""
        with self._guard:
            rows = self._run(f"SELECT key, value FROM {_TABLE} ORDER BY key", ()).fetchall()
        return iter([(bytes(k).decode("utf-8", "surrogatepass"), bytes(v)) for k, v in rows])

    def __len__(self) -> int:
        with self._guard:
            return int(self._run(f"SELECT COUNT(*) FROM {_TABLE}", ()).fetchone()[0])

    def close(self) -> None:
        """Close this process's connection; the next use opens it again."""
        with self._guard:
            conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"<SqliteBackend {self._path!r}>"
