"""Library-wide cache counters: hits, misses, puts and exceptions per backend or cache name.

Counting must be cheap and exact under threads. Each counter is an ``itertools.count``:
``next()`` on it is a single C call, atomic under the GIL, so no lock is taken on the hot
path. ``reset()`` does not touch the counters; it records a baseline that later reads
subtract.
"""

from __future__ import annotations

import itertools
import threading

__all__ = ["CacheStats", "NameCounters", "cache_stats"]

FIELDS = ("hit", "miss", "put", "exception")

Snapshot = dict[str, dict[str, int]]


def _read(counter: itertools.count[int]) -> int:
    # repr is "count(N)"; the only public way to read a count without advancing it.
    return int(repr(counter)[6:-1])


class NameCounters:
    """The four counters of one name. Hot paths call ``next(c.hit)`` and friends."""

    __slots__ = FIELDS

    def __init__(self) -> None:
        self.hit = itertools.count()
        self.miss = itertools.count()
        self.put = itertools.count()
        self.exception = itertools.count()

    def values(self) -> dict[str, int]:
        return {field: _read(getattr(self, field)) for field in FIELDS}


class CacheStats:
    """Thread-safe per-name counters, as the underlying cache library keeps them.

    ``snapshot()`` gives a plain dict ``{name: {"hit": .., "miss": .., "put": ..,
    "exception": ..}}`` of what was counted since the last ``reset()``.
    """

    def __init__(self) -> None:
        self._names: dict[str, NameCounters] = {}
        self._baseline: Snapshot = {}
        self._lock = threading.Lock()

    def counters(self, name: str) -> NameCounters:
        """The live counters of ``name``, created on first use."""
        found = self._names.get(name)
        if found is None:
            with self._lock:
                found = self._names.setdefault(name, NameCounters())
        return found

    def hit(self, name: str, count: int = 1) -> None:
        self._add(name, "hit", count)

    def miss(self, name: str, count: int = 1) -> None:
        self._add(name, "miss", count)

    def put(self, name: str, count: int = 1) -> None:
        self._add(name, "put", count)

    def exception(self, name: str, count: int = 1) -> None:
        self._add(name, "exception", count)

    def get(self, name: str, value: object | None) -> None:
        """Count one read of ``name``: a miss when ``value`` is None, else a hit."""
        self._add(name, "miss" if value is None else "hit", 1)

    def _add(self, name: str, field: str, count: int) -> None:
        if count < 0:
            raise ValueError(f"cache_stats counts only go up; got {field} += {count} for {name!r}")
        counter = getattr(self.counters(name), field)
        for _ in range(count):
            next(counter)

    def raw(self) -> Snapshot:
        """Every counter since the process started, ignoring ``reset()``."""
        with self._lock:
            names = list(self._names.items())
        return {name: counters.values() for name, counters in names}

    def snapshot(self) -> Snapshot:
        """What was counted since the last ``reset()``; names with nothing counted are left out."""
        return diff(self.raw(), self._baseline)

    def reset(self) -> None:
        self._baseline = self.raw()

    def __str__(self) -> str:
        snap = self.snapshot()
        if not snap:
            return "cache_stats: (nothing counted)"
        lines = ["cache_stats:"]
        for name in sorted(snap):
            values = ", ".join(f"{field}: {snap[name][field]}" for field in FIELDS)
            lines.append(f"  {name}: {values}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<CacheStats {self.snapshot()!r}>"


def diff(now: Snapshot, before: Snapshot) -> Snapshot:
    """``now - before`` per name and field, keeping only names that moved."""
    out: Snapshot = {}
    zero = dict.fromkeys(FIELDS, 0)
    for name, values in now.items():
        base = before.get(name, zero)
        delta = {field: values[field] - base.get(field, 0) for field in FIELDS}
        if any(delta.values()):
            out[name] = delta
    return out


cache_stats = CacheStats()
