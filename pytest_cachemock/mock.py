"""Mock backends and the stores where their entries and counters live.

A :class:`MockBackend` is bound to one cache kind. It stores exactly what the cache controller
hands it (the encoded value) in the current store, counts puts, hits, misses and errors
(injected, or a call refused as every backend refuses it: a key that is not a str, a None to
store) there, and counts into the library-wide ``cache_stats`` as any backend does: its
public get/put/add are :class:`~pytest_cachemock.backends.base.Backend`'s, over its own
``_get``/``_put``/``_add``.

A mock keeps the value contract of the backend it stands in for: one made for a bytes-only
backend (``stores_bytes``: FileBackend, LogBackend, SqliteBackend) refuses a value that is not
bytes as that backend does, so a test fails where production would. Controllers tell their
override what it replaces (:meth:`Backend.stand_in_for`); an attribute target holding a
backend or a backend class makes its mocks with that backend's contract.

Where the entries and counters live, and which threads share them (the isolation modes), is
``_store``'s business: the mock asks the current store for its kind's record. Each operation
is also appended to the record's ``log`` (the box's operation log, ``_oplog``): one tuple and
one ``deque.append`` on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

from ._store import Fault, KindRecord, ThreadStore, _store, current_store
from .backends.base import Backend, bytes_value, key_error
from .errors import ForbiddenPutError, UserError, ValueDecodingError, ValueEncodingError

__all__ = [
    "Fault",
    "ForbiddenPutError",
    "KindRecord",
    "MockBackend",
    "ThreadStore",
    "current_store",
]


_factories: dict[tuple[str, object], Callable[[], MockBackend]] = {}


class MockBackend(Backend[Any]):
    """An in-memory backend bound to one cache kind, counting into the current store.

    ``items()``, ``delete(key)`` and ``clear()`` work on the current store's entries of the
    kind (this thread's, in thread mode); they count nothing and no fault applies to them,
    nor to ``peek(key)``.
    """

    lists_entries = True

    replaces: type[Backend[Any]] | None = None
    """The bytes-only backend class whose contract this mock keeps, else None (stores anything)."""

    def __init__(self, name: str) -> None:
        super().__init__(name=f"mock:{name}")
        self.kind = name
        self._local = _store.local
        self._store = _store

    @staticmethod
    def replacing(name: str, real: object) -> MockBackend:
        """A mock of kind ``name`` with the value contract of ``real`` (a backend or a backend
        class): it refuses what a bytes-only backend refuses; otherwise a plain mock."""
        cls = real if isinstance(real, type) else type(real)
        if issubclass(cls, Backend) and cls.stores_bytes:
            return _BytesMock(name, cls)
        return MockBackend(name)

    @staticmethod
    def with_name(name: str, like: type[Backend[Any]] | None = None) -> Callable[[], MockBackend]:
        """A factory for ``backend_override_cls``: each call makes a mock of kind ``name``
        (with the value contract of the backend class ``like``, see :meth:`replacing`).

        Factories are kept per name: installing mocks for a test costs no new objects.
        """
        contract = like if like is not None and like.stores_bytes else None
        factory = _factories.get((name, contract))
        if factory is None:

            def factory() -> MockBackend:
                return MockBackend(name) if contract is None else _BytesMock(name, contract)

            factory.__qualname__ = factory.__name__ = f"MockBackend.with_name({name!r})"
            factory.cachemock_kind = name  # type: ignore[attr-defined]
            _factories[(name, contract)] = factory
        return factory

    def refuses(self, key: str, value: object) -> ValueEncodingError | None:
        """The error this mock raises for storing ``value`` under ``key`` (a mock standing in
        for a bytes-only backend refuses a value that is not bytes), else None. None itself is
        refused by every backend (checked before this)."""
        return None

    def stand_in_for(self, real: Backend[Any]) -> Backend[Any]:
        """This mock, or (``real`` stores only bytes) a mock of the same kind that refuses
        what ``real`` refuses."""
        if self.replaces is not None or not real.stores_bytes:
            return self
        return _BytesMock(self.kind, type(real))

    def _record(self) -> KindRecord:
        return self._store.record(self.kind)

    def _live(self, op: str, key: str) -> KindRecord:
        """The record of this kind in the current store, the fault armed on it for ``op``
        raised; back in the thread's ready table when it has no fault armed."""
        record = self._record()
        fault = record.fault
        box = record._box
        if box is not None and box.forbid and self.kind in box.forbid:
            if op == "put":
                self._forbidden(record, box, key)
            if fault is not None and fault.matches(op):
                self._raise(record, op, key)
            return record  # never ready: each put comes back here
        if fault is None:
            ready = self._store.ready()
            ready[self.kind] = record
            if record.fault is not None:  # armed meanwhile, from another thread
                ready.pop(self.kind, None)
        elif fault.matches(op):
            self._raise(record, op, key)
        return record

    # The public get/put are Backend's steps with the common case first: a str key (and a
    # value) on a kind that is ready in this thread. Anything else goes to Backend.get/put,
    # which refuse what every backend refuses (counted here by _refused), count cache_stats,
    # and count any error raised below as an exception; _get/_put then count the outcome in
    # the kind's record of the current store, after _live found it (and raised its fault).
    # One frame less per call pays for the operation log's append (benchmarks/bench_oplog.py);
    # tests/expect/test_oplog.py holds the two paths to the same counts.

    def get(self, key: str) -> Any:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            return Backend.get(self, key)
        if type(key) is not str:
            return Backend.get(self, key)
        counters = self._counters or self._live_counters()
        try:
            value = record.entries.get(key)
        except Exception:  # a shared store that cannot be read
            next(counters.exception)
            raise
        if value is None:
            record.misses += 1
            record.log.append((record.kind, "get", key, "miss"))
            next(counters.miss)
        else:
            record.hits += 1
            record.log.append((record.kind, "get", key, "hit"))
            next(counters.hit)
        return value

    def put(self, key: str, value: Any) -> None:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            return Backend.put(self, key, value)
        if type(key) is not str or value is None:
            return Backend.put(self, key, value)
        counters = self._counters or self._live_counters()
        try:
            record.entries[key] = value
        except Exception:  # a value the shared store cannot take
            next(counters.exception)
            raise
        record.puts += 1
        record.log.append((record.kind, "put", key, "stored"))
        next(counters.put)

    def _get(self, key: str) -> Any:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("get", key)
        value = record.entries.get(key)
        if value is None:
            record.misses += 1
            record.log.append((record.kind, "get", key, "miss"))
        else:
            record.hits += 1
            record.log.append((record.kind, "get", key, "hit"))
        return value

    def _put(self, key: str, value: Any) -> None:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("put", key)
        record.entries[key] = value
        record.puts += 1
        record.log.append((record.kind, "put", key, "stored"))

    def _add(self, key: str, value: Any) -> bool:
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("put", key)
        if record.entries.get(key) is not None:
            record.hits += 1
            record.log.append((record.kind, "add", key, "hit"))
            return False
        record.entries[key] = value
        record.puts += 1
        record.log.append((record.kind, "add", key, "stored"))
        return True

    def _refused(self, error: UserError) -> UserError:
        """A call refused as every backend refuses it is an error of the kind, before any fault."""
        self._record().errors += 1
        return error

    def peek(self, key: str) -> Any:
        if type(key) is not str:
            raise key_error(self, "peek", key)
        return self._store.record(self.kind).entries.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        """The current store's entries of this kind (a copy: safe to iterate while others write)."""
        return iter(list(self._store.record(self.kind).entries.items()))

    def delete(self, key: str) -> bool:
        """Remove ``key`` from the current store's entries of this kind; True when it was there.

        Logged (outcome hit or miss), not counted."""
        record = self._store.record(self.kind)
        found = record.entries.pop(key, None) is not None
        box = record._box
        if box is not None:
            box.oplog.note(self.kind, "delete", key, "hit" if found else "miss")
        return found

    def clear(self) -> None:
        """Remove the current store's entries of this kind (its counters stay)."""
        self._store.record(self.kind).entries.clear()

    def _raise(self, record: KindRecord, op: str, key: str) -> None:
        fault = record.take_fault()  # one use, also across threads (and processes: shared)
        if fault is None:  # used up by another thread meanwhile
            return
        record.errors += 1
        if record._box is not None:
            record._box.oplog.note(self.kind, op, key, "error")
        exc = fault.exc
        if isinstance(exc, type):
            exc = exc(f"cachemock: injected failure on {op} of kind {self.kind!r}, key {key!r}")
        if not isinstance(exc, Exception):
            # Backend counts an Exception in cache_stats as it goes up, not a BaseException.
            next(self._live_counters().exception)
        raise exc

    def _forbidden(self, record: KindRecord, box: Any, key: str) -> None:
        """Refuse a put of a kind under ``forbid_puts``: counted as an error, logged, kept for
        the check at the end of the test (in case the code under test swallows the error)."""
        record.errors += 1
        box.oplog.note(self.kind, "put", key, "error")
        box.forbid[self.kind].append(key)
        raise ForbiddenPutError(
            f"cachemock: put of key {key!r} to kind {self.kind!r}, whose puts this test "
            f"forbids (forbid_puts({self.kind!r}), or the marker's forbid_puts=); if the "
            "write is expected, drop the kind from forbid_puts"
        )

    def __repr__(self) -> str:
        return f"<MockBackend kind={self.kind!r}>"


def _store_name(cls: type[Backend[Any]]) -> str:
    """The store a bytes-only backend class names in its refusal: the class that declared
    ``stores_bytes`` (LogBackend for a subclass of it)."""
    for klass in cls.__mro__:
        if klass.__dict__.get("stores_bytes") is True:
            return klass.__qualname__
    return cls.__qualname__


class _BytesMock(MockBackend):
    """A mock standing in for a bytes-only backend: bytes, bytearray and memoryview are
    stored as bytes, any other value is refused with the real backend's message."""

    stores_bytes = True
    # Its messages (a key that is not a str: "MockBackend.put: keys are str") name the public
    # class, as the other mocks' do.
    __qualname__ = __name__ = "MockBackend"

    def __init__(self, name: str, real: type[Backend[Any]]) -> None:
        super().__init__(name)
        self.replaces = real

    def refuses(self, key: str, value: object) -> ValueEncodingError | None:
        real = self.replaces
        assert real is not None
        try:
            bytes_value(_store_name(real), key, value)
        except ValueEncodingError as exc:
            return ValueEncodingError(
                f"{exc} (the mock of kind {self.kind!r} stands in for a {real.__qualname__} "
                "and refuses what it refuses)"
            )
        return None

    def _bytes(self, key: str, value: Any) -> bytes:
        refused = self.refuses(key, value)
        if refused is not None:
            raise self._refused(refused)
        return bytes(value)

    # MockBackend's put, _put and _add with the check in front: one type test per call.

    def put(self, key: str, value: Any) -> None:
        if type(value) is not bytes:
            return Backend.put(self, key, value)
        return MockBackend.put(self, key, value)

    def _put(self, key: str, value: Any) -> None:
        if type(value) is not bytes:
            value = self._bytes(key, value)
        try:
            record = self._local.ready[self.kind]
        except (KeyError, AttributeError):
            record = self._live("put", key)
        record.entries[key] = value
        record.puts += 1
        record.log.append((record.kind, "put", key, "stored"))

    def _add(self, key: str, value: Any) -> bool:
        if type(value) is not bytes:
            value = self._bytes(key, value)
        return MockBackend._add(self, key, value)


# -- PatchCaches.seed: what a mock of the kind could read back ------------------------------------


def _seeded(
    kind: str, mapping: Mapping[str, Any], cache: Any, targets: Iterable[Any]
) -> dict[str, Any]:
    """The entries ``PatchCaches.seed`` stores for ``mapping`` (see there), each checked."""
    __tracebackhide__ = True
    from .serde import encode_for  # not at plugin load: only a seed needs it

    call = f"seed({kind!r}, ...)"
    staged: dict[str, Any] = {}
    if cache is not None:
        mock = _seed_mock(kind, cache)
        for key, value in mapping.items():
            if value is None:
                raise TypeError(f"{call}: value of {key!r} is None, which means miss")
            full = cache.key_for(key)
            stored = encode_for(cache.serde, full, value)
            bad = mock.refuses(full, stored)
            if bad is not None:
                raise ValueEncodingError(
                    f"{call}: {type(cache).__name__}.put({key!r}, ...) would fail: {bad}"
                )
            staged[full] = bytes(stored) if mock.stores_bytes else stored
        return staged
    readers = _seed_readers(kind, targets)
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"{call}: keys are str, got {key!r}")
        if value is None:
            raise TypeError(f"{call}: value of {key!r} is None, which means miss")
        refused: Exception | None = None
        matched = as_bytes = False
        for mock, reader in readers:
            if reader is not None and not (
                key.startswith(reader._prefix) and key.endswith(reader._suffix)
            ):
                continue
            matched = True
            why = _seed_refusal(kind, key, value, mock, reader)
            if why is None:
                as_bytes = mock.stores_bytes
                refused = None
                break
            refused = refused or why
        if matched and refused is not None:
            raise refused
        staged[key] = bytes(value) if as_bytes else value
    return staged


