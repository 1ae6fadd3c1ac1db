"""The built-in ``functools`` profile: ``lru_cache`` / ``cache`` functions as cache kinds.

Each named function is emptied (``cache_clear()``) when mocks are installed and again when
they are removed, and counted from its own ``cache_info()``: the numbers are the library's.
Entries come from ``cachemock_functools`` (or ``Registry.load_profile("functools",
entries=...)``): ``[alias=]module:function``, ``module:Class.method``, or a whole module.

Verify mode (``_verify``): the lookups run inside functools, so while a verifier runs each
function is replaced, wherever a module global holds it, by a stand-in that calls it and
reads ``cache_info()`` before and after (see ``_stand_in`` for why that is exact enough).
"""

from __future__ import annotations

import threading
from typing import Any

from .. import _verify
from .._spots import Undo
from ..errors import KindConfigError
from ..kinds import ProfileEntry, Registry, Target, _entry_value, _find_module
from ..mock import current_store

__all__ = ["LruTarget", "is_lru_cache", "register_kinds"]


# True while verify mode runs in any test (_verify.follow keeps it so).
_verifying = False
_verify.follow(globals())


def is_lru_cache(obj: object) -> bool:
    """Whether ``obj`` is a function made by ``functools.lru_cache`` or ``functools.cache``
    (or verify mode's stand-in for one)."""
    return _verify.is_lru_cache(obj)


def _counts(info: Any) -> tuple[int, int, int]:
    """(puts, hits, misses) of a ``cache_info()`` taken after the cache was emptied.

    Puts are the misses that stored: the growth of ``currsize``; once a bounded cache is
    full, every miss (a full cache stores each miss by evicting an entry).
    """
    maxsize = info.maxsize
    if maxsize is not None and info.currsize >= maxsize:
        return (info.misses if maxsize > 0 else 0, info.hits, info.misses)
    return (info.currsize, info.hits, info.misses)


class _Group:
    """The lru_cache functions installed in one box, polled when its counts are read.

    Installing empties each cache, which also zeroes functools' counters, so the counts are
    ``cache_info()``'s own. When the box closes (before the undos run, which empty the caches
    again) the counts are frozen, so stats stay readable after the block.
    """

    __slots__ = ("frozen", "members")

    def __init__(self) -> None:
        self.members: list[tuple[str, Any]] = []
        self.frozen: list[Any] | None = None  # each member's cache_info() when the box closed

    def counts(self) -> dict[str, tuple[int, int, int]]:
        infos = self.frozen
        if infos is None:
            infos = [fn.cache_info() for _, fn in self.members]
        return {kind: _counts(info) for (kind, _), info in zip(self.members, infos)}

    def reset(self) -> None:
        if self.frozen is None:
            for _, fn in self.members:
                fn.cache_clear()

    def close(self) -> None:
        # Only the raw readings here: a box closes at every stop, its counts are rarely read.
        if self.frozen is None:
            self.frozen = [fn.cache_info() for _, fn in self.members]


_store = current_store()


