"""The kinds registry as a unit: what discovery keeps, and what it lets go."""

from __future__ import annotations

import gc

from pytest_cachemock import RemoteCache
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
