"""The built-in ``torch`` profile: PyTorch Inductor's cache kinds, their targets and switches.

This module is imported only when the profile is used (``cachemock_profiles = torch``,
``--cachemock-profile=torch``, or a ``PatchCaches`` started after ``torch._inductor`` was
imported), and it imports torch only inside :func:`register_kinds`.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import warnings
from collections.abc import Hashable
from typing import Any, Callable

from .._spots import _MISSING, Spots, Undo
from ..errors import CachemockWarning, KindConfigError
from ..kinds import Registry, Switch, Target
from ..mock import MockBackend

__all__ = [
    "FBCODE_TARGETS",
    "ConfigSpots",
    "SWITCHES",
    "TARGETS",
    "TorchConfigSwitch",
    "TorchProfileWarning",
    "config_spots",
    "mock_backend_class",
    "mock_factory",
    "register_kinds",
]

# Kind -> the RemoteCache classes whose ``backend_override_cls`` selects its backend, newest
# layout first. Every class found is patched; a kind with none found is reported once.
TARGETS: dict[str, tuple[str, ...]] = {
    "autotune_local": (
        "torch._inductor.remote_cache:LocalAutotuneCache",  # 2.10 and later
        "torch._inductor.runtime.autotune_cache:LocalAutotuneCache",  # before
    ),
    "autotune_remote": ("torch._inductor.remote_cache:RemoteAutotuneCache",),
    "bundled_autotune": ("torch._inductor.remote_cache:RemoteBundledAutotuneCache",),
    "fx_graph": ("torch._inductor.remote_cache:RemoteFxGraphCache",),
    "aot_autograd": ("torch._inductor.remote_cache:RemoteAOTAutogradCache",),
    "dynamo_pgo": ("torch._inductor.remote_cache:RemoteDynamoPGOCache",),
}

# Meta-internal builds (``config.is_fbcode()``) route the same kinds through more classes, and
# have the only ``triton`` target; open-source torch has none of these, which is not reported.
FBCODE_TARGETS: dict[str, tuple[str, ...]] = {
    "autotune_remote": ("torch._inductor.fb.remote_cache:FbRemoteAutotuneCache",),
    "bundled_autotune": ("torch._inductor.fb.remote_cache:FbRemoteBundledAutotuneCache",),
    "fx_graph": ("torch._inductor.fb.remote_cache:FbRemoteFxGraphCache",),
    "triton": ("triton.fb.fb_memcache:FbMemcacheRemoteKernelCache",),
    "aot_autograd": ("torch._inductor.fb.remote_cache:FbRemoteAOTAutogradCache",),
    "dynamo_pgo": ("torch._inductor.fb.remote_cache:FbRemoteDynamoPGOCache",),
}

# Kind -> the ``torch._inductor.config`` flags that ``enable(kind)`` turns on. These are the
# five flags torch's ``PatchCaches.setUp()`` turns off; every one is off in a test that uses
# the plugin. The bundled autotune cache also needs the local one: torch skips it otherwise.
# aot_autograd and dynamo_pgo have no inductor flag (torch._functorch.config and
# torch._dynamo.config switch them, and torch's own mock leaves those alone too).
SWITCHES: dict[str, tuple[str, ...]] = {
    "autotune_local": ("autotune_local_cache",),
    "autotune_remote": ("autotune_remote_cache",),
    "bundled_autotune": ("bundled_autotune_remote_cache", "autotune_local_cache"),
    "fx_graph": ("fx_graph_cache", "fx_graph_remote_cache"),
}

KIND_ORDER = (
    "autotune_local",
    "autotune_remote",
    "bundled_autotune",
    "fx_graph",
    "triton",
    "aot_autograd",
    "dynamo_pgo",
)

# What was already reported (kind, what, torch version): reloading the profile stays quiet.
_reported: set[tuple[str, str, str]] = set()


class TorchProfileWarning(CachemockWarning):
    """The installed torch lacks a class the ``torch`` profile patches."""


# -- the mock backend handed to torch ----------------------------------------------------------


@functools.cache
def mock_backend_class() -> type[Any]:
    """``TorchMockBackend``: torch's ``RemoteCacheBackend`` over a :class:`MockBackend`.

    torch's base class counts every get and put into torch's own ``cache_stats`` (under the
    kind name, as torch's mock does); the :class:`MockBackend` it delegates to keeps what torch
    stores (the encoded bytes, under the exact key) in the current store, counts puts, hits,
    misses and errors there, and raises the faults armed with ``patch_caches.fail()``.
    """
    from torch._inductor.remote_cache import RemoteCacheBackend

    class TorchMockBackend(RemoteCacheBackend[Any]):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self._name = kind
            self.kind = kind
            self.mock = MockBackend(kind)

        def _get(self, key: str) -> Any:
            return self.mock.get(key)

        def _put(self, key: str, data: Any) -> None:
            self.mock.put(key, data)

        def __repr__(self) -> str:
            return f"<TorchMockBackend kind={self.kind!r}>"

    return TorchMockBackend


@functools.cache
def mock_factory(kind: str) -> Callable[[], Any]:
    """A ``backend_override_cls`` for torch: each call makes a ``TorchMockBackend`` of ``kind``."""
    backend_class = mock_backend_class()

    def factory() -> Any:
        return backend_class(kind)

    factory.__qualname__ = factory.__name__ = f"TorchMockBackend.with_name({kind!r})"
    factory.cachemock_kind = kind  # type: ignore[attr-defined]
    return factory


# -- switches on torch's config modules ----------------------------------------------------------


class ConfigSpots(Spots):
    """The flags of one torch config module, as the plugin reads and writes them.

    torch records an assigned flag as a *user override* (per thread) and otherwise reads its
    default or environment value; ``delattr`` hides a flag. A flag's state is the raw pair
    (override, hidden), so putting one back leaves no override where there was none (and
    ``config.save_config()`` and the cache keys that hash the config see what they saw
    before), a prior override its value, a hidden flag hidden. Config modules without these
    entries (older or foreign ones) are read and written with getattr/setattr.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        entries = getattr(config, "_config", None)
        self._entries: dict[str, Any] = entries if isinstance(entries, dict) else {}

    def _entry(self, name: str) -> Any:
        entry = self._entries.get(name)
        return entry if hasattr(entry, "user_override") else None

    def read(self, name: str) -> Any:
        entry = self._entry(name)
        if entry is None:
            return getattr(self.config, name, _MISSING)
        raw = entry.user_override
        value = raw.get() if isinstance(raw, contextvars.ContextVar) else raw
        return (value, bool(getattr(entry, "hide", False)))

    def write(self, name: str, state: Any) -> None:
        entry = self._entry(name)
        if entry is None:
            if state is _MISSING:
                delattr(self.config, name)
            else:
                setattr(self.config, name, state)
            return
        value, hidden = state
        # The public path first: it marks torch's config hash and dict caches stale.
        setattr(self.config, name, False)
        raw = entry.user_override
        if isinstance(raw, contextvars.ContextVar):
            raw.set(value)
        else:
            entry.user_override = value
        if hasattr(entry, "hide"):
            entry.hide = hidden

    def same(self, now: Any, state: Any) -> bool:
        if isinstance(now, tuple) and isinstance(state, tuple):
            return now[0] is state[0] and now[1] == state[1]
        return now is state

    def ours(self, now: Any, written: list[Any]) -> bool:
        # A flag hidden after the plugin switched it was deleted by a restore that saw no
        # value of its own: pytest's monkeypatch reads the module's __dict__, where torch keeps
        # no flag, so its undo deletes it. No torch code can read a hidden flag.
        if isinstance(now, tuple) and now[1] and not all(s[1] for s in written):
            return True
        return super().ours(now, written)

    def __repr__(self) -> str:
        return f"<ConfigSpots {getattr(self.config, '__name__', self.config)}>"


# One per config module, so every switch of a module (and the plugin's checks) share its spots.
_spots: dict[int, ConfigSpots] = {}


def config_spots(config: Any) -> ConfigSpots:
    """The :class:`ConfigSpots` of a torch config module (one per module)."""
    found = _spots.get(id(config))
    if found is None or found.config is not config:
        found = _spots[id(config)] = ConfigSpots(config)
    return found


class TorchConfigSwitch(Switch):
    """A flag of a torch config module (``torch._inductor.config``), restored exactly.

    The undo is ``(spots, name, old, new)`` over the module's :class:`ConfigSpots`: the raw
    prior state comes back, and the plugin can read the flag again after a test.
    """

    def __init__(self, config: Any, name: str, origin: str) -> None:
        try:
            getattr(config, name)
        except AttributeError:
            raise KindConfigError(
                f"{origin}: {getattr(config, '__name__', config)}.{name} does not exist"
            ) from None
        self.config = config
        self.name = name
        self.origin = origin
        self.spots = config_spots(config)

    @property
    def key(self) -> Hashable:
        return (id(self.config), self.name)

    def set(self, on: bool) -> Undo:
        spots, name = self.spots, self.name
        prior = spots.read(name)
        setattr(self.config, name, on)
        return (spots, name, prior, spots.read(name))

    def spot(self) -> tuple[Any, str] | None:
        return (self.spots, self.name)

    def __repr__(self) -> str:
        return f"<Switch {getattr(self.config, '__name__', self.config)}.{self.name}>"


# -- the profile -------------------------------------------------------------------------------


def _find(ref: str) -> Any:
    """The class ``module:Name`` names, or None when the installed torch does not have it."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, attr, None)
    return found if hasattr(found, "backend_override_cls") else None


def register_kinds(registry: Registry, *, origin: str) -> None:
    """Declare Inductor's cache kinds in ``registry`` from what the installed torch has."""
    try:
        import torch
        from torch._inductor import config
    except ImportError as exc:
        raise KindConfigError(
            f"{origin}: the 'torch' profile needs PyTorch, which cannot be imported ({exc}); "
            "pip install torch, or drop 'torch' from cachemock_profiles / --cachemock-profile"
        ) from None
    version = str(torch.__version__)
    fbcode = bool(getattr(config, "is_fbcode", lambda: False)())
    where = f"{origin} (profile 'torch', torch {version})"
    for kind in KIND_ORDER:
        refs = TARGETS.get(kind, ())
        extra = FBCODE_TARGETS.get(kind, ()) if fbcode else ()
        classes: list[Any] = []
        for ref in (*refs, *extra):
            found = _find(ref)
            if found is not None and all(found is not c for c in classes):
                classes.append(found)
        if not classes and not refs:
            continue  # triton outside fbcode: torch has no target for it
        if not classes:
            _report(kind, version, f"none of {', '.join(refs)} exists, so nothing is mocked")
        switches: list[Switch] = []
        for flag in SWITCHES.get(kind, ()):
            if hasattr(config, flag):
                switches.append(TorchConfigSwitch(config, flag, where))
            else:
                _report(kind, version, f"torch._inductor.config has no flag {flag!r}")
        registry.add(
            kind,
            targets=[Target.override(c, where, make=mock_factory) for c in classes],
            switches=switches,
            origin=where,
        )


def _report(kind: str, version: str, what: str) -> None:
    if (kind, what, version) in _reported:
        return
    _reported.add((kind, what, version))
    warnings.warn(
        f"cachemock: torch {version}: {what}; cache kind {kind!r} is registered without it",
        TorchProfileWarning,
        stacklevel=3,
    )
