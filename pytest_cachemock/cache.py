"""The cache controller: a serde and a backend, with namespaced, versioned keys.

``RemoteCache.backend_override_cls`` swaps the backend of every instance of one class (the
seed's convention, and what the plugin patches). It is read each time the cache is used, so
a cache object created at import time is mocked as well as one created inside a test.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, ClassVar, Generic, Optional, TypeVar

from . import _discovery as discovery
from . import _verify
from .backends.base import Backend, not_a_backend
from .backends.memory import MemoryBackend
from .counters import cache_stats
from .errors import UserError
from .serde import JsonSerde, Serde, decode_for, encode_for

__all__ = ["RemoteCache", "cache_stats"]

T = TypeVar("T")
log = logging.getLogger("pytest_cachemock")
# True while verify mode runs in any test (_verify.follow keeps it so): the hit paths test it.
_verifying = False
_verify.follow(globals())

BackendFactory = Callable[[], Backend[Any]]


class RemoteCache(Generic[T]):
    """A typed cache: ``get(key) -> T | None`` and ``put(key, value)``.

    Keys are strings, stored as ``"{namespace}::{key}:v{version}"`` (``:`` and ``%`` in the
    namespace written ``%3A`` and ``%25``, so caches sharing a backend never read each other's
    entries, whatever their namespaces and keys); bump ``version`` when the
    shape of stored values changes, and old entries stop matching. ``serde`` defaults to
    :class:`JsonSerde`; ``backend`` to a fresh :class:`MemoryBackend`.

    A subclass may declare ``kind = "name"``: the pytest plugin then mocks it as that cache
    kind with no configuration.
    """

    backend_override_cls: ClassVar[Optional[BackendFactory]] = None
    kind: ClassVar[Optional[str]] = None
    # Every live instance, weakly: PatchCaches.seed() asks the caches of a kind whether they
    # could read what is seeded (their serde, their backend's value contract). Reached through
    # a class of the kind, so a second import of this module (pytester) finds the right set.
    _live_instances: ClassVar[weakref.WeakSet[RemoteCache[Any]]] = weakref.WeakSet()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            discovery.check_kind_name(kind, f"{cls.__module__}.{cls.__qualname__}.kind")
            discovery.register(kind, cls)

    def __init__(
        self,
        backend: Backend[Any] | None = None,
        serde: Serde[T, Any] | None = None,
        *,
        namespace: str | None = None,
        version: int = 1,
    ) -> None:
        refused = not_a_backend(type(self).__name__, backend)
        if refused is not None:
            raise refused
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise UserError(f"version must be an int >= 0, got {version!r}")
        if namespace is None:
            namespace = type(self).kind or type(self).__qualname__
        if not isinstance(namespace, str) or not namespace:
            raise UserError(f"namespace must be a non-empty str, got {namespace!r}")
        self._backend: Backend[Any] = backend if backend is not None else MemoryBackend()
        self.serde: Serde[T, Any] = serde if serde is not None else JsonSerde()
        self.namespace = namespace
        self.version = version
        # ':' and '%' in a namespace are escaped, so the first '::' always ends it and no
        # (namespace, key) pair makes the same full key as another.
        self._prefix = namespace.replace("%", "%25").replace(":", "%3A") + "::"
        self._suffix = f":v{version}"
        self._counters = cache_stats.counters(type(self).__name__)
        self._override_factory: BackendFactory | None = None
        self._override: Backend[Any] | None = None
        RemoteCache._live_instances.add(self)

    @property
    def backend(self) -> Backend[Any]:
        """The backend in use now: the class's override when one is set, else the real one."""
        factory = type(self).backend_override_cls
        if factory is None:
            return self._backend
        if factory is not self._override_factory or self._override is None:
            made = factory()
            # The override learns what it replaces: a mock keeps a bytes-only store's contract.
            stand_in = getattr(made, "stand_in_for", None)
            self._override = made if stand_in is None else stand_in(self._backend)
            self._override_factory = factory
        return self._override

    @property
    def real_backend(self) -> Backend[Any]:
        """The backend this cache was built with, whatever the override."""
        return self._backend

    def key_for(self, key: str) -> str:
        """The key handed to the backend for ``key``."""
        if type(key) is not str:
            raise UserError(
                f"{type(self).__name__} keys are str, got a {type(key).__qualname__} ({key!r}); "
                "format it into a string first"
            )
        return self._prefix + key + self._suffix

    def get(self, key: str) -> T | None:
        """The value stored for ``key``, or None on a miss.

        A stored value that fails to decode counts as an exception and a miss, and is logged.
        Errors of the backend are counted and re-raised.
        """
        full = self.key_for(key)
        counters = self._counters
        if _verifying and _verify.bypassing():  # inside a verify mode recompute: no cache
            return None
        try:
            stored = self.backend.get(full)
        except Exception:
            next(counters.exception)
            raise
        if stored is None:
            next(counters.miss)
            return None
        try:
            value = decode_for(self.serde, full, stored)
        except Exception as exc:
            next(counters.exception)
            next(counters.miss)
            log.warning(
                "%s: cannot decode the stored value of key %r (%s); treated as a miss",
                type(self).__name__,
                full,
                exc,
            )
            return None
        next(counters.hit)
        if _verifying:  # verify mode is on in some test: check this hit if it is verified
            _verify.remote_hit(self, key, full, value)
        return value

    def _encoded(self, key: str, value: T) -> tuple[str, Any]:
        full = self.key_for(key)
        if value is None:
            raise UserError(
                f"{type(self).__name__}.put({key!r}, None): None means a miss and cannot be "
                "stored; store another value (an empty dict, a sentinel) or skip the put"
            )
        return full, encode_for(self.serde, full, value)

    def put(self, key: str, value: T) -> None:
        """Store ``value`` for ``key``; encoding and backend errors are counted and re-raised."""
        counters = self._counters
        if _verifying and _verify.bypassing():
            return
        try:
            full, stored = self._encoded(key, value)
            self.backend.put(full, stored)
        except Exception:
            next(counters.exception)
            raise
        next(counters.put)

    def add(self, key: str, value: T) -> bool:
        """Store ``value`` only where ``key`` has nothing; True when it was stored."""
        counters = self._counters
        if _verifying and _verify.bypassing():
            return True
        try:
            full, stored = self._encoded(key, value)
            added = self.backend.add(full, stored)
        except Exception:
            next(counters.exception)
            raise
        next(counters.put if added else counters.hit)
        return added

    def __repr__(self) -> str:
        return (
            f"<{type(self).__qualname__} namespace={self.namespace!r} version={self.version} "
            f"backend={self.backend!r} serde={self.serde!r}>"
        )