def _stand_in(fn: Any, kind: str, where: str) -> Any:
    """What calls ``fn`` while verify mode runs: ``fn`` itself, and on a hit the check.

    functools tells no caller whether its call hit, only ``cache_info()``, which every
    thread's calls move. So a call is taken for a miss only when the hits did not move and
    the misses did while it ran; anything else is checked (its own hit, or a hit in another
    thread at the same moment). Under threads this never lets a hit go unchecked, and a miss
    taken for a hit costs one more computation whose result equals the one just returned (a
    function that gives two results for one call is not one to verify). The hits and misses
    of calls nested in this one through the stand-in (a recursive function) are this
    thread's, and are taken off: they do not turn its miss into a hit. Another way, calling
    ``__wrapped__`` first and then the cache, would recompute every miss too.
    """
    real = fn.__wrapped__
    info = fn.cache_info
    local = threading.local()

    def call(*args: Any, **kwargs: Any) -> Any:
        if not _verifying:
            return fn(*args, **kwargs)
        if _verify.bypassing():  # inside a recompute: no cache
            return real(*args, **kwargs)
        stack: list[list[int]] | None = getattr(local, "stack", None)
        if stack is None:
            stack = local.stack = []
        inner = [0, 0]  # hits, misses of the calls nested in this one (through stand-ins)
        stack.append(inner)
        before = info()
        try:
            result = fn(*args, **kwargs)
        finally:
            after = info()
            stack.pop()
            hits, misses = after.hits - before.hits, after.misses - before.misses
            if stack:
                stack[-1][0] += hits
                stack[-1][1] += misses
        if hits == inner[0] and misses > inner[1]:
            return result  # a miss: nothing hit while it ran
        if _verify.verified(kind):
            from .._keys import _call_repr

            key = _verify.lru_key(fn, args, kwargs)
            _verify.hit(
                kind,
                repr(key if type(key) is tuple else (key,)),  # shown as the arguments' tuple
                result,
                lambda: real(*args, **kwargs),
                lambda: _call_repr(where, args, kwargs),
            )
        return result

    return _verify.dressed(call, fn)


class LruTarget(Target):
    """An ``lru_cache`` function: emptied before and after each test, counted per test."""

    verifiable = True

    def __init__(
        self, fn: Any, where: str, origin: str, spots: tuple[tuple[Any, str], ...] = ()
    ) -> None:
        super().__init__(fn, "cache_clear", _no_mock, origin)
        self.where = where
        self.spots = spots  # where it is held besides module globals (a class, for a method)

    def verify_wrap(self, kind: str) -> _verify.Rebind:
        fn, where = self.obj, self.where
        return fn, lambda: _stand_in(fn, kind, where), self.spots

    def install(self, kind: str) -> Undo:
        # Cheap, as a module may hold a hundred of them: the box this thread just opened
        # holds one group for all of them; the undo is the function's own cache_clear.
        fn = self.obj
        fn.cache_clear()
        box = getattr(_store.local, "box", None)
        if box is None or box.closed:
            box = _store.box()
        polled = box.polled
        group = polled[-1] if polled else None
        if type(group) is not _Group:
            group = _Group()
            box.poll(group)
        group.members.append((kind, fn))
        clear: Undo = fn.cache_clear
        return clear

    def spot(self) -> tuple[Any, str] | None:
        return None  # writes no attribute: nothing for a monkeypatch to put back wrongly

    def refuses(self, op: str) -> str | None:
        if op == "seed":
            return (
                f"{self.where} is an lru_cache function, and functools has no way to store a "
                "result without calling the function: call it in the test to fill its cache"
            )
        return (
            f"{self.where} is an lru_cache function, whose lookups run inside functools and "
            "cannot be made to fail: make the function itself raise (monkeypatch what it calls)"
        )

    def __repr__(self) -> str:
        return f"<LruTarget {self.where} from {self.origin}>"


class _ModuleGroup:
    """The lru_cache functions of a whole module installed in one box (see ``_Group``).

    Closing the box reads each function's ``cache_info()`` and empties it in one pass; the
    undo that runs next has nothing left to do.
    """

    __slots__ = ("frozen", "target")

    def __init__(self, target: _ModuleTarget) -> None:
        self.target = target
        self.frozen: list[Any] | None = None

    def counts(self) -> dict[str, tuple[int, int, int]]:
        infos = self.frozen
        if infos is None:
            infos = [info() for info in self.target.infos]
        return {kind: _counts(info) for kind, info in zip(self.target.kinds, infos)}

    def reset(self) -> None:
        if self.frozen is None:
            for clear in self.target.clears:
                clear()

    def close(self) -> None:
        if self.frozen is None:
            target = self.target
            self.frozen = [info() for info in target.infos]
            for clear in target.clears:
                clear()

    def empty(self) -> None:
        """The install's undo: empty every function (done already when the box closed)."""
        if self.frozen is None:
            for clear in self.target.clears:
                clear()


