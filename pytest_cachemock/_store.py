"""Where mock entries and counters live: boxes, and which box each thread uses.

A *box* holds, per cache kind, the entries every thread that uses it shares and the fault
armed on the kind, and, per thread, that thread's counters (summed when read: each thread adds
to its own, so counts are exact without a lock). A ``PatchCaches`` opens a box when it starts
and closes it when it stops. Which box a thread uses is decided on its first mock operation
and again after its box closes (:meth:`ThreadStore.box`):

- the thread that started a ``PatchCaches`` uses its box, also after it closes (its stats stay
  readable after the ``with`` block, as in the seed);
- in isolation mode ``process``, every thread uses the box of the running ``process`` block;
- in mode ``thread``, a thread started while a block runs (directly, or by an executor or a
  pool that the test or the code under test creates) uses the box of the thread that started
  it, while that box is open: it counts into the test's store and sees its seeds and faults;
- any other thread, while a block runs, is *foreign*: it uses that block's foreign box, whose
  traffic is kept apart from the test's stats and thrown away with the block, so no entry
  reaches a later test through a long-lived thread;
- with no block running, a thread uses a private box of its own (the seed's thread-local store);
  it is closed when the next block starts.

A thread finds its box's records in two thread-local tables (``local.records``, and
``local.ready`` for the kinds with no fault armed): the mock's get or put costs one lookup in
``ready`` when nothing changed. Closing a box, or arming a fault, empties the ``ready`` tables
involved, so the next operation of each thread takes the slow path and finds its box again.

Each box also has its operation log (``_oplog``): every record of the box holds the box's ring
as ``log``, and the mock appends each operation to it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Callable, Protocol

from ._oplog import OpLog

__all__ = ["Fault", "KindRecord", "Polled", "ThreadStore", "current_store"]

_get_ident = threading.get_ident
_box_lock = threading.RLock()  # see _Box.lock
_fault_lock = threading.Lock()  # threads of one box share its faults: each use counts once
# Modes whose box every thread of the process uses.
_EVERY_THREAD = ("process", "shared")


class Polled(Protocol):
    """Counts that another library keeps (functools' ``cache_info()``), read when a box's
    counts are read rather than counted by a mock on each operation."""

    def counts(self) -> Mapping[str, tuple[int, int, int]]:
        """Per kind, (puts, hits, misses) since the box opened or was last reset."""

    def reset(self) -> None:
        """Drop the entries of its kinds and start their counts again from zero."""

    def close(self) -> None:
        """The box closed: keep the counts as they are now (the caches are emptied next)."""


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


class _Kind:
    """What every thread of a box shares for one kind: its entries and its fault."""

    __slots__ = ("entries", "fault")

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.fault: Fault | None = None


class KindRecord:
    """One kind's entries (shared in its box), counters and armed fault, as one thread sees
    them; or, from :meth:`ThreadStore.records`, the counters of every thread of the box summed.
    """

    __slots__ = ("_box", "_shared", "entries", "errors", "hits", "kind", "log", "misses", "puts")

    def __init__(self, kind: str, box: _Box | None = None, shared: _Kind | None = None) -> None:
        self.kind = kind
        self._box = box
        # The box's operation log, appended to by the mock (a record of no box logs nothing).
        self.log = box.oplog.ring if box is not None else _NOWHERE.ring
        self._shared = shared if shared is not None else _Kind()
        self.entries: dict[str, Any] = self._shared.entries
        self.puts = 0
        self.hits = 0
        self.misses = 0
        self.errors = 0

    @property
    def fault(self) -> Fault | None:
        return self._shared.fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        if self._box is not None:
            self._box.arm(self.kind, fault)
        else:
            self._shared.fault = fault

    def use_entries(self, entries: Any, *, logs: bool = False) -> None:
        """Make ``entries`` (a mapping) the kind's entries in the box, for every thread (a kind
        whose entries live elsewhere: the fake server of a redis-py client kind). ``logs``:
        the kind's own code logs one operation for each put, hit and miss it counts."""
        self._shared.entries = entries
        self.entries = entries
        if self._box is not None and not logs:  # counted by its own code, which does not log
            self._box.unlogged.add(self.kind)

    def _zero(self) -> None:
        self.puts = self.hits = self.misses = self.errors = 0

    def take_fault(self) -> Fault | None:
        """One use of the armed fault (disarmed when its ``times`` are used up), or None when
        another thread used it up meanwhile."""
        with _fault_lock:
            fault = self.fault
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.fault = None
        return fault


