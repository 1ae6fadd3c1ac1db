"""The ``torch`` profile as users meet it: pytest runs (in subprocesses, since the profile is
loaded at configure time) with the ini line or the option, and PyTorch-style unittest suites
that import our ``PatchCaches`` instead of torch's, under pytest and under ``python -m
unittest``, with no configuration at all."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

HYGIENE = """
import pytest
import torch._inductor.remote_cache as rc
from torch._inductor import config

from pytest_cachemock import Stats

FLAGS = ("fx_graph_cache", "fx_graph_remote_cache", "autotune_local_cache",
         "autotune_remote_cache", "bundled_autotune_remote_cache")
CLASSES = ("LocalAutotuneCache", "RemoteAutotuneCache", "RemoteBundledAutotuneCache",
           "RemoteFxGraphCache", "RemoteAOTAutogradCache", "RemoteDynamoPGOCache")


def state():
    flags = {f: (config._config[f].user_override.get(), config._config[f].hide) for f in FLAGS}
    return flags | {c: vars(getattr(rc, c)).get("backend_override_cls") for c in CLASSES}


REAL = state()
REAL_VALUES = [getattr(config, f) for f in FLAGS]


def test_1_plugin(patch_caches, global_stats):
    assert [getattr(config, f) for f in FLAGS] == [False] * 5
    assert [getattr(rc, c).backend_override_cls.cachemock_kind for c in CLASSES] == [
        "autotune_local", "autotune_remote", "bundled_autotune", "fx_graph", "aot_autograd",
        "dynamo_pgo"]
    patch_caches.enable("fx_graph")  # the remote cache, which is mocked
    assert (config.fx_graph_cache, config.fx_graph_remote_cache) == (False, True)
    patch_caches.enable("fx_graph", local=True)  # and the local one
    assert (config.fx_graph_cache, config.fx_graph_remote_cache) == (True, True)
    config.autotune_remote_cache = True  # a plain assignment is undone too
    cache = rc.RemoteFxGraphCache("fx-graph-v1")
    assert cache.get("k") is None
    cache.put("k", {"v": 1})
    assert global_stats.fx_graph == Stats(puts=1, misses=1)
    assert dict(global_stats.fx_graph.cache) == {"pt2:fx-graph-v1::k:c1": b'{"v": 1}'}


def test_2_no_plugin_sees_the_real_configuration():
    assert state() == REAL
    assert [getattr(config, f) for f in FLAGS] == REAL_VALUES
    assert rc.RemoteFxGraphCache.backend_override_cls is None


@config.patch(fx_graph_remote_cache=True)
def test_3_config_patch_decorator(global_stats):
    assert config.fx_graph_remote_cache is True and config.fx_graph_cache is False
    rc.RemoteDynamoPGOCache("dynamo-pgo").put("job", [1])
    assert global_stats.dynamo_pgo == Stats(puts=1)


@pytest.mark.cachemock(enable=["autotune_remote", "bundled_autotune"])
def test_4_marker_and_a_failure():
    assert config.autotune_remote_cache is True
    assert config.bundled_autotune_remote_cache is True and config.autotune_local_cache is True
    assert config.fx_graph_cache is False
    rc.RemoteAutotuneCache("autotune").get("missing")
    assert False, "on purpose"


def test_5_no_plugin_again():
    assert state() == REAL
    assert [getattr(config, f) for f in FLAGS] == REAL_VALUES
"""


@pytest.mark.parametrize(
    "how", ["ini", "option"], ids=["ini cachemock_profiles", "option --cachemock-profile"]
)
def test_hygiene_under_pytest(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile(test_hygiene=HYGIENE)
    if how == "ini":
        pytester.makeini("[pytest]\ncachemock_profiles = torch\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    else:
        pytester.makeini("[pytest]\n")
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--cachemock-profile=torch"
        )
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: on purpose",
            "*- cachemock (call) -*",  # right after the traceback
            "Cache stats:",
            "  autotune_remote * puts=0, hits=0, misses=1",
        ]
    )


OUTAGE = """
import torch
from torch import nn

from pytest_cachemock import Stats


def test_an_outage_counted_wrong(patch_caches, global_stats):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    patch_caches.enable("fx_graph")
    patch_caches.fail("fx_graph", on="get")
    torch.compile(model)(torch.randn(2, 8))
    assert global_stats.fx_graph == Stats(puts=1, misses=1)  # wrong: the get failed
