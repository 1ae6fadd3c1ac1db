"""Timing and percentile helpers shared by the benchmark scripts.

Samples are nanoseconds from ``time.perf_counter_ns``; summaries are in microseconds.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable

STATS = ("median", "p90", "p99", "max")


def percentile(sorted_ns: Sequence[float], q: float) -> float:
    """The sample at rank ``round(q * (n - 1))`` of ascending ns samples, in us (nan if empty)."""
    if not sorted_ns:
        return float("nan")
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1000.0


def summary(samples_ns: Iterable[float]) -> dict[str, float]:
    """Median, p90, p99 and max of ns samples, in microseconds (keys as in ``STATS``)."""
    s = sorted(samples_ns)
    return {
        "median": percentile(s, 0.5),
        "p90": percentile(s, 0.9),
        "p99": percentile(s, 0.99),
        "max": s[-1] / 1000.0 if s else float("nan"),
    }


def time_calls(fn: Callable[..., Any], calls: Iterable[tuple[Any, ...]]) -> list[int]:
    """Call ``fn(*args)`` for each ``args``, timing each call alone; durations in ns."""
    clock = time.perf_counter_ns
    samples = []
    for args in calls:
        t0 = clock()
        fn(*args)
        samples.append(clock() - t0)
    return samples


def per_op(fn: Callable[[int], None], n: int, rounds: int) -> float:
    """Median over ``rounds`` of the time per operation, in ns (``fn(n)`` runs n operations)."""
    fn(min(n, 10_000))  # warm up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn(n)
        times.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(times)


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect, then keep the garbage collector off for the block."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def package_at(commit: str, into: str) -> str | None:
    """This repository's package as it was at ``commit``, unpacked under ``into`` (returned),
    for a benchmark's "before" column; None, with a note, where there is no git history."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        archive = subprocess.run(
            ["git", "-C", root, "archive", commit, "pytest_cachemock"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no 'before' column: cannot take {commit} from git ({exc})")
        return None
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def pytest_seconds(directory: str, args: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds one quiet ``python -m pytest`` run over ``directory`` takes (it must pass)."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - t0
