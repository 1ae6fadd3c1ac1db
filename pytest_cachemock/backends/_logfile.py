"""The LogBackend's file: its record format, and the handle (descriptor, index, lock) that
every LogBackend of a process shares on one path. The layout and why: backends/log.py.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import struct
import threading
import time
import zlib

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from ..errors import FileLockTimeoutError, SystemError

log = logging.getLogger("pytest_cachemock")

MAGIC = b"CML\x01"  # the last byte is the format version
_HEADER = struct.Struct(">4sB3xII8s")  # magic, type, key length, value length, digest
_PUT, _DELETE, _CLEAR = 0, 1, 2
_CHUNK = 1 << 20  # bytes read at a time while indexing
_FLAGS = (
    os.O_RDWR
    | os.O_APPEND
    | os.O_CREAT
    | os.O_NONBLOCK  # a FIFO planted at the path must not block the open
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _digest(kind: int, kb: bytes, value: bytes) -> bytes:
    h = hashlib.blake2b(bytes((kind,)), digest_size=8)
    h.update(len(kb).to_bytes(4, "big"))
    h.update(kb)
    h.update(value)
    return h.digest()


def _record(kind: int, kb: bytes, value: bytes) -> bytes:
    return _HEADER.pack(MAGIC, kind, len(kb), len(value), _digest(kind, kb, value)) + kb + value


class _LogFile:
    """One log file as this process sees it: descriptor, index, lock. Shared by every
    LogBackend of the process on that path, so that they serialise on one thread lock (a
    POSIX lock belongs to the process, and closing any descriptor of a file drops it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.guard = threading.RLock()
        self.fd = -1
        # key -> (offset of its value, length, CRC-32 of the value): every read checks the
        # bytes it gets against the CRC, so damage in place or a log cut and written again
        # behind this index is never returned as a value.
        self.index: dict[str, tuple[int, int, int]] = {}
        self.end = 0  # indexed up to here: the end of the last good record
        self.live_bytes = 0  # bytes of the records that hold live entries
        self.compact_after = 0  # after a failed automatic compaction: not before this size
        self.suspect_size = -1  # the size at which bad bytes made us index it all again

    def reset(self) -> None:
        self.index, self.end, self.live_bytes = {}, 0, 0

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(self.path, _FLAGS, 0o600)
        except OSError as exc:
            kind = _not_regular(self.path)
            if kind:
                raise _not_regular_error(self.path, kind) from exc
            raise SystemError(
                f"LogBackend cannot open {self.path!r}: {exc}; pass a path to a regular file "
                "you can write"
            ) from exc
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular_error(self.path, _kind_of(mode))
            self.check_format(fd)
        except BaseException:
            os.close(fd)
            raise
        old, self.fd = self.fd, fd
        self.reset()
        if old >= 0:
            # The descriptor of a file that was replaced (compacted): no lock of ours is on
            # the file now at the path through it.
            os.close(old)

    def check_format(self, fd: int) -> None:
        """Refuse a file that is not a log of this format: a writer would cut it all off."""
        head = os.pread(fd, len(MAGIC), 0)
        if MAGIC.startswith(head):
            return  # empty, ours, or our first record still being written
        if head[:3] == MAGIC[:3]:
            raise SystemError(
                f"{self.path!r} is a LogBackend log of format version {head[3]}; this "
                f"pytest-cachemock reads version {MAGIC[3]}. Upgrade it, or pass another path"
            )
        raise SystemError(
            f"{self.path!r} is not a LogBackend log (it starts with {head!r}); delete it or "
            "pass another path"
        )

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        self.reset()
        if fd >= 0:
            os.close(fd)

    # -- reading -----------------------------------------------------------------------------

    def sync(self, st: os.stat_result | None = None) -> int:
        """Bring the index up to date with the file; return the file's size. Hold guard.

        ``st``: the descriptor's ``fstat``, when the caller has just taken it.
        """
        if st is None:
            if self.fd < 0:
                self.open()
            st = os.fstat(self.fd)
        if not st.st_nlink:  # replaced by a compaction: read the new file
            self.open()
            st = os.fstat(self.fd)
        size = st.st_size
        if size < self.end:  # cut behind our back: start again
            self.reset()
        if size > self.end:
            self.scan(size)
        return size

    def scan(self, size: int) -> None:
        """Index the whole, good records from ``end`` on; stop at anything else."""
        start = pos = self.end
        bad = False
        while pos < size:
            buf = os.pread(self.fd, min(_CHUNK, size - pos), pos)
            at = self.apply_records(buf, pos)
            if at == 0 and len(buf) >= _HEADER.size:
                # Perhaps one record longer than the chunk: read it whole.
                magic, kind, klen, vlen, _ = _HEADER.unpack_from(buf)
                total = _HEADER.size + klen + vlen
                if magic == MAGIC and len(buf) < total <= size - pos:
                    at = self.apply_records(os.pread(self.fd, total, pos), pos)
                # Not a record being written (that one is shorter than its header says).
                bad = at == 0 and (magic != MAGIC or kind > _CLEAR or total <= size - pos)
            if at == 0:
                break  # being written, or not a record of ours (a writer removes it)
            pos += at
        self.end = pos
        if bad and start > 0 and size != self.suspect_size:
            # Bad bytes where our index says a record starts: damage, or a log cut behind our
            # back and written past our end again. Index it all once more (once per size).
            self.suspect_size = size
            self.reindex()

    def apply_records(self, buf: bytes, base: int) -> int:
        """Index the good records at the start of ``buf`` (file offset ``base``); bytes used."""
        index = self.index
        at = 0
        n = len(buf)
        while n - at >= _HEADER.size:
            magic, kind, klen, vlen, digest = _HEADER.unpack_from(buf, at)
            total = _HEADER.size + klen + vlen
            if magic != MAGIC or kind > _CLEAR or n - at < total:
                break
            kstart = at + _HEADER.size
            kb = buf[kstart : kstart + klen]
            value = buf[kstart + klen : at + total]
            if _digest(kind, kb, value) != digest:
                break
            key = kb.decode("utf-8", "surrogatepass")
            old = index.pop(key, None)
            if old is not None:
                self.live_bytes -= _HEADER.size + klen + old[1]
            if kind == _PUT:
                index[key] = (base + kstart + klen, vlen, zlib.crc32(value))
                self.live_bytes += total
            elif kind == _CLEAR:
                index.clear()
                self.live_bytes = 0
            at += total
        return at

    # -- writing, under the lock between processes -------------------------------------------

    def lock(self, timeout: float) -> os.stat_result:
        """Lock the log (a POSIX lock on its first byte); its ``fstat`` then. Hold guard."""
        assert fcntl is not None
        deadline = None
        delay = 0.0005
        while True:
            if self.fd < 0:
                self.open()
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
            else:
                st = os.fstat(self.fd)
                if st.st_nlink:
                    return st
                # Compacted while we waited: the lock must be on the file now at the path.
                fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)
                self.open()
                continue
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            if now >= deadline:
                raise FileLockTimeoutError(
                    self.path, timeout, "another process is writing to the log"
                )
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.02)

    def unlock(self) -> None:
        assert fcntl is not None
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)

    def append(self, blob: bytes, st: os.stat_result | None) -> tuple[int, bool]:
        """Append ``blob``; (its offset, whether damage was removed first). Hold the lock.

        ``st``: the ``fstat`` that :meth:`lock` returned, when nothing was read since. A
        failed write leaves the log as it was and raises SystemError: nothing was stored.
        """
        size = self.sync(st)
        cut = size > self.end
        if cut:
            # Nobody writes while we hold the lock: what follows the last good record was
            # left by a writer that died half-way, or is damage. It is not cut off in place:
            # another process may have indexed records past that point, and would read our
            # new records through its old offsets. A new file renamed over the log is seen
            # by every process (st_nlink 0), which then reads it afresh.
            log.warning(
                "LogBackend: rewriting %s without the %d bytes after its last whole record",
                self.path,
                size - self.end,
            )
            try:
                self.compact()
            except SystemError as exc:
                raise SystemError(
                    f"LogBackend {self.path!r} has {size - self.end} bytes of damage after its "
                    f"last whole record, and could not be rewritten without them ({exc}); "
                    "nothing was stored"
                ) from exc
        at = self.end
        try:
            _write_all(self.fd, blob)
        except OSError as exc:
            # Only our own record, under our lock, follows ``at``: nobody indexed it.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, at)
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            raise SystemError(
                f"LogBackend {self.path!r}: {exc.strerror or exc}; nothing was stored. "
                + ("Free space on its file system" if full else "Check the file and its disk")
            ) from exc
        self.end = at + len(blob)
        return at, cut

    def compact(self) -> None:
        """Rewrite the log with its live entries only. Hold the lock, index in sync.

        The new file gets the live records and is renamed over the log; processes that hold
        the old one see it unlinked (st_nlink 0) at their next call and read the new one.
        Raises SystemError, naming the file, when it cannot: the log is then as it was.
        """
        tmp = f"{self.path}.compact"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # left by a compaction that died; we hold the lock
            fd = os.open(tmp, _FLAGS | os.O_EXCL, 0o600)
        except OSError as exc:
            raise SystemError(
                f"LogBackend cannot compact {self.path!r}: its new file {tmp!r} cannot be made "
                f"({exc}); the log is as it was. Remove what is at {tmp!r}, or make its "
                "directory writable"
            ) from exc
        try:
            self.write_live(fd)
            os.replace(tmp, self.path)
        except BaseException as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise SystemError(
                    f"LogBackend cannot compact {self.path!r} into {tmp!r} ({exc}); the log is "
                    "as it was. Free space on its file system"
                ) from exc
            raise
        old, self.fd = self.fd, fd  # locked; the caller unlocks it
        self.reset()
        self.compact_after = 0
        self.scan(os.fstat(fd).st_size)
        os.close(old)  # drops our lock on the old file: its waiters move to the new one

    def write_live(self, fd: int) -> None:
        """Write a record of every live entry into ``fd`` (locked by us, O_APPEND).

        Values are read checked: one found damaged makes us index the log again and start
        over, so that damage is never copied into a new record with a good digest.
        """
        assert fcntl is not None
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)  # nobody else can have it yet
        for attempt in range(2):
            os.ftruncate(fd, 0)
            chunks: list[bytes] = []
            pending = 0
            damaged = False
            for key, (offset, length, crc) in self.index.items():
                value = os.pread(self.fd, length, offset)
                if zlib.crc32(value) != crc or len(value) != length:
                    damaged = True
                    if attempt == 0:
                        break
                    continue  # indexed just now and damaged since: leave it out
                blob = _record(_PUT, key.encode("utf-8", "surrogatepass"), value)
                chunks.append(blob)
                pending += len(blob)
                if pending >= _CHUNK:
                    _write_all(fd, b"".join(chunks))
                    chunks, pending = [], 0
            if damaged and attempt == 0:
                self.reindex()
                continue
            _write_all(fd, b"".join(chunks))
            return

    def reindex(self) -> None:
        """Index the log again from its start (what we indexed was changed in place)."""
        log.warning(
            "LogBackend: %s changed under its index (damage, or cut by another process); "
            "indexing it again",
            self.path,
        )
        self.reset()
        self.scan(os.fstat(self.fd).st_size)

    def value(self, key: str) -> bytes | None:
        """The value of ``key`` as the log holds it now, checked; None if it holds none."""
        for attempt in range(2):
            if attempt:
                self.reindex()  # the bytes changed under the index: read the log afresh
            found = self.index.get(key)
            if found is None:
                return None
            data = os.pread(self.fd, found[1], found[0])
            if zlib.crc32(data) == found[2] and len(data) == found[1]:
                return data
        return None  # damaged again since: a miss


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "something else"


def _not_regular(path: str) -> str:
    """What is at ``path`` when it is there and not a regular file; "" otherwise."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return ""
    return "" if stat.S_ISREG(mode) else _kind_of(mode)


def _not_regular_error(path: str, kind: str) -> SystemError:
    return SystemError(
        f"LogBackend needs a regular file at {path!r}, but it is {kind} (not a regular file); "
        "remove it, or pass a path to a regular file of its own"
    )


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view) :]


_files: dict[str, _LogFile] = {}
_files_guard = threading.Lock()


def _file_for(path: str) -> _LogFile:
    with _files_guard:
        found = _files.get(path)
        if found is None:
            found = _files[path] = _LogFile(path)
        return found


def _after_fork() -> None:
    # A forked child opens every log again: its own descriptor, index and lock.
    global _files_guard
    _files_guard = threading.Lock()
    for f in _files.values():
        f.guard = threading.RLock()
        if f.fd >= 0:
            # The child holds no POSIX lock, so closing its copy takes nothing from the parent.
            with contextlib.suppress(OSError):
                os.close(f.fd)
        f.fd = -1
        f.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
