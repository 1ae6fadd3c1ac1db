"""An on-disk backend in one append-only log file, indexed in memory by every process.

Every put, delete and clear appends one record to the file; nothing is ever written over.
Each process keeps an index (key -> where its value lies) that it brings up to date from the
end of the file before every operation: one ``fstat``, and a read of what other processes
appended since. A get is then a dict lookup and one ``pread``. A put is one ``write`` with
``O_APPEND`` into a file that already exists, under a POSIX lock on the log held for a few
microseconds. This is the layout of Bitcask; what it buys here is a first store of a key that
creates no file (a new file costs 20 to 850 us on the ext4 of docs/performance.md) and a read
that opens none (see there for the figures).

The price: each process holds every live key in memory, and reads and checks the whole file
the first time it uses it (about 2 us a record: 0.2 s for 100,000 entries of 100 bytes).
Overwritten and deleted entries stay in the file until it is compacted: by
:meth:`LogBackend.compact`, and by itself once it is over ``compact_at`` bytes and more than
half garbage.

Record: a header (magic with the format version, the record type, key length, value length,
and a 64-bit BLAKE2b digest of header fields, key and value), the key, the value. A reader
indexes complete records whose digest holds and stops at anything else: a record being
written is picked up on a later call. The index keeps a CRC-32 of each value, checked on every
read: bytes changed since they were indexed make the process index the log again, and are
never returned. A writer that finds bytes after the last good record while it holds the lock
(left by a process killed mid-write, or damage) rewrites the log without them into a new file
renamed over it, counted as an exception and logged: cutting them off in place would leave
other processes reading its new records through their old offsets. The file and its
records are kept by backends/_logfile.py; this module is the store's policy over them.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from ..errors import SystemError
from ._logfile import _DELETE, _HEADER, _PUT, _file_for, _LogFile, _record
from ._logfile import MAGIC as MAGIC  # re-exported: tests read the format from this module
from .base import Backend, bytes_value, lock_timeout_seconds, store_file

__all__ = ["LogBackend"]

log = logging.getLogger("pytest_cachemock")


class LogBackend(Backend[bytes]):
    """Stores bytes in one append-only log file at ``path``; several processes may share it.

    ``lock_timeout`` bounds how long a write waits for another process's write before raising
    :class:`FileLockTimeoutError`. ``compact_at`` (bytes, default 64 MiB) is the size past
    which a write compacts a log that is more than half garbage; None: only :meth:`compact`.
    """

    lists_entries = True
    stores_bytes = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        compact_at: int | None = 64 << 20,
        name: str | None = None,
    ) -> None:
        if fcntl is None:  # pragma: no cover - not POSIX
            raise SystemError("LogBackend needs POSIX file locks; use SqliteBackend here")
        timeout = lock_timeout_seconds(lock_timeout)
        if compact_at is not None and (
            isinstance(compact_at, bool) or not isinstance(compact_at, int) or compact_at < 0
        ):
            raise ValueError(f"compact_at must be None or an int >= 0 (bytes), got {compact_at!r}")
        super().__init__(name=name)
        self.path = store_file(path, "LogBackend needs a file", "cache.log")
        self.lock_timeout = timeout
        self.compact_at = compact_at
        self._path = os.fspath(self.path)
        # One _LogFile per file: every spelling of the path (``..``, linked directories) must
        # share it, or two descriptors of one file would not exclude each other.
        real = os.path.join(
            os.path.realpath(os.path.dirname(self._path)), os.path.basename(self._path)
        )
        self._file = _file_for(real)
        with self._file.guard:
            if self._file.fd < 0:
                self._file.open()  # fail here, naming the file, rather than at the first get

    def sidecar_path(self, name: str) -> str:
        """The path of a helper file next to this one: its path with ``name`` appended (a
        memoizer's lock file, ``<path>.memoize.lock``, say)."""
        return self._path + name

    # -- entries -----------------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        f = self._file
        with f.guard:
            f.sync()
            return f.value(key)

    def _locked_append(self, f: _LogFile, blob: bytes, st: os.stat_result | None) -> int:
        at, cut = f.append(blob, st)
        if cut:
            next(self._live_counters().exception)
        return at

    def _write(self, key: str, value: bytes, only_new: bool) -> bool:
        kb = key.encode("utf-8", "surrogatepass")
        blob = _record(_PUT, kb, value)
        f = self._file
        with f.guard:
            st: os.stat_result | None = f.lock(self.lock_timeout)
            try:
                if only_new:
                    f.sync(st)
                    st = None
                    if key in f.index:
                        return False
                at = self._locked_append(f, blob, st)
                old = f.index.pop(key, None)
                if old is not None:
                    f.live_bytes -= _HEADER.size + len(kb) + old[1]
                f.index[key] = (at + _HEADER.size + len(kb), len(value), zlib.crc32(value))
                f.live_bytes += len(blob)
                if self.compact_at is not None and f.end > max(
                    self.compact_at, 2 * f.live_bytes, f.compact_after
                ):
                    self._compact_after_write(f)
            finally:
                f.unlock()
        return True

    def _compact_after_write(self, f: _LogFile) -> None:
        # The value is stored: a compaction that fails now must not fail the put. Warn,
        # count it, and try again once the log has grown as much again (at most 64 MiB more).
        try:
            f.compact()
        except SystemError as exc:
            f.compact_after = f.end + min(f.end, 64 << 20)
            next(self._live_counters().exception)
            log.warning(
                "%s; the value was stored, compaction is tried again once the log is over %d bytes",
                exc,
                f.compact_after,
            )

    def _put(self, key: str, value: bytes) -> None:
        self._write(key, bytes_value("LogBackend", key, value), only_new=False)

    def _add(self, key: str, value: bytes) -> bool:
        # Under the log's lock, after reading what others appended: atomic between processes.
        return self._write(key, bytes_value("LogBackend", key, value), only_new=True)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        f = self._file
        with f.guard:
            f.lock(self.lock_timeout)
            try:
                f.sync()
                old = f.index.get(key)
                if old is None:
                    return False
                kb = key.encode("utf-8", "surrogatepass")
                self._locked_append(f, _record(_DELETE, kb, b""), None)
                del f.index[key]
                f.live_bytes -= _HEADER.size + len(kb) + old[1]
                return True
            finally:
                f.unlock()

    def clear(self) -> None:
        """Remove every entry; the log is rewritten empty."""
        self._rewrite(keep=False)

    def compact(self) -> None:
        """Rewrite the log with its live entries only (a new file renamed over it)."""
        self._rewrite(keep=True)

    def _rewrite(self, *, keep: bool) -> None:
        f = self._file
        with f.guard:
            f.lock(self.lock_timeout)
            try:
                f.sync()
                if not keep:
                    f.reset()
                f.compact()
            finally:
                f.unlock()

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every entry as (key, value), as of the moment of the call."""
        f = self._file
        with f.guard:
            f.sync()
            rows = [(key, f.value(key)) for key in list(f.index)]
        return iter([(key, value) for key, value in rows if value is not None])

    def __len__(self) -> int:
        f = self._file
        with f.guard:
            f.sync()
            return len(f.index)

    def close(self) -> None:
        """Close this process's descriptor of the log; the next use opens it again."""
        f = self._file
        with f.guard:
            f.close()

    def __repr__(self) -> str:
        return f"<LogBackend {self._path!r}>"
