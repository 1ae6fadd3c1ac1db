"""The per-test cost of the functools and django profiles, side by side in one run.

    python benchmarks/bench_profiles.py [--quick] [--before COMMIT] [--no-suite]

1. ``PatchCaches`` start+stop, us per test, each column in a child process of its own, the
   children interleaved round by round so that drift of a shared machine hits them alike:
   the ``functools`` profile over a generated module of 100 ``lru_cache`` functions (one
   whole-module entry), ``PatchCaches`` with no kinds, and no plugin (an empty loop); with
   ``--before COMMIT`` (default ``main``, taken with ``git archive``) the functools column of
   that commit too.
2. The same through pytest: a generated suite of N trivial tests that request
   ``patch_caches`` with ``cachemock_profiles = functools`` and the 100-function module,
   against the same tests (without the fixture) under ``-p no:cachemock``; best of the
   rounds, the per-test difference in us.
3. The ``django`` profile (``settings.configure`` with two LocMem aliases): start+stop per
   test, and a mocked ``cache.get`` against a real LocMem ``get``.

Budget (issue 19, docs/performance.md): functools profile <= 50 us per test for 100 functions.
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
FUNCTIONS = 100
BUDGET_US = 50.0


def module_source(count: int = FUNCTIONS) -> str:
    """A module of ``count`` top-level lru_cache functions (bounded and unbounded)."""
    parts = ["import functools\n"]
    for i in range(count):
        size = "None" if i % 2 else "128"
        parts.append(f"\n@functools.lru_cache(maxsize={size})\ndef fn{i}(x):\n    return x + {i}\n")
    return "".join(parts)


# Runs in a child: prints {"functools": us, "empty": us, "loop": us} per start+stop.
_WORKER = r"""
import json, sys, time

n = int(sys.argv[1])
from pytest_cachemock import PatchCaches
from pytest_cachemock.kinds import Registry

profile = Registry()
profile.load_profile("functools", entries=["benchmod100"])
empty = Registry()
import benchmod100
assert len(profile.kinds()) == 100, sorted(profile.kinds())


def per_test(registry):
    def run(count):
        for _ in range(count):
            patch = PatchCaches(registry=registry)
            patch.start()
            patch.stop()
    return run


def loop(count):
    for _ in range(count):
        pass


def timed(fn):
    fn(max(n // 10, 20))
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n / 1000


# One test's worth of use first, so the caches hold something and stats are read.
with PatchCaches(registry=profile) as patch:
    benchmod100.fn1(1), benchmod100.fn1(1)
    assert patch.stats()["fn1"].hits == 1, patch.stats()["fn1"]
print(json.dumps({
    "functools": timed(per_test(profile)),
    "empty": timed(per_test(empty)),
    "loop": timed(loop),
}))
"""


def _child(path: str, modules: str, n: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([path, modules]))
    env.pop("CACHEMOCK_SHARED", None)
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(n)],
        env=env,
        cwd=modules,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_start_stop(n: int, rounds: int, before: str | None) -> dict[str, float]:
    """Median us per start+stop of each column."""
    scratch = tempfile.mkdtemp(prefix="bench-profiles-")
    try:
        modules = os.path.join(scratch, "modules")
        os.mkdir(modules)
        with open(os.path.join(modules, "benchmod100.py"), "w") as f:
            f.write(module_source())
        trees = {"this tree": ROOT}
        if before is not None:
            old = os.path.join(scratch, "before")
            os.mkdir(old)
            if package_at(before, old) is not None:
                trees = {f"before ({before})": old, **trees}
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for label, path in trees.items():
                found = _child(path, modules, n)
                samples.setdefault(f"functools, 100 functions, {label}", []).append(
                    found["functools"]
                )
                if path == ROOT:
                    samples.setdefault("PatchCaches with no kinds", []).append(found["empty"])
                    samples.setdefault("no plugin (empty loop)", []).append(found["loop"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {label: statistics.median(values) for label, values in samples.items()}


_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({count}))
def test_trivial(i{fixture}):
    assert i >= 0
"""


def _suite(directory: str, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, directory]))
    return pytest_seconds(directory, args, env)


def bench_suite(count: int, rounds: int) -> dict[str, float]:
    """Best seconds of each suite, interleaved round by round."""
    suites = {
        "-p no:cachemock, no fixture": ("", "", ["-p", "no:cachemock"]),
        "patch_caches, no profile": (", patch_caches", "", []),
        "patch_caches, functools profile, 100 functions": (
            ", patch_caches",
            "cachemock_profiles = functools\ncachemock_functools = benchmod100\n",
            [],
        ),
    }
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-profiles-suite-") as scratch:
        dirs = {}
        for number, (label, (fixture, ini, _)) in enumerate(suites.items()):
            directory = dirs[label] = os.path.join(scratch, f"suite{number}")
            os.mkdir(directory)
            with open(os.path.join(directory, "benchmod100.py"), "w") as f:
                f.write(module_source())
            with open(os.path.join(directory, "test_trivial.py"), "w") as f:
                f.write(textwrap.dedent(_TESTS.format(count=count, fixture=fixture)))
            with open(os.path.join(directory, "pytest.ini"), "w") as f:
                f.write("[pytest]\n" + ini)
        for _ in range(rounds):
            for label, (_, _, args) in suites.items():
                took = _suite(dirs[label], args)
                best[label] = min(best.get(label, took), took)
    return best


