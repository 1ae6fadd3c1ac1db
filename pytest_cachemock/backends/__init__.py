"""Backends: where a cache's encoded values live."""

from .base import Backend
from .file import FileBackend
from .memory import MemoryBackend

__all__ = ["Backend", "FileBackend", "MemoryBackend"]