class _ModuleTarget(Target):
    """The lru_cache functions of a whole module, installed as one: one target, one polled
    group and one undo for all of them, however many (see ``Registry.add_module``)."""

    def __init__(self, members: list[tuple[str, Any]], origin: str) -> None:
        super().__init__(None, "cache_clear", _no_mock, origin)
        self.kinds = [kind for kind, _ in members]
        # Bound once: a box closes at every stop, and reads each of them.
        self.infos = [fn.cache_info for _, fn in members]
        self.clears = [fn.cache_clear for _, fn in members]

    def install(self, kind: str) -> Undo:
        for clear in self.clears:
            clear()
        box = getattr(_store.local, "box", None)
        if box is None or box.closed:
            box = _store.box()
        for source in box.polled:  # installed again in this box (a stop out of order)
            if type(source) is _ModuleGroup and source.target is self and not box.closed:
                group = source
                break
        else:
            group = _ModuleGroup(self)
            if not box.closed:  # a closed box's counts are frozen: it counts nothing more
                box.poll(group)
        undo: Undo = group.empty
        return undo

    def spot(self) -> tuple[Any, str] | None:
        return None  # writes no attribute

    def __repr__(self) -> str:
        return f"<LruTarget of {len(self.kinds)} functions from {self.origin}>"


def _group(kinds: list[tuple[str, list[Target]]]) -> Target:
    """The one target installing every lru_cache function a whole-module entry kept."""
    members = [(name, target.obj) for name, targets in kinds for target in targets]
    origin = kinds[0][1][0].origin if kinds and kinds[0][1] else ""
    return _ModuleTarget(members, origin)


def _no_mock(kind: str) -> Any:
    raise AssertionError("an LruTarget installs no mock")


def _where(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _refuse(entry: ProfileEntry, value: Any) -> KindConfigError:
    what = type(value).__qualname__
    if callable(getattr(value, "cache", None)) or hasattr(value, "cache_key"):
        hint = "it is a cachetools @cached function: list it in cachemock_cachetools"
    elif callable(value):
        hint = (
            f"it is a {what} without an lru_cache: decorate it with @functools.lru_cache or "
            "@functools.cache (outermost, or name the decorated function itself)"
        )
    else:
        hint = f"it holds a {what}; name a function decorated with @functools.lru_cache"
    return KindConfigError(
        f"{entry.origin}: {entry.reference()} is not an lru_cache or cache function: {hint}"
    )


def _scan(module: Any, entry: ProfileEntry) -> list[tuple[str, list[Target]]]:
    """The lru_cache functions defined at the top level of ``module`` (not imported ones)."""
    found: list[tuple[str, list[Target]]] = []
    for name, value in list(vars(module).items()):
        if is_lru_cache(value) and getattr(value, "__module__", None) == module.__name__:
            found.append((name, [LruTarget(value, f"{module.__name__}.{name}", entry.origin)]))
    if not found:
        raise KindConfigError(
            f"{entry.origin}: module {module.__name__!r} defines no lru_cache or cache "
            "function at its top level (methods are named one by one: 'module:Class.method')"
        )
    return found


def register_kinds(registry: Registry, *, origin: str, entries: list[ProfileEntry]) -> None:
    """Declare a kind per named ``lru_cache`` function; a module's are found later."""
    for entry in entries:
        if entry.attribute is None:
            _find_module(entry)
            registry.add_module(entry, _scan, _group)
            continue
        value = _verify.original(_entry_value(entry))
        if not is_lru_cache(value):
            raise _refuse(entry, value)
        parent = entry.attribute.rpartition(".")[0]
        spots: tuple[tuple[Any, str], ...] = ()
        if parent:  # a method: its class holds it
            owner = _entry_value(ProfileEntry(None, entry.module, parent, entry.origin, ""))
            if isinstance(owner, type):
                spots = ((owner, entry.attribute.rpartition(".")[2]),)
        registry.add_entry_kind(entry, [LruTarget(value, _where(value), entry.origin, spots)])