class _Box:
    """The entries, faults and per-thread counters of one store (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "closed",
        "dropped",
        "forbid",
        "foreign",
        "keeps",
        "kinds",
        "lock",
        "mode",
        "oplog",
        "owner",
        "polled",
        "strict",
        "tables",
        "token",
        "unlogged",
    )

    def __init__(self, mode: str, owner: int, keeps: bool, token: object = None) -> None:
        self.mode = mode  # "thread", "process", "shared", "foreign" or "private"
        self.owner = owner  # the thread that opened it
        self.keeps = keeps  # its owner keeps using it after it closes
        self.token = token
        self.closed = False
        # Its tables change when a thread joins, a fault is armed, the box resets or closes:
        # rarely. One lock for every box is enough, and costs no lock per box.
        self.lock = _box_lock
        self.kinds: dict[str, _Kind] = {}
        # (records, ready) of every thread that uses the box.
        self.tables: list[tuple[dict[str, KindRecord], dict[str, KindRecord]]] = []
        self.foreign: _Box | None = None
        # Counts kept by another library (an lru_cache's cache_info), read with the sums.
        self.polled: list[Polled] = []
        self.oplog = OpLog()
        # Kinds counted by code that logs no operation (the django profile's).
        self.unlogged: set[str] = set()
        # kind -> the keys of the puts refused so far (forbid_puts): no put reaches them.
        self.forbid: dict[str, list[str]] = {}
        # kind -> the keys seeded with strict=True (checked at the end of the test).
        self.strict: dict[str, list[str]] = {}
        # Per kind, [puts, hits, misses, errors] that resets zeroed: the block's totals.
        self.dropped: dict[str, list[int]] = {}

    def poll(self, source: Polled) -> None:
        """Add ``source``'s counts to its kinds' whenever the box's counts are read."""
        with self.lock:
            self.polled.append(source)

    def join(self) -> tuple[dict[str, KindRecord], dict[str, KindRecord]]:
        """New tables for a thread that starts using this box."""
        tables: tuple[dict[str, KindRecord], dict[str, KindRecord]] = ({}, {})
        with self.lock:
            self.tables.append(tables)
        return tables

    def record(self, kind: str, records: dict[str, KindRecord]) -> KindRecord:
        found = records.get(kind)
        if found is None:
            with self.lock:
                shared = self.kinds.get(kind)
                if shared is None:
                    shared = self.kinds[kind] = _Kind()
            found = records[kind] = KindRecord(kind, self, shared)
        return found

    def arm(self, kind: str, fault: Fault | None) -> None:
        with self.lock:
            shared = self.kinds.get(kind)
            if shared is None:
                shared = self.kinds[kind] = _Kind()
            shared.fault = fault
            if fault is not None:
                self.unready(kind)

    def unready(self, kind: str) -> None:
        """Every thread's next operation on ``kind`` takes the mock's slow path (hold ``lock``)."""
        for _, ready in self.tables:
            ready.pop(kind, None)

    def forbid_puts(self, kind: str) -> None:
        """Refuse every put of ``kind`` from now on (the mock's slow path checks ``forbid``)."""
        with self.lock:
            self.forbid.setdefault(kind, [])
            self.unready(kind)

    def counted_only(self) -> set[str]:
        """The kinds whose counts come from code that logs no operation: polled sources
        (functools' ``cache_info()``) and the kinds in ``unlogged``."""
        with self.lock:
            kinds = set(self.unlogged)
            polled = list(self.polled)
        for source in polled:
            kinds.update(source.counts())
        return kinds

    def logged(self) -> int:
        """How many operations were logged in this process since the box opened or reset:
        the puts, hits and misses of its records (what the mock logs, one each) plus
        ``oplog.extra``. Beyond the ring's length, that many were dropped."""
        with self.lock:
            tables = list(self.tables)
            unlogged = set(self.unlogged)
        total = self.oplog.extra
        for records, _ in tables:
            for kind, record in list(records.items()):
                if kind not in unlogged:
                    total += record.puts + record.hits + record.misses
        return total

    def sums(self) -> dict[str, KindRecord]:
        """Per kind, the counters of every thread of the box added up, with the live entries."""
        with self.lock:
            tables = list(self.tables)
            kinds = dict(self.kinds)
        out: dict[str, KindRecord] = {}
        for kind, shared in kinds.items():
            total = out[kind] = KindRecord(kind, self, shared)
            for records, _ in tables:
                mine = records.get(kind)
                if mine is not None:
                    total.puts += mine.puts
                    total.hits += mine.hits
                    total.misses += mine.misses
                    total.errors += mine.errors
        return out

    def foreign_traffic(self) -> dict[str, KindRecord]:
        """Per kind with any count, what the threads of this block's foreign box did."""
        if self.foreign is None:
            return {}
        return {
            kind: rec
            for kind, rec in self.foreign.sums().items()
            if rec.puts or rec.hits or rec.misses or rec.errors
        }

    def reset(self) -> None:
        """Drop every entry, counter and fault, for every thread of the box."""
        with self.lock:
            for shared in self.kinds.values():
                shared.entries.clear()
                shared.fault = None
            for records, _ in self.tables:
                for record in records.values():
                    record._zero()
            self.oplog.clear()
            polled = list(self.polled)
        for source in polled:
            source.reset()

    def close(self) -> None:
        """No thread but (where it ``keeps``) its owner uses the box any more."""
        for source in self.polled:
            source.close()
        self.closed = True
        with self.lock:
            for _, ready in self.tables:
                ready.clear()
        if self.foreign is not None:
            self.foreign.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<cachemock store {self.mode} {state} kinds={sorted(self.kinds)}>"