"""

# What the cachemock section of that failure holds, line by line, and nothing else.
OUTAGE_SECTION = [
    "global_stats.fx_graph == Stats(puts=1, hits=0, misses=1) failed; "
    "actual Stats(puts=1, hits=0, misses=0, errors=1):",
    "  misses: expected 1, got 0",
    "  errors: expected 0, got 1",
    "Cache stats:",
    "  autotune_local    puts=0, hits=0, misses=0",
    "  autotune_remote   puts=0, hits=0, misses=0",
    "  bundled_autotune  puts=0, hits=0, misses=0",
    "  fx_graph          puts=1, hits=0, misses=0, errors=1",
    "  aot_autograd      puts=0, hits=0, misses=0",
    "  dynamo_pgo        puts=0, hits=0, misses=0",
    "Cache entries:",
    "  fx_graph:",
    "    'pt2:fx-graph-v1::*:c1': b'{\"data\": \"*... (* chars)",
]


def test_a_failing_compile_with_an_injected_fault_keeps_the_section_ours(
    pytester: pytest.Pytester,
) -> None:
    """torch logs a lot while it compiles (debug trace lines, a traceback for the injected
    fault); pytest shows it in its captured sections. The cachemock section comes right after
    the failure's traceback, before them, and holds our lines only (that it stays under
    --show-capture=no: tests/plugin/test_plugin_reports.py)."""
    from fnmatch import fnmatch

    pytester.makepyfile(test_outage=OUTAGE)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    lines = result.outlines
    start = lines.index(next(line for line in lines if "- cachemock (call) -" in line))
    assert lines[start - 1].startswith("test_outage.py:"), "not right after the traceback"
    section = lines[start + 1 : start + 1 + len(OUTAGE_SECTION)]
    end = start + 1 + len(OUTAGE_SECTION)
    assert [fnmatch(line, want) for line, want in zip(section, OUTAGE_SECTION)] == [True] * len(
        OUTAGE_SECTION
    ), "\n".join(section)
    # Then the test's operation log (issue 20): a heading and one indented line per operation.
    assert lines[end].startswith("Cache operations ("), lines[end]
    log = [end]
    while lines[log[-1] + 1].startswith("  "):
        log.append(log[-1] + 1)
    assert len(log) >= 2, lines[end : end + 3]
    section += [lines[i] for i in log]
    after = lines[log[-1] + 1]
    assert after.startswith("----"), after
    assert "Captured" in after, after
    # torch's noise is there, in pytest's captured sections, and none of it in ours.
    text = "\n".join(lines)
    assert text.count("torch.__trace") > 50
    assert "FxGraphCache unable to load compiled graph" in text  # with its traceback
    assert not any("torch" in line or "Traceback" in line for line in section)


def test_profile_without_torch_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['torch'] = None  # torch is not installed\n")
    pytester.makeini("[pytest]\ncachemock_profiles = torch\n")
    pytester.makepyfile("def test_nothing(): pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_profiles ('torch'): the 'torch' profile needs "
            "PyTorch, which cannot be imported (*); pip install torch, or drop 'torch' from "
            "cachemock_profiles / --cachemock-profile"
        ]
    )


# test_pgo.py's remote test and the shape of test_codecache.py's remote tests, with the
# import of torch._inductor.mock_cache replaced by ours. No profile is configured anywhere.
PYTORCH_STYLE = """
import contextlib
import unittest

import torch
import torch._dynamo.config
import torch._inductor.remote_cache as rc
import torch.compiler.config
from torch._dynamo.testing import CompileCounter
from torch._inductor import config
from torch._inductor.utils import clear_caches, fresh_cache

from pytest_cachemock import PatchCaches, Stats, global_stats


class PgoTest(unittest.TestCase):
    def setUp(self):
        super().setUp()
        self._test_stack = contextlib.ExitStack()
        self._test_stack.enter_context(torch.compiler.config.patch(job_id=self.id()))
        self._test_stack.enter_context(config.patch(compile_threads=1))
        self._test_stack.enter_context(fresh_cache())
        PatchCaches.setUp()

    def tearDown(self):
        super().tearDown()
        torch._dynamo.reset()
        self._test_stack.close()
        PatchCaches.tearDown()

    def reset(self):
        torch._dynamo.reset()
        clear_caches()

    @torch._dynamo.config.patch(
        automatic_dynamic_remote_pgo=True, automatic_dynamic_local_pgo=False
    )
    def test_remote_basic(self):
        cnts = CompileCounter()

        @torch.compile(backend=cnts, fullgraph=True)
        def f(x):
            return x * 2

        with PatchCaches():
            f(torch.randn(2, 3))
            f(torch.randn(2, 4))
            self.assertEqual(cnts.frame_count, 2)
            self.assertEqual(global_stats.dynamo_pgo, Stats(2, 0, 1))

            self.reset()
            cnts.clear()

            f(torch.randn(2, 5))
            f(torch.randn(2, 6))
            self.assertEqual(cnts.frame_count, 1)
            self.assertEqual(global_stats.dynamo_pgo, Stats(2, 1, 1))

            self.reset()
            cnts.clear()

            with torch.compiler.config.patch({"cache_key_tag": "test"}):
                f(torch.randn(2, 7))
                f(torch.randn(2, 8))
                self.assertEqual(cnts.frame_count, 2)
                self.assertEqual(global_stats.dynamo_pgo, Stats(4, 1, 2))
        self.assertEqual(global_stats.dynamo_pgo.num_put, 4)  # readable after the block
        self.assertEqual(len(global_stats.dynamo_pgo.cache), 2)

    @config.patch({"fx_graph_remote_cache": True})
    def test_flags_the_test_set_survive_the_block(self):
        with PatchCaches():
            self.assertIs(config.fx_graph_remote_cache, True)
            self.assertIs(config.fx_graph_cache, False)  # setUp() turned it off
            cache = rc.RemoteFxGraphCache("fx-graph-v1")
            cache.put("k", {"v": 1})
            self.assertEqual(cache.get("k"), {"v": 1})
        self.assertEqual(global_stats.fx_graph, Stats(1, 1, 0))
        self.assertEqual(list(global_stats.fx_graph.cache), ["pt2:fx-graph-v1::k:c1"])
        self.assertIsNone(rc.RemoteFxGraphCache.backend_override_cls)


