"""The built-in ``torch`` profile: PyTorch Inductor's cache kinds, their targets and switches.

This module is imported only when the profile is used (``cachemock_profiles = torch``,
``--cachemock-profile=torch``, or a ``PatchCaches`` started after ``torch._inductor`` was
imported), and it imports torch only inside :func:`register_kinds`.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import importlib
import itertools
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Hashable
from typing import Any, Callable

from .._spots import _MISSING, Spots, Undo
from ..errors import _PROFILE_KINDS, CachemockWarning, KindConfigError
from ..kinds import Registry, Switch, Target
from ..mock import MockBackend
from ..patching import _add_library_counters

__all__ = [
    "FBCODE_TARGETS",
    "ConfigSpots",
    "LOCAL_SWITCHES",
    "PGO_JOB_ID",
    "SWITCHES",
    "TARGETS",
    "TorchCacheDir",
    "TorchConfigSwitch",
    "TorchJobIdSwitch",
    "TorchProfileWarning",
    "config_spots",
    "mock_backend_class",
    "mock_factory",
    "register_kinds",
    "torch_counters",
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

# Kind -> the torch config flags (``module:flag``) that ``enable(kind)`` turns on: the remote
# cache the kind mocks, and what torch needs besides it (the bundled autotune cache is skipped
# while the local one is off; the remote AOTAutograd cache bypasses itself unless an FX graph
# cache is on, and the remote one is mocked). Under ``switches="off"`` every one is off
# unless its kind is enabled.
SWITCHES: dict[str, tuple[str, ...]] = {
    "autotune_local": ("torch._inductor.config:autotune_local_cache",),
    "autotune_remote": ("torch._inductor.config:autotune_remote_cache",),
    "bundled_autotune": (
        "torch._inductor.config:bundled_autotune_remote_cache",
        "torch._inductor.config:autotune_local_cache",
    ),
    "fx_graph": ("torch._inductor.config:fx_graph_remote_cache",),
    "aot_autograd": (
        "torch._functorch.config:enable_remote_autograd_cache",
        "torch._inductor.config:fx_graph_remote_cache",
    ),
    "dynamo_pgo": ("torch._dynamo.config:automatic_dynamic_remote_pgo",),
}

# Kind -> its local, on-disk layer: not mocked, so off under ``switches="off"`` and left off
# by ``enable(kind)``; ``enable(kind, local=True)`` turns it on too (it then writes to the
# test's own cache directory, see TorchCacheDir).
LOCAL_SWITCHES: dict[str, tuple[str, ...]] = {
    "fx_graph": ("torch._inductor.config:fx_graph_cache",),
    "aot_autograd": ("torch._functorch.config:enable_autograd_cache",),
    "dynamo_pgo": ("torch._dynamo.config:automatic_dynamic_local_pgo",),
}

# The job id ``enable("dynamo_pgo")`` sets when none is set: torch reads and writes no profile,
# local or remote, without one. The mock's store is the test's own, so one name is enough.
PGO_JOB_ID = "cachemock"

# The kinds in the order they are declared: the one list, which the unknown-kind message also
# reads to name this profile (errors.py cannot import this module: it may import torch).
KIND_ORDER = _PROFILE_KINDS["torch"]

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
    prior state comes back, and the plugin can read the flag again after a test. A ``local``
    switch is a kind's on-disk layer: ``enable(kind)`` leaves it off, ``enable(kind,
    local=True)`` turns it on. A switch with ``in_setup=False`` is left alone by
    ``PatchCaches.setUp()``, which turns off only what torch's own ``setUp()`` does.
    """

    def __init__(
        self, config: Any, name: str, origin: str, *, local: bool = False, in_setup: bool = True
    ) -> None:
        try:
            getattr(config, name)
        except AttributeError:
            raise KindConfigError(
                f"{origin}: {getattr(config, '__name__', config)}.{name} does not exist"
            ) from None
        self.config = config
        self.name = name
        self.origin = origin
        self.local = local
        self.in_setup = in_setup
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


class TorchJobIdSwitch(TorchConfigSwitch):
    """``torch.compiler.config.job_id``: torch keys every PGO profile by it and reads or
    writes none without it. Turned on, it sets :data:`PGO_JOB_ID` when no job id is set (a
    test's own ``torch.compiler.config.patch(job_id=...)`` still wins); turned off, it leaves
    the job id alone."""

    in_setup = False

    def set(self, on: bool) -> Undo:
        if not on or getattr(self.config, self.name, None) is not None:
            return _nothing
        spots, name = self.spots, self.name
        prior = spots.read(name)
        setattr(self.config, name, PGO_JOB_ID)
        return (spots, name, prior, spots.read(name))


def _nothing() -> None:
    pass


# The directories TorchCacheDir handed out and has not removed yet.
_own_dirs: set[str] = set()
# The one directory of this process they are made in (made on the first test, removed at
# exit), and how many were handed out.
_base: list[str] = []
_numbers = itertools.count(1)


def _new_dir() -> str:
    """A path for a test's cache directory, not made: Inductor's ``cache_dir()`` makes it (and
    the base, were it gone) when torch first writes there. Most tests never do."""
    if not _base or not os.path.isdir(_base[0]):
        _base[:] = [tempfile.mkdtemp(prefix="cachemock-inductor-")]
        atexit.register(_remove_base, _base[0], os.getpid())
    return os.path.join(_base[0], str(next(_numbers)))


