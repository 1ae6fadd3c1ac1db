"""``PatchCaches``: install mock backends for every cache kind, turn real caches off, restore.

Use it as a context manager, with ``start()``/``stop()``, or (as the seed's unittest suites do)
through the ``setUp()``/``tearDown()`` classmethods that only turn switches off and back. The
pytest fixture ``patch_caches`` is an entered ``PatchCaches``.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

from . import _discovery as discovery
from . import _expect, _state, _verify, counters
from ._oplog import CacheLog, OpLog
from ._report import render_report
from ._spots import Undo, _ours, _read, _restore, _same, _write
from .errors import KindConfigError, UnknownKindUsageError, UserError, _unknown_kind
from .kinds import CacheKind, Registry, Switch, Target
from .mock import Fault, KindRecord, current_store
from .stats import KindStats, Stats

if TYPE_CHECKING:
    # typing_extensions takes 5 to 15 ms to import: not at plugin load, for an annotation.
    from typing_extensions import Self

# KindConfigError and UnknownKindUsageError live in errors.py; the names stay importable here.
__all__ = ["KindConfigError", "PatchCaches", "UnknownKindUsageError"]

_ISOLATION_MODES = ("thread", "process", "shared")
_SWITCH_MODES = ("keep", "off")
_FAULT_OPS = ("get", "put", "both")


def __getattr__(name: str) -> Any:
    # ``default_registry`` was a module global; it is the current scope's registry now (the
    # session's under pytest, see _state), read when asked.
    if name == "default_registry":
        return _state.current().registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Other libraries' own per-name counters, shown by library_stats() next to the toolkit's:
# prefix -> what reads them now (``{name: {"hit": .., "miss": .., "put": .., "exception": ..}}``).
# A profile adds its library's (the torch profile: torch's remote_cache.cache_stats).
_library_counters: dict[str, Callable[[], counters.Snapshot]] = {}


def _add_library_counters(prefix: str, read: Callable[[], counters.Snapshot]) -> None:
    """Show what ``read()`` counts in ``library_stats()``, each name as ``prefix + name``."""
    _library_counters[prefix] = read


def _library_raw() -> counters.Snapshot:
    """The toolkit's counters since the process started, then every added library's."""
    found = counters.cache_stats.raw()
    for prefix, read in list(_library_counters.items()):
        found.update({prefix + name: values for name, values in read().items()})
    return found


def _check_isolation(isolation: object) -> None:
    """A ValueError naming the modes when ``isolation`` is not one of them."""
    if isolation not in _ISOLATION_MODES:
        raise ValueError(
            f"isolation={isolation!r} is not an isolation mode; choose one of "
            f"{', '.join(map(repr, _ISOLATION_MODES))}"
        )


def _warn_foreign(foreign: Mapping[str, Stats], isolation: str) -> None:
    """One warning for what threads that belong to no running test did while a block ran."""
    import warnings

    from .errors import ForeignTrafficWarning

    parts = [f"{kind} ({stats})" for kind, stats in sorted(foreign.items())]
    warnings.warn(
        ForeignTrafficWarning(
            f"cache traffic from threads that belong to no running test (started before it: a "
            f"long-lived thread or pool) is not in this test's stats: {', '.join(parts)}. It "
            f"was kept apart and thrown away (isolation={isolation!r}); "
            "isolation='process' counts every thread of the process"
        ),
        stacklevel=3,
    )


def _switch_plan(
    kinds: Mapping[str, CacheKind], enable: Iterable[str], local: Iterable[str] = ()
) -> list[tuple[Switch, bool]]:
    """Each distinct switch once, with whether it goes on.

    A flag shared by several kinds (torch's autotune_local_cache) is set once: on when any of
    its kinds is enabled, whatever the order of the kinds. A switch marked ``local`` (a kind's
    unmocked on-disk layer) goes on only for the kinds in ``local``.
    """
    enabled = set(enable)
    with_local = set(local)
    plan: dict[Hashable, tuple[Switch, bool]] = {}
    for kind in kinds.values():
        for switch in kind.switches:
            on = kind.name in enabled and (
                kind.name in with_local or not getattr(switch, "local", False)
            )
            seen = plan.get(switch.key)
            if seen is None or (on and not seen[1]):
                plan[switch.key] = (switch, on)
    return list(plan.values())


# -- the write log -------------------------------------------------------------------------------
#
# Every write of every running PatchCaches (and of every PatchCaches.setUp()) is one entry,
# (undo, redo, argument), in ``_log``, oldest first; ``redo(argument)`` writes the same value
# again and returns a fresh undo. A PatchCaches whose writes are the newest (the usual case,
# nesting) undoes them backwards. One stopped before a newer one (``a.start(); b.start();
# a.stop()``) takes back every write from its first one on, drops its own and writes the
# others again, so each spot ends with the value it would have had had it never started: the
# newer one keeps its mocks, and stopping it restores what was there before either.

_Entry = tuple[Undo, Callable[[Any], Undo], Any]


class _Layer:
    """The writes of one start (or one ``PatchCaches.setUp()``), oldest first."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[_Entry] = []


_log: list[_Entry] = []
_layers: list[_Layer] = []  # running, oldest first
_log_lock = threading.Lock()
# The layers of PatchCaches.setUp() not yet torn down, oldest first.
_setups: list[_Layer] = []


def _undo_all(entries: list[_Entry]) -> BaseException | None:
    """Run every undo, newest first; return the first failure (the rest are restored anyway)."""
    first: BaseException | None = None
    for entry in reversed(entries):
        try:
            _restore(entry[0])
        except BaseException as exc:  # restore the rest before reporting
            if first is None:
                first = exc
    return first


def _open(layer: _Layer, steps: Iterable[tuple[Callable[[Any], Undo], Any]]) -> None:
    """Write each step, recording the entries; on a failure take them back and raise it."""
    entries = layer.entries
    with _log_lock:
        try:
            for redo, arg in steps:
                entries.append((redo(arg), redo, arg))
        except BaseException:
            _undo_all(entries)
            entries.clear()
            raise
        _layers.append(layer)
        _log.extend(entries)


def _add(layer: _Layer, redo: Callable[[Any], Undo], arg: Any) -> bool:
    """One more write of ``layer`` (``enable()`` after start, a kind discovered while it runs),
    made only while the layer runs: checked under the lock, so a stop in another thread cannot
    leave the write behind. True when written."""
    with _log_lock:
        if not any(running is layer for running in _layers):
            return False
        entry = (redo(arg), redo, arg)
        layer.entries.append(entry)
        _log.append(entry)
        return True


def _close(layer: _Layer) -> None:
    """Take back ``layer``'s writes, whatever started after it; raise the first failure."""
    with _log_lock:
        if _layers and _layers[-1] is layer:
            del _layers[-1]
        else:
            for i, running in enumerate(_layers):
                if running is layer:
                    del _layers[i]
                    break
            else:
                return  # not running
        mine = layer.entries
        n = len(mine)
        log = _log
        if n == 0:
            return
        if len(log) >= n and log[-n] is mine[0] and log[-1] is mine[-1]:
            del log[-n:]
            failure = _undo_all(mine)
        else:
            failure = _close_from_the_middle(mine)
    if failure is not None:
        raise failure


def _close_from_the_middle(mine: list[_Entry]) -> BaseException | None:
    ids = {id(entry) for entry in mine}
    start = next(i for i, entry in enumerate(_log) if id(entry) in ids)
    tail = _log[start:]
    del _log[start:]
    failure = _undo_all(tail)
    owners = {id(entry): layer for layer in _layers for entry in layer.entries}
    for entry in tail:
        if id(entry) in ids:
            continue
        owner = owners[id(entry)].entries
        at = next(i for i, own in enumerate(owner) if own is entry)
        _, redo, arg = entry
        try:
            again = (redo(arg), redo, arg)
        except BaseException as exc:  # that write is gone; write the rest
            del owner[at]
            if failure is None:
                failure = exc
            continue
        owner[at] = again
        _log.append(again)
    return failure


def _close_setup(layer: _Layer) -> None:
    for i, running in enumerate(_setups):
        if running is layer:
            del _setups[i]
            break
    _close(layer)


def _close_setups(keep: int) -> None:
    """Tear down the ``PatchCaches.setUp()`` calls beyond the oldest ``keep``, newest first.

    The plugin calls it after a test whose ``setUp`` raised after ``PatchCaches.setUp()``
    (unittest then skips ``tearDown``), so the switches do not stay off for the rest of the run.
    """
    while len(_setups) > keep:
        _close_setup(_setups[-1])


def _snapshot(registry: Registry | None = None) -> dict[tuple[int, str], Any]:
    """What every target and switch (with a spot) of the registry's kinds holds now."""
    kinds = (registry if registry is not None else _state.current().registry).kinds()
    found: dict[tuple[int, str], Any] = {}
    for kind in kinds.values():
        places: list[Target | Switch] = [*kind.targets, *kind.switches]
        for place in places:
            spot = place.spot()
            if spot is not None:
                found[(id(spot[0]), spot[1])] = _read(*spot)
    return found


def _discovered(kind: str, target: Any) -> None:
    """A class or memoizer declared ``kind`` while mocks are installed: mock it from now on,
    for every running PatchCaches, oldest first (so the newest one's mock is in place)."""
    patch: PatchCaches
    for patch in list(_state.running):
        patch._adopt(kind, target)


discovery.on_register(_discovered)


class PatchCaches:
    """Mock every cache kind for the duration of a ``with`` block (or between start and stop).

    Entering resets the store, installs a mock backend at every target of every kind and turns
    the switches of the kinds in ``enable`` on. With ``switches="off"`` it also turns every
    other switch off, as the ``patch_caches`` fixture does; the default, ``"keep"``, leaves
    them as they are, as the seed's ``PatchCaches`` does (its ``setUp()`` turns them off).
    Leaving restores everything, in reverse order, also when the block raised; stats and
    entries stay readable until the next entry.
    """

    def __init__(
        self,
        *,
        enable: Iterable[str] = (),
        isolation: str = "thread",
        switches: str = "keep",
        registry: Registry | None = None,
        verify: bool | str | Iterable[str] = False,
        log_size: int | None = None,
    ) -> None:
        if switches not in _SWITCH_MODES:
            raise ValueError(
                f"switches={switches!r}: choose 'off' (turn every real cache off) or 'keep' "
                "(leave the switches as they are; kinds in enable are turned on either way)"
            )
        _check_isolation(isolation)
        if log_size is not None and (
            isinstance(log_size, bool) or not isinstance(log_size, int) or log_size < 0
        ):
            raise ValueError(f"log_size={log_size!r}: give an int >= 0 (0 keeps no log)")
        self.log_size = log_size
        self.isolation = isolation
        self.switches = switches
        # The scope of the time it is made: the running session's under pytest (see _state).
        self._scope = _state.current()
        self._autoload = registry is None
        self.registry = registry if registry is not None else self._scope.registry
        self._enable = tuple(enable)
        self._local: tuple[str, ...] = ()
        self._layer = _Layer()
        self._kinds: dict[str, CacheKind] = {}
        self._baseline: counters.Snapshot = {}
        self._active = False
        self._box: Any = None  # the store it opened (_store._Box)
        # What threads that belong to no running test did while it ran (see _store).
        self._foreign: Mapping[str, KindRecord] = {}
        # Verify mode (_verify.py): every kind, the kinds named, those given by verify().
        self._verify_every, self._verify_names = _verify.normalize(verify)
        self._verify_given: dict[str, tuple[Any, Any]] = {}
        self._verifier: _verify.Verifier | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._active:
            raise RuntimeError("this PatchCaches is already started; stop() it first")
        if self._autoload:
            self.registry.autoload()
        kinds = self.registry.kinds()
        self._check(self._enable, kinds)
        self._check(self._verify_names, kinds)
        verifier = _verify.build(self._verify_every, self._verify_names, kinds, self._verify_given)
        shared: Any = None
        if self.isolation == "shared":  # the store on disk that child processes join
            from . import _shared as shared
        box = current_store().open(self.isolation, (self._scope, self._scope.epoch))
        if self.log_size is not None:  # before any record holds the default ring
            box.oplog = OpLog(self.log_size)
        keep = self.switches == "keep"
        layer = _Layer()
        steps: list[tuple[Callable[[Any], Undo], Any]] = [
            (target.install, kind.name) for kind in kinds.values() for target in kind.installs
        ]
        steps += [
            (switch.set, on)
            for switch, on in _switch_plan(kinds, self._enable, self._local)
            if on or not keep
        ]
        try:
            if shared is not None:  # what they need to mock the same kinds
                shared.prepare(box, kinds, self.switches, self._enable)
            _open(layer, steps)
        except BaseException:
            current_store().close(box)
            raise
        self._box = box
        self._foreign = {}
        self._kinds = kinds
        self._layer = layer
        self._baseline = _library_raw()
        self._active = True
        self._verifier = verifier
        if verifier is not None:
            _verify.start(verifier, box)
        with _log_lock:
            _state.running.append(self)
        return self

    def _adopt(self, kind: str, target: Any) -> None:
        """Install a mock at ``target``, of ``kind``, registered after this started."""
        kinds = self.registry.kinds()
        found = kinds.get(kind)
        if found is None:
            return
        for place in found.targets:
            spot = place.spot()
            if spot is not None and spot[0] is target:
                if _add(self._layer, place.install, kind):
                    self._kinds = kinds
                return

    def stop(self) -> None:
        """Restore what this start changed; any order of stops is fine (see ``_log``).

        Stopping twice, or without a start, does nothing.
        """
        if not self._active:
            return
        self._active = False
        with _log_lock:
            _state.running[:] = [running for running in _state.running if running is not self]
        if self._verifier is not None:
            _verify.stop(self._verifier)
        foreign = current_store().close(self._box) if self._box is not None else {}
        self._foreign = foreign
        try:
            _close(self._layer)
            if foreign:
                _warn_foreign(self.foreign_stats(), self.isolation)
        finally:
            listeners = self._scope.listeners
            if listeners:
                stats = self._everything()
                for listener in listeners:
                    listener(stats)

    def repair(self, before: Mapping[tuple[int, str], Any]) -> None:
        """After stop: put back each spot that holds a value this PatchCaches wrote.

        That happens when something that saved the plugin's value while it ran restores it
        after the plugin left (a test's ``monkeypatch`` set up before ``patch_caches``), or
        what such a restore leaves in a Spots (a torch flag deleted: see ``Spots.ours``).
        Such a spot gets its value from ``before`` (a ``_snapshot()`` taken before the test's
        fixtures ran) or else the one this PatchCaches found; a spot holding anything else
        was changed on purpose and is left alone.
        """
        if self._active:
            return
        seen: dict[tuple[int, str], tuple[Any, str, Any, list[Any]]] = {}
        for undo, _, _ in self._layer.entries:
            if callable(undo):
                continue
            obj, attr, old, new = undo
            key = (id(obj), attr)
            found = seen.get(key)
            if found is None:
                seen[key] = (obj, attr, before.get(key, old), [new])
            else:
                found[3].append(new)
        for obj, attr, value, written in seen.values():
            now = _read(obj, attr)
            if _same(obj, now, value):
                continue
            if _ours(obj, now, written):
                _write(obj, attr, value)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.check_verified()

    @property
    def active(self) -> bool:
        return self._active

    # -- the seed's unittest classmethods ----------------------------------------------------------

    @classmethod
    def setUp(cls, testcase: Any = None) -> None:
        """Turn every switch off (as the seed's ``PatchCaches.setUp``); nests safely.

        ``PatchCaches.setUp(self)`` in a ``TestCase.setUp`` registers the restoring as a
        cleanup of that test, which unittest runs even when ``setUp`` raises later on (it
        skips ``tearDown`` then). Without it, the matching ``tearDown()`` restores them. Tests
        may turn flags on in between (torch's ``config.patch``); entering a ``PatchCaches``
        leaves them as they are.
        """
        add_cleanup = None
        if testcase is not None:
            add_cleanup = getattr(testcase, "addCleanup", None)
            if not callable(add_cleanup):
                raise TypeError(
                    f"PatchCaches.setUp(testcase): testcase is the running unittest.TestCase "
                    f"(pass self from its setUp), got {testcase!r}"
                )
        registry = _state.current().registry
        registry.autoload()
        layer = _Layer()
        # Only the switches the seed's setUp() turns off (a switch may say it is not one).
        plan = _switch_plan(registry.kinds(), ())
        _open(
            layer, [(switch.set, False) for switch, _ in plan if getattr(switch, "in_setup", True)]
        )
        _setups.append(layer)
        if add_cleanup is not None:
            add_cleanup(_close_setup, layer)

    @classmethod
    def tearDown(cls) -> None:
        """Restore the switches turned off by the newest ``setUp()`` not yet torn down."""
        if _setups:
            _close_setup(_setups[-1])

    # -- the controller ---------------------------------------------------------------------

    def _names(self) -> list[str]:
        return list(self._kinds or self.registry.kinds())

    def _check(self, names: Iterable[str], kinds: Mapping[str, CacheKind] | None = None) -> None:
        __tracebackhide__ = True  # errors point at the caller's line under pytest
        known = list(kinds if kinds is not None else self._names())
        for name in names:
            if name not in known:
                raise UnknownKindUsageError(_unknown_kind(name, known))

    def enable(self, *kinds: str, local: bool = False) -> None:
        """Turn the real caches of ``kinds`` on (their switches); restored when this stops.

        A kind's local layer that is not mocked (torch's on-disk caches) stays off unless
        ``local=True``.
        """
        __tracebackhide__ = True
        self._check(kinds)
        if not self._active:
            self._enable += kinds
            self._local += kinds if local else ()
            return
        for name in kinds:
            for switch in self._kinds[name].switches:
                if local or not getattr(switch, "local", False):
                    _add(self._layer, switch.set, True)

    def _record(self, kind: str) -> KindRecord:
        __tracebackhide__ = True
        self._check((kind,))
        return current_store().record(kind)

    def entries(self, kind: str) -> Mapping[str, Any]:
        """The stored key -> stored (encoded) value of ``kind``, read-only and live."""
        __tracebackhide__ = True
        return MappingProxyType(self._record(kind).entries)

    def seed(
        self, kind: str, mapping: Mapping[str, Any], *, cache: Any = None, strict: bool = False
    ) -> None:
        """Put ``mapping`` into ``kind``'s mock, without counting.

        Without ``cache``, ``mapping`` is stored key -> stored value, as ``entries()`` shows
        them; a value that no mock or cache of the kind could read back is refused (not bytes
        where the kind's mocks stand in for a bytes-only backend, or a value that the serde of
        every cache whose keys it matches cannot decode). With ``cache`` (a RemoteCache of this
        kind), ``mapping`` is the cache's own key -> value, stored as ``cache.put`` stores it:
        the key formatted by ``cache.key_for``, the value encoded by its serde. Nothing is
        stored unless every entry is accepted.

        With ``strict=True``, an entry seeded here that the test never reads (a get or add
        that hits it) fails the test at its end (docs/expectations.md).
        """
        __tracebackhide__ = True
        from .mock import _seeded

        if strict and self.isolation == "shared":
            raise ValueError(
                f"seed({kind!r}, ..., strict=True): in isolation='shared' the reads of child "
                "processes are not in the test's log, so an entry never read cannot be told; "
                "seed without strict, or use isolation 'thread' or 'process'"
            )
        record = self._record(kind)
        targets = self._targets(kind, "seed")
        # A layer that keeps its own entries (a cachetools cache) stores them its own way.
        if [target for target in targets if target.seed(mapping)]:
            if strict:
                raise UserError(
                    f"seed({kind!r}, ..., strict=True): this kind keeps its entries in its own "
                    "cache, whose reads are not in the test's log; seed it without strict"
                )
            return
        staged = _seeded(kind, mapping, cache, targets)
        record.entries.update(staged)
        if strict:
            _expect.note_strict(self._current_box(), kind, staged)

    def _targets(self, kind: str, op: str) -> list[Target]:
        """The targets of ``kind``; a UserError when one of them cannot take ``op``."""
        __tracebackhide__ = True
        declared = self._kinds.get(kind) or self.registry.kinds().get(kind)
        targets = declared.targets if declared is not None else []
        for target in targets:
            why = target.refuses(op)
            if why is not None:
                raise UserError(f"{op}({kind!r}, ...): {why}")
        return targets

    def fail(
        self,
        kind: str,
        on: str = "both",
        exc: BaseException | type[BaseException] = ConnectionError,
        times: int | None = None,
    ) -> None:
        """Make ``kind``'s mock raise ``exc`` on ``on`` ("get", "put", "both"), ``times`` times.

        ``times=None`` fails until ``reset()`` or the end of the test; ``times=0`` disarms.
        Each failure counts as an error in the kind's stats and in ``cache_stats``.
        """
        __tracebackhide__ = True
        if on not in _FAULT_OPS:
            raise ValueError(f"on={on!r}: choose one of {', '.join(map(repr, _FAULT_OPS))}")
        if not (
            isinstance(exc, BaseException)
            or (isinstance(exc, type) and issubclass(exc, BaseException))
        ):
            raise TypeError(f"exc must be an exception class or instance, got {exc!r}")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 0
        ):
            raise ValueError(f"times must be None or an int >= 0, got {times!r}")
        record = self._record(kind)
        self._targets(kind, "fail")
        record.fault = None if times == 0 else Fault(on, exc, times)

    def verify(
        self,
        *kinds: str,
        recompute: Callable[[str], Any] | None = None,
        compare: Callable[[Any, Any], bool] | None = None,
    ) -> None:
        """Verify the hits of ``kinds`` (every kind that can be, when none is named).

        On each hit the real computation runs too, outside the caches, and a result that
        differs from the cached one (``==``, or ``compare(cached, fresh)``) fails the test.
        A ``RemoteCache`` kind needs ``recompute(key)``: its value for the cache's own key.
        """
        __tracebackhide__ = True
        self._check(kinds)
        if not kinds:
            self._verify_every = True
        for name in kinds:
            self._verify_given[name] = (recompute, compare)
        if self._active:
            verifier = _verify.build(
                self._verify_every, self._verify_names, self._kinds, self._verify_given
            )
            assert verifier is not None
            if self._verifier is None:
                self._verifier = verifier
                _verify.start(verifier, self._box)
            else:
                self._verifier.every = verifier.every
                self._verifier.checks.update(verifier.checks)

    def stale_hits(self) -> str:
        """The stale hits verify mode found since this was last asked, as text ("" for none)."""
        found = self._verifier.take() if self._verifier is not None else []
        return _verify.failure_text(found) if found else ""

    def check_verified(self) -> None:
        """Raise ``StaleHitError`` for the stale hits verify mode found and not yet raised."""
        __tracebackhide__ = True
        stale = self.stale_hits()
        if stale:
            raise _verify.StaleHitError(stale)

    def check_keys(self, fn: Any, examples: Any = None, **options: Any) -> _verify.KeyCheck:
        """Check the key of the memoized ``fn`` on ``examples`` (or ``strategy=``'s draws).

        Fails when two calls get one key but different results; notes (warns) a key that
        changes by itself or many keys holding one result. Nothing is cached or counted.
        """
        __tracebackhide__ = True
        return _verify.check_keys(fn, examples, **options)

    def reset(self) -> None:
        """Zero every counter, drop every entry, disarm every fault and empty the operation
        log of the current store (puts stay forbidden where they were)."""
        current_store().reset()

    # -- expectations (docs/expectations.md; the logic is _expect's) ----------------------------

    def _current_box(self) -> Any:
        return current_store().box()

    def log(self, kind: str | None = None) -> CacheLog:
        """The mock operations of the current store (this test's), oldest first: each a
        ``CacheOp(kind, op, key, outcome)``; only ``kind``'s when given. ``dropped`` says how
        many older ones the bound (``log_size``, ini ``cachemock_log_size``) let go."""
        __tracebackhide__ = True
        if kind is not None:
            self._check((kind,))
        return _expect.log_of(self._current_box(), kind)

    def expect(self, **kinds: Stats | _expect.Expect) -> _expect.ExpectBlock:
        """``with patch.expect(prices=Stats(puts=1, hits=1, misses=1)):`` - on leaving the
        block, its counts of each kind named are checked (an ``Expect`` checks only the
        counters it gives, and takes ``at_least(n)``/``at_most(n)``)."""
        __tracebackhide__ = True
        self._check(kinds)
        return _expect.ExpectBlock(self, kinds)

    def assert_stats(self, **kinds: Stats | _expect.Expect) -> None:
        """Check the counts of each kind named, so far in the test (as :meth:`expect` does)."""
        __tracebackhide__ = True
        self._check(kinds)
        for kind, value in kinds.items():
            _expect._spec("assert_stats", kind, value)
        _expect.check_counts(self, kinds, self.stats(), 0, "assert_stats", "so far in the test")

    def forbid_puts(self, *kinds: str) -> None:
        """Make every put (and add) to ``kinds`` raise ``ForbiddenPutError`` naming the key;
        the test also fails at its end if one was tried (the code may swallow the error)."""
        __tracebackhide__ = True
        self._check(kinds)
        _expect.forbid(self._current_box(), kinds)

    def check_expectations(self) -> None:
        """Raise an AssertionError for strict seeds never read and forbidden puts tried (the
        ``patch_caches`` fixture checks the same at the end of each test)."""
        __tracebackhide__ = True
        _expect.verify(self._box)

    def stats(self) -> dict[str, Stats]:
        """The stats of every kind, by name."""
        records = current_store().records()
        names = self._names()
        names += [n for n in records if n not in names]
        return {name: KindStats(name, records.get(name)) for name in names}

    def _everything(self) -> dict[str, Stats]:
        """:meth:`stats` plus what ``reset()`` zeroed while this ran: all the block did."""
        stats = self.stats()
        dropped = getattr(self._box, "dropped", None)
        if not dropped:
            return stats
        out: dict[str, Stats] = {}
        zero = (0, 0, 0, 0)
        for name in [*stats, *(k for k in dropped if k not in stats)]:
            now = stats[name].as_tuple() if name in stats else zero
            puts, hits, misses, errors = (a + b for a, b in zip(now, dropped.get(name, zero)))
            out[name] = Stats(puts, hits, misses, errors=errors)
        return out

    def report(self) -> str:
        """Per-kind stats, then the entries, values cut at 100 characters."""
        records = current_store().records()
        stats = self.stats()
        text = render_report(stats, {k: records[k].entries for k in stats if k in records})
        foreign = self.foreign_stats()
        if foreign:
            lines = [f"  {kind}  {stats}" for kind, stats in sorted(foreign.items())]
            text += (
                "\nForeign traffic (threads that belong to no running test; not counted):\n"
                + "\n".join(lines)
            )
        return text

    def foreign_stats(self) -> dict[str, Stats]:
        """Per kind, what threads that belong to no running test did while this ran (isolation
        ``thread``: threads started before it, long-lived pools); not in :meth:`stats`."""
        records = self._foreign
        if self._active and self._box is not None:
            records = self._box.foreign_traffic()
        return {
            kind: Stats(r.puts, r.hits, r.misses, errors=r.errors) for kind, r in records.items()
        }

    def library_stats(self) -> counters.Snapshot:
        """What the library's ``cache_stats`` counted since this PatchCaches started, and next
        to it what a profiled library counted itself (torch's, as ``torch:<name>``)."""
        return counters.diff(_library_raw(), self._baseline)

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<PatchCaches {state} kinds={self._names()}>"
