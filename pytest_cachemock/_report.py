"""Report rendering: the per-test text (stats, then entries) and the session summary table.

It takes plain mappings and counts, and imports nothing of the package, so every module that
shows a report can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

VALUE_WIDTH = 100
FIELDS = ("puts", "hits", "misses", "errors")


class _Counts(Protocol):
    def as_tuple(self) -> tuple[int, int, int, int]: ...


def cut(value: object, width: int = VALUE_WIDTH) -> str:
    """``repr(value)``, cut at ``width`` characters with the full length said."""
    text = repr(value)
    return text if len(text) <= width else text[:width] + f"... ({len(text)} chars)"


def counts_text(counts: _Counts) -> str:
    """``puts=1, hits=0, misses=1`` (and ``errors=N`` when there are any)."""
    puts, hits, misses, errors = counts.as_tuple()
    text = f"puts={puts}, hits={hits}, misses={misses}"
    if errors:
        text += f", errors={errors}"
    return text


def render_report(stats: Mapping[str, _Counts], entries: Mapping[str, Mapping[str, object]]) -> str:
    """Per-kind stats, then the stored entries of each kind with long values cut."""
    lines = ["Cache stats:"]
    width = max((len(k) for k in stats), default=0)
    for kind, value in stats.items():
        lines.append(f"  {kind.ljust(width)}  {counts_text(value)}")
    if not stats:
        lines.append("  (no cache kinds)")
    filled = [(k, v) for k, v in entries.items() if v]
    lines.append("Cache entries:" if filled else "Cache entries: (none)")
    for kind, kind_entries in filled:
        lines.append(f"  {kind}:")
        for key in sorted(kind_entries, key=str):
            lines.append(f"    {key!r}: {cut(kind_entries[key])}")
    return "\n".join(lines)


class Summary:
    """Per-kind totals over a session, for ``--cachemock-report``."""

    def __init__(self) -> None:
        self.totals: dict[str, tuple[int, int, int, int]] = {}
        self.tests: dict[str, int] = {}
        self.workers = 0  # pytest-xdist workers whose totals were merged in

    def data(self) -> dict[str, object]:
        """The totals as builtin types, for an xdist worker to send to the controller."""
        return {
            "totals": {kind: list(counts) for kind, counts in self.totals.items()},
            "tests": dict(self.tests),
        }

    def merge(self, data: Mapping[str, object]) -> None:
        """Add a worker's :meth:`data`."""
        totals = data.get("totals", {})
        tests = data.get("tests", {})
        assert isinstance(totals, dict)
        assert isinstance(tests, dict)
        for kind, counts in totals.items():
            total = self.totals.get(kind, (0, 0, 0, 0))
            puts, hits, misses, errors = (int(n) for n in counts)
            self.totals[kind] = (
                total[0] + puts,
                total[1] + hits,
                total[2] + misses,
                total[3] + errors,
            )
        for kind, n in tests.items():
            self.tests[kind] = self.tests.get(kind, 0) + int(n)
        self.workers += 1

    def add(self, stats: Mapping[str, _Counts]) -> None:
        """Add the stats of one stopped ``PatchCaches``."""
        for kind, value in stats.items():
            counts = value.as_tuple()
            total = self.totals.get(kind, (0, 0, 0, 0))
            self.totals[kind] = (
                total[0] + counts[0],
                total[1] + counts[1],
                total[2] + counts[2],
                total[3] + counts[3],
            )
            if any(counts):
                self.tests[kind] = self.tests.get(kind, 0) + 1

    def lines(self) -> list[str]:
        """The table: a header, then one row per kind, by name."""
        header = ("kind", "tests", *FIELDS)
        rows = [
            (kind, str(self.tests.get(kind, 0)), *(str(n) for n in counts))
            for kind, counts in sorted(self.totals.items())
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = []
        for row in [header, *rows]:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            out.append("  ".join(cells))
        return out