def _seed_mock(kind: str, cache: Any) -> MockBackend:
    """The mock of ``kind`` that ``cache`` (a RemoteCache) uses now; refuses any other cache."""
    __tracebackhide__ = True
    call = f"seed({kind!r}, ..., cache=...)"
    if callable(getattr(cache, "entry_for", None)):
        raise TypeError(
            f"{call}: a Memoizer has no key -> value of its own; seed its entries with "
            f"seed({kind!r}, dict([memo.entry_for(fn, result, *args)]))"
        )
    if not callable(getattr(cache, "key_for", None)) or not hasattr(cache, "serde"):
        raise TypeError(
            f"{call}: cache is a RemoteCache (an object with key_for(key) and serde), got a "
            f"{type(cache).__qualname__}; pass the cache whose keys and values mapping holds"
        )
    mock = getattr(cache, "backend", None)
    if isinstance(mock, MockBackend) and mock.kind == kind:
        return mock
    uses = (
        f"it uses the mock of kind {mock.kind!r}"
        if isinstance(mock, MockBackend)
        else f"it uses its real backend {mock!r}: no running PatchCaches mocks it"
    )
    raise UserError(
        f"{call}: {type(cache).__qualname__} is not a cache of kind {kind!r} ({uses}); pass a "
        f"cache of kind {kind!r}, or seed the kind this cache belongs to"
    )


