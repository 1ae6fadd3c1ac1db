"""An on-disk backend: one file per key, lock-free reads, writes verified by a digest.

Layout: ``<directory>/<sha256(key)[:40]>.ce``. Each file holds a header (magic with the format
version, key length, value length, and a 64-bit BLAKE2b digest of key and value), the key,
then the value. The key is hashed for the file name, so no key can name a path outside the
directory, and stored in the file, so a file that belongs to another key is recognised.

Write: open the key's file (created if missing; ``O_NOFOLLOW | O_NONBLOCK``, and a link, FIFO,
socket or empty directory planted there is removed, never written through), take an
exclusive ``flock`` on it, and, when the new entry is longer than the file, reserve the space
with ``posix_fallocate`` first, so a full disk fails the put before a byte of the old entry
is touched. Then the entry is written over the file from offset 0 and the lock released.
Writes are not truncated: when a value shrinks, the bytes after the new entry are left and
ignored. Where ``posix_fallocate`` is not supported, a growing entry is written to a temporary
file renamed into place instead. A write that fails at once (ENOSPC where the file system
needs new blocks even for bytes it holds) leaves the old entry; one that fails half-way
empties the file (a plain miss). Why write in place: creating a file (an inode) costs 10 to
250 us on this ext4 (mounted with ``discard``), where writing into an existing one costs about
6 us; see docs/performance.md.

Read: open (``O_NOFOLLOW | O_NONBLOCK``), one ``read`` and a check of magic, lengths, key and
digest, without a lock. When that check fails (a write under way, a value longer than the
first read, damage), the open file is settled: ``fstat`` refuses anything but a regular file,
a shared ``flock`` waits for a writer to finish, and the entry is read again whole, its
lengths checked against the file's size before anything is read. What is still wrong then is
damage: a miss, counted as an exception and logged.
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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FileLockTimeoutError
from ..locks import file_lock, flock, make_file_lock
from .base import Backend, bytes_value, lock_timeout_seconds

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no entry locks, reads verify the digest only
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import filelock

__all__ = ["FileBackend"]

log = logging.getLogger("pytest_cachemock")

MAGIC = b"CMF\x02"  # the last byte is the format version
_HEADER = struct.Struct(">4sIQ8s")  # magic, key length, value length, digest of key + value
SUFFIX = ".ce"
_LOCK_NAME = ".lock"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a planted FIFO must not wait for a peer
_READ_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW | _O_NONBLOCK
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW | _O_NONBLOCK
_FIRST_READ = 64 * 1024
_NAME_CACHE_SIZE = 4096  # entries (bounded memory: long keys are not kept)
_NAME_CACHE_MAX_KEY = 512


_pid = os.getpid()  # kept current across forks below: os.getpid() is a system call


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _digest(kb: bytes, value: bytes) -> bytes:
    h = hashlib.blake2b(kb, digest_size=8)
    h.update(value)
    return h.digest()


def _write_all(fd: int, blob: bytes) -> None:
    """Write ``blob`` at ``fd``'s offset (0: it was just opened). A failed first ``write``
    wrote nothing; when a later one fails, the file is emptied (a plain miss, not damage)."""
    written = os.write(fd, blob)
    if written < len(blob):
        view = memoryview(blob)
        try:
            while written < len(blob):
                written += os.write(fd, view[written:])
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            raise


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) < length:
        chunks = [data]
        have = len(data)
        while have < length:
            chunk = os.pread(fd, length - have, offset + have)
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
    return data


def _reserve(fd: int, size: int) -> bool:
    """Allocate ``size`` bytes for ``fd`` without touching its data (ENOSPC raises, the old
    bytes stay); False where the file system cannot (then the caller renames a copy)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:
        return False
    try:
        fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return False
        raise
    return True


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


