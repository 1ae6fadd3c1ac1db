"""The operation log's cost on the mock's hot path, side by side in one run.

    python benchmarks/bench_oplog.py [--quick]

Times ``MockBackend.get`` (half the keys present: hits and misses) and ``MockBackend.put``
with the log (the shipped mock) against the same mock with the code path of before the log
(Backend's public get/put over ``_get``/``_put`` as they were: no append), in alternating
rounds inside one ``PatchCaches`` block, and prints the medians and the ratio logged /
unlogged. The budget (issue 20) is a ratio of at most 1.2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

# The package of this checkout, not an installed one (run as a script, sys.path[0] is
# benchmarks/).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KEYS = [f"key-{i}" for i in range(100)]
VALUE = b'{"v": 1}'


def _unlogged_class() -> type[Any]:
    from pytest_cachemock import Backend, MockBackend

    class UnloggedMock(MockBackend):
        """MockBackend as it was before the operation log: Backend's public get/put over
        these _get/_put."""

        get = Backend.get
        put = Backend.put

        def _get(self, key: str) -> Any:
            try:
                record = self._local.ready[self.kind]
            except (KeyError, AttributeError):
                record = self._live("get", key)
            value = record.entries.get(key)
            if value is None:
                record.misses += 1
            else:
                record.hits += 1
            return value

        def _put(self, key: str, value: Any) -> None:
            try:
                record = self._local.ready[self.kind]
            except (KeyError, AttributeError):
                record = self._live("put", key)
            record.entries[key] = value
            record.puts += 1

    return UnloggedMock


def _loop(op: Callable[..., Any], put: bool) -> Callable[[int], None]:
    def run(count: int) -> None:
        ks = KEYS
        if put:
            for i in range(count):
                op(ks[i % 100], VALUE)
        else:
            for i in range(count):
                op(ks[i % 100])

    return run


def _empty(count: int) -> None:
    ks = KEYS
    for i in range(count):
        ks[i % 100]


def _time(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def bench(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Per operation: (median ns with the log, median ns without), loop cost taken off."""
    from pytest_cachemock import MockBackend, PatchCaches

    out: dict[str, tuple[float, float]] = {}
    with PatchCaches():
        logged = MockBackend("bench")
        unlogged = _unlogged_class()("bench-unlogged")
        for key in KEYS[::2]:
            logged.put(key, VALUE)
            unlogged.put(key, VALUE)
        for name, put in (("get", False), ("put", True)):
            sides = {
                "logged": _loop(logged.put if put else logged.get, put),
                "unlogged": _loop(unlogged.put if put else unlogged.get, put),
            }
            times: dict[str, list[float]] = {"logged": [], "unlogged": [], "loop": []}
            for fn in (*sides.values(), _empty):
                fn(10_000)  # warm up
            for _ in range(rounds):  # alternating, so a slow spell hits both sides
                times["loop"].append(_time(_empty, n))
                for side, fn in sides.items():
                    times[side].append(_time(fn, n))
            loop = statistics.median(times["loop"])
            out[name] = (
                statistics.median(times["logged"]) - loop,
                statistics.median(times["unlogged"]) - loop,
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    args = parser.parse_args()
    n, rounds = (50_000, 5) if args.quick else (200_000, 15)
    results = bench(n, rounds)
    print(f"{'operation':<10} {'logged ns':>10} {'unlogged ns':>12} {'ratio':>7}  budget <= 1.2")
    for name, (logged, unlogged) in results.items():
        ratio = logged / unlogged
        verdict = "met" if ratio <= 1.2 else "NOT met"
        print(f"mock {name:<5} {logged:>10.1f} {unlogged:>12.1f} {ratio:>7.2f}  {verdict}")


if __name__ == "__main__":
    main()
