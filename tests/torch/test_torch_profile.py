"""The ``torch`` profile's parts against the installed PyTorch, without compiling anything.

torch is imported inside the tests, so collecting this module (or deselecting it with
``-m "not torch"``) costs nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from typing import Any

import pytest
from _formats import TORCH_FLAGS as FLAGS

from pytest_cachemock import PatchCaches, Stats, global_stats
from pytest_cachemock._spots import _restore
from pytest_cachemock.kinds import KindConfigError, Registry

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]


def torch_registry() -> Registry:
    registry = Registry()
    registry.load_profile("torch", "test")
    return registry


def raw_state(config: Any, name: str) -> tuple[object, bool]:
    """What torch's config holds for ``name``: the raw user override and the hidden mark."""
    entry = config._config[name]
    return entry.user_override.get(), entry.hide


def test_kinds_targets_and_switches() -> None:
    import torch._inductor.remote_cache as rc
    from torch._inductor import config

    from pytest_cachemock.integrations.torch import TorchCacheDir, TorchConfigSwitch

    kinds = torch_registry().declared()  # kinds() adds kinds other tests' classes declare
    # OSS torch has no target for "triton" (it is fbcode-only), so the kind is not declared.
    assert list(kinds) == [
        "autotune_local",
        "autotune_remote",
        "bundled_autotune",
        "fx_graph",
        "aot_autograd",
        "dynamo_pgo",
    ]
    targets = {name: [t.obj for t in kind.targets] for name, kind in kinds.items()}
    assert targets == {
        "autotune_local": [rc.LocalAutotuneCache],
        "autotune_remote": [rc.RemoteAutotuneCache],
        "bundled_autotune": [rc.RemoteBundledAutotuneCache],
        "fx_graph": [rc.RemoteFxGraphCache],
        "aot_autograd": [rc.RemoteAOTAutogradCache],
        "dynamo_pgo": [rc.RemoteDynamoPGOCache],
    }
    # Each kind: the test's own cache directory, then the flags enable(kind) turns on (the
    # remote cache it mocks, what torch needs besides), then its local on-disk layer's flags.
    switches = {
        name: [
            (s.config.__name__.rpartition(".")[2], s.name, s.local)  # type: ignore[attr-defined]
            for s in kind.switches[1:]
        ]
        for name, kind in kinds.items()
    }
    assert switches == {
        "autotune_local": [("config", "autotune_local_cache", False)],
        "autotune_remote": [("config", "autotune_remote_cache", False)],
        "bundled_autotune": [
            ("config", "bundled_autotune_remote_cache", False),
            ("config", "autotune_local_cache", False),
        ],
        "fx_graph": [
            ("config", "fx_graph_remote_cache", False),
            ("config", "fx_graph_cache", True),
        ],
        "aot_autograd": [
            ("config", "enable_remote_autograd_cache", False),
            ("config", "fx_graph_remote_cache", False),
            ("config", "enable_autograd_cache", True),
        ],
        "dynamo_pgo": [
            ("config", "automatic_dynamic_remote_pgo", False),
            ("config", "automatic_dynamic_local_pgo", True),
            ("config", "job_id", False),
        ],
    }
    modules = {
        (kind, s.name): s.config.__name__  # type: ignore[attr-defined]
        for kind, k in kinds.items()
        for s in k.switches[1:]
    }
    assert modules[("aot_autograd", "enable_remote_autograd_cache")] == "torch._functorch.config"
    assert modules[("dynamo_pgo", "automatic_dynamic_local_pgo")] == "torch._dynamo.config"
    assert modules[("dynamo_pgo", "job_id")] == "torch.compiler.config"
    assert modules[("fx_graph", "fx_graph_cache")] == config.__name__
    dirs = {id(kind.switches[0]) for kind in kinds.values()}
    assert len(dirs) == 1
    assert isinstance(kinds["fx_graph"].switches[0], TorchCacheDir)
    every = [s for kind in kinds.values() for s in kind.switches[1:]]
    assert all(isinstance(s, TorchConfigSwitch) for s in every)
    assert "torch 2." in kinds["fx_graph"].origin


