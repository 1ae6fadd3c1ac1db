"""The memoizer's write-behind thread: one per process, putting entries into their backends.

A backend whose ``writes_behind`` is True (a ``FileBackend``: a first put creates a file,
which can cost more than the rest of the call) has its plain stores handed to this thread;
until an entry is written, ``pending`` serves it to lookups in this process.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from typing import Any, Callable, Optional

from typing_extensions import Protocol

from .backends.base import Backend


class _Owner(Protocol):
    """What the writer reports a write's outcome to (a Memoizer)."""

    _outage: set[str]

    def _failed(self, exc: Exception, what: str, backend: Backend[Any] | None = None) -> None: ...

    def _recovered(self, what: str) -> None: ...


class _Writer:
    """One background thread per process that puts memoized entries into their backends.

    Until an entry is written, ``pending`` serves it to lookups in this process; the key's
    lock between processes is released only once the entry is on disk, so another process
    that waited for it finds it. Everything is written before the interpreter exits (and
    before a ``multiprocessing`` child exits), or on ``flush()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[
            tuple[_Owner, Backend[Any], str, Any, Optional[Callable[[], None]]]
        ] = queue.SimpleQueue()
        self._pending: dict[tuple[Backend[Any], str], Any] = {}
        self._outstanding = 0  # submitted and not yet written
        self._thread: threading.Thread | None = None
        self._hooked = False

    def pending(self, backend: Backend[Any], key: str) -> Any:
        return self._pending.get((backend, key)) if self._pending else None

    def submit(
        self,
        memo: _Owner,
        backend: Backend[Any],
        key: str,
        stored: Any,
        release: Callable[[], None] | None,
    ) -> None:
        with self._lock:
            self._pending[(backend, key)] = stored
            self._outstanding += 1
            if self._thread is None:
                self._start()
        self._queue.put((memo, backend, key, stored, release))

    def _start(self) -> None:
        # Caller holds the lock.
        if not self._hooked:
            self._hooked = True
            register = getattr(threading, "_register_atexit", None)
            try:
                # Runs in threading._shutdown(): at interpreter exit, and when a
                # multiprocessing child exits (which skips atexit).
                if register is None:
                    raise RuntimeError
                register(self.flush)
            except RuntimeError:
                atexit.register(self.flush)
        self._thread = threading.Thread(
            target=self._run, name="pytest-cachemock-memoize-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        get = self._queue.get
        while True:
            memo, backend, key, stored, release = get()
            try:
                backend.put(key, stored)
            except Exception as exc:
                memo._failed(exc, "write", backend)
            else:
                if memo._outage:
                    memo._recovered("write")
            finally:
                if release is not None:
                    release()
                with self._lock:
                    if self._pending.get((backend, key)) is stored:
                        del self._pending[(backend, key)]
                    self._outstanding -= 1
                    if not self._outstanding:
                        self._idle.notify_all()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every submitted entry is written; False when ``timeout`` ran out."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._outstanding, timeout)

    def _after_fork(self) -> None:
        # The child has no writer thread; what was queued is the parent's to write.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()
        self._pending.clear()
        self._outstanding = 0
        self._thread = None


_writer = _Writer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_writer._after_fork)
