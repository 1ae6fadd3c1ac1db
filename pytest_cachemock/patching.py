"""``PatchCaches``: install mock backends for every cache kind, turn real caches off, restore.

Use it as a context manager, with ``start()``/``stop()``, or (as the seed's unittest suites do)
through the ``setUp()``/``tearDown()`` classmethods that only turn switches off and back. The
pytest fixture ``patch_caches`` is an entered ``PatchCaches``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Callable, ClassVar

from typing_extensions import Self

from . import counters
from .kinds import CacheKind, KindConfigError, Registry, Switch, Undo, restore
from .mock import Fault, KindRecord, current_store
from .stats import KindStats, Stats, closest, render_report

__all__ = [
    "KindConfigError",
    "PatchCaches",
    "UnknownKindUsageError",
    "default_registry",
    "known_kinds",
]

ISOLATION_MODES = ("thread",)
SWITCH_MODES = ("keep", "off")
FAULT_OPS = ("get", "put", "both")

# The registry a bare ``PatchCaches()`` uses; the pytest plugin fills its declared kinds.
default_registry = Registry()

# Called with the stats of each kind when a PatchCaches stops (the session summary listens).
stop_listeners: list[Callable[[dict[str, Stats]], None]] = []


def known_kinds() -> list[str]:
    return default_registry.names()


class UnknownKindUsageError(ValueError):
    """An unknown kind was named in ``enable()``, ``entries()``, ``seed()`` or ``fail()``."""


def _switch_plan(
    kinds: Mapping[str, CacheKind], enable: Iterable[str]
) -> list[tuple[Switch, bool]]:
    """Each distinct switch once, with whether it goes on.

    A flag shared by several kinds (torch's autotune_local_cache) is set once: on when any of
    its kinds is enabled, whatever the order of the kinds.
    """
    enabled = set(enable)
    plan: dict[Hashable, tuple[Switch, bool]] = {}
    for kind in kinds.values():
        on = kind.name in enabled
        for switch in kind.switches:
            seen = plan.get(switch.key)
            if seen is None or (on and not seen[1]):
                plan[switch.key] = (switch, on)
    return list(plan.values())


def _undo_all(undos: list[Undo]) -> None:
    """Run every undo in reverse order; raise the first failure after all have run."""
    first: BaseException | None = None
    while undos:
        undo = undos.pop()
        try:
            restore(undo)
        except BaseException as exc:  # restore the rest before reporting
            if first is None:
                first = exc
    if first is not None:
        raise first


class PatchCaches:
    """Mock every cache kind for the duration of a ``with`` block (or between start and stop).

    Entering resets the store, installs a mock backend at every target of every kind and turns
    the switches of the kinds in ``enable`` on. With ``switches="off"`` it also turns every
    other switch off, as the ``patch_caches`` fixture does; the default, ``"keep"``, leaves
    them as they are, as the seed's ``PatchCaches`` does (its ``setUp()`` turns them off).
    Leaving restores everything, in reverse order, also when the block raised; stats and
    entries stay readable until the next entry.
    """

    _switch_stack: ClassVar[list[list[Undo]]] = []

    def __init__(
        self,
        *,
        enable: Iterable[str] = (),
        isolation: str = "thread",
        switches: str = "keep",
        registry: Registry | None = None,
    ) -> None:
        if switches not in SWITCH_MODES:
            raise ValueError(
                f"switches={switches!r}: choose 'off' (turn every real cache off) or 'keep' "
                "(leave the switches as they are; kinds in enable are turned on either way)"
            )
        if isolation not in ISOLATION_MODES:
            raise ValueError(
                f"isolation={isolation!r} is not available; this version has "
                f"{', '.join(map(repr, ISOLATION_MODES))} (process and shared come later)"
            )
        self.isolation = isolation
        self.switches = switches
        self.registry = registry if registry is not None else default_registry
        self._enable = tuple(enable)
        self._undos: list[Undo] = []
        self._kinds: dict[str, CacheKind] = {}
        self._baseline: counters.Snapshot = {}
        self._active = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._active:
            raise RuntimeError("this PatchCaches is already started; stop() it first")
        if self.registry is default_registry:
            default_registry.autoload()
        kinds = self.registry.kinds()
        self._check(self._enable, kinds)
        store = current_store()
        store.reset()
        undos: list[Undo] = []
        keep = self.switches == "keep"
        try:
            for kind in kinds.values():
                for target in kind.targets:
                    undos.append(target.install(kind.name))
            for switch, on in _switch_plan(kinds, self._enable):
                if on or not keep:
                    undos.append(switch.set(on))
        except BaseException:
            _undo_all(undos)
            raise
        self._kinds = kinds
        self._undos = undos
        self._baseline = counters.cache_stats.raw()
        self._active = True
        return self

    def stop(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            _undo_all(self._undos)
        finally:
            if stop_listeners:
                stats = self.stats()
                for listener in stop_listeners:
                    listener(stats)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def active(self) -> bool:
        return self._active

    # -- the seed's unittest classmethods ----------------------------------------------------------

    @classmethod
    def setUp(cls) -> None:
        """Turn every switch off (as the seed's ``PatchCaches.setUp``); nests safely.

        The matching ``tearDown()`` restores them. Tests may turn flags on in between (torch's
        ``config.patch``); entering a ``PatchCaches`` leaves them as they are.
        """
        default_registry.autoload()
        undos: list[Undo] = []
        try:
            for switch, _ in _switch_plan(default_registry.kinds(), ()):
                undos.append(switch.set(False))
        except BaseException:
            _undo_all(undos)
            raise
        cls._switch_stack.append(undos)

    @classmethod
    def tearDown(cls) -> None:
        """Restore the switches turned off by the matching ``setUp()``."""
        if cls._switch_stack:
            _undo_all(cls._switch_stack.pop())

    # -- the controller ---------------------------------------------------------------------

    def _names(self) -> list[str]:
        return list(self._kinds or self.registry.kinds())

    def _check(self, names: Iterable[str], kinds: Mapping[str, CacheKind] | None = None) -> None:
        __tracebackhide__ = True  # errors point at the caller's line under pytest
        known = list(kinds if kinds is not None else self._names())
        for name in names:
            if name not in known:
                raise UnknownKindUsageError(f"unknown cache kind {name!r}." + closest(name, known))

    def enable(self, *kinds: str) -> None:
        """Turn the real caches of ``kinds`` on (their switches); restored when this stops."""
        __tracebackhide__ = True
        self._check(kinds)
        if not self._active:
            self._enable += kinds
            return
        for name in kinds:
            for switch in self._kinds[name].switches:
                self._undos.append(switch.set(True))

    def _record(self, kind: str) -> KindRecord:
        __tracebackhide__ = True
        self._check((kind,))
        return current_store().record(kind)

    def entries(self, kind: str) -> Mapping[str, Any]:
        """The stored key -> stored (encoded) value of ``kind``, read-only and live."""
        __tracebackhide__ = True
        return MappingProxyType(self._record(kind).entries)

    def seed(self, kind: str, mapping: Mapping[str, Any]) -> None:
        """Put ``mapping`` (stored key -> stored value) into ``kind``'s mock, without counting."""
        __tracebackhide__ = True
        record = self._record(kind)
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise TypeError(f"seed({kind!r}, ...): keys are str, got {key!r}")
            if value is None:
                raise TypeError(f"seed({kind!r}, ...): value of {key!r} is None, which means miss")
            record.entries[key] = value

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
        if on not in FAULT_OPS:
            raise ValueError(f"on={on!r}: choose one of {', '.join(map(repr, FAULT_OPS))}")
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
        record.fault = None if times == 0 else Fault(on, exc, times)

    def reset(self) -> None:
        """Zero every counter, drop every entry and disarm every fault in the current store."""
        current_store().reset()

    def stats(self) -> dict[str, Stats]:
        """The stats of every kind, by name."""
        records = current_store().records()
        names = self._names()
        names += [n for n in records if n not in names]
        return {name: KindStats(name, records.get(name)) for name in names}

    def report(self) -> str:
        """Per-kind stats, then the entries, values cut at 100 characters."""
        records = current_store().records()
        stats = self.stats()
        return render_report(stats, {k: records[k].entries for k in stats if k in records})

    def library_stats(self) -> counters.Snapshot:
        """What the library's ``cache_stats`` counted since this PatchCaches started."""
        return counters.diff(counters.cache_stats.raw(), self._baseline)

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<PatchCaches {state} kinds={self._names()}>"
