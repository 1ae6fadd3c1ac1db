"""torch's compile workers on the CPU (issue 17), with real ``torch.compile``.

With ``compile_threads > 1`` Inductor compiles C++ kernels in a thread of its own pool
(``AsyncCompile.pool()``, a ``ThreadPoolExecutor`` that lives as long as the process); its
process pool (``SubprocPool``) is for Triton kernels and is never started on the CPU. Every
get and put of a mocked cache happens in the test's thread, so every isolation mode counts the
same as ``compile_threads=1``. A job sent to the process pool by hand shows that ``shared``
counts there too, and ``thread`` does not (docs/pytorch.md, "Worker processes").
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import pytest

from pytest_cachemock import PatchCaches, Stats

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]


@pytest.fixture(scope="module", autouse=True)
def torch_imported() -> None:
    """torch imported before the first test's patch_caches starts (the profile loads then)."""
    import torch._inductor.async_compile  # noqa: F401


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of each C++ build Inductor runs during the test."""
    from torch._inductor import cpp_builder

    found: list[str] = []
    real = cpp_builder.CppBuilder.build

    def build(self: Any) -> None:
        found.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(cpp_builder.CppBuilder, "build", build)
    return found


@pytest.mark.parametrize(
    "threads",
    [
        pytest.param(1, marks=pytest.mark.cachemock(isolation="thread"), id="thread-1"),
        pytest.param(2, marks=pytest.mark.cachemock(isolation="thread"), id="thread-2"),
        pytest.param(2, marks=pytest.mark.cachemock(isolation="shared"), id="shared-2"),
    ],
)
def test_compile_workers_on_the_cpu_touch_no_mocked_cache(
    patch_caches: PatchCaches, global_stats: Any, builds: list[str], threads: int
) -> None:
    import torch
    from torch import nn
    from torch._inductor import config
    from torch._inductor.async_compile import AsyncCompile

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    patch_caches.enable("fx_graph")
    with config.patch(compile_threads=threads):
        x = torch.randn(2, 8)
        torch.compile(model)(x)
        torch._dynamo.reset()
        torch.compile(model)(x)
    # The same counts in every mode and with the workers on: all of it in the test's thread.
    assert global_stats.fx_graph == Stats(puts=1, hits=1, misses=1)
    assert patch_caches.foreign_stats() == {}
    me = threading.current_thread().name
    if threads == 1:
        assert builds
        assert set(builds) == {me}
    else:  # C++ kernels compiled in torch's worker threads, no worker process started
        assert any(name.startswith("ThreadPoolExecutor") for name in builds), builds
        assert AsyncCompile.process_pool.cache_info().currsize == 0


@pytest.mark.cachemock(isolation="shared")
def test_shared_counts_a_job_in_torchs_compile_worker_processes(patch_caches: PatchCaches) -> None:
    """torch starts its process pool (a ``SubprocPool``: a Python child that forks the workers)
    with this process's ``sys.path`` as PYTHONPATH; the store's start-up hook reaches it, and
    the job's gets and puts in the worker count into the test."""
    import os

    from _torch_workers import fx_graph_round_trip
    from torch._inductor import config
    from torch._inductor.async_compile import AsyncCompile, shutdown_compile_workers

    with config.patch(compile_threads=2, worker_start_method="subprocess"):
        try:
            pool = AsyncCompile.process_pool()
            pid, backend, value = pool.submit(fx_graph_round_trip, "from-worker").result(120)
        finally:  # the pool lives with the process: a later test's children would not count
            shutdown_compile_workers()
    assert pid != os.getpid()
    assert (backend, value) == ("MockBackend", {"from": "worker"})
    assert patch_caches.stats()["fx_graph"] == Stats(puts=1, hits=1, misses=1)
    assert list(patch_caches.entries("fx_graph")) == ["pt2:fx-graph-v1::from-worker:c1"]
