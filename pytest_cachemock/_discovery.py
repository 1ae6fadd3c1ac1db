"""Where auto-discovered cache kinds are noted: classes and objects that declare a ``kind``.

``RemoteCache`` subclasses (and memoizers) call :func:`register` when they are defined; the
plugin reads :func:`discovered` when it installs mocks. References are weak, so a class that
goes away (a test module's, say) drops out by itself.
"""

from __future__ import annotations

import keyword
import threading
import weakref
from typing import Any, Callable

__all__ = ["check_kind_name", "discovered", "on_register", "register", "version"]

_lock = threading.Lock()
_targets: list[tuple[str, weakref.ref[Any]]] = []
_version = 0
_listeners: list[Callable[[str, Any], None]] = []


def check_kind_name(kind: object, where: str) -> str:
    """``kind`` if it is a valid kind name (a Python identifier), else a clear error."""
    if not isinstance(kind, str) or not kind.isidentifier() or keyword.iskeyword(kind):
        raise ValueError(
            f"{where} = {kind!r} is not a valid cache kind name: use a Python identifier such "
            "as 'sessions' or 'fx_graph' (it becomes an attribute of global_stats)"
        )
    return kind


def register(kind: str, target: Any) -> None:
    """Note that ``target`` (a class or object with ``backend_override_cls``) is of ``kind``,
    and tell the listeners (the running ``PatchCaches`` mock it at once)."""
    global _version
    with _lock:
        _targets.append((kind, weakref.ref(target, _dropped)))
        _version += 1
    for listener in _listeners:
        listener(kind, target)


def on_register(listener: Callable[[str, Any], None]) -> None:
    """Call ``listener(kind, target)`` after each registration, in the registering thread."""
    _listeners.append(listener)


def _dropped(_ref: weakref.ref[Any]) -> None:
    global _version
    _version += 1


def version() -> int:
    """Changes whenever a target is registered or goes away."""
    return _version


def discovered() -> list[tuple[str, Any]]:
    """The live (kind, target) pairs, in registration order."""
    out: list[tuple[str, Any]] = []
    with _lock:
        alive = []
        for kind, ref in _targets:
            target = ref()
            if target is not None:
                alive.append((kind, ref))
                out.append((kind, target))
        _targets[:] = alive
    return out
