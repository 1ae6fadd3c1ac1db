"""The backend base class: where a cache's encoded values are stored.

Subclasses implement ``_get`` and ``_put`` (and, when they can do it atomically, ``_add``).
The public methods count into the library-wide :data:`cache_stats` under the backend's name
and re-raise any error after counting it.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Generic, TypeVar

from ..counters import NameCounters, cache_stats
from ..errors import KeyEncodingError, UserError, ValueEncodingError

__all__ = ["Backend"]

T = TypeVar("T")


class Backend(ABC, Generic[T]):
    """Stores encoded values by string key. ``None`` is never stored: it means a miss."""

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
                raise key_error(self, "get", key)
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
                raise refusal(self, "put", key)
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
                raise refusal(self, "add", key)
            added = self._add(key, value)
        except Exception:
            next(counters.exception)
            raise
        next(counters.put if added else counters.hit)
        return added

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.name!r}>"


_add_lock = threading.RLock()


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
