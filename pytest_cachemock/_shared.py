"""Isolation mode ``shared``: one store for the test's process and the child processes it starts.

The store is a directory made for the test (``tempfile.mkdtemp``), removed when it ends:

- ``entries.log``: every put, delete, clear, kind and fault of every process, appended as one
  record each. The end of the last complete record is *published* in ``ctl`` (below), after
  the write, under a POSIX lock on the log; a reader reads only up to the published end, so a
  writer killed in the middle of its write (which leaves bytes past it) is never read, and
  the next writer writes over those bytes. A process keeps the entries decoded in memory and
  reads what others appended when the published end moved: a get that finds nothing new is one
  read of shared memory and a dict lookup.
- ``ctl``: shared memory (a file mapped by every process): the published end, and per kind the
  armed fault's uses left (0: none, -1: until reset), taken one at a time under the log's lock,
  so a fault with ``times=n`` fails exactly ``n`` operations across the processes.
- ``counts/<pid>-<n>``: one file per thread of each process, mapped into memory, with that
  thread's puts, hits, misses and errors per kind. Only its thread writes it (exact without a
  lock, as the thread mode's counters); the test's process adds them all up when stats are
  read. A process killed between its write and its count loses that one count.
- ``manifest.json``: what a child needs to mock the same kinds (declared kinds as
  ``cachemock_kinds`` lines, the switches mode) and to verify them (``verify``: what the
  test's verifier checks, see ``_verify.start_child``); ``site/sitecustomize.py``: the
  start-up hook.
- The stale hits verify mode finds in a child go to the test's process as records of the log
  too (``_STALE``: the kind and key, and the failure's text), read when its verifier takes
  its failures.

Children: while the test runs, ``CACHEMOCK_SHARED`` names the directory and ``site`` is first
on ``PYTHONPATH``, so a Python child (spawn, forkserver, ``subprocess``) runs the hook, which
starts a ``PatchCaches`` bound to this store (``_shared_child``). A forked child has the mocks
already and switches to counters of its own at its first operation (``os.register_at_fork``).
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import pickle
import shutil
import struct
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from ._store import Fault, KindRecord, _Box, _Kind, _makers, _store
from .errors import UserError

__all__ = ["ENV_VAR", "attach", "prepare"]

ENV_VAR = "CACHEMOCK_SHARED"
_MAX_KINDS = 256
_FAULTS = 64  # ctl: int64 slots; [0] the published end, [_FAULTS + slot] a kind's fault
_CTL_SIZE = (_FAULTS + _MAX_KINDS) * 8
_COUNTS_SIZE = _MAX_KINDS * 4 * 8
_HEAD = struct.Struct("<BxHII")  # record type (| _PICKLED), kind slot, key length, value length
_KIND, _PUT, _DELETE, _CLEAR, _FAULT, _STALE = range(6)
_PICKLED = 0x80
_ALL = 0xFFFF
_OPEN = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)

_child_dir: str | None = None  # set in a child started with ENV_VAR (see attach)

_SITE = '''\
"""pytest-cachemock, isolation 'shared': this Python is a child of a test; mock its caches."""


def _cachemock_start():
    import os
    import sys

    if "pytest_cachemock._shared" in sys.modules:
        return  # imported by hand in a process that runs already (the test's own): not a child
    here = os.path.dirname(os.path.abspath(__file__))
    # Not on the path of this process any more, nor a sitecustomize of its own: chain to the
    # one that would have run without us.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    ours = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        if ours is not None:
            sys.modules["sitecustomize"] = ours
    where = os.environ.get("CACHEMOCK_SHARED")
    if not where:
        return
    try:
        from pytest_cachemock import _shared_child
    except ImportError:
        sys.path.append(ROOT)
        from pytest_cachemock import _shared_child
    _shared_child.start(where)


_cachemock_start()
'''


class _Disk:
    """The test's store directory as one process sees it (see the module docstring)."""

    def __init__(self, path: str, create: bool) -> None:
        self.path = path
        self.owner = create  # the test's process: it removes the directory
        if create:
            os.mkdir(os.path.join(path, "counts"))
            with open(os.path.join(path, "ctl"), "wb") as f:
                f.write(bytes(_CTL_SIZE))
            open(os.path.join(path, "entries.log"), "wb").close()
        self.fd = os.open(os.path.join(path, "entries.log"), _OPEN)
        ctl_fd = os.open(os.path.join(path, "ctl"), _OPEN)
        try:
            self._ctl_map = mmap.mmap(ctl_fd, _CTL_SIZE)
        finally:
            os.close(ctl_fd)
        self.ctl = memoryview(self._ctl_map).cast("q")
        self.lock = threading.RLock()
        self.end = 0  # read up to here
        self.slots: dict[str, int] = {}
        self.names: list[str] = []
        self.values: list[dict[str, Any]] = []  # per slot: key -> value, decoded
        self.faults: dict[int, tuple[str, Any]] = {}  # slot -> (on, exc) of the last armed
        self.pid = os.getpid()
        self.seq = 0
        self.counts: dict[str, memoryview] = {}  # file name -> its counters (when summing)
        self.undecodable: list[str] = []
        self.stale: list[tuple[str, str, str]] = []  # (kind, key, text) children reported
        self.stale_taken = 0

    def after_fork(self) -> None:
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.seq = 0
        self.owner = False
        self.counts = {}

    # -- reading ---------------------------------------------------------------------------

    def catch_up(self) -> None:
        with self.lock:
            end = self.ctl[0]
            if end > self.end:
                self._read(end)

    def _read(self, end: int) -> None:
        """Apply the records between what was read and ``end`` (hold ``lock``)."""
        at = self.end
        chunks = []
        while at < end:
            chunk = os.pread(self.fd, end - at, at)
            if not chunk:
                raise UserError(
                    f"cachemock: the shared store {self.path!r} was cut short while the test "
                    "ran; something outside the test removed or changed it"
                )
            chunks.append(chunk)
            at += len(chunk)
        data = b"".join(chunks)
        pos, size, head = 0, len(data), _HEAD.size
        while pos < size:
            code, slot, klen, vlen = _HEAD.unpack_from(data, pos)
            pos += head
            key = data[pos : pos + klen].decode("utf-8", "surrogatepass")
            pos += klen
            raw = data[pos : pos + vlen]
            pos += vlen
            self._apply(code, slot, key, raw)
        self.end = end

    def _apply(self, code: int, slot: int, key: str, raw: bytes) -> None:
        kind = code & ~_PICKLED
        if kind == _PUT:
            value: Any = raw
            if code & _PICKLED:
                try:
                    value = pickle.loads(raw)
                except Exception as exc:  # a class this process cannot import: a miss here
                    self.undecodable.append(f"{key!r} ({exc})")
                    self.values[slot].pop(key, None)
                    return
            self.values[slot][key] = value
        elif kind == _DELETE:
            self.values[slot].pop(key, None)
        elif kind == _CLEAR:
            for found in self.values if slot == _ALL else [self.values[slot]]:
                found.clear()
        elif kind == _KIND:
            self.slots[key] = len(self.names)
            self.names.append(key)
            self.values.append({})
        elif kind == _FAULT:
            self.faults[slot] = pickle.loads(raw)
        elif kind == _STALE:
            found_kind, found_key = json.loads(key)
            self.stale.append((found_kind, found_key, raw.decode("utf-8", "replace")))

    # -- writing ---------------------------------------------------------------------------

    def append(self, blob: bytes) -> None:
        """Append ``blob`` (whole records) and publish it; what others wrote is read first."""
        with self.lock:
            fd = self.fd
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                end = self.ctl[0]
                if end != self.end:
                    self._read(end)
                self._write_at(blob, end)
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)

    def _write_at(self, blob: bytes, end: int) -> None:
        done = os.pwrite(self.fd, blob, end)
        while done < len(blob):  # pragma: no cover - a short write to a regular file
            done += os.pwrite(self.fd, blob[done:], end + done)
        self.ctl[0] = self.end = end + len(blob)

    def slot(self, kind: str) -> int:
        """The slot of ``kind``, given to it now when no process has."""
        found = self.slots.get(kind)
        if found is not None:
            return found
        with self.lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                end = self.ctl[0]
                if end != self.end:
                    self._read(end)
                found = self.slots.get(kind)
                if found is None:
                    if len(self.names) >= _MAX_KINDS:
                        raise UserError(
                            f"cachemock: isolation='shared' keeps at most {_MAX_KINDS} kinds "
                            f"per test; kind {kind!r} is one more. Split the test, or use "
                            "isolation='process'"
                        )
                    kb = kind.encode("utf-8")
                    self._write_at(_HEAD.pack(_KIND, 0, len(kb), 0) + kb, end)
                    found = self.slots[kind] = len(self.names)
                    self.names.append(kind)
                    self.values.append({})
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
        return found

    def arm(self, slot: int, kind: str, fault: Fault | None) -> None:
        if fault is None:
            self.ctl[_FAULTS + slot] = 0
            return
        try:
            raw = pickle.dumps((fault.on, fault.exc), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise UserError(
                f"fail({kind!r}, exc={fault.exc!r}): in isolation='shared' the exception goes "
                f"to the child processes, so it must pickle, and it does not ({exc}); pass an "
                "exception class or an instance of one defined at module level"
            ) from exc
        with self.lock:
            self.append(_HEAD.pack(_FAULT, slot, 0, len(raw)) + raw)
            self.faults[slot] = (fault.on, fault.exc)
        self.ctl[_FAULTS + slot] = -1 if fault.times is None else fault.times

    def take_fault(self, slot: int) -> Fault | None:
        """One use of the fault armed on ``slot``, across processes; None when used up."""
        with self.lock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                left = self.ctl[_FAULTS + slot]
                if left == 0:
                    return None
                if left > 0:
                    self.ctl[_FAULTS + slot] = left - 1
                end = self.ctl[0]
                if end != self.end:
                    self._read(end)
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)
        on, exc = self.faults[slot]
        return Fault(on, exc, None if left < 0 else left - 1)

    def fault(self, slot: int) -> Fault | None:
        left = self.ctl[_FAULTS + slot]
        if left == 0:
            return None
        self.catch_up()
        on, exc = self.faults[slot]
        return Fault(on, exc, None if left < 0 else left)

    # -- counters --------------------------------------------------------------------------

    def new_counts(self) -> memoryview:
        """Counters for a thread that starts using the store: a file of its own."""
        with self.lock:
            self.seq += 1
            name = f"{self.pid}-{self.seq}"
        path = os.path.join(self.path, "counts", name)
        fd = os.open(path, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, _COUNTS_SIZE)
            found = mmap.mmap(fd, _COUNTS_SIZE)
        finally:
            os.close(fd)
        return memoryview(found).cast("q")

    def sums(self) -> list[list[int]]:
        """Per slot, [puts, hits, misses, errors] of every thread of every process."""
        where = os.path.join(self.path, "counts")
        for name in os.listdir(where):
            if name not in self.counts:
                fd = os.open(os.path.join(where, name), _OPEN)
                try:
                    if os.fstat(fd).st_size < _COUNTS_SIZE:
                        continue  # being made: nothing counted in it yet
                    self.counts[name] = memoryview(mmap.mmap(fd, _COUNTS_SIZE)).cast("q")
                finally:
                    os.close(fd)
        self.catch_up()
        totals = [[0, 0, 0, 0] for _ in self.names]
        for counts in list(self.counts.values()):
            for slot, total in enumerate(totals):
                base = slot * 4
                total[0] += counts[base]
                total[1] += counts[base + 1]
                total[2] += counts[base + 2]
                total[3] += counts[base + 3]
        return totals

    def zero(self) -> None:
        self.sums()  # every counter file mapped
        for counts in self.counts.values():
            for i in range(len(counts)):
                counts[i] = 0
        for slot in range(_MAX_KINDS):
            self.ctl[_FAULTS + slot] = 0
        self.append(_HEAD.pack(_CLEAR, _ALL, 0, 0))


