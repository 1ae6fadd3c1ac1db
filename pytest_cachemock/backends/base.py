"""The backend base class: where a cache's encoded values are stored.

Subclasses implement ``_get`` and ``_put`` (and, when they can do it atomically, ``_add``).
The public methods count into the library-wide :data:`cache_stats` under the backend's name
and re-raise any error after counting it.

What a backend can do beyond get/put/add it declares in class attributes, so that callers
ask the flag instead of probing for methods or testing the class:

- ``lists_entries``: ``items()``, ``delete(key)`` and ``clear()`` work;
- ``locks_keys``: ``lock(key)`` returns a context manager that holds between processes;
- ``stores_bytes``: the backend stores only bytes (bytearray and memoryview are stored as
  bytes) and refuses any other value with a ValueEncodingError; a mock standing in for it
  refuses what it refuses (see :meth:`Backend.stand_in_for`);
- ``writes_behind``: plain puts may be handed to a memoizer's writer thread;
- ``keeps_limits`` (a property): the backend enforces limits (a size bound, a time-to-live)
  that a front cache in front of it would get around;
- ``sidecar_path(name)``: the path of a helper file next to an on-disk store, else None;
- ``lock_timeout``: how long a lock of the backend's waits, in seconds.

The base class defines every such method; where the flag is False it raises a UserError
naming the backend class and what it cannot do.

What the public methods count in ``cache_stats`` (one operation, one count): a ``get`` is a
hit or a miss; a ``put`` is a put; an ``add`` is a put when it stored, a hit when an entry was
there; a call refused before the store (a key that is not a str, a None to store) and any
error of the store are an exception; ``peek`` counts nothing. A subclass that keeps counts
of its own (MockBackend) counts outcomes in its ``_get``/``_put``/``_add`` and refusals in
:meth:`Backend._refused`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from ..counters import NameCounters, cache_stats
from ..errors import KeyEncodingError, UserError, ValueEncodingError

__all__ = ["Backend"]

T = TypeVar("T")


class Backend(ABC, Generic[T]):
    """Stores encoded values by string key. ``None`` is never stored: it means a miss."""

    lists_entries: ClassVar[bool] = False
    """True where :meth:`items`, :meth:`delete` and :meth:`clear` work."""

    locks_keys: ClassVar[bool] = False
    """True where :meth:`lock` returns a context manager that holds between processes."""

    stores_bytes: ClassVar[bool] = False
    """True where the backend stores only bytes (FileBackend, LogBackend, SqliteBackend): a
    value that is not bytes, bytearray or memoryview is refused with a ValueEncodingError."""

    writes_behind: ClassVar[bool] = False
    """True where plain puts may be handed to a memoizer's writer thread (a slow store whose
    put a caller need not wait for; a failed write then costs only a later miss)."""

    lock_timeout: float = 10.0
    """How long, in seconds, a lock of this backend waits before it raises."""

    _counters: NameCounters | None = None
    _name: str | None = None

    def __init__(self, *, name: str | None = None) -> None:
        self._name = name or f"backend:{type(self).__name__}"
        self._counters = cache_stats.counters(self._name)

    @property
    def name(self) -> str:
        """The name this backend counts under in ``cache_stats``."""
        if self._name is None:
            self._name = f"backend:{type(self).__name__}"
        return self._name

    def _live_counters(self) -> NameCounters:
        # Subclasses that skip ``super().__init__()`` still count.
        if self._counters is None:
            self._counters = cache_stats.counters(self.name)
        return self._counters

    @abstractmethod
    def _get(self, key: str) -> T | None:
        """The stored value of ``key``, or None."""

    @abstractmethod
    def _put(self, key: str, value: T) -> None:
        """Store ``value`` under ``key``."""

    def _add(self, key: str, value: T) -> bool:
        # Good enough in one process; backends shared between processes override it.
        with _add_lock:
            if self._get(key) is not None:
                return False
            self._put(key, value)
            return True

    def get(self, key: str) -> T | None:
        """The stored value of ``key``, or None when there is none (a miss)."""
        counters = self._counters or self._live_counters()
        try:
            if type(key) is not str:
                raise self._refused(key_error(self, "get", key))
            value = self._get(key)
        except Exception:
            next(counters.exception)
            raise
        next(counters.miss if value is None else counters.hit)
        return value

    def put(self, key: str, value: T) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        counters = self._counters or self._live_counters()
        try:
            if type(key) is not str or value is None:
                raise self._refused(refusal(self, "put", key))
            self._put(key, value)
        except Exception:
            next(counters.exception)
            raise
        next(counters.put)

    def add(self, key: str, value: T) -> bool:
        """Store ``value`` only where ``key`` has nothing; True when it was stored.

        A stored value counts as a put; an entry already there counts as a hit.
        """
        counters = self._counters or self._live_counters()
        try:
            if type(key) is not str or value is None:
                raise self._refused(refusal(self, "add", key))
            added = self._add(key, value)
        except Exception:
            next(counters.exception)
            raise
        next(counters.put if added else counters.hit)
        return added

    def _refused(self, error: UserError) -> UserError:
        """Called with the error of a call refused before it reaches the store (a key that is
        not a str, a None to store), which the caller then raises and counts as an exception.

        Returns ``error``. A subclass that keeps counts of its own overrides it to count the
        refusal there (MockBackend counts it in its kind's errors). Off the hot path: only
        refused calls get here.
        """
        return error

    def peek(self, key: str) -> T | None:
        """The stored value of ``key``, or None, counted nowhere (no hit, no miss).

        For a caller that checks again, under a lock, what it has already counted as a miss:
        one operation counts once. A key that is not a str is refused as :meth:`get` refuses
        it (a KeyEncodingError), uncounted.
        """
        if type(key) is not str:
            raise key_error(self, "peek", key)
        return self._get(key)

    def stand_in_for(self, real: Backend[Any]) -> Backend[Any]:
        """The backend to use in place of ``real``, the backend of the controller (a
        RemoteCache, a Memoizer) that made this one from its ``backend_override_cls``.

        Returns self; a mock returns one that keeps ``real``'s value contract (a bytes-only
        backend's mock refuses what it refuses). Called once per override, off the hot path.
        """
        return self

    # -- what a backend may be able to do (see the flags) ---------------------------------------

    @property
    def keeps_limits(self) -> bool:
        """True where the backend enforces limits (a size bound, a time-to-live) that a front
        cache in front of it would get around: such a backend must be the only store."""
        return False

    def sidecar_path(self, name: str) -> str | None:
        """The path of a helper file ``name`` next to the store (a memoizer's lock file, say),
        or None for a backend with no store on disk."""
        return None

    def items(self) -> Iterator[tuple[str, T]]:
        """Every entry as (key, value), where :attr:`lists_entries` is True."""
        raise unsupported(self, "items()", "list its entries", "lists_entries")

    def delete(self, key: str) -> bool:
        """Remove ``key``, True when it was there; where :attr:`lists_entries` is True."""
        raise unsupported(self, "delete()", "delete entries", "lists_entries")

    def clear(self) -> None:
        """Remove every entry, where :attr:`lists_entries` is True."""
        raise unsupported(self, "clear()", "clear its entries", "lists_entries")

    def lock(self, key: str | None = None) -> contextlib.AbstractContextManager[object]:
        """A lock of ``key`` (None: the whole store) that holds between processes, where
        :attr:`locks_keys` is True."""
        raise unsupported(self, "lock()", "lock keys between processes", "locks_keys")

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.name!r}>"


_add_lock = threading.RLock()


_CAN = {
    "lists_entries": "MemoryBackend, FileBackend, LogBackend and SqliteBackend list theirs",
    "locks_keys": "a FileBackend's lock(key) holds between processes",
}


def unsupported(backend: object, call: str, what: str, flag: str) -> UserError:
    """The error for a method the backend's capability ``flag`` says it does not have."""
    return UserError(
        f"{type(backend).__qualname__}.{call}: this backend cannot {what} (its {flag} is "
        f"False); check backend.{flag} before calling it, or use a backend that can "
        f"({_CAN[flag]})"
    )


def not_a_backend(owner: str, backend: object) -> UserError | None:
    """The error for a ``backend=`` argument of ``owner`` that is not a :class:`Backend`
    (what the toolkit relies on: counting, refusals, capability flags), else None."""
    if backend is None or isinstance(backend, Backend):
        return None
    return UserError(
        f"{owner} needs a backend (a subclass of pytest_cachemock.Backend), got a "
        f"{type(backend).__qualname__}; pass None (in memory), MemoryBackend(), "
        "LogBackend(path), SqliteBackend(path), FileBackend(directory), or subclass "
        "Backend with _get/_put"
    )


def key_error(backend: object, op: str, key: object) -> KeyEncodingError:
    """The error for a key that is not a str, handed to ``backend.op`` directly."""
    return KeyEncodingError(
        f"{type(backend).__qualname__}.{op}: keys are str, got a {type(key).__qualname__} "
        f"({key!r}); format it into a string first (a RemoteCache or Memoizer does that for you)"
    )


def refusal(backend: object, op: str, key: object) -> UserError:
    """The error for a ``put``/``add`` refused before it reaches the store: the key is not a
    str (:func:`key_error`), or else the value is None (:func:`none_error`)."""
    return key_error(backend, op, key) if type(key) is not str else none_error(backend, str(key))


def none_error(backend: object, key: str) -> UserError:
    """The error for storing None, which every backend reads back as a miss."""
    return UserError(
        f"{type(backend).__qualname__}: cannot store None for key {key!r}: None means a miss; "
        "store another value (an empty dict, a sentinel) or skip the put"
    )


def bytes_value(store: str, key: str, value: object) -> bytes:
    """``value`` as bytes for a store that keeps bytes, or a ValueEncodingError saying so."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise ValueEncodingError(
        f"{store} stores bytes, got a {type(value).__qualname__} for key {key!r}; "
        "put it through a serde (JsonSerde, PickleSerde) first"
    )


def store_file(path: str | os.PathLike[str], needs: str, example: str) -> Path:
    """``path`` made absolute, for a backend kept in one file; a directory there is refused
    with an IsADirectoryError naming ``example`` inside it as what to pass instead."""
    absolute = Path(path).absolute()
    if absolute.is_dir():
        raise IsADirectoryError(
            f"{needs}, but {os.fspath(absolute)!r} is a directory; pass a file path such as "
            f"{os.path.join(absolute, example)!r}"
        )
    return absolute


def lock_timeout_seconds(value: object) -> float:
    """``value`` as a lock timeout in seconds (a number >= 0), or a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0):
        raise ValueError(f"lock_timeout must be a number of seconds >= 0, got {value!r}")
    return float(value)
