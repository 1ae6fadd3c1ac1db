"""The kinds registry as a unit: what discovery keeps, and what it lets go."""

from __future__ import annotations

import gc

import pytest

from pytest_cachemock import KindConfigError, MemoryBackend, RemoteCache
from pytest_cachemock.kinds import Registry
from pytest_cachemock.patching import default_registry


def test_discovered_class_is_not_kept_alive_by_the_registry() -> None:
    cls = type("Gone", (RemoteCache,), {"kind": "gone_soon"})
    assert "gone_soon" in default_registry.names()
    del cls
    gc.collect()
    assert "gone_soon" not in default_registry.names()


class _Settings:
    shared_cache = True


def test_a_flag_shared_by_two_kinds_is_on_when_either_is_enabled() -> None:
    from pytest_cachemock import PatchCaches
    from pytest_cachemock.kinds import Registry

    settings = _Settings()
    for enabled in ("first", "second"):
        registry = Registry()
        registry.add("first", switches=[(settings, "shared_cache")], origin="test")
        registry.add("second", switches=[(settings, "shared_cache")], origin="test")
        with PatchCaches(registry=registry, switches="off"):
            assert settings.shared_cache is False
        with PatchCaches(registry=registry, enable=[enabled], switches="off"):
            assert settings.shared_cache is True  # whichever kind comes last in the registry
        assert settings.shared_cache is True  # restored
        assert "shared_cache" not in vars(settings)


class _Client:
    backend = MemoryBackend()
    remote_flag: bool | None = None  # unset, as torch's Optional[bool] remote-cache flags
    use_cache = True
    enabled = 1
    hosts = ("a", "b")


def test_targets_and_switches_take_one_reference_or_a_list() -> None:
    here = f"{__name__}:_Client"
    registry = Registry()
    one = registry.add(
        "one_ref", targets=f"{here}.backend", switches=f"{here}.use_cache", origin="test"
    )
    pair = registry.add(
        "one_pair", targets=(_Client, "backend"), switches=(_Client, "use_cache"), origin="test"
    )
    listed = registry.add(
        "listed", targets=[f"{here}.backend"], switches=[f"{here}.use_cache", "env:X"], origin="t"
    )
    for kind in (one, pair):
        assert [(t.obj, t.attr) for t in kind.targets] == [(_Client, "backend")]
        assert [s.spot() for s in kind.switches] == [(_Client, "use_cache")]
    assert len(listed.targets) == 1
    assert len(listed.switches) == 2
    env = registry.add("one_env", switches="env:ONE_ENV", origin="test")
    assert [s.key for s in env.switches] == [("env", "ONE_ENV")]


def test_a_switch_may_hold_none_or_an_int_but_not_a_tuple() -> None:
    registry = Registry()
    registry.add("unset_flag", switches=[(_Client, "remote_flag")], origin="test")
    registry.add("int_flag", switches=[(_Client, "enabled")], origin="test")
    with pytest.raises(KindConfigError, match=r"^test: switch .*_Client.hosts holds a tuple, not"):
        registry.add("hosts", switches=[(_Client, "hosts")], origin="test")