class _Entries(MutableMapping[str, Any]):
    """One kind's entries in the shared store (what ``KindRecord.entries`` is in a shared box)."""

    __slots__ = ("_disk", "_slot", "_values")

    def __init__(self, disk: _Disk, slot: int) -> None:
        self._disk = disk
        self._slot = slot
        self._values = disk.values[slot]

    def get(self, key: str, default: Any = None) -> Any:
        disk = self._disk
        if disk.ctl[0] != disk.end:
            disk.catch_up()
        return self._values.get(key, default)

    def __getitem__(self, key: str) -> Any:
        disk = self._disk
        if disk.ctl[0] != disk.end:
            disk.catch_up()
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store([(key, value)])

    def _store(self, pairs: Iterable[tuple[str, Any]]) -> None:
        parts = []
        slot = self._slot
        for key, value in pairs:
            if type(value) is bytes:
                code, raw = _PUT, value
            else:
                try:
                    code, raw = _PUT | _PICKLED, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    raise UserError(
                        f"cachemock: in isolation='shared' the value stored under {key!r} goes "
                        f"to the child processes, so it must pickle, and this "
                        f"{type(value).__qualname__} does not ({exc}); store bytes (what the "
                        "real backend would store), or use isolation='process'"
                    ) from exc
            kb = key.encode("utf-8", "surrogatepass")
            parts.append(_HEAD.pack(code, slot, len(kb), len(raw)) + kb + raw)
        disk = self._disk
        with disk.lock:
            disk.append(b"".join(parts))
            # This process keeps the object itself, as the other modes do.
            self._values.update(pairs if isinstance(pairs, dict) else dict(pairs))

    def update(self, other: Any = (), /, **kw: Any) -> None:
        pairs = dict(other, **kw)
        if pairs:
            self._store(pairs.items())

    def __delitem__(self, key: str) -> None:
        if self.pop(key, None) is None:
            raise KeyError(key)

    def pop(self, key: str, default: Any = None) -> Any:
        disk = self._disk
        with disk.lock:
            disk.catch_up()
            found = self._values.get(key)
            if found is None:
                return default
            kb = key.encode("utf-8", "surrogatepass")
            disk.append(_HEAD.pack(_DELETE, self._slot, len(kb), 0) + kb)
            return self._values.pop(key, default)

    def clear(self) -> None:
        disk = self._disk
        with disk.lock:
            disk.append(_HEAD.pack(_CLEAR, self._slot, 0, 0))
            self._values.clear()

    def __iter__(self) -> Iterator[str]:
        self._disk.catch_up()
        return iter(list(self._values))

    def __len__(self) -> int:
        self._disk.catch_up()
        return len(self._values)

    def __repr__(self) -> str:
        return f"<cachemock shared entries {self._disk.names[self._slot]!r}>"


