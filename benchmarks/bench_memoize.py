"""Compare our ``Memoizer`` with the memoizers people would otherwise use, in one run.

Three measurements, each side by side:

- **warm hit**: a memoized ``quote(sku: str, qty: int)`` called on 100 argument pairs that are
  all cached already, against torch 2.13's ``Memoizer`` (caching module enabled),
  ``cachetools.cached`` and ``functools.lru_cache``. Timed in batches of 1,000 calls
  (a per-call timer would weigh more than the call); the figures are per call.
- **first call, on disk**: every call has new arguments (a miss that computes and stores),
  ours with a ``FileBackend`` against torch's ``PersistentMemoizer``, each in a fresh
  directory; timed call by call. The two directories are siblings under torch's cache
  directory (``<tmp>/torchinductor_<user>/cache``, which torch 2.13 uses whatever
  ``TORCHINDUCTOR_CACHE_DIR`` says): creating a file costs 20 to 300 us on this ext4 depending
  on where the directory sits, so both sides must create theirs in the same place. Our
  background writer is flushed (untimed) before torch's side runs, so that it never
  competes with torch's calls, and both directories are removed after each round.
- **disk hit in a fresh process**: a first process fills the store, then a second process
  (nothing in memory) calls each argument pair once: ours with a ``FileBackend`` against
  ``diskcache``'s ``Cache.memoize``; timed call by call.

The table gives the median, p90, p99 and max in microseconds and the ratio of medians
ours / theirs (below 1.0: we are faster). Sides are measured in alternating rounds, so that a
slow patch of the machine hits both alike.

Run it with::

    python benchmarks/bench_memoize.py                 # the full run (about 10 seconds here)
    python benchmarks/bench_memoize.py --quick         # fewer rounds
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

os.environ.setdefault("TORCHINDUCTOR_ENABLE_CACHING_MODULE", "1")

try:
    from ._timing import summary, time_calls
except ImportError:  # run as a script: python benchmarks/bench_memoize.py
    from _timing import summary, time_calls  # type: ignore[import-not-found,no-redef]

KEYS = 100


def quote_args(i: int) -> tuple[str, int]:
    return (f"SKU-{i:05d}", i % 7 + 1)


def quote_body(sku: str, qty: int) -> dict[str, Any]:
    return {"sku": sku, "qty": qty, "price": qty * 3}


# -- our on-disk stores -------------------------------------------------------------------------

# Our sides in the on-disk measurements, as they appear in the tables.
OURS_ON_DISK = {
    "log": "ours Memoizer + LogBackend",
    "sqlite": "ours Memoizer + SqliteBackend",
    "file": "ours Memoizer + FileBackend",
}


def make_store(side: str, directory: str) -> Any:
    """Our backend ``side`` ("log", "sqlite" or "file") with its files in ``directory``."""
    from pytest_cachemock import FileBackend, LogBackend, SqliteBackend

    if side == "log":
        return LogBackend(os.path.join(directory, "memo.log"))
    if side == "sqlite":
        return SqliteBackend(os.path.join(directory, "memo.sqlite3"))
    return FileBackend(directory)


# -- statistics --------------------------------------------------------------------------------


def table(title: str, results: dict[str, list[float]], budgets: dict[str, float]) -> bool:
    """Print the sides, then every ours / theirs ratio of medians; False when a budget is missed.

    ``budgets`` maps a competitor's name to the largest ratio allowed for every "ours" side
    (a competitor without a budget is compared for information).
    """
    print(f"\n{title}")
    print(f"  {'':<34} {'median':>9} {'p90':>9} {'p99':>9} {'max':>10}")
    medians = {}
    for name, samples in results.items():
        s = summary(samples)
        medians[name] = s["median"]
        print(f"  {name:<34} {s['median']:9.2f} {s['p90']:9.2f} {s['p99']:9.2f} {s['max']:10.2f}")
    ok = True
    for ours in (n for n in results if n.startswith("ours")):
        for theirs in (n for n in results if not n.startswith("ours")):
            ratio = medians[ours] / medians[theirs]
            limit = budgets.get(theirs)
            verdict = ""
            if limit is not None:
                met = ratio <= limit
                ok = ok and met
                verdict = f"  (budget <= {limit:g}: {'met' if met else 'NOT met'})"
            print(f"  {ours} / {theirs}: {ratio:.2f}{verdict}")
    return ok


# -- warm hits ---------------------------------------------------------------------------------


def warm_hits(rounds: int, batch: int) -> dict[str, list[float]]:
    import cachetools
    from torch._inductor.runtime.caching.interfaces import Memoizer as TorchMemoizer

    from pytest_cachemock import Memoizer

    ours = Memoizer(kind="bench_warm").memoize(quote_body)
    theirs = TorchMemoizer().memoize()(quote_body)
    ct = cachetools.cached(cachetools.LRUCache(maxsize=1024))(quote_body)
    lru = functools.lru_cache(maxsize=1024)(quote_body)
    sides: dict[str, Callable[..., Any]] = {
        "ours Memoizer (memory)": ours,
        "torch Memoizer": theirs,
        "cachetools.cached": ct,
        "functools.lru_cache": lru,
    }
    args = [quote_args(i) for i in range(KEYS)]
    for fn in sides.values():
        for a in args:
            fn(*a)
        if fn(*args[0]) != quote_body(*args[0]):
            raise AssertionError(f"{fn} returns something else")
    calls = [args[i % KEYS] for i in range(batch)]
    out: dict[str, list[float]] = {name: [] for name in sides}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, fn in sides.items():
            t0 = clock()
            for a in calls:
                fn(*a)
            out[name].append((clock() - t0) / batch)
    return out


# -- first calls -------------------------------------------------------------------------------


def first_calls(n: int, rounds: int) -> dict[str, list[float]]:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from torch._inductor.runtime.caching.interfaces import PersistentMemoizer

    from pytest_cachemock import Memoizer

    torch_name = "torch PersistentMemoizer"
    out: dict[str, list[float]] = {name: [] for name in [*OURS_ON_DISK.values(), torch_name]}
    # torch writes under <tmp>/torchinductor_<user>/cache/<sub_dir>; ours go next to it.
    parent = os.path.join(default_cache_dir(), "cache")
    for r in range(rounds):
        torch_sub = f"bench-{os.getpid()}-{r}-torch"
        dirs = {
            side: os.path.join(parent, f"bench-{os.getpid()}-{r}-{side}") for side in OURS_ON_DISK
        }
        memos = {
            side: Memoizer(kind=f"bench_first_{side}", backend=make_store(side, dirs[side]))
            for side in OURS_ON_DISK
        }
        try:
            sides = [(OURS_ON_DISK[side], memo.memoize(quote_body)) for side, memo in memos.items()]
            sides.append((torch_name, PersistentMemoizer(sub_dir=torch_sub).memoize()(quote_body)))
            shift = r % len(sides)  # who goes first rotates
            for name, fn in sides[shift:] + sides[:shift]:
                out[name] += time_calls(fn, [quote_args(r * n + i) for i in range(n)])
                # Untimed: the FileBackend writer thread finishes before the next side runs.
                memos["file"].flush()
        finally:
            memos["file"].flush()
            for directory in dirs.values():
                shutil.rmtree(directory, ignore_errors=True)
            shutil.rmtree(os.path.join(parent, torch_sub), ignore_errors=True)
    return out


# -- disk hits in a fresh process ----------------------------------------------------------------

_CHILD = r"""
import json, sys
side, directory, n, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, sys.argv[5])
from _timing import time_calls
from bench_memoize import make_store, quote_args, quote_body
if side == "diskcache":
    import diskcache
    cache = diskcache.Cache(directory)
    fn = cache.memoize()(quote_body)
