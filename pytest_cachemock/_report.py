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
