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
