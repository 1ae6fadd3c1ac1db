"""An on-disk backend: one file per key, lock-free reads, writes verified by a digest.

Layout: ``<directory>/<sha256(key)[:40]>.ce``. Each file holds a header (magic with the format
version, key length, value length, and a 64-bit BLAKE2b digest of key and value), the key,
then the value. The key is hashed for the file name, so no key can name a path outside the
directory, and stored in the file, so a file that belongs to another key is recognised.

A put writes the new entry over the key's file, from offset 0, in one ``write`` call. Readers
take no lock; they check the digest, so a read that overlaps a write (and sees part of each)
is recognised and answered as a miss, never as a mix. Writes are not truncated: when a value
shrinks, the bytes after the new entry are left and ignored, so two writers of one key always
leave the complete entry of whichever wrote last. Why not a temporary file renamed into place:
creating a file (an inode) costs 10 to 250 us on this ext4 (mounted with ``discard``), where
writing into an existing one costs about 6 us; see docs/performance.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..locks import file_lock, make_file_lock
from .base import Backend, bytes_value, lock_timeout_seconds

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
_READ_FLAGS = os.O_RDONLY | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW
_FIRST_READ = 64 * 1024
# A read that overlaps a write is read again after these pauses (seconds) before it is a miss.
_READ_PAUSES = (0.0, 0.001, 0.01)
_SYMLINK = b"<symlink>"  # what _read returns for a planted symbolic link (checked by identity)
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
    written = os.write(fd, blob)
    if written < len(blob):
        view = memoryview(blob)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


class FileBackend(Backend[bytes]):
    """Stores bytes in one file per key under ``directory``; several processes may share it.

    ``lock_timeout`` bounds how long :meth:`add`, :meth:`clear` and :meth:`lock` wait for the
    directory's file locks before raising :class:`FileLockTimeoutError`.
    """

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

    def _read(self, path: str) -> bytes | None:
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _SYMLINK  # never read through a link someone planted
            raise
        try:
            data = os.read(fd, _FIRST_READ)
            if len(data) >= _HEADER.size:
                _, klen, vlen, _ = _HEADER.unpack_from(data)
                want = _HEADER.size + klen + vlen
                if len(data) < want:
                    chunks = [data]
                    have = len(data)
                    while have < want:
                        chunk = os.read(fd, want - have)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        have += len(chunk)
                    data = b"".join(chunks)
            return data
        finally:
            os.close(fd)

    @staticmethod
    def _problem(data: bytes, kb: bytes | None) -> tuple[str | None, bytes, bytes]:
        """(what is wrong or None, key bytes, value) of a file's bytes."""
        if data is _SYMLINK:
            return "a symbolic link, not an entry", b"", b""
        if len(data) < _HEADER.size:
            return ("empty" if not data else "truncated header"), b"", b""
        magic, klen, vlen, digest = _HEADER.unpack_from(data)
        if magic[:3] != MAGIC[:3]:
            return "not a cachemock entry", b"", b""
        if magic != MAGIC:
            return f"format version {magic[3]}, this version reads {MAGIC[3]}", b"", b""
        end = _HEADER.size + klen
        if len(data) < end + vlen:
            return f"length {len(data)}, header says {end + vlen}", b"", b""
        raw_key = data[_HEADER.size : end]
        value = data[end : end + vlen]
        if _digest(raw_key, value) != digest:
            return "digest mismatch (damaged, or being written)", raw_key, value
        if kb is not None and raw_key != kb:
            return "entry belongs to another key", raw_key, value
        return None, raw_key, value

    def _load(self, path: str, kb: bytes | None) -> tuple[bytes, bytes] | None:
        """(key bytes, value) of the file at ``path``, or None for a miss.

        A read that overlaps a write is read again; what stays wrong is counted as an
        exception and logged, except an empty file (a writer that has only just created it).
        """
        data = self._read(path)
        previous = None
        problem = None
        for pause in (*_READ_PAUSES, None):
            if data is None:
                return None
            problem, raw_key, value = self._problem(data, kb)
            if problem is None:
                return raw_key, value
            if pause is None:
                break
            time.sleep(pause)  # give a writer that is mid-way the time to finish
            previous, data = data, self._read(path)
        if data != previous:
            return None  # still changing under us: a writer is busy; a plain miss
        if problem == "empty":
            return None
        next(self._live_counters().exception)
        log.warning("FileBackend: ignoring %s (%s); treated as a miss", path, problem)
        return None

    def _get(self, key: str) -> bytes | None:
        path, kb = self._names(key)
        data = self._read(path)
        if data is None:
            return None
        # The common case checked inline: our magic, the full length, this key, the digest.
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
        loaded = self._load(path, kb)
        return None if loaded is None else loaded[1]

    # -- writing -----------------------------------------------------------------------------

    def _encode(self, key: str, kb: bytes, value: bytes) -> bytes:
        value = bytes_value("FileBackend", key, value)
        return _HEADER.pack(MAGIC, len(kb), len(value), _digest(kb, value)) + kb + value

    def _write(self, path: str, blob: bytes) -> None:
        try:
            fd = os.open(path, _WRITE_FLAGS, 0o600)
        except FileNotFoundError:
            # The directory was removed under us; recreate it once.
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
            fd = os.open(path, _WRITE_FLAGS, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            # Someone planted a symlink at an entry's name: remove it, never write through it.
            os.unlink(path)
            fd = os.open(path, _WRITE_FLAGS, 0o600)
        try:
            _write_all(fd, blob)
        finally:
            os.close(fd)

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