_DJANGO = r"""
import json, sys, time

n = int(sys.argv[1])
import django
from django.conf import settings

settings.configure(CACHES={
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "a"},
    "other": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "b"},
})
django.setup()
from django.core.cache import caches
from pytest_cachemock import PatchCaches
from pytest_cachemock.kinds import Registry

registry = Registry()
registry.load_profile("django")
assert sorted(registry.kinds()) == ["django_default", "django_other"], registry.kinds()
cache = caches["default"]


def per_test(count):
    for _ in range(count):
        patch = PatchCaches(registry=registry)
        patch.start()
        patch.stop()


def empty(count):
    for _ in range(count):
        patch = PatchCaches(registry=Registry())
        patch.start()
        patch.stop()


def gets(count):
    get = cache.get
    for i in range(count):
        get("k%d" % (i & 63))


def loop(count):
    for i in range(count):
        "k%d" % (i & 63)


def timed(fn, count):
    fn(max(count // 10, 20))
    t0 = time.perf_counter_ns()
    fn(count)
    return (time.perf_counter_ns() - t0) / count / 1000


for i in range(0, 64, 2):
    cache.set("k%d" % i, i)
out = {"start+stop": timed(per_test, n), "empty": timed(empty, n)}
out["real get"] = timed(gets, n * 20) - timed(loop, n * 20)
with PatchCaches(registry=registry) as patch:
    for i in range(0, 64, 2):
        cache.set("k%d" % i, i)
    out["mocked get"] = timed(gets, n * 20) - timed(loop, n * 20)
    assert patch.stats()["django_default"].hits > 0
print(json.dumps(out))
"""


def bench_django(n: int, rounds: int) -> dict[str, float] | None:
    try:
        import django  # noqa: F401
    except ImportError:
        return None
    samples: dict[str, list[float]] = {}
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", _DJANGO, str(n)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
            samples.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer tests and rounds")
    parser.add_argument(
        "--before", default="main", help="a commit whose functools column runs too ('' for none)"
    )
    parser.add_argument("--no-suite", action="store_true", help="skip the pytest suites")
    args = parser.parse_args()
    n, rounds, tests, suite_rounds = (2_000, 3, 500, 3) if args.quick else (10_000, 7, 2000, 5)

    found = bench_start_stop(n, rounds, args.before or None)
    print(f"\nPatchCaches start+stop, us per test (median of {rounds} rounds of {n}):")
    for label, value in found.items():
        print(f"  {label:<52} {value:8.1f}")
    empty = found["PatchCaches with no kinds"]
    for label, value in found.items():
        if label.startswith("functools"):
            print(
                f"  {label}: {value / empty:.1f}x no kinds, +{value - empty:.1f} us; "
                f"{value:.1f} us per test  (budget <= {BUDGET_US:.0f} us)"
            )

    if not args.no_suite:
        suite = bench_suite(tests, suite_rounds)
        print(f"\nA suite of {tests} trivial tests, best of {suite_rounds} runs:")
        for label, value in suite.items():
            print(f"  {label:<50} {value:7.3f} s")
        labels = list(suite)
        base = suite[labels[0]]
        for label in labels[1:]:
            delta = (suite[label] - base) / tests * 1e6
            print(f"  {label}: {suite[label] / base:.3f}x, +{delta:.1f} us per test")
        profile = (suite[labels[2]] - suite[labels[1]]) / tests * 1e6
        print(
            f"  the functools profile's own share: +{profile:.1f} us per test  "
            f"(budget <= {BUDGET_US:.0f} us)"
        )

    dj = bench_django(n, rounds)
    if dj is None:
        print("\nDjango is not installed: skipping the django profile")
        return
    print(f"\nThe django profile, two LocMem aliases (median of {rounds} rounds):")
    print(f"  start+stop, us per test      {dj['start+stop']:8.1f}")
    print(f"  PatchCaches with no kinds    {dj['empty']:8.1f}")
    print(f"  the profile's share          {dj['start+stop'] - dj['empty']:8.1f}")
    print(f"  real LocMem get, us          {dj['real get']:8.2f}")
    print(f"  mocked get, us               {dj['mocked get']:8.2f}")
    print(f"  mocked/real get: {dj['mocked get'] / dj['real get']:.2f}")


if __name__ == "__main__":
    main()