def _seed_readers(kind: str, targets: Iterable[Any]) -> list[tuple[MockBackend, Any]]:
    """The mocks of ``kind`` that would read a seeded entry, each with the RemoteCache that
    reads through it (None for an attribute target's mock or a memoizer's, which read any key)."""
    readers: list[tuple[Any, Any]] = []
    caches: dict[int, Any] = {}
    for target in targets:
        spot = target.spot()
        if spot is None:
            continue
        obj, attr = spot
        if attr != "backend_override_cls":
            held: Any = getattr(obj, attr, None)
            if getattr(held, "cachemock_kind", None) == kind:  # a factory installed by a mock
                held = held()
            readers.append((held, None))
        elif isinstance(obj, type):  # a RemoteCache subclass: its live instances
            live = getattr(obj, "_live_instances", ())
            caches.update((id(found), found) for found in list(live) if isinstance(found, obj))
        elif callable(getattr(obj, "entry_for", None)):  # a memoizer
            readers.append((getattr(obj, "backend", None), None))
        elif callable(getattr(obj, "key_for", None)) and hasattr(obj, "serde"):
            caches[id(obj)] = obj  # a RemoteCache instance as the target
    for found in caches.values():
        mock = found.backend
        if isinstance(mock, MockBackend) and mock.kind == kind:
            readers.append((mock, found))
    return [(mock, reader) for mock, reader in readers if isinstance(mock, MockBackend)]


