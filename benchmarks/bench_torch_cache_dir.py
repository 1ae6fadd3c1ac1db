"""The per-test Inductor cache directory of the torch profile: one switch on and off (what every
test that uses the torch profile pays, ``TorchCacheDir.set`` and its undo), side by side with the
same switch of another revision of ``integrations/torch.py`` in the same run.

    python benchmarks/bench_torch_cache_dir.py [--against REV] [--rounds N]

``--against REV`` (default ``HEAD``) loads that revision's module from git as a second copy; the
ratio is this tree's median over that one's. Also shown: what the switch does besides the
directory (dropping torch's in-memory compile state) and the directory alone (``mkdtemp`` and
``rmtree``), so the gain can be read against what is left.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_revision(rev: str) -> ModuleType:
    """``pytest_cachemock/integrations/torch.py`` of git revision ``rev``, as a module of the
    package (its relative imports are this tree's modules)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:pytest_cachemock/integrations/torch.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-torch-")) / "torch_at_rev.py"
    path.write_text(source)
    name = "pytest_cachemock.integrations._torch_at_rev"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    shutil.rmtree(path.parent)
    return module


def switch_cycle(module: ModuleType) -> Callable[[], None]:
    """One on-and-off of the module's cache directory switch, as a PatchCaches does it."""
    switch = module.TorchCacheDir()

    def cycle() -> None:
        undo = switch.set(False)
        undo()

    return cycle


def directory_alone() -> None:
    path = tempfile.mkdtemp(prefix="cachemock-inductor-")
    shutil.rmtree(path, ignore_errors=True)


def forget_twice(module: ModuleType) -> None:
    module._forget_compiles()
    module._forget_compiles()


def median_us(fn: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("-n", type=int, default=200, help="cycles per round")
    args = parser.parse_args()

    import torch._inductor.utils  # noqa: F401  (imported once, outside the timings)

    from pytest_cachemock.integrations import torch as ours

    theirs = load_revision(args.against)
    os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    cases: dict[str, Callable[[], None]] = {
        "this tree: switch on+off": switch_cycle(ours),
        f"{args.against}: switch on+off": switch_cycle(theirs),
        "torch's in-memory state dropped twice": functools.partial(forget_twice, ours),
        "mkdtemp + rmtree alone": directory_alone,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up
    for _ in range(args.rounds):  # interleaved: drift affects every case alike
        for name, fn in cases.items():
            results[name].append(median_us(fn, args.n))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"torch {torch_version()}, {args.rounds} rounds x {args.n} cycles, median us per cycle")
    width = max(map(len, medians))
    for name, value in medians.items():
        print(f"  {name.ljust(width)}  {value:9.1f}")
    new, old = medians["this tree: switch on+off"], medians[f"{args.against}: switch on+off"]
    print(f"ratio this tree / {args.against}: {new / old:.3f} ({old - new:+.1f} us per test)")
    left = [p for p in Path(tempfile.gettempdir()).glob("cachemock-inductor-*") if p.is_dir()]
    print(f"cachemock-inductor-* directories in {tempfile.gettempdir()} now: {len(left)}")


def torch_version() -> Any:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