def test_mock_is_torchs_backend_and_stores_the_encoded_json() -> None:
    import torch._inductor.remote_cache as rc

    registry = torch_registry()

    def counts(name: str) -> tuple[int, int, int, int]:
        stat = rc.cache_stats._stats.get(name, rc._CacheStat())
        return (stat.put, stat.hit, stat.miss, stat.exception)

    with PatchCaches(registry=registry):
        rc.RemoteFxGraphCache("fx-graph-v1").get("before")  # counted before the block
    before = {name: counts(name) for name in ("RemoteFxGraphCache", "fx_graph")}
    with PatchCaches(registry=registry) as patch:
        cache = rc.RemoteFxGraphCache("fx-graph-v1")
        assert isinstance(cache.backend, rc.RemoteCacheBackend)
        assert cache.get("k") is None
        cache.put("k", {"graph": [1, 2]})
        assert cache.get("k") == {"graph": [1, 2]}
        # What torch handed the backend: its key format and its JSON serde's bytes.
        assert dict(patch.entries("fx_graph")) == {"pt2:fx-graph-v1::k:c1": b'{"graph": [1, 2]}'}
        assert global_stats.fx_graph == Stats(puts=1, hits=1, misses=1)
        # torch's own counters kept counting, for the controller and (as torch's mock) the kind.
        for name, old in before.items():
            assert [n - o for n, o in zip(counts(name), old)] == [1, 1, 1, 0]
        # library_stats() shows them next to ours, as what this block did (not since the
        # process started: the counts before the block are left out).
        once = {"hit": 1, "miss": 1, "put": 1, "exception": 0}
        assert patch.library_stats() == {
            "mock:fx_graph": once,
            "torch:RemoteFxGraphCache": once,
            "torch:fx_graph": once,
        }
        # Faults armed on the kind reach torch, which counts them as exceptions.
        patch.fail("fx_graph", on="get", times=1)
        with pytest.raises(ConnectionError, match="injected failure on get of kind 'fx_graph'"):
            cache.get("k")
        assert global_stats.fx_graph == Stats(1, 1, 1, errors=1)
        assert counts("fx_graph")[3] - before["fx_graph"][3] == 1
        patch.seed("dynamo_pgo", {"pt2:dynamo-pgo::job::c1": json.dumps([1]).encode()})
        assert rc.RemoteDynamoPGOCache("dynamo-pgo").get("job:") == [1]
    assert rc.RemoteFxGraphCache.backend_override_cls is None
    assert rc.LocalAutotuneCache.backend_override_cls is None
    assert global_stats.fx_graph == Stats(1, 1, 1, errors=1)  # readable after the block


def test_switch_restores_no_override_exactly() -> None:
    from torch._inductor import config

    from pytest_cachemock.integrations.torch import TorchConfigSwitch

    name = "bundled_autotune_remote_cache"  # part of the FX graph cache key's config hash
    before = raw_state(config, name)
    hash_before = config.get_hash()
    switch = TorchConfigSwitch(config, name, "test")
    undo = switch.set(True)
    assert getattr(config, name) is True
    assert config.get_hash() != hash_before
    _restore(undo)
    assert raw_state(config, name) == before
    assert config.get_hash() == hash_before


def test_flags_are_read_back_and_repaired_after_a_restore_that_saw_the_plugins_value() -> None:
    """What a fixture set up before the plugin does when it saved a flag the plugin had set
    (unittest.mock.patch.object, or pytest's monkeypatch, which deletes it): the raw state of
    before the plugin comes back, a value put there on purpose is kept."""
    from unittest import mock

    from torch._inductor import config

    from pytest_cachemock import patching
    from pytest_cachemock.integrations.torch import config_spots

    registry = torch_registry()
    spots = config_spots(config)
    inductor = {s.spot() for k in registry.declared().values() for s in k.switches}
    assert {spot for spot in inductor if spot is not None and spot[0] is spots} == {
        (spots, name) for name in FLAGS
    }
    config.autotune_remote_cache = True  # an override made before: comes back as it was
    try:
        real = {name: raw_state(config, name) for name in FLAGS}
        before = patching._snapshot(registry)
        flags = {key: state for key, state in before.items() if key[0] == id(spots)}
        assert flags == {(id(spots), name): real[name] for name in FLAGS}
        patch = PatchCaches(registry=registry, switches="off").start()
        patched = [mock.patch.object(config, name, True) for name in FLAGS]
        for started in patched:
            started.start()
        patch.stop()
        for started in reversed(patched):
            started.stop()  # writes back the plugin's False it saw
        assert [raw_state(config, name) for name in FLAGS] == [(False, False)] * 5
        patch.repair(before)
        assert {name: raw_state(config, name) for name in FLAGS} == real

        patch = PatchCaches(registry=registry, switches="off").start()
        patch.stop()
        delattr(config, "fx_graph_cache")  # what monkeypatch's undo does: the flag is hidden
        config.fx_graph_remote_cache = "on purpose"  # not a value the plugin wrote: kept
        patch.repair(before)
        assert raw_state(config, "fx_graph_cache") == real["fx_graph_cache"]
        assert config.fx_graph_remote_cache == "on purpose"
    finally:
        for name in FLAGS:
            setattr(config, name, False)  # marks torch's cached config dicts stale
            config._config[name].user_override.set(real[name][0])
            config._config[name].hide = real[name][1]


