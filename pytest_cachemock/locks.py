"""Lock helpers: take a thread lock or a file lock blocking, non-blocking or with a timeout.

Failing to get the lock raises :class:`LockTimeoutError` or :class:`FileLockTimeoutError`
with the lock and the timeout in the message, never a bare ``False`` to forget to check.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import filelock

from .errors import FileLockTimeoutError, LockTimeoutError
from .errors import SystemError as CacheSystemError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["file_lock", "flock", "make_file_lock", "range_lock", "thread_lock"]


def _check(timeout: float | None, blocking: bool) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ValueError(f"timeout must be None (wait forever) or >= 0 seconds, got {timeout!r}")
    if not blocking and timeout is not None:
        raise ValueError("a non-blocking acquire takes no timeout; pass one or the other")


@contextlib.contextmanager
def thread_lock(
    lock: threading.Lock | threading.RLock | threading.Semaphore,
    timeout: float | None = None,
    *,
    blocking: bool = True,
) -> Iterator[None]:
    """Hold ``lock`` for the ``with`` block.

    ``timeout=None`` waits forever; a number waits that long; ``blocking=False`` tries once.
    """
    _check(timeout, blocking)
    if not blocking:
        acquired = lock.acquire(blocking=False)
    elif timeout is None:
        acquired = lock.acquire()
    else:
        acquired = lock.acquire(timeout=timeout)
    if not acquired:
        raise LockTimeoutError(lock, None if not blocking else timeout)
    try:
        yield
    finally:
        lock.release()


def make_file_lock(path: str | os.PathLike[str]) -> filelock.BaseFileLock:
    """A ``filelock`` lock on ``path``, owner-only (0o600)."""
    import filelock  # imported when first needed: it is slow to import

    return filelock.FileLock(os.fspath(path), mode=0o600)


@contextlib.contextmanager
def file_lock(
    lock: filelock.BaseFileLock | str | os.PathLike[str],
    timeout: float | None = None,
    *,
    blocking: bool = True,
) -> Iterator[filelock.BaseFileLock]:
    """Hold a file lock (a ``filelock`` object or a path) for the ``with`` block.

    Same rules as :func:`thread_lock`; failing raises :class:`FileLockTimeoutError`.
    """
    import filelock

    _check(timeout, blocking)
    if not isinstance(lock, filelock.BaseFileLock):
        lock = make_file_lock(lock)
    try:
        if not blocking:
            lock.acquire(blocking=False)
        else:
            lock.acquire(timeout=-1 if timeout is None else timeout)
    except filelock.Timeout as exc:
        raise FileLockTimeoutError(lock, None if not blocking else timeout) from exc
    try:
        yield lock
    finally:
        lock.release()


def flock(fd: int, how: int, timeout: float, what: object, why: str) -> None:
    """Take ``fcntl.flock(fd, how)`` (``LOCK_SH`` or ``LOCK_EX``) within ``timeout`` seconds.

    Polls without blocking, backing off from 0.1 to 10 ms, so the wait stays bounded whoever
    holds the lock; past ``timeout`` raises :class:`FileLockTimeoutError` naming ``what``
    (the locked file or directory) and ``why`` (who is likely to hold it). POSIX only.
    """
    assert fcntl is not None
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout
    pause = 0.0001
    while True:
        time.sleep(pause)
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FileLockTimeoutError(what, timeout, why) from None
        pause = min(pause * 2, 0.01)


# -- locks between processes: one byte of one file per store, per key ----------------------------

_lock_fds: dict[str, int] = {}
_lock_fds_guard = threading.Lock()


def _open_lock_file(path: str, stale: int | None) -> int:
    """The descriptor of the lock file at ``path``, opened once per process (and again when
    the file it had was removed). A stale descriptor is left open, never closed: another
    thread may still release a byte of it, and a closed number could be reused by any file.
    """
    with _lock_fds_guard:
        fd = _lock_fds.get(path)
        if fd is None or fd == stale:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            try:
                # O_NOFOLLOW: a symlink planted at the lock's path is refused, never followed
                # (following it would create its target), as the stores refuse them.
                fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP or os.path.islink(path):
                    raise CacheSystemError(
                        f"the memoizer's key lock file {path!r} is a symlink; refusing to "
                        "follow it. Remove it (the lock file is made again as a plain file)"
                    ) from exc
                raise
            _lock_fds[path] = fd
        return fd


def range_lock(path: str, timeout: float, key: str) -> Callable[[], None]:
    """Lock one byte of the file ``path``, at an offset taken from ``key``; returns the
    function that releases it.

    POSIX record locks belong to the process: threads of one process do not exclude each
    other (the caller's single flight does that), any thread may release, and the file
    descriptor is never closed (closing it would drop every lock the process holds on it).
    Waits up to ``timeout`` seconds, polling, then raises FileLockTimeoutError. POSIX only.
    """
    assert fcntl is not None
    fd = _lock_fds.get(path)
    if fd is None:
        fd = _open_lock_file(path, None)
    # Keys end in hex digits of a digest: 40 bits of them spread keys over the file.
    offset = int(key[-10:], 16) if len(key) >= 10 else 0
    deadline = None
    delay = 0.0005
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            if os.fstat(fd).st_nlink:
                break
            # The file was removed (its directory deleted and made again, say): a lock on
            # it excludes nobody. Take the same byte of the file now at ``path``.
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
            fd = _open_lock_file(path, fd)
            continue
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
        if now >= deadline:
            raise FileLockTimeoutError(f"{path}@{offset}", timeout, "another process holds it")
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.02)

    def release() -> None:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    return release
