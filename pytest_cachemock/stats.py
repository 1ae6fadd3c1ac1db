"""The ``Stats`` value and the per-kind ``global_stats`` view of the current store.

``Stats`` is a frozen value; positional order is the seed's (puts, hits, misses), so
``Stats(1, 3, 1)`` copied from a PyTorch test means the same here. ``global_stats.<kind>``
returns a :class:`KindStats`: a ``Stats`` read from the current store when accessed, which
also carries the stored entries as ``.cache`` (the seed's name).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO

from ._report import FIELDS, render_report
from .errors import UnknownKindError, _unknown_kind

if TYPE_CHECKING:
    from .mock import KindRecord

__all__ = ["GlobalStats", "KindStats", "Stats", "UnknownKindError", "global_stats"]


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"Stats.{name} must be an int >= 0, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True, init=False, eq=False)
class Stats:
    """Counts of one cache kind: ``Stats(puts, hits, misses, *, errors=0)``."""

    puts: int
    hits: int
    misses: int
    errors: int

    def __init__(self, puts: int = 0, hits: int = 0, misses: int = 0, *, errors: int = 0) -> None:
        object.__setattr__(self, "puts", _check_count("puts", puts))
        object.__setattr__(self, "hits", _check_count("hits", hits))
        object.__setattr__(self, "misses", _check_count("misses", misses))
        object.__setattr__(self, "errors", _check_count("errors", errors))

    # The seed's names, read-only.
    @property
    def num_put(self) -> int:
        return self.puts

    @property
    def num_get_hit(self) -> int:
        return self.hits

    @property
    def num_get_miss(self) -> int:
        return self.misses

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.puts, self.hits, self.misses, self.errors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stats):
            return NotImplemented
        equal = self.as_tuple() == other.as_tuple()
        if not equal:
            _note_mismatch(self, other)
        return equal

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __add__(self, other: Stats) -> Stats:
        if not isinstance(other, Stats):
            return NotImplemented
        return Stats(
            *(a + b for a, b in zip(self.as_tuple()[:3], other.as_tuple()[:3])),
            errors=self.errors + other.errors,
        )

    def __str__(self) -> str:
        text = f"puts={self.puts}, hits={self.hits}, misses={self.misses}"
        if self.errors:
            text += f", errors={self.errors}"
        return text

    def __repr__(self) -> str:
        return f"Stats({self})"


@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class KindStats(Stats):
    """``Stats`` of one kind as read from the store, with the stored entries as ``cache``.

    It compares equal to any ``Stats`` with the same counts. ``cache`` maps the exact key the
    cache controller passed to the value it stored (read-only, live).
    """

    kind: str
    cache: Mapping[str, object]

    def __init__(self, kind: str, record: KindRecord | None) -> None:
        if record is None:
            super().__init__()
            cache: Mapping[str, object] = MappingProxyType({})
        else:
            super().__init__(record.puts, record.hits, record.misses, errors=record.errors)
            cache = MappingProxyType(record.entries)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "cache", cache)

    def __repr__(self) -> str:
        return f"global_stats.{self.kind}: Stats({Stats.__str__(self)})"


# -- explaining a failed comparison (used by the pytest plugin and by report sections) -------

_mismatch = threading.local()


def _note_mismatch(left: Stats, right: Stats) -> None:
    if isinstance(left, KindStats) or isinstance(right, KindStats):
        _mismatch.last = (left, right)


def _last_mismatch(clear: bool = False) -> tuple[Stats, Stats] | None:
    """The last unequal comparison of a kind's stats in this thread, if any."""
    found: tuple[Stats, Stats] | None = getattr(_mismatch, "last", None)
    if clear:
        _mismatch.last = None
    return found


def _explain_mismatch(left: Stats, right: Stats) -> list[str]:
    """Lines saying which counters differ; the kind's side is 'actual' when one side is a kind."""
    actual: Stats = left
    expected: Stats = right
    if isinstance(right, KindStats) and not isinstance(left, KindStats):
        actual, expected = right, left
    name = f"global_stats.{actual.kind}" if isinstance(actual, KindStats) else "left"
    lines = [f"{name} == {Stats.__repr__(expected)} failed; actual {Stats.__repr__(actual)}:"]
    for field in FIELDS:
        got, want = getattr(actual, field), getattr(expected, field)
        if got != want:
            lines.append(f"  {field}: expected {want}, got {got}")
    return lines


