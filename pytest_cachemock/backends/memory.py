"""An in-process backend: thread-safe, with optional LRU size bound and time-to-live."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Callable

from .base import Backend

__all__ = ["MemoryBackend"]

_Entry = tuple[Any, float]  # value, expiry on the backend's clock (inf: never)
_NEVER = float("inf")


class MemoryBackend(Backend[Any]):
    """Keeps values in a dict guarded by a lock.

    ``max_entries`` bounds the size: the least recently used entry goes first. ``ttl`` makes
    entries expire that many seconds after they were put, by ``clock`` (inject a fake clock in
    tests instead of sleeping).
    """

    lists_entries = True

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ValueError(
                f"max_entries must be a positive int or None (unbounded), got {max_entries!r}"
            )
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0
        ):
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        super().__init__(name=name)
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def keeps_limits(self) -> bool:
        """True with ``max_entries`` or ``ttl``: a front cache would get around them."""
        return self.max_entries is not None or self.ttl is not None

    def _expiry(self) -> float:
        return _NEVER if self.ttl is None else self._clock() + self.ttl

    def _get(self, key: str) -> Any:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if self.ttl is not None and entry[1] <= self._clock():
                del self._data[key]
                return None
            if self.max_entries is not None:
                self._data.move_to_end(key)
            return entry[0]

    def _store(self, key: str, value: Any) -> None:
        # Caller holds the lock.
        self._data[key] = (value, self._expiry())
        self._data.move_to_end(key)
        if self.max_entries is not None:
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def _put(self, key: str, value: Any) -> None:
        with self._lock:
            self._store(key, value)

    def _add(self, key: str, value: Any) -> bool:
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and (self.ttl is None or entry[1] > self._clock()):
                return False
            self._store(key, value)
            return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        with self._lock:
            return self._data.pop(key, None) is not None

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._data.clear()

    def _live(self) -> list[tuple[str, Any]]:
        now = self._clock() if self.ttl is not None else 0.0
        with self._lock:
            return [(k, v) for k, (v, exp) in self._data.items() if exp > now]

    def items(self) -> Iterator[tuple[str, Any]]:
        """The live entries, oldest first (a copy: safe to iterate while others write)."""
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())
