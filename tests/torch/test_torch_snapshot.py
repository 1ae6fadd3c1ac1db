"""A real PyTorch FX graph cache warm loop recorded as a snapshot (issue 20): two separate
pytest runs write the same golden file, byte for byte.

The FX graph keys are digests of the graph, the inputs and Inductor's own sources
(``pt2:fx-graph-v1::f<51 base32 digits>:c1``): the built-in ``<hash>`` rule of the snapshot
normaliser covers them, so the file names the key's shape and which operations read the same
key, not a digest that a new torch release would change.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

WARM_LOOP = """
import pytest
import torch
import torch._dynamo
from torch._inductor import config
from torch._inductor import utils

fresh_cache = getattr(utils, "fresh_cache", getattr(utils, "fresh_inductor_cache", None))
clear_caches = getattr(utils, "clear_caches", getattr(utils, "clear_inductor_caches", None))


def fn(x, y):
    return (x * 2, y @ y)


@pytest.mark.cachemock(snapshot=True)
def test_fx_graph_warm_loop():
    a, b = torch.rand(25), torch.rand(5, 5)
    with config.patch(fx_graph_remote_cache=True, compile_threads=1):
        for _ in range(2):  # cold, then warm: a fresh local cache each time, the mock remote
            with fresh_cache():
                got = torch.compile(fn)(a, b)
            assert torch.allclose(got[1], b @ b)
            torch._dynamo.reset()
            clear_caches()
"""

GOLDEN = """\
# cachemock snapshot of test_warm_loop.py::test_fx_graph_warm_loop
fx_graph get 'pt2:fx-graph-v1::<hash1>:c1' -> miss
fx_graph put 'pt2:fx-graph-v1::<hash1>:c1' -> stored
fx_graph get 'pt2:fx-graph-v1::<hash1>:c1' -> hit
"""


def test_an_fx_graph_warm_loop_snapshot_stays_the_same_run_after_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_warm_loop=WARM_LOOP)
    golden = pytester.path / "__cachemock__" / "test_warm_loop" / "test_fx_graph_warm_loop.txt"

    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cachemock-snapshot=new")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["wrote 1 new snapshot (--cachemock-snapshot=new, given on *"])
    written = golden.read_bytes()
    assert written == GOLDEN.encode()
    assert not re.search(rb"[0-9a-z]{32}", written)  # no digest left in the file

    # A second, separate run that rewrites every snapshot whose traffic changed: nothing did.
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cachemock-snapshot=all")
    second.assert_outcomes(passed=1)
    assert "rewrote" not in second.stdout.str()
    assert golden.read_bytes() == written