def _counter(index: int) -> property:
    def read(self: _SharedRecord) -> int:
        return self._counts[self._base + index]

    def write(self: _SharedRecord, value: int) -> None:
        self._counts[self._base + index] = value

    return property(read, write)


class _SharedRecord(KindRecord):
    """A thread's record of one kind in a shared box: entries on disk, counters in its file."""

    __slots__ = ("_base", "_counts", "_ctl", "_disk", "_fault_at", "_slot")

    def __init__(self, kind: str, box: _SharedBox, disk: _Disk, counts: memoryview) -> None:
        # Not KindRecord.__init__: its counters are the thread's file, not attributes.
        self.kind = kind
        self._box = box
        self._shared = _Kind()
        self._disk = disk
        self._slot = slot = disk.slot(kind)
        self._base = slot * 4
        self._counts = counts
        self._ctl = disk.ctl
        self._fault_at = _FAULTS + slot
        self.entries = _Entries(disk, slot)  # type: ignore[assignment]
        self.log = box.oplog.ring  # this process's operations go to the box's log

    puts = _counter(0)
    hits = _counter(1)
    misses = _counter(2)
    errors = _counter(3)

    @property
    def fault(self) -> Fault | None:
        return self._disk.fault(self._slot)

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        self._disk.arm(self._slot, self.kind, fault)

    def take_fault(self) -> Fault | None:
        return self._disk.take_fault(self._slot)


