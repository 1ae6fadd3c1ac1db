"""Mock backends and the stores where their entries and counters live.

A :class:`MockBackend` is bound to one cache kind. It stores exactly what the cache controller
hands it (the encoded value) in the current store, counts puts, hits, misses and errors
(injected, or a call refused as every backend refuses it: a key that is not a str, a None to
store) there, and counts into the library-wide ``cache_stats`` as any backend does: its
public get/put/add are :class:`~pytest_cachemock.backends.base.Backend`'s, over its own
``_get``/``_put``/``_add``.

Stores are per isolation mode. Only ``thread`` exists today: each thread sees its own entries
and counters, as in the seed. Other modes plug in behind the small :class:`Store` interface.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable, Protocol

from .backends.base import Backend, key_error
from .errors import UserError

__all__ = ["Fault", "KindRecord", "MockBackend", "Store", "ThreadStore", "current_store"]


class Fault:
    """An armed failure: raise ``exc`` on ``on`` operations, ``times`` times (None: until reset)."""

    __slots__ = ("exc", "on", "times")

    def __init__(
        self, on: str, exc: BaseException | type[BaseException], times: int | None
    ) -> None:
        self.on = on
        self.exc = exc
        self.times = times

    def matches(self, op: str) -> bool:
        return self.on == "both" or self.on == op


class KindRecord:
    """Entries and counters of one kind in one store, and the fault armed on it."""

    __slots__ = ("_fault", "_ready", "entries", "errors", "hits", "kind", "misses", "puts")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, Any] = {}
        self.puts = 0
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self._fault: Fault | None = None
        # The table of records with no fault armed where the mock found this one (see
        # ThreadStore.ready): arming a fault takes the record out of it.
        self._ready: dict[str, KindRecord] | None = None

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        self._fault = fault
        if fault is not None and self._ready is not None:
            self._ready.pop(self.kind, None)
            self._ready = None


class Store(Protocol):
    """Where mock entries and counters live for one isolation mode."""

    def record(self, kind: str) -> KindRecord:
        """The record of ``kind``, created empty on first use."""
        ...

    def records(self) -> dict[str, KindRecord]:
        """Every record of this store (for this thread, in thread mode)."""
        ...

    def reset(self) -> None:
        """Drop every entry and counter."""
        ...


class ThreadStore:
    """Isolation mode ``thread``: each thread has its own records.

    They are ``local.records``, a dict set on a thread's first use. ``local.ready`` holds
    those of them that have no fault armed, put there by the mock's first operation on each:
    a mock's get or put finds its record there in one lookup and checks nothing more. ``local``
    is a plain ``threading.local``: reading an attribute of a subclass of it costs more on
    every call.
    """

    isolation = "thread"

    def __init__(self) -> None:
        self.local = threading.local()

    def record(self, kind: str) -> KindRecord:
        records = self.records()
        found = records.get(kind)
        if found is None:
            found = records[kind] = KindRecord(kind)
        return found

    def records(self) -> dict[str, KindRecord]:
        try:
            found: dict[str, KindRecord] = self.local.records
        except AttributeError:  # this thread's first use: reset() makes both tables
            self.reset()
            found = self.local.records
        return found

    def ready(self) -> dict[str, KindRecord]:
        """This thread's records with no fault armed (as far as the mock has met them)."""
        self.records()  # the thread's tables exist
        found: dict[str, KindRecord] = self.local.ready
        return found

    def reset(self) -> None:
        self.local.records = {}
        self.local.ready = {}

    def mark(self, token: object) -> None:
        """Note, for this thread, what started its store (a PatchCaches, in a scope and test)."""
        self.local.started = token

    def marked(self) -> object:
        """What :meth:`mark` noted last in this thread, or None."""
        return getattr(self.local, "started", None)


_store = ThreadStore()
_factories: dict[str, Callable[[], MockBackend]] = {}


def current_store() -> ThreadStore:
    return _store


class MockBackend(Backend[Any]):
    """An in-memory backend bound to one cache kind, counting into the current store.

    ``items()``, ``delete(key)`` and ``clear()`` work on the current store's entries of the
    kind (this thread's, in thread mode); they count nothing and no fault applies to them,
    nor to ``peek(key)``.
    """

    lists_entries = True

    def __init__(self, name: str) -> None:
        super().__init__(name=f"mock:{name}")
        self.kind = name
        self._local = _store.local
        self._store = _store

    @staticmethod
    def with_name(name: str) -> Callable[[], MockBackend]:
        """A factory for ``backend_override_cls``: each call makes a mock of kind ``name``.

        Factories are kept per name: installing mocks for a test costs no new objects.
        """
        factory = _factories.get(name)
        if factory is None:

            def factory() -> MockBackend:
                return MockBackend(name)

            factory.__qualname__ = factory.__name__ = f"MockBackend.with_name({name!r})"
            factory.cachemock_kind = name  # type: ignore[attr-defined]
            _factories[name] = factory
        return factory

    def _record(self) -> KindRecord:
        return self._store.record(self.kind)

    def _live(self, op: str, key: str) -> KindRecord:
        """The record of this kind in the current store, the fault armed on it for ``op``
        raised; back in the thread's ready table when it has no fault armed."""
        record = self._record()
        fault = record.fault
        if fault is None:
            ready = self._store.ready()
            ready[self.kind] = record
            record._ready = ready
        elif fault.matches(op):
            self._raise(record, op, key)
        return record

    # The public get/put/add are Backend's: they refuse what every backend refuses (counted
    # here by _refused), count cache_stats, and count any error raised below as an exception.
    # These count the outcome in the kind's record of the current store. Each finds its record
    # in the thread's ready table (no fault armed) or asks _live for it.

    def _get(self, key: str) -> Any:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("get", key)
        value = record.entries.get(key)
        if value is None:
            record.misses += 1
        else:
            record.hits += 1
        return value

    def _put(self, key: str, value: Any) -> None:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("put", key)
        record.entries[key] = value
        record.puts += 1

    def _add(self, key: str, value: Any) -> bool:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("put", key)
        if record.entries.get(key) is not None:
            record.hits += 1
            return False
        record.entries[key] = value
        record.puts += 1
        return True

    def _refused(self, error: UserError) -> UserError:
        """A call refused as every backend refuses it is an error of the kind, before any fault."""
        self._record().errors += 1
        return error

    def peek(self, key: str) -> Any:
        if type(key) is not str:
            raise key_error(self, "peek", key)
        record = self._store.records().get(self.kind)
        return None if record is None else record.entries.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        """The current store's entries of this kind (a copy: safe to iterate while others write)."""
        record = self._store.records().get(self.kind)
        return iter(() if record is None else list(record.entries.items()))

    def delete(self, key: str) -> bool:
        """Remove ``key`` from the current store's entries of this kind; True when it was there."""
        record = self._store.records().get(self.kind)
        return record is not None and record.entries.pop(key, None) is not None

    def clear(self) -> None:
        """Remove the current store's entries of this kind (its counters stay)."""
        record = self._store.records().get(self.kind)
        if record is not None:
            record.entries.clear()

    def _raise(self, record: KindRecord, op: str, key: str) -> None:
        fault = record.fault
        assert fault is not None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                record.fault = None
        record.errors += 1
        exc = fault.exc
        if isinstance(exc, type):
            exc = exc(f"cachemock: injected failure on {op} of kind {self.kind!r}, key {key!r}")
        if not isinstance(exc, Exception):
            # Backend counts an Exception in cache_stats as it goes up, not a BaseException.
            next(self._live_counters().exception)
        raise exc

    def __repr__(self) -> str:
        return f"<MockBackend kind={self.kind!r}>"
