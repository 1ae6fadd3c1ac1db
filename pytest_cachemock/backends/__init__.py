"""Backends: where a cache's encoded values live."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backend
from .file import FileBackend
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .log import LogBackend
    from .sqlite import SqliteBackend

__all__ = ["Backend", "FileBackend", "LogBackend", "MemoryBackend", "SqliteBackend"]

# Imported when first used, so that loading the plugin does not pay for them (sqlite3 alone
# takes about 5 ms to import).
_LAZY = {"LogBackend": ".log", "SqliteBackend": ".sqlite"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
