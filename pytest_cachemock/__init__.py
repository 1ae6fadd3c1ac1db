"""pytest-cachemock: make caching testable.

A small typed cache toolkit (backends, serdes, the ``RemoteCache`` controller, library-wide
``cache_stats``, memoizers) and a pytest plugin that mocks its caches per cache kind.

The names below are imported on first use, so loading the plugin stays cheap for test suites
that never touch a cache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._expect import Expect, at_least, at_most
    from ._oplog import CacheLog, CacheOp
    from .backends import Backend, FileBackend, LogBackend, MemoryBackend
    from .backends.redis import RedisBackend, RedisUnavailableWarning
    from .backends.sqlite import SqliteBackend
    from .cache import RemoteCache
    from .counters import cache_stats
    from .errors import (
        CacheError,
        CachemockWarning,
        FileLockTimeoutError,
        ForbiddenPutError,
        ForeignTrafficWarning,
        KeyCollisionError,
        KeyEncodingError,
        KeyNoteWarning,
        KeyPicklingError,
        KindConfigError,
        LockTimeoutError,
        MemoizerWarning,
        NotMockedWarning,
        ReplayMissError,
        StaleHitError,
        SystemError,
        UnknownKindError,
        UnknownKindUsageError,
        UserError,
        ValueDecodingError,
        ValueEncodingError,
        ValuePicklingError,
        ValueUnPicklingError,
    )
    from .kinds import Registry
    from .memoize import Memoizer
    from .mock import MockBackend
    from .patching import PatchCaches
    from .serde import JsonSerde, PassthroughSerde, PickleSerde, Serde, SignedPickleSerde
    from .stats import GlobalStats, Stats, global_stats

__version__ = "0.1.0.dev0"

_WHERE = {
    "CacheLog": "_oplog",
    "CacheOp": "_oplog",
    "Expect": "_expect",
    "ForbiddenPutError": "errors",
    "at_least": "_expect",
    "at_most": "_expect",
    "Backend": "backends",
    "FileBackend": "backends",
    "LogBackend": "backends",
    "MemoryBackend": "backends",
    "SqliteBackend": "backends.sqlite",
    "RedisBackend": "backends.redis",
    "RedisUnavailableWarning": "backends.redis",
    "RemoteCache": "cache",
    "cache_stats": "counters",
    "CacheError": "errors",
    "CachemockWarning": "errors",
    "MemoizerWarning": "errors",
    "NotMockedWarning": "errors",
    "FileLockTimeoutError": "errors",
    "ForeignTrafficWarning": "errors",
    "KeyCollisionError": "errors",
    "KeyEncodingError": "errors",
    "KeyNoteWarning": "errors",
    "KeyPicklingError": "errors",
    "KindConfigError": "errors",
    "LockTimeoutError": "errors",
    "ReplayMissError": "errors",
    "StaleHitError": "errors",
    "SystemError": "errors",
    "UnknownKindError": "errors",
    "UnknownKindUsageError": "errors",
    "UserError": "errors",
    "ValueDecodingError": "errors",
    "ValueEncodingError": "errors",
    "ValuePicklingError": "errors",
    "ValueUnPicklingError": "errors",
    "Registry": "kinds",
    "Memoizer": "memoize",
    "MockBackend": "mock",
    "PatchCaches": "patching",
    "JsonSerde": "serde",
    "PassthroughSerde": "serde",
    "PickleSerde": "serde",
    "Serde": "serde",
    "SignedPickleSerde": "serde",
    "GlobalStats": "stats",
    "Stats": "stats",
    "global_stats": "stats",
}

__all__ = [
    "Backend",
    "CacheError",
    "CacheLog",
    "CacheOp",
    "CachemockWarning",
    "Expect",
    "FileBackend",
    "FileLockTimeoutError",
    "ForbiddenPutError",
    "ForeignTrafficWarning",
    "GlobalStats",
    "JsonSerde",
    "KeyCollisionError",
    "KeyEncodingError",
    "KeyNoteWarning",
    "KeyPicklingError",
    "KindConfigError",
    "LockTimeoutError",
    "LogBackend",
    "Memoizer",
    "MemoizerWarning",
    "MemoryBackend",
    "MockBackend",
    "NotMockedWarning",
    "PassthroughSerde",
    "PatchCaches",
    "PickleSerde",
    "RedisBackend",
    "RedisUnavailableWarning",
    "Registry",
    "RemoteCache",
    "ReplayMissError",
    "StaleHitError",
    "Serde",
    "SignedPickleSerde",
    "SqliteBackend",
    "Stats",
    "SystemError",
    "UnknownKindError",
    "UnknownKindUsageError",
    "UserError",
    "ValueDecodingError",
    "ValueEncodingError",
    "ValuePicklingError",
    "ValueUnPicklingError",
    "at_least",
    "at_most",
    "cache_stats",
    "global_stats",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_cachemock' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
