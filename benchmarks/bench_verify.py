"""What verify mode costs when it is off: a mock hit with the check, against one without it.

    python benchmarks/bench_verify.py [--quick]

Two hit paths, each measured both ways in one run, inside a running ``PatchCaches`` (so every
call is a hit in the mock store):

- **memoized call**: ``quote(sku, qty)`` of a ``Memoizer`` kind, all 100 argument pairs stored;
- **RemoteCache.get**: ``pages.get(key)`` of a ``RemoteCache`` kind, all 100 keys stored;
- **cachetools @cached**: a ``@cached`` function of the ``cachetools`` profile, all 100 keys
  stored (its counting cache's ``_verifying`` checks; an ``lru_cache`` function has none: its
  stand-in is there only while a test verifies it).

"Without the check" is the package's own code with the verify statements taken out: the
source of ``RemoteCache.get``, of ``_flight.make_sync``/``slow_sync`` and of the
cachetools profile's ``_counting_class`` is read, every ``if``
whose test reads ``_verifying`` (the flag the hit paths test) is removed from the syntax tree,
and the rest is compiled in the module's namespace. So the two sides differ by exactly those
checks, whatever else changes later. Sides alternate in rounds of batches; the ratio is of
medians, with the check / without (budget <= 1.05).
"""

from __future__ import annotations
import __future__

import argparse
import ast
import inspect
import os
import statistics
import sys
import textwrap
import time
from typing import Any, Callable

KEYS = 100


