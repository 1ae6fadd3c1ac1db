"""What the operation log costs on a cachetools ``@cached`` hit, side by side in one run.

    python benchmarks/bench_cachetools_log.py [--rounds N]

Two ``@cached`` functions under the cachetools profile count into one kind: one through the
profile's counting cache as shipped, one through that class compiled anew from the source of
``_counting_class`` with every ``log.append`` statement removed. Batches of 1,000 hits
alternate; the ratio is of medians, logged / unlogged. The budget is the mock's (issue 20):
at most 1.2.
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
import types
from typing import Any

_MODULE = """
import cachetools

@cachetools.cached(cachetools.LRUCache(maxsize=1000))
def logged(key):
    return key

@cachetools.cached(cachetools.LRUCache(maxsize=1000))
def unlogged(key):
    return key
"""


def _unlogged_class(module: Any) -> Any:
    class Strip(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> Any:
            return None if "log.append" in ast.unparse(node) else node

    source = textwrap.dedent(inspect.getsource(module._counting_class))
    tree = Strip().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    assert "log.append" not in ast.unparse(tree)
    assert "log.append" in source
    scope = dict(vars(module))
    scope["_classes"] = {}  # its own classes, not the package's
    flags = __future__.annotations.compiler_flag
    exec(compile(tree, "<bench>", "exec", flags=flags, dont_inherit=True), scope)
    return scope["_counting_class"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    import cachetools

    import pytest_cachemock.integrations.cachetools as ct
    from pytest_cachemock import PatchCaches
    from pytest_cachemock.kinds import Registry

    module = types.ModuleType("bench_cachetools_log_app")
    sys.modules[module.__name__] = module
    exec(_MODULE, vars(module))
    registry = Registry()
    registry.load_profile("cachetools", entries=[f"{module.__name__}:logged"])
    keys = [f"key-{i}" for i in range(100)] * 10
    with PatchCaches(registry=registry) as patch:
        cache = module.unlogged.cache
        cache._cachemock_kind = "logged"
        cache.__class__ = _unlogged_class(ct)(cachetools.LRUCache)
        sides = {"logged": module.logged, "unlogged": module.unlogged}
        for fn in sides.values():
            for key in keys:
                fn(key)
        samples: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name, fn in sides.items() if r % 2 else reversed(sides.items()):
                t0 = time.perf_counter_ns()
                for key in keys:
                    fn(key)
                samples[name].append((time.perf_counter_ns() - t0) / len(keys))
        assert patch.stats()["logged"].hits >= 2 * args.rounds * len(keys)
    median = {name: statistics.median(values) for name, values in samples.items()}
    ratio = median["logged"] / median["unlogged"]
    print(
        f"cachetools @cached hit, ns: logged {median['logged']:.1f}, unlogged "
        f"{median['unlogged']:.1f}, ratio {ratio:.3f} (budget <= 1.2)"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
