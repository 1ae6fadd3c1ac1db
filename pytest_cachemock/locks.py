"""Lock helpers: take a thread lock or a file lock blocking, non-blocking or with a timeout.

Failing to get the lock raises :class:`LockTimeoutError` or :class:`FileLockTimeoutError`
with the lock and the timeout in the message, never a bare ``False`` to forget to check.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import filelock

from .errors import FileLockTimeoutError, LockTimeoutError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["file_lock", "flock", "make_file_lock", "thread_lock"]


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