def _remove_base(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits through atexit
        shutil.rmtree(path, ignore_errors=True)


def _forget_compiles() -> None:
    """Drop what torch keeps in memory between compiles: dynamo's compiled code and PGO
    profile (``torch._dynamo.reset()``), and the in-memory caches ``fresh_cache()`` clears
    (``clear_caches()``: the paths and lookups kept for the current cache directory)."""
    import torch._dynamo
    from torch._inductor import utils

    torch._dynamo.reset()
    clear = getattr(utils, "clear_caches", None) or getattr(utils, "clear_inductor_caches", None)
    if clear is not None:
        clear()


class TorchCacheDir(Switch):
    """The test's own Inductor cache directory (``TORCHINDUCTOR_CACHE_DIR``, and
    ``TRITON_CACHE_DIR`` under it), on or off alike: every local layer torch writes (FX
    graphs, AOTAutograd entries, PGO profiles, generated code and kernels) goes there, and the
    user's own directory is never read or written.

    ``set()`` points both variables at a new path under one directory of the process and drops
    what torch keeps in memory between compiles; the directory itself is made by Inductor when
    it first writes (``cache_dir()``), so a test that compiles nothing costs no directory. The
    undo (a callable) drops torch's state again, puts each variable back unless something else
    changed it since, and removes the directory if it was made. While one is in place (nested,
    or ``enable()`` after the start) it is kept. The process's directory goes at exit.
    """

    origin = "profile 'torch'"
    # PatchCaches.setUp() (the drop-in for torch's) leaves the directory as the suite set it
    # up (PyTorch's suites enter fresh_cache() themselves); a running PatchCaches makes one.
    in_setup = False

    @property
    def key(self) -> Hashable:
        return ("torch", "TORCHINDUCTOR_CACHE_DIR")

    def set(self, on: bool) -> Undo:
        if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in _own_dirs:
            return _nothing
        path = _new_dir()
        values = {"TORCHINDUCTOR_CACHE_DIR": path, "TRITON_CACHE_DIR": os.path.join(path, "triton")}
        saved = {name: os.environ.get(name) for name in values}
        _own_dirs.add(path)
        os.environ.update(values)
        try:
            _forget_compiles()
        except BaseException:
            _put_back(path, values, saved)
            raise

        def undo() -> None:
            try:
                _forget_compiles()
            finally:
                _put_back(path, values, saved)

        return undo

    def __repr__(self) -> str:
        return "<Switch env:TORCHINDUCTOR_CACHE_DIR (the test's own directory)>"


def _put_back(path: str, values: dict[str, str], saved: dict[str, str | None]) -> None:
    for name, ours in values.items():
        if os.environ.get(name) != ours:
            continue  # changed since (a fresh_cache() entered before and left after): kept
        old = saved[name]
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
    _own_dirs.discard(path)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


_CACHE_DIR = TorchCacheDir()


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


def _config_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _switches(kind: str, version: str, where: str) -> list[Switch]:
    """The switches of ``kind``: the cache directory, its flags, its local layer's flags."""
    found: list[Switch] = [_CACHE_DIR]
    refs = [(ref, False) for ref in SWITCHES.get(kind, ())]
    refs += [(ref, True) for ref in LOCAL_SWITCHES.get(kind, ())]
    for ref, local in refs:
        module_name, _, flag = ref.partition(":")
        config = _config_module(module_name)
        if config is not None and hasattr(config, flag):
            # torch's own PatchCaches.setUp() turns off the Inductor flags, and no others.
            in_setup = module_name == "torch._inductor.config"
            found.append(TorchConfigSwitch(config, flag, where, local=local, in_setup=in_setup))
        else:
            _report(kind, version, f"{module_name} has no flag {flag!r}")
    if kind == "dynamo_pgo":
        compiler_config = _config_module("torch.compiler.config")
        if compiler_config is not None and hasattr(compiler_config, "job_id"):
            found.append(TorchJobIdSwitch(compiler_config, "job_id", where))
    return found


def torch_counters() -> dict[str, dict[str, int]]:
    """torch's own per-name counters (``torch._inductor.remote_cache.cache_stats``), since the
    process started: per cache class and per backend name, hit, miss, put and exception."""
    module = sys.modules.get("torch._inductor.remote_cache")
    found = getattr(getattr(module, "cache_stats", None), "_stats", None)
    if not isinstance(found, dict):
        return {}
    return {
        str(name): {field: int(getattr(stat, field, 0)) for field in _COUNTER_FIELDS}
        for name, stat in dict(found).items()  # a copy: torch may add a name meanwhile
    }


_COUNTER_FIELDS = ("hit", "miss", "put", "exception")


def register_kinds(registry: Registry, *, origin: str) -> None:
    """Declare Inductor's cache kinds in ``registry`` from what the installed torch has."""
    try:
        import torch
        import torch._inductor.remote_cache
        from torch._inductor import config
    except ImportError as exc:
        raise KindConfigError(
            f"{origin}: the 'torch' profile needs PyTorch, which cannot be imported ({exc}); "
            "pip install torch, or drop 'torch' from cachemock_profiles / --cachemock-profile"
        ) from None
    _add_library_counters("torch:", torch_counters)
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
        registry.add(
            kind,
            targets=[Target.override(c, where, make=mock_factory) for c in classes],
            switches=_switches(kind, version, where),
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
