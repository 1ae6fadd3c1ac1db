"""The live state ``PatchCaches`` and ``global_stats`` read: the registry of kinds, and who hears
of each stop.

A :class:`Scope` holds both. Outside pytest (unittest, a script) there is one for the process;
it declares the kinds of the pytest configuration file when first used (_inifiles). Each
pytest session makes its own in ``pytest_configure``, keeps it in ``config.stash`` and enters
it here; it leaves it at ``pytest_unconfigure``. Code that has no ``config`` at hand (a
bare ``PatchCaches()``, ``global_stats``) uses the newest scope entered and not left. A nested
session (pytester's in-process run) enters its own and leaves exactly that one, in whatever
order the sessions end, so it cannot take the outer session's kinds with it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from . import _inifiles
from .kinds import Registry

if TYPE_CHECKING:
    from .stats import Stats

Listener = Callable[[Mapping[str, "Stats"]], None]


class Scope:
    """The kinds a ``PatchCaches()`` without a registry mocks, and the listeners of its stop."""

    __slots__ = ("epoch", "listeners", "registry")

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        # Called with the stats of each kind when a PatchCaches of this scope stops.
        self.listeners: list[Listener] = []
        # Which test is running: the plugin adds one as each test sets up, so a store a
        # PatchCaches started in an earlier test is not taken for this test's (global_stats
        # warns, see stats._check_mocked). Outside pytest it stays 0.
        self.epoch = 0

    def __repr__(self) -> str:
        return f"<cachemock scope kinds={self.registry.names()}>"


PROCESS = Scope()  # outside pytest
# Every PatchCaches started and not stopped, oldest first (of any scope; under patching's lock).
running: list[Any] = []
_entered: list[Scope] = []  # the scopes of running pytest sessions, oldest first
_lock = threading.Lock()


def current() -> Scope:
    """The newest scope entered and not left; the process's when none is.

    The process's registry declares the kinds of the pytest configuration file the first time
    it is returned (see _inifiles): a plain unittest run knows them too.
    """
    entered = _entered
    if entered:
        return entered[-1]
    _inifiles.read_once(PROCESS.registry)
    return PROCESS


def enter(scope: Scope) -> None:
    with _lock:
        _entered.append(scope)


def leave(scope: Scope) -> None:
    """Remove ``scope`` (only it: the others stay, whichever ended first)."""
    with _lock:
        for i in range(len(_entered) - 1, -1, -1):
            if _entered[i] is scope:
                del _entered[i]
                return