def test_setup_teardown_leave_no_assignment_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlike torch's own tearDown(), which leaves every flag assigned its old value."""
    from torch._inductor import config, mock_cache

    from pytest_cachemock import _state

    monkeypatch.setattr(_state.current(), "registry", torch_registry())
    before = config.codegen_config()
    PatchCaches.setUp()
    PatchCaches.tearDown()
    assert config.codegen_config() == before
    saved = {name: raw_state(config, name) for name in FLAGS}
    try:
        mock_cache.PatchCaches.setUp()
        mock_cache.PatchCaches.tearDown()
        assert "torch._inductor.config.fx_graph_cache = True" in config.codegen_config()
    finally:
        for name, (value, hidden) in saved.items():
            setattr(config, name, False)  # marks torch's cached config dicts stale
            config._config[name].user_override.set(value)
            config._config[name].hide = hidden
    assert config.codegen_config() == before


def test_switch_restores_an_override_and_a_hidden_flag() -> None:
    from torch._inductor import config

    from pytest_cachemock.integrations.torch import TorchConfigSwitch

    switch = TorchConfigSwitch(config, "autotune_remote_cache", "test")
    with config.patch(autotune_remote_cache=True):
        undo = switch.set(False)
        assert config.autotune_remote_cache is False
        _restore(undo)
        assert raw_state(config, "autotune_remote_cache") == (True, False)
    # torch's own PatchCaches.tearDown() deletes flags; a deleted flag is hidden, and stays so.
    saved = raw_state(config, "autotune_remote_cache")
    try:
        delattr(config, "autotune_remote_cache")
        hidden = raw_state(config, "autotune_remote_cache")
        undo = switch.set(False)
        assert config.autotune_remote_cache is False
        _restore(undo)
        assert raw_state(config, "autotune_remote_cache") == hidden
        assert not hasattr(config, "autotune_remote_cache")
    finally:
        config.autotune_remote_cache = False  # marks torch's cached config dicts stale
        entry = config._config["autotune_remote_cache"]
        entry.user_override.set(saved[0])
        entry.hide = saved[1]
    with pytest.raises(KindConfigError, match=r"test: torch._inductor.config.no_such_flag"):
        TorchConfigSwitch(config, "no_such_flag", "test")


def test_setup_teardown_and_the_block_keep_flags_the_test_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed's shape: setUp() turns the flags off, the test turns some on, then enters."""
    from torch._inductor import config

    from pytest_cachemock import _state

    registry = torch_registry()
    monkeypatch.setattr(_state.current(), "registry", registry)
    before = {name: raw_state(config, name) for name in FLAGS}
    PatchCaches.setUp()
    try:
        assert [getattr(config, name) for name in FLAGS] == [False] * 5
        with config.patch(fx_graph_remote_cache=True), PatchCaches():
            assert config.fx_graph_remote_cache is True
            assert config.fx_graph_cache is False
        with PatchCaches(enable=["autotune_remote"]):
            assert config.autotune_remote_cache is True
        assert config.autotune_remote_cache is False
    finally:
        PatchCaches.tearDown()
    assert {name: raw_state(config, name) for name in FLAGS} == before
    # Without setUp(), a bare PatchCaches leaves the flags as the test set them (the seed's
    # context manager, and PyTorch's AOTAutograd remote-cache tests, rely on it)...
    with config.patch(fx_graph_remote_cache=True), PatchCaches(registry=registry):
        assert config.fx_graph_remote_cache is True
    # (torch's own config.patch restores the value, not the raw "no override" state)
    before = {name: raw_state(config, name) for name in FLAGS}
    # ...and switches="off" (what the fixture does) turns every flag off, enable() on.
    with PatchCaches(registry=registry, switches="off") as patch:
        assert [getattr(config, name) for name in FLAGS] == [False] * 5
        patch.enable("fx_graph")  # the remote cache, which is mocked; not the local one
        assert (config.fx_graph_cache, config.fx_graph_remote_cache) == (False, True)
        patch.enable("fx_graph", local=True)
        assert (config.fx_graph_cache, config.fx_graph_remote_cache) == (True, True)
        patch.enable("bundled_autotune")
        assert (config.bundled_autotune_remote_cache, config.autotune_local_cache) == (True, True)
    assert {name: raw_state(config, name) for name in FLAGS} == before


