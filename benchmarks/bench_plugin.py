"""Plugin costs, side by side in one run: mock get/put, install+remove, suite overhead.

    python benchmarks/bench_plugin.py [--quick]

Prints per-operation medians (best of several rounds) and the ratios the budgets are stated in
(docs/performance.md). Absolute times vary with the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import threading
from typing import Any, Callable

try:
    from ._timing import per_op, pytest_seconds
except ImportError:  # run as a script: python benchmarks/bench_plugin.py
    from _timing import per_op, pytest_seconds  # type: ignore[import-not-found,no-redef]


# -- mock get/put ----------------------------------------------------------------------------------


def bench_ops(n: int, rounds: int) -> dict[str, float]:
    from pytest_cachemock import MockBackend, PatchCaches

    keys = [f"key-{i}" for i in range(100)]
    value = b'{"v": 1}'

    class _Local(threading.local):
        def __init__(self) -> None:
            self.d: dict[str, Any] = {}
            self.hits = 0
            self.misses = 0
            self.puts = 0

    local = _Local()

    def baseline_get(key: str) -> Any:
        state = local
        found = state.d.get(key)
        if found is None:
            state.misses += 1
        else:
            state.hits += 1
        return found

    def baseline_put(key: str, data: Any) -> None:
        state = local
        state.d[key] = data
        state.puts += 1

    results: dict[str, float] = {}

    def loop_get(get: Callable[[str], Any]) -> Callable[[int], None]:
        def run(count: int) -> None:
            ks = keys
            for i in range(count):
                get(ks[i % 100])

        return run

    def loop_put(put: Callable[[str, Any], None]) -> Callable[[int], None]:
        def run(count: int) -> None:
            ks = keys
            for i in range(count):
                put(ks[i % 100], value)

        return run

    def empty(count: int) -> None:
        ks = keys
        for i in range(count):
            ks[i % 100]

    loop_cost = per_op(empty, n, rounds)
    for key in keys[::2]:
        baseline_put(key, value)
    results["baseline get"] = per_op(loop_get(baseline_get), n, rounds) - loop_cost
    results["baseline put"] = per_op(loop_put(baseline_put), n, rounds) - loop_cost

    with PatchCaches():
        ours = MockBackend("bench")
        for key in keys[::2]:
            ours.put(key, value)
        results["ours get"] = per_op(loop_get(ours.get), n, rounds) - loop_cost
        results["ours put"] = per_op(loop_put(ours.put), n, rounds) - loop_cost

    try:
        from torch._inductor import mock_cache
    except ImportError:
        print("torch is not installed: skipping the torch MockBackend column")
    else:
        with mock_cache.PatchCaches():
            theirs = mock_cache.MockBackend("fx_graph")
            for key in keys[::2]:
                theirs.put(key, value)
            results["torch get"] = per_op(loop_get(theirs.get), n, rounds) - loop_cost
            results["torch put"] = per_op(loop_put(theirs.put), n, rounds) - loop_cost
    return results


# -- install + remove -----------------------------------------------------------------------------


def bench_install(n: int, rounds: int) -> dict[str, float]:
    """Enter+exit of ours and of torch's PatchCaches, with and without the config flags.

    torch's ``PatchCaches`` enter+exit installs the mock backends only; its ``setUp()`` and
    ``tearDown()`` turn the five config flags off and back. Ours does both on entry and exit,
    so both are timed both ways.
    """
    from pytest_cachemock import PatchCaches, RemoteCache, _state
    from pytest_cachemock.kinds import Registry

    default_registry = _state.current().registry

    results: dict[str, float] = {}
    torch_profile = False
    try:
        import torch._inductor.remote_cache  # noqa: F401
        from torch._inductor import mock_cache
    except ImportError:
        mock_cache = None
        print("torch is not installed: skipping the torch PatchCaches column")
    else:
        default_registry.load_profile("torch", "bench_plugin.py")
        torch_profile = True

    classes = []
    if not torch_profile:
        for i in range(6):
            classes.append(type(f"Kind{i}", (RemoteCache,), {"kind": f"bench_kind_{i}"}))
    kinds = default_registry.kinds()
    label = f"{len(kinds)} kinds, " + ("torch profile" if torch_profile else "RemoteCache kinds")
    targets_only = Registry()
    for kind in kinds.values():
        targets_only.add(kind.name, targets=kind.targets, origin="bench")

    def ours(registry: Registry) -> Callable[[int], None]:
        def run(count: int) -> None:
            patch = PatchCaches(registry=registry, switches="off")  # as the fixture does
            for _ in range(count):
                patch.start()
                patch.stop()

        return run

    results[f"ours, mocks only ({label})"] = per_op(ours(targets_only), n, rounds)
    results[f"ours, mocks and switches ({label})"] = per_op(ours(default_registry), n, rounds)
    if mock_cache is not None:

        def theirs(count: int) -> None:
            for _ in range(count):
                with mock_cache.PatchCaches():
                    pass

        def theirs_full(count: int) -> None:
            for _ in range(count):
                mock_cache.PatchCaches.setUp()
                with mock_cache.PatchCaches():
                    pass
                mock_cache.PatchCaches.tearDown()

        m = max(n // 10, 10)
        results["torch PatchCaches enter+exit"] = per_op(theirs, m, rounds)
        results["torch PatchCaches setUp+enter+exit+tearDown"] = per_op(theirs_full, m, rounds)
    default_registry.clear()
    return results


# -- suite overhead -------------------------------------------------------------------------------

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({count}))
def test_trivial(i):
    assert i >= 0
"""