if __name__ == "__main__":
    unittest.main()
"""


def test_pytorch_style_suite_under_unittest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pytorch_style=PYTORCH_STYLE)
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_pytorch_style"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ran 2 tests" in proc.stderr


def test_pytorch_style_suite_under_pytest_without_configuration(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_pytorch_style=PYTORCH_STYLE)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


MONKEYPATCHED_FLAGS = """
from unittest import mock

import pytest
import torch._inductor.remote_cache as rc
from torch._inductor import config

FLAGS = ("fx_graph_cache", "fx_graph_remote_cache", "autotune_local_cache",
         "autotune_remote_cache", "bundled_autotune_remote_cache")

config.autotune_remote_cache = True  # an override made before the plugin: it is kept
OTHER = lambda: None


def state():
    flags = {f: (config._config[f].user_override.get(), config._config[f].hide) for f in FLAGS}
    return flags | {"fx_graph": vars(rc.RemoteFxGraphCache).get("backend_override_cls")}


REAL = state()


def change_everything(monkeypatch):
    for flag in FLAGS:
        monkeypatch.setattr(config, flag, True)
    monkeypatch.setattr(rc.RemoteFxGraphCache, "backend_override_cls", OTHER)


def test_01_monkeypatch_set_up_before_patch_caches(monkeypatch, patch_caches):
    change_everything(monkeypatch)

def test_02_restored():
    assert state() == REAL

@pytest.mark.cachemock()
def test_03_marker(monkeypatch):
    change_everything(monkeypatch)

def test_04_restored():
    assert state() == REAL

def test_05_enabled_then_monkeypatched(monkeypatch, patch_caches):
    patch_caches.enable("fx_graph", "autotune_remote")
    change_everything(monkeypatch)

def test_06_restored():
    assert state() == REAL

def test_07_delattr(monkeypatch, patch_caches):
    monkeypatch.delattr(config, "fx_graph_cache")
    monkeypatch.delattr(config, "autotune_remote_cache")

def test_08_restored():
    assert state() == REAL

def test_09_monkeypatch_after(patch_caches, monkeypatch):
    change_everything(monkeypatch)

def test_10_restored():
    assert state() == REAL

def test_11_fails(monkeypatch, patch_caches):
    change_everything(monkeypatch)
    raise AssertionError("on purpose")

def test_12_restored():
    assert state() == REAL

@pytest.fixture
def leaves_a_flag_on():
    yield
    config.fx_graph_remote_cache = "left by a fixture"  # not the plugin's value: kept

def test_13_a_value_left_by_a_fixture(leaves_a_flag_on, patch_caches):
    pass

def test_14_is_left():
    assert config.fx_graph_remote_cache == "left by a fixture"
    config._config["fx_graph_remote_cache"].user_override.set(REAL["fx_graph_remote_cache"][0])
    assert state() == REAL

@pytest.fixture
def patcher():
    # What pytest-mock's mocker does: patches started in the test, stopped at its teardown.
    started = []
    def patch(target, name, value):
        started.append(mock.patch.object(target, name, value))
        started[-1].start()
    yield patch
    for patch in reversed(started):
        patch.stop()  # writes back the plugin's False (and mock) it saw when started

def test_15_mock_patch_object(patcher, patch_caches):
    for flag in FLAGS:
        patcher(config, flag, True)
    patcher(rc.RemoteFxGraphCache, "backend_override_cls", OTHER)

def test_16_restored():
    assert state() == REAL
"""


def test_monkeypatched_flags_and_targets_are_restored(pytester: pytest.Pytester) -> None:
    """A monkeypatch of a flag the profile switches, set up before the plugin, saves the
    plugin's False and writes it back after the plugin restored the flag: the plugin looks
    again and puts back what torch's config held (the raw override, not just its value)."""
    pytester.makepyfile(test_flags=MONKEYPATCHED_FLAGS)
    pytester.makeini("[pytest]\ncachemock_profiles = torch\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=15, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: on purpose"])