def test_missing_class_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import torch._inductor.remote_cache as rc

    from pytest_cachemock.integrations import torch as profile

    monkeypatch.delattr(rc, "RemoteDynamoPGOCache")
    monkeypatch.setattr(profile, "_reported", set())
    with pytest.warns(profile.TorchProfileWarning) as caught:
        kinds = torch_registry().declared()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"torch {torch.__version__}" in message
    assert "'dynamo_pgo'" in message
    assert "RemoteDynamoPGOCache" in message
    assert kinds["dynamo_pgo"].targets == []  # declared, read as empty, nothing patched
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch_registry()  # the same torch again: not repeated


def test_profile_without_torch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what an absent torch looks like
    with pytest.raises(KindConfigError) as info:
        Registry().load_profile("torch", "ini option cachemock_profiles ('torch')")
    message = str(info.value)
    assert message.startswith("ini option cachemock_profiles ('torch'): the 'torch' profile")
    assert "pip install torch" in message
    assert "drop 'torch' from cachemock_profiles" in message


def test_autoload_only_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor  # noqa: F401

    from pytest_cachemock import kinds

    registry = Registry()
    registry.autoload()
    assert "fx_graph" in registry.declared()
    registry.autoload()  # loaded once; a second load would be a duplicate-kind error
    monkeypatch.setitem(kinds._AUTOLOAD, "torch", "not_imported_anywhere")
    other = Registry()
    other.autoload()
    assert dict(other.declared()) == {}