class ThreadStore:
    """The boxes of the process, and which one each thread uses (see the module docstring).

    ``local`` is a plain ``threading.local`` with ``box``, ``records`` and ``ready``: reading
    an attribute of a subclass of it costs more on every call.
    """

    def __init__(self) -> None:
        self.local = threading.local()
        self._lock = threading.Lock()
        self._running: list[_Box] = []  # open boxes of running blocks, oldest first
        self._process = 0  # how many of them are in a mode of _EVERY_THREAD
        self._private: list[_Box] = []  # open private boxes

    # -- the thread's box ------------------------------------------------------------------

    def box(self) -> _Box:
        """The box this thread uses now, (re)chosen when it has none or it closed."""
        local = self.local
        box: _Box | None = getattr(local, "box", None)
        ident = _get_ident()
        if box is not None and (
            not box.closed or (box.keeps and box.owner == ident and not self._process)
        ):
            return box
        box = self._choose(ident)
        self._bind(box)
        return box

    def _choose(self, ident: int) -> _Box:
        with self._lock:
            running = list(self._running)
        for box in reversed(running):
            if box.mode in _EVERY_THREAD:
                return box
        inherited: _Box | None = getattr(threading.current_thread(), "_cachemock_box", None)
        if inherited is not None and not inherited.closed:
            return inherited
        with self._lock:
            if self._running:
                newest = self._running[-1]
                if newest.foreign is None:  # made on first use: most blocks have none
                    newest.foreign = _Box("foreign", newest.owner, False)
                return newest.foreign
            box = _Box("private", ident, False)
            self._private.append(box)
        return box

    def _bind(self, box: _Box) -> None:
        records, ready = box.join()
        local = self.local
        local.box = box
        local.records = records
        local.ready = ready

    def record(self, kind: str) -> KindRecord:
        """This thread's record of ``kind`` in its box, made on first use."""
        box = self.box()
        records: dict[str, KindRecord] = self.local.records
        return box.record(kind, records)

    def records(self) -> dict[str, KindRecord]:
        """Every kind of this thread's box, the counters of all its threads summed, with the
        counts of its polled sources (see :class:`Polled`)."""
        box = self.box()
        out = box.sums()
        if box.polled:
            for source in list(box.polled):
                for kind, (puts, hits, misses) in source.counts().items():
                    summed = out.get(kind)
                    total = out[kind] = KindRecord(kind, box, box.kinds.get(kind))
                    if summed is not None:  # a copy: a frozen box hands out its own records
                        total.entries = summed.entries
                        total.puts, total.hits = summed.puts, summed.hits
                        total.misses, total.errors = summed.misses, summed.errors
                    total.puts += puts
                    total.hits += hits
                    total.misses += misses
        return out

    def ready(self) -> dict[str, KindRecord]:
        """This thread's records with no fault armed (as far as the mock has met them)."""
        self.box()
        found: dict[str, KindRecord] = self.local.ready
        return found

    def reset(self) -> None:
        """Drop every entry, counter and fault of this thread's box, its operation log, its
        strict seeds and the forbidden puts it saw (the kinds stay forbidden); what the
        counters held is kept in the box's ``dropped`` (the session report counts it)."""
        box = self.box()
        with box.lock:
            for kind, rec in box.sums().items():
                total = box.dropped.setdefault(kind, [0, 0, 0, 0])
                for i, n in enumerate((rec.puts, rec.hits, rec.misses, rec.errors)):
                    total[i] += n
            box.reset()
            box.oplog.clear()
            box.strict.clear()
            for tried in box.forbid.values():
                tried.clear()

    def marked(self) -> object:
        """The token of the block whose box this thread uses (see :meth:`open`), or None."""
        box: _Box | None = getattr(self.local, "box", None)
        return None if box is None else box.token

    # -- blocks --------------------------------------------------------------------------

    def open(self, mode: str, token: object) -> _Box:
        """A new box for a block that starts in this thread, which uses it from now on.

        Every private box closes (their threads are foreign to the block, or use it in mode
        ``process``). In mode ``thread`` the threads this thread starts use it too.
        """
        box = _makers.get(mode, _Box)(mode, _get_ident(), True, token)
        with self._lock:
            private = self._private
            self._private = []
            self._running.append(box)
            self._process += mode in _EVERY_THREAD
        for old in private:
            old.close()
        if not _watching:
            _watch_threads()
        self._bind(box)
        return box

    def close(self, box: _Box) -> dict[str, KindRecord]:
        """Close ``box`` (its block stopped); return what its foreign threads did, per kind."""
        with self._lock:
            if any(b is box for b in self._running):
                self._running = [b for b in self._running if b is not box]
                self._process -= box.mode in _EVERY_THREAD
        box.close()
        return box.foreign_traffic()


_NOWHERE = OpLog(0)  # the log of a record of no box: keeps nothing
_store = ThreadStore()
# mode -> the box class of that mode, where it is not _Box ("shared": _shared.py adds it).
_makers: dict[str, Callable[[str, int, bool, object], _Box]] = {}


def current_store() -> ThreadStore:
    return _store


# -- threads follow the box of the thread that started them ------------------------------------

_watching = False
_start = threading.Thread.start


def _watch_threads() -> None:
    """From the first block on, ``Thread.start`` notes the starting thread's box on the new
    thread (in mode ``thread``), so a thread a test starts counts into the test's store."""
    global _watching
    if _watching:
        return
    _watching = True

    def start(self: threading.Thread) -> None:
        # The box the starting thread uses, or would use on its first operation.
        box: _Box | None = getattr(_store.local, "box", None)
        if box is None or box.closed:
            box = getattr(threading.current_thread(), "_cachemock_box", None)
        if box is not None and box.mode == "thread" and not box.closed:
            self._cachemock_box = box  # type: ignore[attr-defined]
        _start(self)

    start.__doc__ = _start.__doc__
    start.__wrapped__ = _start  # type: ignore[attr-defined]
    threading.Thread.start = start  # type: ignore[method-assign]
