"""The operation log of a store: each mock operation of a test, in order, bounded in memory.

Every box of ``_store`` has one :class:`OpLog`. A mock appends ``(kind, op, key, outcome)``
to its ring (a ``collections.deque`` with a ``maxlen``, shared by the box's threads: one
``append`` is atomic, so the ring holds the box's operations in the order they happened).
Past the bound the oldest entries fall out; how many did is worked out when the log is read,
from the counters every mock operation also bumps (puts + hits + misses of the box's records
in this process, plus ``extra``: logged operations that bump none of those), so the hot path
pays one tuple and one append and nothing else.

It imports nothing of the package.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["DEFAULT_SIZE", "CacheLog", "CacheOp", "OpLog", "render"]

DEFAULT_SIZE = 10_000
REPORT_LINES = 20  # operations shown in a failing test's report section


class CacheOp(NamedTuple):
    """One mock operation: ``kind``, ``op`` (get/put/add/delete), ``key``, ``outcome``
    (hit/miss/stored/error)."""

    kind: str
    op: str
    key: str
    outcome: str

    def __str__(self) -> str:
        return f"{self.kind}  {self.op} {self.key!r} -> {self.outcome}"


class CacheLog(tuple[CacheOp, ...]):
    """The operations of a test, oldest first; ``dropped`` says how many older ones the log
    no longer holds (its bound, ``size``, was reached)."""

    dropped: int
    size: int

    def __new__(
        cls, ops: Iterable[CacheOp], dropped: int = 0, size: int = DEFAULT_SIZE
    ) -> CacheLog:
        self = super().__new__(cls, ops)
        self.dropped = dropped
        self.size = size
        return self


class OpLog:
    """A box's ring of raw ``(kind, op, key, outcome)`` tuples and its tally of operations
    that count no put, hit or miss (errors, deletes)."""

    __slots__ = ("extra", "ring")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.ring: deque[tuple[str, str, str, str]] = deque(maxlen=size)
        self.extra = 0

    @property
    def size(self) -> int:
        size = self.ring.maxlen
        assert size is not None
        return size

    def note(self, kind: str, op: str, key: str, outcome: str) -> None:
        """Log an operation that bumps no put, hit or miss counter (off the hot path)."""
        self.ring.append((kind, op, key, outcome))
        self.extra += 1

    def snapshot(self) -> list[tuple[str, str, str, str]]:
        """The ring's entries now (a copy made in C: no other thread's append interleaves)."""
        while True:
            try:
                return list(self.ring.copy())
            except RuntimeError:  # pragma: no cover - mutated while copied
                continue

    def clear(self) -> None:
        self.ring.clear()
        self.extra = 0


def render(log: CacheLog, limit: int = REPORT_LINES, counted_only: Iterable[str] = ()) -> list[str]:
    """The report section's lines for ``log``: its newest ``limit`` operations, and which of
    the kinds the test used are ``counted_only`` (counted, never logged)."""
    total = len(log) + log.dropped
    only = ", ".join(sorted(counted_only))
    note = f"; {only}: counted, not logged" if only else ""
    if not total:
        return [f"Cache operations: (none{note})"]
    shown = log[-limit:] if limit else log[:0]
    head = f"Cache operations ({total}"
    if len(shown) < total:
        head += f", the last {len(shown)} shown"
    lines = [head + note + "):"]
    width = max((len(op.kind) for op in shown), default=0)
    lines += [f"  {op.kind.ljust(width)}  {op.op} {op.key!r} -> {op.outcome}" for op in shown]
    return lines
