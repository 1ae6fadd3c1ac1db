"""The operation log's cost on the mock's hot path, side by side in one run.

    python benchmarks/bench_oplog.py [--quick] [--before COMMIT]

Two columns, each measured in a child process of its own, interleaved round by round so that
drift of a shared machine hits both alike:

- ``before``: the package as it was before the operation log (``COMMIT``, by default the
  parent of "issue 20, step 1", 18eff47), taken from this repository with ``git archive``;
- ``logged``: this tree, where every mock operation is also appended to the test's log.

Each child times ``MockBackend.get`` (100 keys, half of them stored: hits and misses) and
``MockBackend.put`` inside one ``PatchCaches`` block, with the cost of the bare loop taken
off (the worker of ``bench_isolation.py``, best of five runs in each child). A child's speed
is bimodal on these machines (the same code in two processes: 180 or 270 ns a get), so the
script compares the best child of each column, and prints the medians of the children too.
The budget (issue 20) is a ratio of at most 1.2, best against best.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile

try:
    from ._timing import package_at
    from .bench_isolation import ROOT, _measure
except ImportError:  # run as a script: python benchmarks/<this file>
    from _timing import package_at  # type: ignore[import-not-found,no-redef]
    from bench_isolation import ROOT, _measure  # type: ignore[import-not-found,no-redef]

# The parent of "issue 20, step 1" (18eff47), which brought the operation log.
BEFORE = "18eff47^"
BUDGET = 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    parser.add_argument("--before", default=BEFORE, help="the commit of the 'before' column")
    args = parser.parse_args()
    n, rounds = (50_000, 5) if args.quick else (200_000, 11)

    scratch = tempfile.mkdtemp(prefix="bench-oplog-")
    try:
        before = package_at(args.before, scratch)
        if before is None:
            return
        # The worker's "before" column is a plain PatchCaches(); "thread" is this tree's
        # default mode named, which is what a plugin test gets.
        columns = {"before": ("before", before), "logged": ("thread", ROOT)}
        samples: dict[str, dict[str, list[float]]] = {c: {"get": [], "put": []} for c in columns}
        for _ in range(rounds):
            for column, (worker_column, path) in columns.items():
                found = _measure(worker_column, n, path)
                for op in ("get", "put"):
                    samples[column][op].append(found[op])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"One mock operation, ns ({rounds} children per column, {n} operations, loop taken off):")
    print(f"{'operation':<10} {'logged':>8} {'before':>8} {'ratio':>7}  budget <= {BUDGET}")
    for op in ("get", "put"):
        for name, stat in (("best", min), ("median", statistics.median)):
            logged = stat(samples["logged"][op])
            earlier = stat(samples["before"][op])
            ratio = logged / earlier
            verdict = ("met" if ratio <= BUDGET else "NOT met") if name == "best" else ""
            print(f"{op} {name:<6} {logged:>8.1f} {earlier:>8.1f} {ratio:>7.2f}  {verdict}")


if __name__ == "__main__":
    main()
