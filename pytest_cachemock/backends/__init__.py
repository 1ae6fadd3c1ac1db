"""Backends: where a cache's encoded values live."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Backend
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .file import FileBackend
    from .log import LogBackend
    from .redis import RedisBackend
    from .sqlite import SqliteBackend

__all__ = ["Backend", "FileBackend", "LogBackend", "MemoryBackend", "RedisBackend", "SqliteBackend"]

# Imported when first used, so that loading the plugin does not pay for them (sqlite3 alone
# takes about 5 ms to import, the file backend's module about 4; redis-py is imported when the
# first RedisBackend is made).
_LAZY = {
    "FileBackend": ".file",
    "LogBackend": ".log",
    "RedisBackend": ".redis",
    "SqliteBackend": ".sqlite",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
