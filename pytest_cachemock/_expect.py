"""Expectations on a test's cache traffic: the log, count checks, strict seeds, forbidden puts.

``PatchCaches.log``, ``expect``, ``assert_stats``, ``forbid_puts`` and the strict check at the
end of a test are thin methods over the functions here. Failures are ``AssertionError`` with
messages that name the kind, the counts and the keys, and hide these frames from pytest's
traceback (``__tracebackhide__``), so a failure points at the test's own line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Union

from ._oplog import CacheLog, CacheOp
from .errors import ForbiddenPutError
from .stats import Stats

if TYPE_CHECKING:
    from ._store import _Box
    from .patching import PatchCaches

__all__ = ["Count", "Expect", "ForbiddenPutError", "at_least", "at_most"]

_FIELDS = ("puts", "hits", "misses", "errors")
_WORDS = {"puts": ("put", "puts"), "hits": ("hit", "hits"), "misses": ("miss", "misses")}
_WORDS["errors"] = ("error", "errors")
_SHOWN = 50  # operations listed per kind in a failure message


# -- counts other than equal -----------------------------------------------------------------


class Count:
    """A bound on one counter: made by :func:`at_least` and :func:`at_most`."""

    __slots__ = ("high", "low")

    def __init__(self, low: int, high: int | None) -> None:
        self.low = low
        self.high = high

    def matches(self, got: int) -> bool:
        return got >= self.low and (self.high is None or got <= self.high)

    def text(self, field: str) -> str:
        """``at least 1 hit``, ``at most 2 misses``."""
        if self.high is None:
            return f"at least {_counted(self.low, field)}"
        return f"at most {_counted(self.high, field)}"

    def __repr__(self) -> str:
        return f"at_least({self.low})" if self.high is None else f"at_most({self.high})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Count):
            return NotImplemented
        return (self.low, self.high) == (other.low, other.high)

    def __hash__(self) -> int:
        return hash((self.low, self.high))


def _check_n(call: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TypeError(f"{call}: give an int >= 0, got {n!r}")
    return n


def at_least(n: int) -> Count:
    """``hits=at_least(1)``: the counter is ``n`` or more."""
    return Count(_check_n("at_least(n)", n), None)


def at_most(n: int) -> Count:
    """``puts=at_most(1)``: the counter is ``n`` or less (``at_most(0)`` reads "no puts")."""
    return Count(0, _check_n("at_most(n)", n))


Bound = Union[int, Count, None]


class Expect:
    """What a kind's counts should be: each counter an exact ``int``, a :class:`Count`
    (``at_least(1)``, ``at_most(2)``), or None (not checked, the default)::

        Expect(puts=0, hits=at_least(1))

    A ``Stats`` given instead checks all four counters exactly (``errors`` too).
    """

    __slots__ = _FIELDS

    puts: Bound
    hits: Bound
    misses: Bound
    errors: Bound

    def __init__(
        self, puts: Bound = None, hits: Bound = None, misses: Bound = None, errors: Bound = None
    ) -> None:
        for field, value in zip(_FIELDS, (puts, hits, misses, errors)):
            if not (value is None or isinstance(value, Count)):
                _check_n(f"Expect({field}=...)", value)
            object.__setattr__(self, field, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an Expect is frozen")

    def __repr__(self) -> str:
        parts = [f"{f}={getattr(self, f)!r}" for f in _FIELDS if getattr(self, f) is not None]
        return f"Expect({', '.join(parts)})"


def _counted(n: int, field: str) -> str:
    one, many = _WORDS[field]
    if n == 0:
        return f"no {many}"
    return f"{n} {one if n == 1 else many}"


def _spec(call: str, kind: str, value: object) -> dict[str, int | Count]:
    """Per counter, what ``value`` (a Stats or an Expect) asks of it."""
    if isinstance(value, Stats):
        return dict(zip(_FIELDS, value.as_tuple()))
    if isinstance(value, Expect):
        return {f: getattr(value, f) for f in _FIELDS if getattr(value, f) is not None}
    raise TypeError(
        f"{call}({kind}=...): give a Stats (every counter exact) or an Expect (e.g. "
        f"Expect(hits=at_least(1), puts=0)), got {value!r}"
    )


def _problems(field: str, want: int | Count, got: int) -> str | None:
    if isinstance(want, Count):
        if want.matches(got):
            return None
        return f"expected {want.text(field)}, got {got}"
    if want == got:
        return None
    return f"expected {_counted(want, field)}, got {got}"


# -- the log -----------------------------------------------------------------------------------


def log_of(box: _Box, kind: str | None = None, since: int = 0) -> CacheLog:
    """The operations of ``box`` (of ``kind``, or every kind), oldest first, after the first
    ``since`` of them; ``dropped`` counts those the bound let go (of that kind, where known:
    the log keeps no count per kind, so it is the total dropped)."""
    oplog = box.oplog
    raw = oplog.snapshot()
    wanted = max(0, box.logged() - since)  # what happened after the first ``since``
    dropped = max(0, wanted - len(raw))
    raw = raw[len(raw) - wanted :] if wanted < len(raw) else raw
    # A key that is not a str (a cachetools hashkey tuple, logged as it is: a repr per
    # operation would cost more than the rest of the append) is shown as its repr.
    ops = [
        CacheOp(k, op, key if type(key) is str else repr(key), outcome)
        for k, op, key, outcome in raw
        if kind is None or k == kind
    ]
    return CacheLog(ops, dropped, oplog.size)


def _op_lines(ops: CacheLog, kind: str, where: str) -> list[str]:
    lines = [f"  {kind} operations {where} ({len(ops) + ops.dropped}):"]
    if ops.dropped:
        lines.append(
            f"    ({ops.dropped} earlier operations are no longer in the log, which keeps the "
            f"last {ops.size}: raise the ini option cachemock_log_size to see them)"
        )
    shown = ops[-_SHOWN:]
    if len(shown) < len(ops):
        lines.append(f"    ... {len(ops) - len(shown)} more before these")
    lines += [f"    {op.op} {op.key!r} -> {op.outcome}" for op in shown]
    if not ops and not ops.dropped:
        lines[-1] = f"  {kind}: no operations {where}"
    return lines


# -- count checks ------------------------------------------------------------------------------


def check_counts(
    patch: PatchCaches,
    expected: Mapping[str, object],
    got: Mapping[str, Stats],
    since: int,
    call: str,
    where: str,
) -> None:
    """Raise an AssertionError saying, per kind, which counter differs from ``expected`` and
    listing that kind's operations ``where`` (the log after its first ``since`` entries)."""
    __tracebackhide__ = True
    lines: list[str] = []
    for kind, value in expected.items():
        spec = _spec(call, kind, value)
        stats = got.get(kind, Stats())
        wrong = [
            text
            for field, want in spec.items()
            if (text := _problems(field, want, getattr(stats, field))) is not None
        ]
        if not wrong:
            continue
        lines += [f"{kind}: {text}" for text in wrong]
        lines += _op_lines(log_of(patch._current_box(), kind, since), kind, where)
    if lines:
        raise AssertionError("\n".join(lines))