class _Ready(dict):  # type: ignore[type-arg]
    """A thread's ready table in a shared box: a fault armed in any process takes a kind out
    (the mock then takes its slow path, which raises it)."""

    __slots__ = ()

    def __getitem__(self, kind: str) -> _SharedRecord:
        record: _SharedRecord = dict.__getitem__(self, kind)
        if record._ctl[record._fault_at]:
            raise KeyError(kind)
        return record


class _Records(dict):  # type: ignore[type-arg]
    """A thread's records in a shared box, with the counters of its file."""

    __slots__ = ("counts",)
    counts: memoryview


class _SharedBox(_Box):
    """A box of mode ``shared``: its kinds live in a ``_Disk``. When it closes in the test's
    process, its entries and sums are copied into memory (the stats stay readable after the
    block, as in the other modes) and the directory is removed."""

    __slots__ = ("disk", "frozen", "undo")

    def __init__(self, mode: str, owner: int, keeps: bool, token: object = None) -> None:
        super().__init__(mode, owner, keeps, token)
        self.frozen: dict[str, KindRecord] | None = None
        self.undo: dict[str, str | None] = {}
        if _child_dir is not None:
            self.disk = _Disk(_child_dir, create=False)
            return
        path = tempfile.mkdtemp(prefix="cachemock-shared-")
        try:
            self.disk = _Disk(path, create=True)
            self.undo = _activate(path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def join(self) -> tuple[dict[str, KindRecord], dict[str, KindRecord]]:
        if self.frozen is not None:
            return super().join()
        records = _Records()
        records.counts = self.disk.new_counts()
        tables: tuple[dict[str, KindRecord], dict[str, KindRecord]] = (records, _Ready())
        with self.lock:
            self.tables.append(tables)
        return tables

    def record(self, kind: str, records: dict[str, KindRecord]) -> KindRecord:
        frozen = self.frozen
        if frozen is not None:
            found = frozen.get(kind)
            if found is None:
                found = frozen[kind] = KindRecord(kind, self, self.kinds.setdefault(kind, _Kind()))
            return found
        found = records.get(kind)
        if found is None:
            assert isinstance(records, _Records)  # ThreadStore binds the thread by join()
            found = records[kind] = _SharedRecord(kind, self, self.disk, records.counts)
        return found

    def arm(self, kind: str, fault: Fault | None) -> None:
        if self.frozen is not None:
            super().arm(kind, fault)
            return
        self.disk.arm(self.disk.slot(kind), kind, fault)

    # -- verify mode (_verify): what children verify, and the stale hits they find --------

    def share_verify(self, config: Mapping[str, Any]) -> None:
        """Tell the children started from now on to verify as ``config`` says."""
        disk = self.disk
        if self.frozen is not None or not disk.owner:
            return
        path = os.path.join(disk.path, "manifest.json")
        try:
            with open(path) as f:
                manifest = json.load(f)
        except OSError:
            manifest = {"lines": [], "switches": "keep", "enable": []}
        manifest["verify"] = dict(config)
        with open(path + ".new", "w") as f:
            json.dump(manifest, f)
        os.replace(path + ".new", path)  # a child starting now reads the old or the new

    def report_stale(self, kind: str, key: str, text: str) -> None:
        """A stale hit found in this child process: to the test's process, through the log."""
        disk = self.disk
        if self.frozen is not None or disk.owner:
            return  # the test's own process keeps it in its verifier
        where = json.dumps([kind, key]).encode("utf-8", "surrogatepass")
        body = text.encode("utf-8", "replace")
        disk.append(_HEAD.pack(_STALE, 0, len(where), len(body)) + where + body)

    def stale_reports(self) -> list[tuple[str, str, str]]:
        """The stale hits the children reported since this was last asked (the test's
        process only; nothing once the box closed: its verifier took them at its stop)."""
        disk = self.disk
        if self.frozen is not None or not disk.owner:
            return []
        disk.catch_up()
        with disk.lock:
            new = disk.stale[disk.stale_taken :]
            disk.stale_taken = len(disk.stale)
        return new

    def sums(self) -> dict[str, KindRecord]:
        frozen = self.frozen
        if frozen is not None:
            return dict(frozen)
        disk = self.disk
        totals = disk.sums()
        out: dict[str, KindRecord] = {}
        for slot, kind in enumerate(list(disk.names)):
            record = out[kind] = KindRecord(kind, self)
            record.entries = _Entries(disk, slot)  # type: ignore[assignment]
            record.puts, record.hits, record.misses, record.errors = totals[slot]
        return out

    def reset(self) -> None:
        if self.frozen is not None:
            super().reset()
            for record in self.frozen.values():
                record._zero()
            return
        self.disk.zero()

    def close(self) -> None:
        disk = self.disk
        if self.frozen is None and disk.owner:
            frozen: dict[str, KindRecord] = {}
            for kind, total in self.sums().items():
                shared = self.kinds[kind] = _Kind()
                shared.entries.update(total.entries)
                record = frozen[kind] = KindRecord(kind, self, shared)
                record.puts, record.hits = total.puts, total.hits
                record.misses, record.errors = total.misses, total.errors
            for slot in range(_MAX_KINDS):
                disk.ctl[_FAULTS + slot] = 0
            self.frozen = frozen
            _deactivate(self.undo, disk.path)
            os.close(disk.fd)
            shutil.rmtree(disk.path, ignore_errors=True)
        super().close()


# -- children -------------------------------------------------------------------------------


def _activate(path: str) -> dict[str, str | None]:
    """Point the Python children started from now on at the store; return the undo."""
    site = os.path.join(path, "site")
    os.mkdir(site)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(_SITE.replace("ROOT", repr(root)))
    undo = {name: os.environ.get(name) for name in (ENV_VAR, "PYTHONPATH")}
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = site if not old else site + os.pathsep + old
    os.environ[ENV_VAR] = path
    # Some start their Python children with this process's sys.path as PYTHONPATH instead of
    # the environment's (torch's compile worker pool, SubprocPool): first there too. Nothing
    # here imports it (sitecustomize ran at start-up), and its hook skips this process.
    sys.path.insert(0, site)
    _restart_forkserver()
    return undo


def _deactivate(undo: Mapping[str, str | None], path: str) -> None:
    for name, value in undo.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    site = os.path.join(path, "site")
    sys.path[:] = [entry for entry in sys.path if entry != site]
    _restart_forkserver()


def _restart_forkserver() -> None:
    """A running forkserver has the environment of when it started: stop it, so the next
    forkserver child (of this test, or after it) comes from one started with today's."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if callable(stop) and getattr(server, "_forkserver_pid", None) is not None:
        stop()


def prepare(box: _Box, kinds: Mapping[str, Any], switches: str, enable: Iterable[str]) -> None:
    """Write what a child needs to mock ``kinds`` as the test does (``manifest.json``)."""
    if not isinstance(box, _SharedBox) or not box.disk.owner:
        return
    lines = []
    for kind in kinds.values():
        line = _as_line(kind)
        if line is not None:
            lines.append(line)
    manifest = {"lines": lines, "switches": switches, "enable": list(enable)}
    with open(os.path.join(box.disk.path, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def _ref(obj: Any, attr: str | None) -> str | None:
    """``module:Qual.attr`` naming ``obj`` (a module or a class) and ``attr``, else None."""
    if isinstance(obj, type(os)):
        base = f"{obj.__name__}:"
    elif isinstance(obj, type) and "<" not in obj.__qualname__:
        base = f"{obj.__module__}:{obj.__qualname__}."
    else:
        return None
    if attr is None:
        return base.rstrip(".:") if base.endswith(".") else None
    return base + attr


def _as_line(kind: Any) -> str | None:
    """A ``cachemock_kinds`` line declaring ``kind``'s named targets and attribute switches
    (discovered classes declare themselves in the child; env switches are inherited)."""
    tokens = []
    for target in kind.targets:
        if type(target).__name__ == "_DiscoveredTarget":
            continue
        attr = None if target.attr == "backend_override_cls" else target.attr
        ref = _ref(target.obj, attr)
        if ref is not None:
            tokens.append(f"target={ref}")
    if not tokens:
        return None
    for switch in kind.switches:
        spot = switch.spot()
        ref = None if spot is None else _ref(spot[0], spot[1])
        if ref is not None:
            tokens.append(f"switch={ref}")
    return " ".join([kind.name, *tokens])


def attach(path: str) -> None:
    """This process is a child of a test in mode ``shared``: its shared boxes use ``path``."""
    global _child_dir
    _child_dir = path


def _after_fork() -> None:
    """In a forked child: counters of its own, and no lock held by a thread that is gone."""
    store = _store
    store._lock = threading.Lock()
    for box in list(store._running):
        if isinstance(box, _SharedBox) and box.frozen is None:
            box.lock = threading.RLock()
            box.disk.after_fork()
            box.tables = []
    local = store.local
    if isinstance(getattr(local, "box", None), _SharedBox):
        del local.box
        local.records = {}
        local.ready = {}


_makers["shared"] = _SharedBox
os.register_at_fork(after_in_child=_after_fork)
