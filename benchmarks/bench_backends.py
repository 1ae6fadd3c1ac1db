"""Compare our backends with the libraries people would otherwise use, side by side in one run.

- ``FileBackend`` get/put against ``diskcache.Cache`` get/set, both in a fresh directory under
  the default temporary directory (``tempfile``);
- ``LogBackend`` and ``SqliteBackend`` get/put against ``diskcache.Cache`` get/set (for
  information, there is no budget);
- ``MemoryBackend`` get/put against ``cachetools.LRUCache`` ``[key]``/``[key] = value``.

The workload is the same for every store: 100 keys, values of 100-500 bytes of JSON-ish text,
a random sequence of 90% gets and 10% puts (same seed for everyone), run once as a warm-up
and then timed op by op with ``time.perf_counter_ns``. The table gives the median, p90, p99
and max per operation in microseconds, and the ratios ours / theirs (below 1.0: we are
faster). Stores are measured in alternating rounds so that a slow patch of the machine hits
both sides alike.

Run it with::

    python benchmarks/bench_backends.py                # 100,000 timed operations per store
    python benchmarks/bench_backends.py --ops 20000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cachetools
import diskcache

from pytest_cachemock import FileBackend, LogBackend, MemoryBackend, SqliteBackend

try:
    from ._timing import STATS, no_gc, summary
except ImportError:  # run as a script: python benchmarks/bench_backends.py
    from _timing import STATS, no_gc, summary  # type: ignore[import-not-found,no-redef]

KEYS = 100
GET_SHARE = 0.9


@dataclass
class Samples:
    """Per-operation durations in nanoseconds, by operation name."""

    by_op: dict[str, list[int]] = field(default_factory=lambda: {"get": [], "put": []})


def make_values(rng: random.Random) -> list[bytes]:
    """100 JSON-ish byte strings of 100-500 bytes."""
    values = []
    for i in range(KEYS):
        size = rng.randint(100, 500)
        doc: dict[str, Any] = {"id": i, "name": f"item-{i}", "tags": [], "pad": ""}
        text = json.dumps(doc)
        doc["pad"] = "x" * max(0, size - len(text))
        values.append(json.dumps(doc).encode())
    return values


def make_workload(ops: int, seed: int) -> list[tuple[bool, str, int]]:
    """(is_get, key, value index) triples: 90% gets, 10% puts, uniform over 100 keys."""
    rng = random.Random(seed)
    return [
        (rng.random() < GET_SHARE, f"key-{rng.randrange(KEYS)}", rng.randrange(KEYS))
        for _ in range(ops)
    ]


Op = Callable[[str], Any]
Put = Callable[[str, bytes], Any]


def run(
    get: Op, put: Put, workload: list[tuple[bool, str, int]], values: list[bytes], out: Samples
) -> None:
    clock = time.perf_counter_ns
    gets, puts = out.by_op["get"], out.by_op["put"]
    for is_get, key, vi in workload:
        if is_get:
            t0 = clock()
            get(key)
            gets.append(clock() - t0)
        else:
            value = values[vi]
            t0 = clock()
            put(key, value)
            puts.append(clock() - t0)


def compare(
    title: str,
    stores: dict[str, tuple[Op, Put]],
    ops: int,
    rounds: int,
    seed: int,
    values: list[bytes],
) -> dict[str, dict[str, dict[str, float]]]:
    """Warm up every store, then time them in alternating rounds on the same workload."""
    warm = make_workload(min(ops, 10_000), seed + 1)
    for get, put in stores.values():
        for key_index in range(KEYS):
            put(f"key-{key_index}", values[key_index])
        run(get, put, warm, values, Samples())

    samples = {name: Samples() for name in stores}
    per_round = max(1, ops // rounds)
    for r in range(rounds):
        workload = make_workload(per_round, seed + 100 + r)
        order = list(stores) if r % 2 == 0 else list(reversed(stores))
        for name in order:
            get, put = stores[name]
            with no_gc():
                run(get, put, workload, values, samples[name])

    results = {name: {op: summary(ns) for op, ns in s.by_op.items()} for name, s in samples.items()}
    print_table(title, results, samples)
    return results


def print_table(
    title: str,
    results: dict[str, dict[str, dict[str, float]]],
    samples: dict[str, Samples],
) -> None:
    ours, theirs = list(results)
    print(f"\n{title}")
    print(f"{'store':<22}{'op':<5}{'count':>8}{'median':>10}{'p90':>10}{'p99':>10}{'max':>11}")
    for name, by_op in results.items():
        for op, figures in by_op.items():
            count = len(samples[name].by_op[op])
            print(
                f"{name:<22}{op:<5}{count:>8}"
                + "".join(f"{figures[k]:>10.2f}" for k in ("median", "p90", "p99"))
                + f"{figures['max']:>11.1f}"
            )
    for op in ("get", "put"):
        a, b = results[ours][op], results[theirs][op]
        ratios = "  ".join(f"{k} {a[k] / b[k]:.2f}" for k in STATS)
        print(f"ratio {ours} / {theirs} {op}: {ratios}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ops",
        type=int,
        default=100_000,
        help="timed operations per store (default 100000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="alternating rounds the operations are split into (default 10)",
    )
    parser.add_argument("--seed", type=int, default=1234, help="workload seed (default 1234)")
    parser.add_argument(
        "--only",
        choices=("file", "log", "sqlite", "memory"),
        help="run one comparison only",
    )
    args = parser.parse_args(argv)
    if args.ops < 1 or args.rounds < 1:
        parser.error("--ops and --rounds must be >= 1")

    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; diskcache {diskcache.__version__}, "
        f"cachetools {cachetools.__version__}; tempdir {tempfile.gettempdir()}"
    )
    print(
        f"{args.ops} timed ops per store after a warm-up, {int(GET_SHARE * 100)}% get over "
        f"{KEYS} keys, values 100-500 bytes; times in microseconds per operation"
    )
    values = make_values(random.Random(args.seed))
    verdicts: list[bool] = []

    # Each on-disk backend against diskcache, in its own pair of fresh directories. Only
    # FileBackend has a budget; the others are compared for information.
    on_disk: list[tuple[str, Callable[[str], FileBackend | LogBackend | SqliteBackend]]] = [
        ("file", FileBackend),
        ("log", lambda d: LogBackend(os.path.join(d, "bench.log"))),
        ("sqlite", lambda d: SqliteBackend(os.path.join(d, "bench.sqlite3"))),
    ]
    for choice, make in on_disk:
        if args.only not in (None, choice):
            continue
        with (
            tempfile.TemporaryDirectory(prefix="bench-cachemock-") as ours_dir,
            tempfile.TemporaryDirectory(prefix="bench-diskcache-") as theirs_dir,
        ):
            store = make(ours_dir)
            label = type(store).__name__
            theirs = diskcache.Cache(theirs_dir)
            try:
                results = compare(
                    f"{label} vs diskcache.Cache",
                    {label: (store.get, store.put), "diskcache.Cache": (theirs.get, theirs.set)},
                    args.ops,
                    args.rounds,
                    args.seed,
                    values,
                )
            finally:
                if not isinstance(store, FileBackend):
                    store.close()
                theirs.close()
        if choice == "file":
            ok = all(
                results["FileBackend"][op][k] <= results["diskcache.Cache"][op][k]
                for op in ("get", "put")
                for k in ("median", "p99")
            )
            verdicts.append(ok)
            print(
                f"budget (FileBackend median and p99 <= diskcache's): {'met' if ok else 'MISSED'}"
            )

    if args.only in (None, "memory"):
        mem = MemoryBackend()
        lru: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(maxsize=1024)
        compare(
            "MemoryBackend vs cachetools.LRUCache",
            {
                "MemoryBackend": (mem.get, mem.put),
                "cachetools.LRUCache": (lru.get, lru.__setitem__),
            },
            args.ops,
            args.rounds,
            args.seed,
            values,
        )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