SUITE_USING = """
import pytest

@pytest.mark.parametrize("i", range({count}))
def test_trivial(i, patch_caches):
    assert i >= 0
"""


def bench_suite(count: int, rounds: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as using:
        with open(os.path.join(plain, "test_plain.py"), "w") as f:
            f.write(textwrap.dedent(SUITE.format(count=count)))
        with open(os.path.join(using, "test_using.py"), "w") as f:
            f.write(textwrap.dedent(SUITE_USING.format(count=count)))
        off, on, use = [], [], []
        for _ in range(rounds):  # interleaved, so drift hits all three alike
            off.append(pytest_seconds(plain, ["-p", "no:cachemock"]))
            on.append(pytest_seconds(plain, []))
            use.append(pytest_seconds(using, []))
        results["suite, -p no:cachemock (s)"] = min(off)
        results["suite, plugin installed (s)"] = min(on)
        results["suite, every test uses patch_caches (s)"] = min(use)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds")
    args = parser.parse_args()
    n, rounds, tests, suite_rounds = (50_000, 5, 500, 3) if args.quick else (200_000, 9, 2000, 7)

    ops = bench_ops(n, rounds)
    print("\nMock get/put, ns per operation (loop overhead subtracted):")
    for name, value in ops.items():
        print(f"  {name:<14} {value:8.1f}")
    for op in ("get", "put"):
        ratio = ops[f"ours {op}"] / ops[f"baseline {op}"]
        print(f"  ours/baseline {op}: {ratio:.2f}  (budget <= 2.0)")
        if f"torch {op}" in ops:
            ratio = ops[f"torch {op}"] / ops[f"ours {op}"]
            print(f"  torch/ours {op}:    {ratio:.2f}  (budget >= 2.5)")

    inst = bench_install(max(n // 50, 200), rounds)
    print("\nInstall + remove mocks, us per enter+exit:")
    for name, value in inst.items():
        print(f"  {name:<52} {value / 1000:8.1f}")
    names = list(inst)
    if len(names) == 4:
        mocks_only = inst[names[2]] / inst[names[0]]
        with_switches = inst[names[3]] / inst[names[1]]
        print(f"  torch/ours, mocks only:        {mocks_only:.1f}  (budget >= 10)")
        print(f"  torch/ours, with the switches: {with_switches:.1f}")

    suite = bench_suite(tests, suite_rounds)
    print(f"\nA suite of {tests} trivial tests, best of {suite_rounds} runs:")
    for name, value in suite.items():
        print(f"  {name:<42} {value:7.3f}")
    base = suite["suite, -p no:cachemock (s)"]
    installed = suite["suite, plugin installed (s)"] / base
    using = suite["suite, every test uses patch_caches (s)"] / base
    print(f"  installed/disabled: {installed:.3f}  (budget <= 1.03)")
    print(f"  every test using it/disabled: {using:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
