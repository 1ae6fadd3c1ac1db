"""Backends: where a cache's encoded values live."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend
from .file import FileBackend
from .log import LogBackend
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .sqlite import SqliteBackend

__all__ = ["Backend", "FileBackend", "LogBackend", "MemoryBackend", "SqliteBackend"]


def __getattr__(name: str) -> Any:
    # sqlite3 takes about 5 ms to import: only when the backend is used.
    if name == "SqliteBackend":
        from .sqlite import SqliteBackend

        return SqliteBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