# -- reading with nothing mocked ----------------------------------------------------------------

_warned = threading.local()


def _check_mocked(what: str) -> None:
    """Warn (once per test and thread) when ``what`` reads a store no PatchCaches started here
    while none runs.

    Here is: in this thread, and under pytest in this test (the scope's epoch). After a
    ``with PatchCaches()`` block ends its stats stay readable, as in the seed, without a warning.
    """
    from ._state import PROCESS, current, running
    from .mock import current_store

    scope = current()
    token = (scope, scope.epoch)
    if running or current_store().marked() == token or getattr(_warned, "token", None) == token:
        return
    _warned.token = token
    import warnings

    from .errors import NotMockedWarning

    if scope is PROCESS:
        where = "in this thread"
        fix = "wrap the code in `with PatchCaches():` and read the stats inside or after it"
    else:
        where = "in this test"
        fix = (
            "request the patch_caches (or global_stats) fixture, mark the test with "
            "@pytest.mark.cachemock, or wrap the code in `with PatchCaches():`"
        )
    warnings.warn(
        NotMockedWarning(
            f"{what} read while no PatchCaches has run {where}: nothing was mocked, the real "
            f"caches were used, and these counts are not the code's. To count, {fix}"
        ),
        stacklevel=_caller_level(),
    )


def _caller_level() -> int:
    """The stacklevel of the first frame outside this module, seen from a function here
    that calls ``warnings.warn``."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


# -- the global view -----------------------------------------------------------------------------


_STDERR: Any = object()  # report()'s default: the sys.stderr of the time of the call


class GlobalStats:
    """The stats of the current store, per kind: ``global_stats.kind`` or ``global_stats["kind"]``.

    Iterating gives the kind names. Values are read when accessed.
    """

    def _kinds(self) -> list[str]:
        from ._state import current
        from .mock import current_store

        names = current().registry.names()
        for name in current_store().records():
            if name not in names:
                names.append(name)
        return names

    def _get(self, kind: str) -> KindStats:
        __tracebackhide__ = True
        from .mock import current_store

        record = current_store().records().get(kind)
        if record is None and kind not in self._kinds():
            raise UnknownKindError(_unknown_kind(kind, self._kinds()))
        _check_mocked(f"global_stats.{kind}")
        return KindStats(kind, record)

    def __getattr__(self, kind: str) -> KindStats:
        __tracebackhide__ = True
        if kind.startswith("__"):
            raise AttributeError(kind)
        return self._get(kind)

    def __getitem__(self, kind: str) -> KindStats:
        __tracebackhide__ = True
        return self._get(kind)

    def get_stat(self, kind: str) -> KindStats:
        """The seed's spelling of ``global_stats[kind]``."""
        return self[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds()

    def items(self) -> list[tuple[str, KindStats]]:
        return [(kind, self[kind]) for kind in self._kinds()]

    def reset(self) -> None:
        """Zero every counter and drop every entry of the current store."""
        from .mock import current_store

        current_store().reset()

    def report(self, file: TextIO | None = _STDERR) -> str:
        """Render the stats and entries; written to ``file`` (stderr, as the seed) and returned.

        ``file=None`` only returns the text.
        """
        _check_mocked("global_stats.report()")
        items = self.items()
        text = render_report(dict(items), {k: v.cache for k, v in items})
        if file is _STDERR:
            # Looked up now, not at import: pytest's capsys and capture replace sys.stderr.
            file = sys.stderr
        if file is not None:
            print(text, file=file)
        return text

    def __repr__(self) -> str:
        return (
            "<global_stats " + ", ".join(f"{k}: {Stats.__str__(v)}" for k, v in self.items()) + ">"
        )

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._kinds()))


global_stats = GlobalStats()
