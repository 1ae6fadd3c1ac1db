"""Real ``torch.compile`` on the CPU under the plugin's fixtures, and side by side with torch's
own ``torch._inductor.mock_cache``.

The expected figures were taken from running each scenario under torch's own mock first (and
the side-by-side test keeps checking that both mocks agree). Nothing here configures the
profile: the fixtures pick up Inductor's kinds because ``torch._inductor`` is imported (the
drop-in path); tests/torch/test_torch_plugin.py covers the ini option.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from _formats import TORCH_FLAGS as FLAGS

from pytest_cachemock import PatchCaches, Stats
from pytest_cachemock.stats import GlobalStats

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

CLASSES = (
    "LocalAutotuneCache",
    "RemoteAutotuneCache",
    "RemoteBundledAutotuneCache",
    "RemoteFxGraphCache",
    "RemoteAOTAutogradCache",
    "RemoteDynamoPGOCache",
)
FX_KEY = re.compile(r"pt2:fx-graph-v1::[0-9a-z]{52}:c[0-9]+")
AOT_KEY = re.compile(r"pt2:autograd-experimental::[0-9a-z]{52}:c[0-9]+")


@pytest.fixture(scope="module")
def sc() -> ModuleType:
    """The scenarios; importing them imports torch._inductor before any patch_caches starts."""
    import _torch_scenarios

    return _torch_scenarios


def torch_state() -> dict[str, Any]:
    import torch._inductor.remote_cache as rc
    from torch._inductor import config

    state: dict[str, Any] = {}
    for name in FLAGS:
        entry = config._config[name]
        state[name] = (entry.user_override.get(), entry.hide)
    for name in CLASSES:
        state[name] = vars(getattr(rc, name)).get("backend_override_cls", "inherited")
    return state


@pytest.fixture(autouse=True)
def restored(sc: ModuleType) -> Iterator[None]:
    """Every test leaves the five flags and every backend_override_cls as it found them."""
    before = torch_state()
    yield
    assert torch_state() == before


def ours(stats: GlobalStats) -> Any:
    return lambda kind: stats[kind].as_tuple()[:3]


def test_dynamo_pgo_remote_cache(
    sc: ModuleType, patch_caches: PatchCaches, global_stats: GlobalStats
) -> None:
    seen = sc.pgo(ours(global_stats), job_id="pgo-job")
    # (frames compiled, puts, hits, misses) after two shapes, after a reset and two new shapes
    # (the stored profile makes the second compile dynamic: one frame), after a new tag.
    assert seen == [(2, 2, 0, 1), (1, 2, 1, 1), (2, 4, 1, 2)]
    assert global_stats.dynamo_pgo == Stats(puts=4, hits=1, misses=2)
    entries = patch_caches.entries("dynamo_pgo")
    assert set(entries) == {
        "pt2:dynamo-pgo::pgo-job:None::c1",
        "pt2:dynamo-pgo::pgo-job:None:test:c1",
    }
    for value in entries.values():
        assert isinstance(value, bytes)
        json.loads(value)  # torch's JSON serde wrote it


def test_fx_graph_remote_cache_warm_loop(
    sc: ModuleType, patch_caches: PatchCaches, global_stats: GlobalStats
) -> None:
    import torch._inductor.remote_cache as rc

    before = rc.cache_stats._stats["RemoteFxGraphCache"].put
    seen = sc.fx_graph_rounds(ours(global_stats), rounds=4)
    # Round one misses and stores; each later round (fresh local cache) hits the remote one;
    # a new cache_key_tag is a new key: one more miss and put.
    assert seen == [(1, 0, 1), (1, 1, 1), (1, 2, 1), (1, 3, 1), (2, 3, 2)]
    assert global_stats.fx_graph == Stats(2, 3, 2)
    keys = list(global_stats.fx_graph.cache)
    assert len(keys) == 2
    assert all(FX_KEY.fullmatch(k) for k in keys), keys
    assert all(isinstance(v, bytes) for v in global_stats.fx_graph.cache.values())
    assert rc.cache_stats._stats["RemoteFxGraphCache"].put - before == 2
    # Only the remote FX graph cache was on: nothing else was touched.
    assert global_stats.aot_autograd == Stats()
    assert global_stats.autotune_local == Stats()


def test_aot_autograd_and_fx_graph_together(
    sc: ModuleType, patch_caches: PatchCaches, global_stats: GlobalStats
) -> None:
    seen = sc.aot_and_fx(ours(global_stats))
    assert seen == [
        ((1, 0, 1), (1, 0, 1)),
        ((1, 1, 1), (1, 1, 1)),
        ((2, 1, 2), (2, 1, 2)),
    ]
    aot_keys = list(patch_caches.entries("aot_autograd"))
    fx_keys = list(patch_caches.entries("fx_graph"))
    assert len(aot_keys) == len(fx_keys) == 2
    assert all(AOT_KEY.fullmatch(k) for k in aot_keys), aot_keys
    assert all(FX_KEY.fullmatch(k) for k in fx_keys), fx_keys


def test_side_by_side_with_torchs_own_mock(
    sc: ModuleType, patch_caches: PatchCaches, global_stats: GlobalStats
) -> None:
    from torch._inductor import mock_cache

    def theirs(kind: str) -> tuple[int, int, int]:
        stat = mock_cache.global_stats.get_stat(kind)
        return (stat.num_put, stat.num_get_hit, stat.num_get_miss)

    # torch's mock, the way PyTorch's suites use it, patched over ours for the block.
    mock_cache.PatchCaches.setUp()
    try:
        with mock_cache.PatchCaches():
            torch_fx = sc.fx_graph_rounds(theirs, rounds=2)
            torch_pgo = sc.pgo(theirs, job_id="side-by-side")
    finally:
        mock_cache.PatchCaches.tearDown()
    torch_keys = {
        k: set(mock_cache.global_stats.get_stat(k).cache) for k in ("fx_graph", "dynamo_pgo")
    }

    # The same scenarios under our fixture, in the same process.
    patch_caches.reset()
    our_fx = sc.fx_graph_rounds(ours(global_stats), rounds=2)
    our_pgo = sc.pgo(ours(global_stats), job_id="side-by-side")
    our_keys = {k: set(global_stats[k].cache) for k in ("fx_graph", "dynamo_pgo")}

    assert our_fx == torch_fx == [(1, 0, 1), (1, 1, 1), (2, 1, 2)]
    assert our_pgo == torch_pgo == [(2, 2, 0, 1), (1, 2, 1, 1), (2, 4, 1, 2)]
    assert our_keys == torch_keys
    assert len(our_keys["fx_graph"]) == 2