def _without_verify(fn: Any, namespace: dict[str, Any], checks: bool = True) -> Any:
    """``fn`` compiled again from its source, less every ``if`` that tests ``_verifying``
    (``checks``: it has some), in a copy of ``namespace``; (the function, that copy)."""

    class Strip(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> Any:
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            if "_verifying" in names:
                return None
            return self.generic_visit(node)

    source = textwrap.dedent(inspect.getsource(fn))
    tree = Strip().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    assert "_verifying" not in ast.unparse(tree)
    assert ("_verifying" in source) == checks, f"verify checks of {fn.__qualname__}?"
    scope = dict(namespace)
    where = inspect.getsourcefile(fn) or "<bench>"
    flags = __future__.annotations.compiler_flag  # as the package's modules compile
    exec(compile(tree, where, "exec", flags=flags, dont_inherit=True), scope)
    return scope[fn.__name__], scope


def _sides() -> tuple[dict[str, Callable[[], None]], Any]:
    """name -> a batch of 1,000 hits; and the running PatchCaches."""
    from pytest_cachemock import Memoizer, PatchCaches, RemoteCache, _flight
    from pytest_cachemock._keys import _SPEC_ATTR

    memo = Memoizer(kind="bench_quotes")

    def quote(sku: str, qty: int) -> dict[str, Any]:
        return {"sku": sku, "qty": qty, "total": 3 * qty}

    with_check = memo.memoize(quote)
    # make_sync compiled anew, calling a slow_sync compiled anew; both without the checks.
    plain_slow, scope = _without_verify(_flight.slow_sync, vars(_flight))
    scope["slow_sync"] = plain_slow
    plain_make, _ = _without_verify(_flight.make_sync, scope, checks=False)
    without_check = plain_make(memo, getattr(with_check, _SPEC_ATTR))

    class Pages(RemoteCache[str]):
        kind = "bench_pages"

    import pytest_cachemock.cache as cache_module

    plain_get, _ = _without_verify(RemoteCache.get, vars(cache_module))
    pages = Pages()

    class PlainPages(Pages):
        get = plain_get

    plain_pages = PlainPages()

    patch = PatchCaches().start()
    args = [(f"SKU-{i:05d}", i % 7 + 1) for i in range(KEYS)]
    keys = [f"user-{i}" for i in range(KEYS)]
    for a in args:
        with_check(*a)
    for k in keys:
        pages.put(k, f"<h1>{k}</h1>")
    # The two caches' hits are the same: one class's override, one mock store.
    assert plain_pages.get(keys[0]) == pages.get(keys[0])
    assert without_check(*args[0])
    before = patch.stats()["bench_quotes"].hits
    calls = args * 10
    page_keys = keys * 10

    def memo_with() -> None:
        for a in calls:
            with_check(*a)

    def memo_without() -> None:
        for a in calls:
            without_check(*a)

    def get_with() -> None:
        get = pages.get
        for k in page_keys:
            get(k)

    def get_without() -> None:
        get = plain_pages.get
        for k in page_keys:
            get(k)

    memo_with()
    memo_without()
    assert patch.stats()["bench_quotes"].hits == before + 2 * len(calls)  # every call a hit
    return {
        "memoized call hit, with the check": memo_with,
        "memoized call hit, without": memo_without,
        "RemoteCache.get hit, with the check": get_with,
        "RemoteCache.get hit, without": get_without,
    }, patch


_CACHETOOLS_MODULE = """
import cachetools

@cachetools.cached(cachetools.LRUCache(maxsize=1000))
def bench_rate(key):
    return {"key": key}

@cachetools.cached(cachetools.LRUCache(maxsize=1000))
def bench_rate_plain(key):
    return {"key": key}
"""


def _cachetools_sides() -> tuple[dict[str, Callable[[], None]], Any]:
    """A cachetools ``@cached`` hit under the cachetools profile, with the counting cache's
    verify checks and without them (its class made by ``_counting_class`` compiled anew
    without them); both count into one kind. Empty when cachetools is not installed."""
    try:
        import cachetools
    except ImportError:
        print("cachetools is not installed: no @cached column")
        return {}, None
    import types

    import pytest_cachemock.integrations.cachetools as ct
    from pytest_cachemock import PatchCaches
    from pytest_cachemock.kinds import Registry

    module = types.ModuleType("bench_verify_rates")
    sys.modules[module.__name__] = module
    exec(_CACHETOOLS_MODULE, vars(module))
    registry = Registry()
    registry.load_profile("cachetools", entries=[f"{module.__name__}:bench_rate"])
    patch = PatchCaches(registry=registry).start()
    keys = [f"rate-{i}" for i in range(KEYS)]
    plain_class, scope = _without_verify(ct._counting_class, vars(ct))
    scope["_classes"] = {}  # its own classes, not the package's
    plain_cache = module.bench_rate_plain.cache
    plain_cache._cachemock_kind = "bench_rate"
    plain_cache.__class__ = plain_class(cachetools.LRUCache)
    with_check, without_check = module.bench_rate, module.bench_rate_plain
    for k in keys:
        with_check(k)
        without_check(k)
    before = patch.stats()["bench_rate"].hits
    calls = keys * 10

    def cached_with() -> None:
        for k in calls:
            with_check(k)

    def cached_without() -> None:
        for k in calls:
            without_check(k)

    cached_with()
    cached_without()
    assert patch.stats()["bench_rate"].hits == before + 2 * len(calls)  # every call a hit
    return {
        "cachetools @cached hit, with the check": cached_with,
        "cachetools @cached hit, without": cached_without,
    }, patch


def run(rounds: int) -> dict[str, float]:
    """Median ns per hit of each side, sides alternating within every round; each group of
    sides under its own PatchCaches, one group after the other."""
    import gc

    results: dict[str, float] = {}
    for make in (_sides, _cachetools_sides):
        sides, patch = make()
        samples: dict[str, list[float]] = {name: [] for name in sides}
        gc.collect()
        gc.disable()
        try:
            for r in range(rounds):
                order = list(sides.items())
                if r % 2:
                    order.reverse()  # neither side always runs first
                for name, batch in order:
                    t0 = time.perf_counter_ns()
                    batch()
                    samples[name].append((time.perf_counter_ns() - t0) / (KEYS * 10))
        finally:
            gc.enable()
            if patch is not None:
                patch.stop()
        results.update((name, statistics.median(values)) for name, values in samples.items())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    results = run(60 if args.quick else 400)
    print("Verify mode off, ns per mock hit (median of batches of 1,000 hits):")
    for name, ns in results.items():
        print(f"  {name:<38} {ns:9.1f}")
    names = list(results)
    for with_check, without in zip(names[0::2], names[1::2]):
        ratio = results[with_check] / results[without]
        what = with_check.rsplit(",", 1)[0]
        print(f"  {what}: with / without = {ratio:.3f}  (budget <= 1.05)")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