def _seed_refusal(
    kind: str, key: str, value: Any, mock: MockBackend, reader: Any
) -> Exception | None:
    """Why ``value`` seeded raw under ``key`` could not be read back through ``mock`` (and
    ``reader``'s serde, for a RemoteCache), or None."""
    refused = mock.refuses(key, value)
    if refused is not None:
        how = "seed the bytes it would store (the value encoded by the application's serde)"
        if reader is not None:
            own = key[len(reader._prefix) : -len(reader._suffix)]
            how = (
                f"seed the bytes it stores, or seed the cache's own key and value: "
                f"seed({kind!r}, {{{own!r}: value}}, cache=<the cache>)"
            )
        return ValueEncodingError(f"seed({kind!r}, ...): {refused}; {how}")
    if reader is None:
        return None
    from .serde import decode_for

    try:
        # What the mock holds and hands back: bytes, where it stands in for a bytes-only store.
        decode_for(reader.serde, key, bytes(value) if mock.stores_bytes else value)
    except Exception as exc:
        own = key[len(reader._prefix) : -len(reader._suffix)]
        return ValueDecodingError(
            f"seed({kind!r}, ...): {type(reader).__name__} (namespace {reader.namespace!r}, serde "
            f"{reader.serde!r}) cannot decode the value seeded for {key!r}, a "
            f"{type(value).__qualname__} ({exc}), so its get({own!r}) would miss; seed the "
            f"value as its serde stores it, or seed its own key and value: "
            f"seed({kind!r}, {{{own!r}: value}}, cache=<the cache>)"
        )
    return None