def _diff(after: Mapping[str, Stats], before: Mapping[str, Stats]) -> dict[str, Stats]:
    out: dict[str, Stats] = {}
    for kind, now in after.items():
        then = before.get(kind, Stats()).as_tuple()
        puts, hits, misses, errors = (max(0, a - b) for a, b in zip(now.as_tuple(), then))
        out[kind] = Stats(puts, hits, misses, errors=errors)
    return out


class ExpectBlock:
    """``with patch_caches.expect(prices=Stats(...)):`` - checks the block's counts on exit."""

    def __init__(self, patch: PatchCaches, expected: Mapping[str, object]) -> None:
        __tracebackhide__ = True
        for kind, value in expected.items():
            _spec("expect", kind, value)  # a bad value fails at the with line, not at its end
        self._patch = patch
        self._expected = dict(expected)
        self._before: dict[str, Stats] = {}
        self._since = 0

    def __enter__(self) -> ExpectBlock:
        self._before = self._patch.stats()
        self._since = self._patch._current_box().logged()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        if exc_type is not None:
            return  # the block's own error says more
        got = _diff(self._patch.stats(), self._before)
        check_counts(self._patch, self._expected, got, self._since, "expect", "in the block")


# -- strict seeds and forbidden puts -------------------------------------------------------------


def note_strict(box: _Box, kind: str, keys: Iterable[str]) -> None:
    box.strict.setdefault(kind, []).extend(keys)


def forbid(box: _Box, kinds: Iterable[str]) -> None:
    for kind in kinds:
        box.forbid_puts(kind)


def leftovers(box: _Box | None) -> str | None:
    """The message for what the test left that it said it would not: strict seeds never read,
    puts to a kind under ``forbid_puts`` (raised at the put, maybe swallowed); else None."""
    if box is None:
        return None
    parts: list[str] = []
    if box.strict:
        log = log_of(box)
        read = {(op.kind, op.key) for op in log if op.outcome == "hit" and op.op != "delete"}
        unread = [
            (kind, key)
            for kind, keys in box.strict.items()
            for key in dict.fromkeys(keys)
            if (kind, key) not in read
        ]
        if unread:
            lines = ["cachemock: these entries were seeded with strict=True and never read:"]
            lines += [f"  - {kind}: {key!r}" for kind, key in unread]
            if log.dropped:
                lines.append(
                    f"(the log let {log.dropped} early operations go, past its size of "
                    f"{log.size}: some of these may have been read; raise the ini option "
                    "cachemock_log_size)"
                )
            lines.append(
                "If the test does not need them, leave them out of the seed; if it may or may "
                "not read them, seed them with strict=False (the default)."
            )
            parts.append("\n".join(lines))
    refused = [(kind, key) for kind, keys in box.forbid.items() for key in keys]
    if refused:
        lines = ["cachemock: the test forbids puts to these kinds, and the code put:"]
        lines += [f"  - {kind}: {key!r}" for kind, key in refused]
        lines.append(
            "Each put raised ForbiddenPutError; the code under test may have caught it. If the "
            "writes are expected, drop the kind from forbid_puts."
        )
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else None


def verify(box: _Box | None) -> None:
    __tracebackhide__ = True
    message = leftovers(box)
    if message is not None:
        raise AssertionError(message)
