"""pytest-cachemock: make caching testable.

A small typed cache toolkit (backends, serdes, the ``RemoteCache`` controller, library-wide
``cache_stats``) and a pytest plugin that mocks its caches per cache kind.
"""

from .backends import Backend, FileBackend, MemoryBackend
from .cache import RemoteCache
from .counters import cache_stats
from .errors import (
    CacheError,
    FileLockTimeoutError,
    KeyEncodingError,
    KeyPicklingError,
    LockTimeoutError,
    ReplayMissError,
    SystemError,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
    ValuePicklingError,
    ValueUnPicklingError,
)
from .memoize import Memoizer
from .mock import MockBackend
from .patching import PatchCaches
from .serde import JsonSerde, PassthroughSerde, PickleSerde, Serde, SignedPickleSerde
from .stats import Stats, global_stats

__version__ = "0.1.0.dev0"

__all__ = [
    "Backend",
    "CacheError",
    "FileBackend",
    "FileLockTimeoutError",
    "JsonSerde",
    "KeyEncodingError",
    "KeyPicklingError",
    "LockTimeoutError",
    "Memoizer",
    "MemoryBackend",
    "MockBackend",
    "PassthroughSerde",
    "PatchCaches",
    "PickleSerde",
    "RemoteCache",
    "ReplayMissError",
    "Serde",
    "SignedPickleSerde",
    "Stats",
    "SystemError",
    "UserError",
    "ValueDecodingError",
    "ValueEncodingError",
    "ValuePicklingError",
    "ValueUnPicklingError",
    "cache_stats",
    "global_stats",
]
