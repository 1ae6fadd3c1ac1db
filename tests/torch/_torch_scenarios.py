"""PyTorch compile scenarios shared by the torch tests: each runs real ``torch.compile`` on the
CPU and reads the mock's stats after every phase through ``read(kind) -> (puts, hits, misses)``,
so the same scenario can run under torch's own mock and under ours.

Import this module only inside tests: it imports torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

import torch
import torch._dynamo
import torch._dynamo.config
import torch._functorch.config
import torch.compiler
from torch._dynamo.testing import CompileCounter
from torch._inductor import config
from torch._inductor import utils as inductor_utils

Read = Callable[[str], tuple[int, int, int]]

fresh_cache: Callable[[], Any] = getattr(
    inductor_utils, "fresh_cache", getattr(inductor_utils, "fresh_inductor_cache", None)
)
_clear: Callable[[], None] = getattr(
    inductor_utils, "clear_caches", getattr(inductor_utils, "clear_inductor_caches", None)
)


def reset() -> None:
    """Forget what dynamo and inductor hold in memory, so the next call compiles again."""
    torch._dynamo.reset()
    _clear()


@contextlib.contextmanager
def quiet_compile() -> Iterator[None]:
    """Compile in this thread (stats in worker processes are not seen) in a fresh cache dir."""
    with config.patch(compile_threads=1), fresh_cache():
        try:
            yield
        finally:
            reset()


def pgo(read: Read, job_id: str) -> list[tuple[int, int, int]]:
    """test_pgo.py's remote test: a counting backend, no code generation."""
    seen = []
    cnts = CompileCounter()

    @torch.compile(backend=cnts, fullgraph=True)
    def f(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.compiler.config.patch(job_id=job_id))
        stack.enter_context(
            torch._dynamo.config.patch(
                automatic_dynamic_remote_pgo=True, automatic_dynamic_local_pgo=False
            )
        )
        stack.enter_context(quiet_compile())
        f(torch.randn(2, 3))
        f(torch.randn(2, 4))
        seen.append((cnts.frame_count, *read("dynamo_pgo")))
        reset()
        cnts.clear()
        f(torch.randn(2, 5))
        f(torch.randn(2, 6))
        seen.append((cnts.frame_count, *read("dynamo_pgo")))
        reset()
        cnts.clear()
        with torch.compiler.config.patch({"cache_key_tag": "test"}):
            f(torch.randn(2, 7))
            f(torch.randn(2, 8))
        seen.append((cnts.frame_count, *read("dynamo_pgo")))
    return seen


def fx_graph_rounds(read: Read, rounds: int) -> list[tuple[int, int, int]]:
    """test_codecache.py's remote FX graph test on the CPU: rounds of fresh local cache +
    compile + reset, then a ``cache_key_tag`` change. Returns the stats after each phase."""
    seen = []
    a = torch.rand(25)
    b = torch.rand(5, 5)

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x * 2, y @ y)

    expected = fn(a, b)
    with config.patch(fx_graph_remote_cache=True, compile_threads=1):
        for _ in range(rounds):
            with fresh_cache():
                got = torch.compile(fn)(a, b)
                assert all(torch.allclose(p, q) for p, q in zip(expected, got))
            reset()
            seen.append(read("fx_graph"))
        with torch.compiler.config.patch({"cache_key_tag": "test"}), fresh_cache():
            torch.compile(fn)(a, b)
        reset()
        seen.append(read("fx_graph"))
    return seen


def aot_and_fx(read: Read) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """test_codecache.py's remote AOTAutograd test on the CPU: both remote caches, the local
    ones off. Returns (aot_autograd, fx_graph) stats after each phase."""
    seen = []
    a = torch.randn(101, 100)
    b = torch.randn(101, 100)

    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    with contextlib.ExitStack() as stack:
        stack.enter_context(config.patch(fx_graph_cache=False, fx_graph_remote_cache=True))
        stack.enter_context(
            torch._functorch.config.patch(
                enable_autograd_cache=False, enable_remote_autograd_cache=True
            )
        )
        stack.enter_context(quiet_compile())
        compiled = torch.compile(f)
        compiled(a, b)
        seen.append((read("aot_autograd"), read("fx_graph")))
        torch._dynamo.reset()
        compiled(a, b)
        seen.append((read("aot_autograd"), read("fx_graph")))
        torch._dynamo.reset()
        with torch.compiler.config.patch({"cache_key_tag": "test"}):
            compiled(a, b)
        seen.append((read("aot_autograd"), read("fx_graph")))
    return seen
