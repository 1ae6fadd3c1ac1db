"""The cost of one mock operation in each isolation mode, side by side in one run.

    python benchmarks/bench_isolation.py [--quick] [--before COMMIT]

Columns, each measured in a child process of its own, the children interleaved round by
round so that drift of a shared machine hits them alike:

- ``before``: mock get/put of the package as it was before the isolation modes (``COMMIT``,
  by default the parent of the commit that brought them, taken from this repository with
  ``git archive``): one thread-local dict per thread, the seed's design. Skipped, with a
  note, where there is no git history.
- ``thread``, ``process``, ``shared``: mock get/put of this tree in each mode.
- ``LogBackend``: a ``LogBackend`` put/get on a file in a temporary directory: the budget
  of ``shared`` (a store on disk that several processes use).

Then a generated suite of 2,000 trivial tests under pytest-xdist ``-n 2``, with the plugin
installed and with ``-p no:cachemock``, interleaved (best of the rounds).

Budgets (docs/performance.md): thread <= 1.1x before, process <= 1.5x before, shared no
slower than LogBackend; the ``-n 2`` suite with the plugin <= 1.03x of the one without.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

try:
    from ._timing import package_at, pytest_seconds
except ImportError:  # run as a script: python benchmarks/<this file>
    from _timing import package_at, pytest_seconds  # type: ignore[import-not-found,no-redef]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The parent of "issue 17, step 1" (b95906c), which moved the stores to _store.py.
BEFORE = "b95906c^"

# Runs in a child: prints {"get": ns, "put": ns} for one column.
_WORKER = r"""
import json, os, sys, tempfile, time

column, n = sys.argv[1], int(sys.argv[2])
keys = [f"key-{i}" for i in range(100)]
value = b'{"v": 1}'


def per_op(fn):
    # The best of five runs: a child's one sample is what the machine let it have.
    fn(min(n, 10_000))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def loops(get, put):
    def gets(count):
        ks = keys
        for i in range(count):
            get(ks[i % 100])

    def puts(count):
        ks = keys
        for i in range(count):
            put(ks[i % 100], value)

    def empty(count):
        ks = keys
        for i in range(count):
            ks[i % 100]

    for key in keys[::2]:
        put(key, value)
    base = per_op(empty)
    return {"get": per_op(gets) - base, "put": per_op(puts) - base}


if column == "LogBackend":
    from pytest_cachemock import LogBackend

    with tempfile.TemporaryDirectory() as d:
        backend = LogBackend(os.path.join(d, "bench.log"))
        out = loops(backend.get, backend.put)
        backend.close()
else:
    from pytest_cachemock import MockBackend, PatchCaches

    options = {} if column == "before" else {"isolation": column}
    with PatchCaches(**options):
        mock = MockBackend("bench")
        out = loops(mock.get, mock.put)
print(json.dumps(out))
"""


def _measure(column: str, n: int, path: str) -> dict[str, float]:
    # One hash seed for every child: the dicts of the keys then lay out alike in each column
    # (with random seeds, collisions alone moved one column against another by 20%).
    env = dict(os.environ, PYTHONPATH=path, PYTHONHASHSEED="0")
    env.pop("CACHEMOCK_SHARED", None)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, column, str(n)],
        env=env,
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_SUITE = """
import pytest

@pytest.mark.parametrize("i", range({count}))
def test_trivial(i):
    assert i >= 0
"""


def bench_xdist_suite(count: int, rounds: int) -> tuple[float, float]:
    """Best seconds of the suite under -n 2: (plugin disabled, plugin installed)."""
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "test_plain.py"), "w") as f:
            f.write(textwrap.dedent(_SUITE.format(count=count)))
        off, on = [], []
        for _ in range(rounds):
            off.append(pytest_seconds(directory, ["-n", "2", "-p", "no:cachemock"]))
            on.append(pytest_seconds(directory, ["-n", "2"]))
    return min(off), min(on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    parser.add_argument("--before", default=BEFORE, help="the commit of the 'before' column")
    parser.add_argument("--no-suite", action="store_true", help="skip the -n 2 suite")
    args = parser.parse_args()
    n, rounds, tests, suite_rounds = (50_000, 3, 500, 3) if args.quick else (200_000, 7, 2000, 7)

    scratch = tempfile.mkdtemp(prefix="bench-isolation-")
    try:
        columns = {"thread": ROOT, "process": ROOT, "shared": ROOT, "LogBackend": ROOT}
        before = package_at(args.before, scratch)
        if before is not None:
            columns = {"before": before, **columns}
        samples: dict[str, dict[str, list[float]]] = {c: {"get": [], "put": []} for c in columns}
        for _ in range(rounds):
            for column, path in columns.items():
                found = _measure(column, n, path)
                for op in ("get", "put"):
                    samples[column][op].append(found[op])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    # A child's speed is bimodal on these machines (the same code in two processes can differ
    # by half), so the budgets compare the best child of each column; medians are shown too.
    for name, stat in (("best", min), ("median", statistics.median)):
        table = {c: {op: stat(v) for op, v in ops.items()} for c, ops in samples.items()}
        print(f"\nOne mock operation per mode, ns ({name} of {rounds} children, {n} ops):")
        print(f"  {'column':<12} {'get':>8} {'put':>8}")
        for column, ops in table.items():
            print(f"  {column:<12} {ops['get']:8.1f} {ops['put']:8.1f}")
        for op in ("get", "put"):
            if "before" in table:
                for mode, budget in (("thread", 1.1), ("process", 1.5)):
                    ratio = table[mode][op] / table["before"][op]
                    print(f"  {mode}/before {op}: {ratio:.2f}  (budget <= {budget})")
            ratio = table["shared"][op] / table["LogBackend"][op]
            print(f"  shared/LogBackend {op}: {ratio:.2f}  (budget <= 1.0)")

    if args.no_suite:
        return
    try:
        import xdist  # noqa: F401
    except ImportError:
        print("\npytest-xdist is not installed: skipping the -n 2 suite")
        return
    off, on = bench_xdist_suite(tests, suite_rounds)
    print(f"\nA suite of {tests} trivial tests under -n 2, best of {suite_rounds} runs:")
    print(f"  -p no:cachemock   {off:7.3f} s")
    print(f"  plugin installed  {on:7.3f} s")
    print(f"  installed/disabled: {on / off:.3f}  (budget <= 1.03)")


if __name__ == "__main__":
    main()