class FileBackend(Backend[bytes]):
    """Stores bytes in one file per key under ``directory``; several processes may share it.

    ``lock_timeout`` bounds how long :meth:`add`, :meth:`clear` and :meth:`lock` wait for the
    directory's file locks before raising :class:`FileLockTimeoutError`.
    """

    lists_entries = True
    stores_bytes = True
    locks_keys = True
    writes_behind = True  # a put writes a file: slow enough to hand to a writer thread

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        timeout = lock_timeout_seconds(lock_timeout)
        super().__init__(name=name)
        self.directory = Path(directory).absolute()
        self.lock_timeout = timeout
        self._dir = os.fspath(self.directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(
                f"FileBackend needs a directory, but {self._dir!r} is a file; pass another path"
            )
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self._locks: dict[str, filelock.BaseFileLock] = {}
        self._locks_guard = threading.Lock()
        self._locks_pid = _pid
        self._name_cache: dict[str, tuple[str, bytes]] = {}

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, key: str) -> str:
        """The file that holds ``key`` (whether or not it exists)."""
        return self._names(key)[0]

    def _names(self, key: str) -> tuple[str, bytes]:
        # (path, key bytes), memoised: hashing is a good part of a read's Python-side cost.
        found = self._name_cache.get(key)
        if found is None:
            kb = _key_bytes(key)
            digest = hashlib.sha256(kb).hexdigest()[:40]
            found = (os.path.join(self._dir, digest + SUFFIX), kb)
            if len(kb) <= _NAME_CACHE_MAX_KEY:
                if len(self._name_cache) >= _NAME_CACHE_SIZE:
                    self._name_cache.clear()
                self._name_cache[key] = found
        return found

    # -- reading -----------------------------------------------------------------------------

    def _open(self, path: str) -> int | str | None:
        """A read-only fd on ``path``; None when there is no file; what is wrong, for a link or
        a thing that cannot be opened as a file (a socket)."""
        try:
            return os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a symbolic link, not an entry"  # never read through a planted link
            if exc.errno in (errno.ENXIO, errno.EISDIR):
                return "not a regular file"
            raise

    def _examine(self, fd: int, kb: bytes | None) -> tuple[str | None, bytes, bytes]:
        """(what is wrong or None, key bytes, value) of the open file ``fd``, read whole
        under a shared lock, so no writer is half-way through it."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file", b"", b""
        if fcntl:
            try:
                flock(fd, fcntl.LOCK_SH, self.lock_timeout, self._dir, "a writer of the entry")
            except FileLockTimeoutError:
                return f"still locked by a writer after {self.lock_timeout:g} s", b"", b""
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, _HEADER.size, 0)
            if len(head) < _HEADER.size:
                return ("empty" if not head else "truncated header"), b"", b""
            magic, klen, vlen, digest = _HEADER.unpack(head)
            if magic[:3] != MAGIC[:3]:
                return "not a cachemock entry", b"", b""
            if magic != MAGIC:
                return f"format version {magic[3]}, this version reads {MAGIC[3]}", b"", b""
            want = _HEADER.size + klen + vlen
            if want > size:  # checked before reading: the lengths may be anything
                return f"length {size}, header says {want}", b"", b""
            body = _pread_all(fd, klen + vlen, _HEADER.size)
        finally:
            if fcntl:
                fcntl.flock(fd, fcntl.LOCK_UN)
        raw_key, value = body[:klen], body[klen:]
        if len(value) < vlen:
            return f"length {_HEADER.size + len(body)}, header says {want}", b"", b""
        if _digest(raw_key, value) != digest:
            return "digest mismatch (damaged)", raw_key, value
        if kb is not None and raw_key != kb:
            return "entry belongs to another key", raw_key, value
        return None, raw_key, value

    def _settle(
        self, path: str, fd: int | str | None, kb: bytes | None
    ) -> tuple[bytes, bytes] | None:
        """(key bytes, value) of the entry at ``path`` (open as ``fd``), or None for a miss.

        What is wrong is counted as an exception and logged, except an empty file (a writer
        that has only just created it, or whose write failed for want of space).
        """
        if fd is None:
            return None
        if isinstance(fd, str):
            problem: str | None = fd
        else:
            problem, raw_key, value = self._examine(fd, kb)
            if problem is None:
                return raw_key, value
            if problem == "empty":
                return None
        next(self._live_counters().exception)
        log.warning("FileBackend: ignoring %s (%s); treated as a miss", path, problem)
        return None

    def _load(self, path: str, kb: bytes | None) -> tuple[bytes, bytes] | None:
        """(key bytes, value) of the file at ``path``, or None for a miss."""
        fd = self._open(path)
        try:
            return self._settle(path, fd, kb)
        finally:
            if isinstance(fd, int):
                os.close(fd)

    def _get(self, key: str) -> bytes | None:
        path, kb = self._names(key)
        fd = self._open(path)
        if not isinstance(fd, int):
            self._settle(path, fd, kb)  # counts and logs a planted link or socket
            return None
        try:
            # The common case, without a lock: our magic, the full length, this key, the
            # digest. Anything else (a write under way, a bigger value, damage) is settled
            # by reading again under a shared lock.
            try:
                data = os.read(fd, _FIRST_READ)
            except OSError:  # a directory (EISDIR), a FIFO (EAGAIN): _examine says which
                data = b""
            if len(data) >= _HEADER.size:
                magic, klen, vlen, digest = _HEADER.unpack_from(data)
                end = _HEADER.size + klen
                if (
                    magic == MAGIC
                    and len(data) >= end + vlen
                    and klen == len(kb)
                    and data[_HEADER.size : end] == kb
                ):
                    value = data[end : end + vlen]
                    if _digest(kb, value) == digest:
                        return value
            loaded = self._settle(path, fd, kb)
            return None if loaded is None else loaded[1]
        finally:
            os.close(fd)

    # -- writing -----------------------------------------------------------------------------

    def _encode(self, key: str, kb: bytes, value: bytes) -> bytes:
        value = bytes_value("FileBackend", key, value)
        return _HEADER.pack(MAGIC, len(kb), len(value), _digest(kb, value)) + kb + value

    def _open_for_write(self, path: str) -> int:
        """An fd on the regular file at ``path``, created if missing; a symbolic link, FIFO,
        socket or empty directory planted there is removed first, never written through."""
        for _ in range(3):
            try:
                fd = os.open(path, _WRITE_FLAGS, 0o600)
            except FileNotFoundError:
                # The directory was removed under us; recreate it.
                os.makedirs(self._dir, mode=0o700, exist_ok=True)
                continue
            except OSError as exc:
                if exc.errno == errno.EISDIR:
                    self._remove_directory(path)
                elif exc.errno in (errno.ELOOP, errno.ENXIO):
                    # A link (ELOOP), a FIFO nobody reads or a socket (ENXIO).
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                else:
                    raise
                continue
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)  # a FIFO someone holds open for reading: nothing was written
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise OSError(
            errno.EAGAIN,
            f"FileBackend: {path!r} keeps being replaced by something that is not a regular "
            "file; find out what creates it there",
            path,
        )

    def _remove_directory(self, path: str) -> None:
        try:
            os.rmdir(path)  # only an empty one: no one's data is lost
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise IsADirectoryError(
                errno.EISDIR,
                f"FileBackend: {path!r} is a directory, not an entry, and it is not empty; "
                "remove it (nothing in the cache directory should be created by hand)",
                path,
            ) from exc

    def _write(self, path: str, blob: bytes) -> None:
        try:
            self._write_entry(path, blob)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise OSError(
                    errno.ENOSPC,
                    f"FileBackend: No space left on the device to write {len(blob)} bytes to "
                    f"{path!r} (the old entry, if any, is kept); free some space or use "
                    "another directory",
                    path,
                ) from exc
            raise

    def _write_entry(self, path: str, blob: bytes) -> None:
        fd = self._open_for_write(path)
        try:
            if fcntl:
                flock(
                    fd,
                    fcntl.LOCK_EX,
                    self.lock_timeout,
                    path,
                    "another writer of this entry holds it",
                )
            size = os.fstat(fd).st_size
            if len(blob) > size and not _reserve(fd, len(blob)):
                # No fallocate here: a temporary file renamed into place (the old entry
                # stays whole until the rename).
                self._replace(path, blob)
                return
            _write_all(fd, blob)
        finally:
            os.close(fd)

    def _replace(self, path: str, blob: bytes) -> None:
        tmp = f"{path}.{_pid}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, _WRITE_FLAGS | os.O_TRUNC, 0o600)
        try:
            try:
                _write_all(fd, blob)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _put(self, key: str, value: bytes) -> None:
        path, kb = self._names(key)
        self._write(path, self._encode(key, kb, value))

    def _add(self, key: str, value: bytes) -> bool:
        path, kb = self._names(key)
        blob = self._encode(key, kb, value)
        with self.lock(key):
            if self._load(path, kb) is not None:
                return False
            self._write(path, blob)
            return True

    def sidecar_path(self, name: str) -> str:
        """The path of a helper file ``name`` in the directory (a memoizer's lock file, say);
        the name must not end in the entries' suffix."""
        return os.path.join(self._dir, name)

    # -- locks and housekeeping --------------------------------------------------------------

    def _file_lock(self, name: str) -> filelock.BaseFileLock:
        if self._locks_pid != _pid:
            # filelock refuses a lock object inherited across fork: a forked child makes its own.
            self._locks = {}
            self._locks_guard = threading.Lock()
            self._locks_pid = _pid
        found = self._locks.get(name)
        if found is None:
            with self._locks_guard:
                found = self._locks.get(name)
                if found is None:
                    found = make_file_lock(os.path.join(self._dir, name))
                    self._locks[name] = found
        return found

    def lock(self, key: str | None = None) -> contextlib.AbstractContextManager[object]:
        """A file lock for ``key`` (or for the whole directory when None), with ``lock_timeout``.

        Keys share 256 lock files by the first byte of their hash; processes that share the
        directory exclude each other, and so do threads.
        """
        name = _LOCK_NAME
        if key is not None:
            name += "." + os.path.basename(self.path_for(key))[:2]
        return file_lock(self._file_lock(name), self.lock_timeout)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        try:
            os.unlink(self.path_for(key))
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> None:
        """Remove every entry."""
        with self.lock():
            for entry in os.scandir(self._dir):
                if entry.name.endswith(SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every readable entry as (key, value); unreadable files are counted and skipped."""
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(SUFFIX):
                continue
            loaded = self._load(entry.path, None)
            if loaded is not None:
                yield loaded[0].decode("utf-8", "surrogatepass"), loaded[1]

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    def __repr__(self) -> str:
        return f"<FileBackend {self._dir!r}>"