def test_plugin_and_patchcaches_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import pytest_cachemock.plugin\n"
        "from pytest_cachemock import PatchCaches, global_stats\n"
        "PatchCaches.setUp(); PatchCaches.tearDown()\n"
        "with PatchCaches(): pass\n"
        "list(global_stats)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'pytest_cachemock.integrations.torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _run_outside_the_project(code: str, directory: Any) -> str:
    """Run ``code`` in a Python child in ``directory``, away from any configuration file that
    names a profile; its stdout (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=directory
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_module_that_imports_only_torch_is_mocked_from_its_first_patch_caches(
    tmp_path: Any,
) -> None:
    code = (
        "import sys\n"
        "import torch\n"
        "assert 'torch._inductor' not in sys.modules\n"
        "from pytest_cachemock import PatchCaches\n"
        "with PatchCaches(switches='off') as patch:\n"
        "    patch.enable('fx_graph')\n"
        "    import torch._inductor.remote_cache as rc\n"
        "    assert rc.RemoteFxGraphCache.backend_override_cls.cachemock_kind == 'fx_graph'\n"
        "    assert torch._inductor.config.fx_graph_remote_cache is True\n"
        "print(sorted(patch.stats()))\n"
    )
    stdout = _run_outside_the_project(code, tmp_path)
    assert "'dynamo_pgo', 'fx_graph'" in stdout


def test_a_torch_kind_named_without_the_profile_says_how_to_load_it(tmp_path: Any) -> None:
    code = (
        "from pytest_cachemock import PatchCaches, global_stats\n"
        "for enter in (lambda: PatchCaches(enable=['fx_graph']).start(),\n"
        "              lambda: global_stats.dynamo_pgo,\n"
        "              lambda: PatchCaches(enable=['fx_grahp']).start()):\n"
        "    try:\n"
        "        enter()\n"
        "    except (ValueError, KeyError) as exc:\n"
        "        print(str(exc))\n"
        "import sys\n"
        "assert 'torch' not in sys.modules\n"
    )
    stdout = _run_outside_the_project(code, tmp_path)
    assert stdout.splitlines() == [
        "unknown cache kind 'fx_graph'. Known kinds: (none registered). 'fx_graph' is a kind "
        "of the built-in 'torch' profile, which is not loaded: import torch before the "
        "PatchCaches starts, or set cachemock_profiles = torch in the pytest configuration "
        "(or pass --cachemock-profile=torch).",
        "unknown cache kind 'dynamo_pgo'. Known kinds: (none registered). 'dynamo_pgo' is a "
        "kind of the built-in 'torch' profile, which is not loaded: import torch before the "
        "PatchCaches starts, or set cachemock_profiles = torch in the pytest configuration "
        "(or pass --cachemock-profile=torch).",
        "unknown cache kind 'fx_grahp'. Known kinds: (none registered).",
    ]


def test_the_hint_is_only_for_a_profile_not_loaded() -> None:
    from pytest_cachemock import errors
    from pytest_cachemock.integrations import torch as profile

    assert errors._PROFILE_KINDS["torch"] == profile.KIND_ORDER
    names = list(torch_registry().declared())
    message = errors._unknown_kind("triton", names)  # fbcode-only: not declared in OSS torch
    assert "profile" not in message
    assert message.startswith("unknown cache kind 'triton'.")


def flags() -> dict[str, tuple[object, bool]]:
    """The raw state of every flag the profile switches, in every torch config module."""
    import torch._dynamo.config
    import torch._functorch.config
    import torch.compiler.config
    from torch._inductor import config

    modules = {
        "inductor": (config, FLAGS),
        "functorch": (
            torch._functorch.config,
            ("enable_autograd_cache", "enable_remote_autograd_cache"),
        ),
        "dynamo": (
            torch._dynamo.config,
            ("automatic_dynamic_local_pgo", "automatic_dynamic_remote_pgo"),
        ),
        "compiler": (torch.compiler.config, ("job_id",)),
    }
    return {
        f"{where}.{name}": raw_state(module, name)
        for where, (module, names) in modules.items()
        for name in names
    }


def values() -> dict[str, object]:
    import torch._dynamo.config
    import torch._functorch.config
    import torch.compiler.config
    from torch._inductor import config

    return {
        "fx_graph_cache": config.fx_graph_cache,
        "fx_graph_remote_cache": config.fx_graph_remote_cache,
        "enable_autograd_cache": torch._functorch.config.enable_autograd_cache,
        "enable_remote_autograd_cache": torch._functorch.config.enable_remote_autograd_cache,
        "automatic_dynamic_local_pgo": torch._dynamo.config.automatic_dynamic_local_pgo,
        "automatic_dynamic_remote_pgo": torch._dynamo.config.automatic_dynamic_remote_pgo,
        "job_id": torch.compiler.config.job_id,
    }


def test_off_turns_every_local_and_remote_layer_off_and_enable_turns_the_remote_on() -> None:
    import torch.compiler.config

    registry = torch_registry()
    before = flags()
    with PatchCaches(registry=registry, switches="off") as patch:
        assert values() == {
            "fx_graph_cache": False,
            "fx_graph_remote_cache": False,
            "enable_autograd_cache": False,
            "enable_remote_autograd_cache": False,
            "automatic_dynamic_local_pgo": False,
            "automatic_dynamic_remote_pgo": False,
            "job_id": None,
        }
        patch.enable("aot_autograd")  # its remote cache, and the FX graph one it needs
        assert values()["enable_remote_autograd_cache"] is True
        assert values()["fx_graph_remote_cache"] is True
        assert values()["enable_autograd_cache"] is False
        patch.enable("dynamo_pgo")
        assert values()["automatic_dynamic_remote_pgo"] is True
        assert values()["automatic_dynamic_local_pgo"] is False
        assert values()["job_id"] == "cachemock"  # torch looks nothing up without one
        patch.enable("dynamo_pgo", "aot_autograd", local=True)
        assert values()["automatic_dynamic_local_pgo"] is True
        assert values()["enable_autograd_cache"] is True
    assert flags() == before
    # Given at the start, as the marker does; a job id of the test's own is kept.
    with torch.compiler.config.patch(job_id="mine"):
        mine = flags()
        with PatchCaches(registry=registry, switches="off", enable=["dynamo_pgo"]):
            assert values()["job_id"] == "mine"
            assert values()["automatic_dynamic_remote_pgo"] is True
            assert values()["automatic_dynamic_local_pgo"] is False
        assert flags() == mine
    before = flags()  # (torch's config.patch leaves an assignment of the old value behind)
    # The drop-in's default, switches="keep", leaves every flag as torch has it.
    real = values()
    with PatchCaches(registry=registry):
        assert values() == real
    assert flags() == before


def test_each_patch_caches_gets_its_own_inductor_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import os

    from torch._inductor.runtime.cache_dir_utils import cache_dir

    registry = torch_registry()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "users-own"))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    with PatchCaches(registry=registry, switches="off") as patch:
        mine = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        assert mine != str(tmp_path / "users-own")
        # Not made until torch uses it: Inductor's cache_dir() makes it, empty.
        assert not os.path.exists(mine)
        assert cache_dir() == mine
        assert os.listdir(mine) == []
        assert os.environ["TRITON_CACHE_DIR"] == os.path.join(mine, "triton")
        patch.enable("fx_graph")  # later: the same directory
        with PatchCaches(registry=registry, switches="off"):  # nested: the same directory
            assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == mine
        assert os.path.isdir(mine)
        os.makedirs(os.path.join(mine, "fxgraph"))
    assert not os.path.exists(mine)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "users-own")
    assert "TRITON_CACHE_DIR" not in os.environ
    assert not (tmp_path / "users-own").exists()

    # The next one gets another path, under the same directory of the process; one whose
    # test never compiled leaves nothing to remove.
    with PatchCaches(registry=registry, switches="off"):
        other = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        assert other != mine
        assert os.path.dirname(other) == os.path.dirname(mine)
        assert not os.path.exists(other)
    assert not os.path.exists(other)
    assert os.listdir(os.path.dirname(mine)) == []

    # No directory set: none is left set (torch's cache_dir() sets the variable when unset).
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    with PatchCaches(registry=registry, switches="off"):
        cache_dir()
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ


def test_the_processs_cache_dir_base_goes_at_exit_and_not_with_a_forked_child(
    tmp_path: Any,
) -> None:
    code = (
        "import os, sys\n"
        "import torch\n"
        "from torch._inductor.runtime.cache_dir_utils import cache_dir\n"
        "from pytest_cachemock import PatchCaches\n"
        "with PatchCaches(switches='off'):\n"
        "    mine = cache_dir()\n"
        "base = os.path.dirname(mine)\n"
        "assert not os.path.exists(mine)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.exit(0)  # a child that leaves through atexit\n"
        "os.waitpid(pid, 0)\n"
        "assert os.path.isdir(base), 'the forked child removed it'\n"
        "print(base)\n"
    )
    base = _run_outside_the_project(code, tmp_path).strip()
    assert os.path.basename(base).startswith("cachemock-inductor-")
    assert not os.path.exists(base)


def test_a_fresh_cache_entered_before_and_left_before_the_patch_caches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh_cache() entered before a PatchCaches and left before it stops (blocks stopped
    out of order, as a unittest setUp/tearDown pair does): the variable ends as it was, and
    both directories are gone."""
    import os

    from torch._inductor.utils import fresh_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    fresh = fresh_cache()
    fresh.__enter__()
    theirs = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    patch = PatchCaches(registry=torch_registry(), switches="off").start()
    ours = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert ours != theirs
    fresh.__exit__(None, None, None)
    patch.stop()
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    assert not os.path.exists(theirs)
    assert not os.path.exists(ours)


def test_setup_turns_off_what_torchs_own_setup_does_and_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyTorch's suites rely on the local caches they did not turn off (test_pgo.py's local
    tests, under PatchCaches.setUp()), and on the cache directory they entered."""
    import os

    from torch._inductor import config

    from pytest_cachemock import _state

    monkeypatch.setattr(_state.current(), "registry", torch_registry())
    before, real, where = flags(), values(), os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    PatchCaches.setUp()
    try:
        assert [getattr(config, name) for name in FLAGS] == [False] * 5
        now = values()
        assert {k: v for k, v in now.items() if "fx_graph" not in k} == {
            k: v for k, v in real.items() if "fx_graph" not in k
        }
        assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == where
    finally:
        PatchCaches.tearDown()
    assert flags() == before