else:
    from pytest_cachemock import Memoizer
    memo = Memoizer(kind="bench_disk", backend=make_store(side, directory))
    fn = memo.memoize(quote_body)
samples = time_calls(fn, [quote_args(i) for i in range(n)])
if side != "diskcache":
    memo.flush()
print(json.dumps(samples))
"""


def disk_hits(n: int, rounds: int) -> dict[str, list[float]]:
    here = os.path.dirname(os.path.abspath(__file__))
    names = {**OURS_ON_DISK, "diskcache": "diskcache memoize"}
    out: dict[str, list[float]] = {name: [] for name in names.values()}
    for _ in range(rounds):
        for side, name in names.items():
            with tempfile.TemporaryDirectory() as directory:
                for phase in ("fill", "hit"):
                    done = subprocess.run(
                        [sys.executable, "-c", _CHILD, side, directory, str(n), phase, here],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    if phase == "hit":
                        out[name] += json.loads(done.stdout)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    opts = parser.parse_args()
    rounds = 3 if opts.quick else 10
    torch_dir = tempfile.mkdtemp(prefix="bench-torch-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = torch_dir
    import torch

    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"torch {torch.__version__}, temporary directory {tempfile.gettempdir()}"
    )
    gc.collect()

    warm = warm_hits(rounds=rounds * 20, batch=1000)
    ok = table(
        "warm hit (us per call; 100 cached argument pairs, batches of 1,000)",
        warm,
        {"torch Memoizer": 0.5, "cachetools.cached": 2.0},
    )
    first = first_calls(n=500, rounds=rounds)
    ok &= table(
        "first call with a store on disk (us per call; new arguments every call)",
        first,
        {"torch PersistentMemoizer": 0.5},
    )
    disk = disk_hits(n=500, rounds=max(2, rounds // 2))
    ok &= table(
        "disk hit in a fresh process (us per call; first call of each pair)",
        disk,
        {"diskcache memoize": 0.5},
    )
    print("\nevery budget met" if ok else "\nsome budget NOT met (see above)")


if __name__ == "__main__":
    main()
