"""Verify mode and the key check: recompute cache hits, and search for keys that forget an input.

Verify mode: while a ``PatchCaches`` verifies a kind, every hit of that kind (in the threads
that count into its store) also runs the real computation, outside every cache, and compares
the fresh result with the cached one; each difference is kept and fails the test. The cache
layers call one hook on a hit, :func:`hit`, with the kind, the key, the cached value and a
``recompute`` that gives the fresh value (with ``bypassing()`` true meanwhile, so the caches
it reaches neither read nor store nor count). A new kind of cache (a function cache) plugs in
with the same two calls: ``if active: hit(kind, key, cached, recompute, shown)`` on its hit
path, and ``if active and bypassing(): call the function`` on its lookup.

A function cache whose calls the plugin cannot see in place (an ``lru_cache`` function, a
cachetools ``@cached`` one) also gives its targets a ``verify_wrap(kind)``: while a verifier
runs, every module global (and each spot it names) that holds the cached function holds a
stand-in that calls it, tells whether the call hit, and calls :func:`hit` (:func:`_rebind`).

The key check (:func:`check_keys`) calls a memoized function's real function and its key
builder on examples (or on what a Hypothesis strategy draws): two calls with one key and two
results mean the key forgot an input; equal results under many keys are reported as a note.
A function cache plugs in with :func:`add_keyer`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
import threading
import warnings
from collections.abc import Hashable, Iterable, Mapping
from types import ModuleType
from typing import Any, Callable, Optional, Union

from ._report import cut
from ._store import current_store
from .errors import KeyCollisionError, KeyNoteWarning, StaleHitError

# _keys and serde are imported where used: the plugin loads this module, and they bring
# typing_extensions (the plugin's load stays light, see test_plugin_imports_nothing_heavy).

__all__ = [
    "MEMO_ATTR",
    "ORIGINAL_ATTR",
    "dressed",
    "KeyCheck",
    "KeyCollisionError",
    "KeyNoteWarning",
    "StaleHitError",
    "Verifier",
    "active",
    "add_keyer",
    "bypassing",
    "check_keys",
    "follow",
    "hit",
    "is_lru_cache",
    "lru_key",
    "original",
    "verified",
]

Compare = Callable[[Any, Any], bool]
Recompute = Callable[[str], Any]
VerifySpec = Union[bool, str, Iterable[str]]

# The verifiers of the running PatchCaches that verify something (and of check_keys).
active: list[Verifier] = []
_active_lock = threading.Lock()
# The namespaces of the modules whose hit paths test a global ``_verifying``: True while
# ``active`` holds a verifier. A bool, not the list: the hit paths test it on every hit, and
# the truth of a bool costs a quarter of a list's (measured in benchmarks/bench_verify.py).
_followers: list[dict[str, Any]] = []


def follow(namespace: dict[str, Any]) -> None:
    """Keep ``namespace["_verifying"]`` (a module's ``globals()``) equal to ``bool(active)``."""
    namespace["_verifying"] = bool(active)
    _followers.append(namespace)


def _tell() -> None:
    on = bool(active)
    for namespace in _followers:
        namespace["_verifying"] = on


# True while a recompute runs (in this thread, or this task): caches neither read nor store.
_bypass: contextvars.ContextVar[bool] = contextvars.ContextVar("cachemock_bypass", default=False)
_SHOWN_FAILURES = 10
MEMO_ATTR = "__cachemock_memoizer__"  # a memoized wrapper's memoizer, for check_keys


def bypassing() -> bool:
    """True while a verification recomputes: caches reached then read and store nothing."""
    return _bypass.get()


def _equal(cached: Any, fresh: Any) -> bool:
    return bool(cached == fresh)


class _Check:
    """How one kind is verified: its recompute function (RemoteCache kinds) and comparator."""

    __slots__ = ("compare", "recompute")

    def __init__(self, recompute: Recompute | None, compare: Compare | None) -> None:
        self.recompute = recompute
        self.compare: Compare = compare if compare is not None else _equal


class _Checks(dict[str, _Check]):
    """A verifier's checks: kinds added by ``update`` (``patch_caches.verify``) reach the
    child processes started from then on (isolation "shared")."""

    __slots__ = ("verifier",)

    def __init__(self, verifier: Verifier, checks: Mapping[str, _Check]) -> None:
        super().__init__(checks)
        self.verifier = verifier

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self.verifier.share()


class Verifier:
    """The kinds one ``PatchCaches`` verifies, for the threads of its store, and what it found.

    ``every`` verifies each kind that can be (a memoizer's, one with a recompute function);
    ``checks`` holds the kinds named, each with its recompute and comparator.
    """

    def __init__(
        self,
        every: bool,
        checks: Mapping[str, _Check],
        functions: Iterable[tuple[str, Any]] = (),
        skip: Iterable[str] = (),
    ) -> None:
        self.box: Any = None
        self._every = every
        self.checks: dict[str, _Check] = _Checks(self, checks)
        self.skip = frozenset(skip)  # kinds left alone even when every kind is verified
        # (kind, target) of every function-cache target of the PatchCaches, verified or
        # not: while it runs, their calls go through stand-ins (a recompute bypasses them all).
        self.functions = list(functions)
        self.unbind: Callable[[], None] | None = None
        self.failures: list[str] = []
        self._seen: dict[tuple[str, str], int] = {}
        self.reported = 0
        self._lock = threading.Lock()

    @property
    def every(self) -> bool:
        return self._every

    @every.setter
    def every(self, every: bool) -> None:
        changed = every != self._every
        self._every = every
        if changed:
            self.share()

    def share(self) -> None:
        """Tell the children started from now on what this verifies (isolation "shared")."""
        share = getattr(self.box, "share_verify", None)
        if share is not None:
            share(self.for_children())

    def check_for(self, kind: str) -> _Check | None:
        check = self.checks.get(kind)
        if check is None and self.every and kind not in self.skip:
            check = self.checks[kind] = _Check(None, None)
        return check

    def add(self, kind: str, key: str, text: str, send: bool = True) -> None:
        with self._lock:
            seen = self._seen.get((kind, key))
            if seen is not None:
                return
            self._seen[(kind, key)] = len(self.failures)
            self.failures.append(text)
        if send:
            # A child process of the test (isolation "shared") sends it to the test's.
            report = getattr(self.box, "report_stale", None)
            if report is not None:
                report(kind, key, text)

    def collect(self) -> None:
        """Add what the test's child processes found (isolation "shared")."""
        reports = getattr(self.box, "stale_reports", None)
        if reports is not None:
            for kind, key, text in reports():
                self.add(kind, key, text, send=False)

    def take(self) -> list[str]:
        """The failures not taken yet."""
        self.collect()
        with self._lock:
            new = self.failures[self.reported :]
            self.reported = len(self.failures)
        return new

    def for_children(self) -> dict[str, Any]:
        """What a child process needs to verify as this does (see :func:`start_child`):
        every kind or the kinds named, each with its recompute and comparator by reference.
        A kind whose function has no reference a child can import is left to this process."""
        kinds: dict[str, list[str | None]] = {}
        skip: list[str] = []
        for name, check in list(self.checks.items()):
            compare = None if check.compare is _equal else _reference(check.compare)
            recompute = None if check.recompute is None else _reference(check.recompute)
            if (compare is None and check.compare is not _equal) or (
                recompute is None and check.recompute is not None
            ):
                skip.append(name)
            else:
                kinds[name] = [recompute, compare]
        return {"every": self.every, "kinds": kinds, "skip": skip}


def start(verifier: Verifier, box: Any) -> None:
    verifier.box = box
    verifier.share()  # isolation "shared": the children started from now on verify too
    requests = [
        request
        for kind, target in verifier.functions
        if (request := target.verify_wrap(kind)) is not None
    ]
    if requests:
        verifier.unbind = _rebind(requests)
    with _active_lock:
        active.append(verifier)
        _tell()


def stop(verifier: Verifier) -> None:
    with _active_lock:
        active[:] = [v for v in active if v is not verifier]
        _tell()
    verifier.collect()  # while the children's reports are still there
    unbind, verifier.unbind = verifier.unbind, None
    if unbind is not None:
        unbind()


def start_child(config: Mapping[str, Any], box: Any) -> None:
    """In a child process of a test (isolation "shared"): verify what the test verifies
    (``config`` from :meth:`Verifier.for_children`), sending what it finds to the test."""
    checks = {
        name: _Check(
            None if recompute is None else _Later(recompute),
            None if compare is None else _Later(compare),
        )
        for name, (recompute, compare) in dict(config.get("kinds", {})).items()
    }
    start(Verifier(bool(config.get("every")), checks, skip=config.get("skip", ())), box)


class _Later:
    """A function named by reference, imported at its first call: a child starts before its
    own code, and importing the test's modules then would run them out of turn."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.__module__, _, self.__qualname__ = reference.partition(":")
        self._fn: Any = None

    def __call__(self, *args: Any) -> Any:
        if self._fn is None:
            self._fn = _resolve(self.reference)
        return self._fn(*args)


def _reference(fn: Any) -> str | None:
    """``module:qualname`` that imports ``fn`` itself, else None (a lambda, a local)."""
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qual, str) or "<" in qual:
        return None
    if module == "__main__" or module not in sys.modules:
        return None  # a child's __main__ is its own; and nothing is imported here for it
    found: Any = sys.modules[module]
    for part in qual.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qual}" if found is fn else None


def _resolve(reference: str) -> Any:
    import importlib

    module, _, qual = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in qual.split("."):
        found = getattr(found, part)
    return found


def failure_text(failures: list[str]) -> str:
    """The message of a test's stale hits (the first ten in full)."""
    n = len(failures)
    head = f"cachemock verify: {n} stale cache hit{'s' if n != 1 else ''}"
    parts = [head, *failures[:_SHOWN_FAILURES]]
    if n > _SHOWN_FAILURES:
        parts.append(f"... and {n - _SHOWN_FAILURES} more")
    parts.append(
        "A stale hit is a key that leaves out an input of the result: put that input in the "
        "key (a memoizer's arguments, params_encoder or context; a RemoteCache's key; an "
        "lru_cache function's arguments; a cachetools key= function). If the values are "
        "equal in a looser sense, give the kind a comparator: "
        "patch_caches.verify(kind, compare=...)."
    )
    return "\n".join(parts)


# -- the hit hook ------------------------------------------------------------------------------


def _verifier_here() -> Verifier | None:
    """The verifier of the store this thread counts into, or None (a foreign thread)."""
    box = current_store().box()
    for verifier in active:
        if verifier.box is box:
            return verifier
    return None


def _check_here(kind: str) -> tuple[Verifier, _Check] | None:
    if _bypass.get():
        return None  # a hit inside a recompute: that recompute is what is checked
    verifier = _verifier_here()
    if verifier is None:
        return None
    check = verifier.check_for(kind)
    return None if check is None else (verifier, check)


def verified(kind: str) -> bool:
    """Whether a hit of ``kind`` here would be checked (to skip building a key text)."""
    return _check_here(kind) is not None


def hit(
    kind: str,
    key: str,
    cached: Any,
    recompute: Callable[[], Any],
    shown: Callable[[], str] | None = None,
) -> None:
    """A hit of ``kind``: when this thread's store verifies it, recompute and compare.

    ``recompute()`` gives the fresh value as the cache would give it back (through its serde);
    it runs with ``bypassing()`` true. ``shown()`` names the call (the arguments), where known.
    """
    found = _check_here(kind)
    if found is None:
        return
    verifier, check = found
    token = _bypass.set(True)
    try:
        fresh = recompute()
    except Exception as exc:
        _failed_recompute(verifier, kind, key, shown, exc)
        return
    finally:
        _bypass.reset(token)
    _compare(verifier, check, kind, key, shown, cached, fresh)


async def hit_async(
    kind: str,
    key: str,
    cached: Any,
    recompute: Callable[[], Any],
    shown: Callable[[], str] | None = None,
) -> None:
    """:func:`hit` for a coroutine function: ``recompute()`` returns an awaitable."""
    found = _check_here(kind)
    if found is None:
        return
    verifier, check = found
    token = _bypass.set(True)
    try:
        fresh = await recompute()
    except Exception as exc:
        _failed_recompute(verifier, kind, key, shown, exc)
        return
    finally:
        _bypass.reset(token)
    _compare(verifier, check, kind, key, shown, cached, fresh)


def _heading(kind: str, key: str, shown: Callable[[], str] | None) -> list[str]:
    lines = [f"- kind {kind!r}, key {key!r}"]
    if shown is not None:
        lines.append(f"  call: {shown()}")
    return lines


def _failed_recompute(
    verifier: Verifier, kind: str, key: str, shown: Callable[[], str] | None, exc: Exception
) -> None:
    lines = _heading(kind, key, shown)
    lines.append(
        f"  the fresh computation raised {type(exc).__name__}: {exc}; the hit could not be "
        "checked (fix the recompute function, or stop verifying this kind)"
    )
    verifier.add(kind, key, "\n".join(lines))


def _compare(
    verifier: Verifier,
    check: _Check,
    kind: str,
    key: str,
    shown: Callable[[], str] | None,
    cached: Any,
    fresh: Any,
) -> None:
    try:
        same = check.compare(cached, fresh)
    except Exception as exc:
        lines = _heading(kind, key, shown)
        lines.append(f"  the comparator {check.compare!r} raised {type(exc).__name__}: {exc}")
        verifier.add(kind, key, "\n".join(lines))
        return
    if same:
        return
    lines = _heading(kind, key, shown)
    lines.append(f"  cached: {cut(cached)}")
    lines.append(f"  fresh:  {cut(fresh)}")
    where = first_difference(cached, fresh, check.compare)
    if where is not None:
        lines.append(f"  first difference: {where}")
    verifier.add(kind, key, "\n".join(lines))


def first_difference(
    a: Any, b: Any, compare: Compare = _equal, names: tuple[str, str] = ("cached", "fresh")
) -> str | None:
    """Where two containers first differ (``at ['total']: 6 (cached) != 12 (fresh)``), or
    None for two leaves. Leaves are compared with ``compare`` (``==`` where it raises).
    """
    found = _walk(a, b, "", compare, names)
    if found is None or found[0] == "":
        return None
    return found[1]


def _leaf_same(a: Any, b: Any, compare: Compare) -> bool:
    try:
        return bool(compare(a, b))
    except Exception:
        return bool(a == b)


def _walk(
    a: Any, b: Any, path: str, compare: Compare, names: tuple[str, str]
) -> tuple[str, str] | None:
    one, two = names
    at = f"at {path or 'the top'}"
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in a:
            if k not in b:
                return path, f"{at}: key {k!r} only in the {one} value"
        for k in b:
            if k not in a:
                return path, f"{at}: key {k!r} only in the {two} value"
        for k in a:
            found = _walk(a[k], b[k], f"{path}[{k!r}]", compare, names)
            if found is not None:
                return found
        return None
    sequences = (list, tuple)
    if isinstance(a, sequences) and isinstance(b, sequences):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _walk(x, y, f"{path}[{i}]", compare, names)
            if found is not None:
                return found
        if len(a) != len(b):
            return path, f"{at}: length {len(a)} ({one}) != {len(b)} ({two})"
        return None
    if _leaf_same(a, b, compare):
        return None
    return path, f"{at}: {cut(a, 60)} ({one}) != {cut(b, 60)} ({two})"


# -- the cache layers' hooks ---------------------------------------------------------------------


def _kind_of(backend: Any, default: str) -> str:
    kind = getattr(backend, "kind", None)
    return kind if isinstance(kind, str) else default


def memo_hit(route: Any, spec: Any, key: str, args: Any, kwargs: Any, cached: Any) -> None:
    """A memoizer's hit over an override (the plugin's mock)."""
    from ._keys import _call_repr

    memo = route.memo
    kind = _kind_of(route.backend, memo.name)
    hit(
        kind,
        key,
        cached,
        lambda: _as_stored(memo, spec, key, spec.fn(*args, **kwargs)),
        lambda: _call_repr(spec.shown, args, kwargs),
    )


async def memo_hit_async(
    route: Any, spec: Any, key: str, args: Any, kwargs: Any, cached: Any
) -> None:
    from ._keys import _call_repr

    memo = route.memo
    kind = _kind_of(route.backend, memo.name)

    async def fresh() -> Any:
        return _as_stored(memo, spec, key, await spec.fn(*args, **kwargs))

    await hit_async(kind, key, cached, fresh, lambda: _call_repr(spec.shown, args, kwargs))


def _as_stored(memo: Any, spec: Any, key: str, result: Any) -> Any:
    """``result`` as the memoizer gives it back: through its record and serde."""
    record = memo._decode_record(key, memo._encode_record(spec, key, None, result))
    return None if record is None else record["result"]


def remote_hit(cache: Any, key: str, full: str, cached: Any) -> None:
    """A ``RemoteCache.get`` hit: verified when its kind has a recompute function."""
    backend = cache.backend
    if backend is cache._backend:
        return  # not mocked: no test's store
    kind = _kind_of(backend, "")
    found = _check_here(kind) if kind else None
    if found is None or found[1].recompute is None:
        return
    recompute = found[1].recompute
    from .serde import decode_for, encode_for

    def fresh() -> Any:
        value = recompute(key)
        if value is None:
            return None
        return decode_for(cache.serde, full, encode_for(cache.serde, full, value))

    hit(kind, key, cached, fresh, lambda: f"{_name(recompute)}({key!r})")


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}:{qual}" if module else qual


# -- function kinds: stand-ins for the cached functions -------------------------------------------

ORIGINAL_ATTR = "__cachemock_original__"  # a stand-in's cached function
# What a function-cache target's verify_wrap(kind) asks for: the cached function, a maker of
# its stand-in, and the (owner, attribute) spots outside module globals that may hold it (a
# class that holds a cached method).
Rebind = tuple[Any, Callable[[], Any], tuple[tuple[Any, str], ...]]


class _Bound:
    """A cached function replaced by its stand-in: where, and for how many verifiers."""

    __slots__ = ("count", "original", "places", "stand_in")

    def __init__(self, original: Any, stand_in: Any) -> None:
        self.original = original
        self.stand_in = stand_in
        self.count = 1
        self.places: list[tuple[Any, str]] = []  # (a module's namespace or an owner, name)

    def restore(self) -> None:
        # Only where the stand-in still is: a spot rebound meanwhile keeps what it holds.
        for place, name in self.places:
            if type(place) is dict:
                if place.get(name) is self.stand_in:
                    place[name] = self.original
            elif vars(place).get(name) is self.stand_in:
                setattr(place, name, self.original)


_bound: dict[int, _Bound] = {}
_bound_lock = threading.Lock()


def dressed(call: Callable[..., Any], fn: Any) -> Callable[..., Any]:
    """``call``, the stand-in of the cached function ``fn``, made to look like it (name,
    docs, ``__wrapped__``: the function uncached) and to say which function it stands for."""
    functools.update_wrapper(call, fn)
    call.__wrapped__ = fn.__wrapped__  # type: ignore[attr-defined]
    setattr(call, ORIGINAL_ATTR, fn)
    return call


def original(fn: Any) -> Any:
    """The cached function behind a stand-in (``fn`` itself when it is none)."""
    return getattr(fn, ORIGINAL_ATTR, fn)


def _rebind(requests: list[Rebind]) -> Callable[[], None]:
    """Put each request's stand-in wherever its function is, until the returned undo runs.

    "Wherever" is every module's globals (the module that defines it, and each that imported
    it by name: a test module's ``from shop import price``) plus the spots given. A reference
    held elsewhere (an object's attribute, a closure) keeps calling the cached function: its
    calls are counted, not verified. Verifiers running at once share one stand-in.
    """
    taken: list[int] = []
    with _bound_lock:
        new: dict[int, _Bound] = {}
        for fn, make, spots in requests:
            found = _bound.get(id(fn))  # its _Bound holds fn: an id is never reused here
            if found is not None:
                found.count += 1
            else:
                bound = new[id(fn)] = _bound[id(fn)] = _Bound(fn, make())
                for owner, name in spots:
                    if vars(owner).get(name) is fn:
                        setattr(owner, name, bound.stand_in)
                        bound.places.append((owner, name))
            taken.append(id(fn))
        if new:
            ids = new.keys()
            for module in list(sys.modules.values()):
                if not isinstance(module, ModuleType):
                    continue
                # Past a module's own __getattribute__ (a lazy module would load itself).
                namespace = object.__getattribute__(module, "__dict__")
                if ids.isdisjoint(map(id, list(namespace.values()))):
                    continue  # most modules: one pass in C
                found_here = [
                    (name, new[id(value)])
                    for name, value in list(namespace.items())
                    if id(value) in new and new[id(value)].original is value
                ]
                for name, bound in found_here:
                    namespace[name] = bound.stand_in
                    bound.places.append((namespace, name))

    def undo() -> None:
        with _bound_lock:
            for number in taken:
                bound = _bound.get(number)
                if bound is None:
                    continue
                bound.count -= 1
                if bound.count == 0:
                    del _bound[number]
                    bound.restore()

    return undo


# -- building a PatchCaches' verifier ------------------------------------------------------------


def _is_memoizer_kind(kind: Any) -> bool:
    """Whether the plugin can recompute ``kind``'s hits itself: a memoizer's, or a function
    cache's (a target that says it is ``verifiable``)."""
    for target in kind.targets:
        if getattr(target, "verifiable", False):
            return True
        spot = target.spot()
        if spot is not None and callable(getattr(spot[0], "entry_for", None)):
            return True
    return False


def normalize(verify: object, where: str = "verify") -> tuple[bool, tuple[str, ...]]:
    """(every kind, the kinds named) of a ``verify=`` value; a ValueError when it is neither
    a bool, a kind name, nor a list of names."""
    if verify is True or verify is False:
        return bool(verify), ()
    if isinstance(verify, str):
        return False, (verify,)
    if isinstance(verify, (list, tuple, set, frozenset)) and all(
        isinstance(v, str) for v in verify
    ):
        return False, tuple(verify)
    raise ValueError(
        f"{where}={verify!r}: give True (every kind that can be verified), a kind name, or a "
        f"list of kind names, such as {where}=True or {where}=['quotes']"
    )


def build(
    every: bool,
    names: Iterable[str],
    kinds: Mapping[str, Any],
    extra: Mapping[str, tuple[Recompute | None, Compare | None]] = (),  # type: ignore[assignment]
) -> Verifier | None:
    """The verifier of a ``PatchCaches`` (None: nothing to verify); a ValueError for a named
    kind whose hits cannot be recomputed."""
    extra = dict(extra)
    if not every and not names and not extra:
        return None
    checks: dict[str, _Check] = {}
    functions = [
        (name, target)
        for name, kind in kinds.items()
        for target in kind.targets
        if callable(getattr(target, "verify_wrap", None))
    ]
    for name, kind in kinds.items():
        recompute, compare = getattr(kind, "recompute", None), getattr(kind, "compare", None)
        if name in extra:
            given_recompute, given_compare = extra[name]
            recompute = given_recompute or recompute
            compare = given_compare or compare
        named = name in names or name in extra
        if not (every or named):
            continue
        why = next((t.not_verifiable for t in kind.targets if getattr(t, "not_verifiable", "")), "")
        if why:  # a function cache's kind that is no function (a recompute would go unused)
            if named:
                raise ValueError(f"verify: cache kind {name!r} {why}")
            continue
        if recompute is None and not _is_memoizer_kind(kind):
            if named:
                raise ValueError(_no_recompute(name))
            continue
        checks[name] = _Check(recompute, compare)
    return Verifier(every, checks, functions)


def _no_recompute(name: str) -> str:
    return (
        f"verify: cache kind {name!r} has no recompute function, so its hits cannot be "
        f"checked; give one: patch_caches.verify({name!r}, recompute=fn), "
        f"registry.add({name!r}, ..., verify=fn) in pytest_cachemock_register_kinds, or "
        f"verify=package.module:fn on its cachemock_kinds line (fn is called with the cache's "
        "own key and returns the value it should hold)"
    )


# -- the key check -------------------------------------------------------------------------------

# How check_keys finds a function's key and real function: each keyer returns
# (key_of(args, kwargs) -> key, real(args, kwargs) -> result, name, how to fix a collision)
# for a function it knows, else None. Keys are compared with == (as the cache compares
# them). Memoizers are built in; a function-cache profile adds its own with add_keyer.
_Keyed = tuple[Callable[[tuple[Any, ...], dict[str, Any]], Hashable], Callable[..., Any], str, str]
_MEMO_FIX = (
    "Put the missing input in the key: an argument that params_encoder drops, or a "
    "setting the function reads, in the Memoizer's context."
)
_keyers: list[Callable[[Any], Optional[_Keyed]]] = []


def add_keyer(keyer: Callable[[Any], Optional[_Keyed]]) -> None:
    """Let :func:`check_keys` take the functions ``keyer`` knows (see ``_keyers``)."""
    _keyers.append(keyer)


def _memoized(fn: Any) -> _Keyed | None:
    from ._keys import _SPEC_ATTR

    spec = getattr(fn, _SPEC_ATTR, None)
    memo = getattr(fn, MEMO_ATTR, None)
    if spec is None or memo is None:
        return None

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return str(memo.key_for(fn, *args, **kwargs))

    real = spec.fn
    if inspect.iscoroutinefunction(real):

        def run(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(real(*args, **kwargs))

        return key_of, run, str(spec.shown), _MEMO_FIX
    return key_of, real, str(spec.shown), _MEMO_FIX


_keyers.append(_memoized)

# -- the function caches' keys (the functools and cachetools profiles' kinds) -----------------
# Here rather than in the profiles: check_keys takes these functions whether or not a
# profile is loaded.

_LRU_WRAPPER: Any = getattr(functools, "_lru_cache_wrapper", None)


def is_lru_cache(obj: object) -> bool:
    """Whether ``obj`` is a function made by ``functools.lru_cache`` or ``functools.cache``
    (or verify mode's stand-in for one)."""
    obj = original(obj)
    if isinstance(_LRU_WRAPPER, type):
        return isinstance(obj, _LRU_WRAPPER)
    # Without the C accelerator, lru_cache returns a plain function with these attached.
    return callable(getattr(obj, "cache_info", None)) and callable(
        getattr(obj, "cache_parameters", None)
    )


class _KeywordMark:
    """Where a key's keyword arguments begin (functools' own marker is a bare object)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "**"


_KEYWORDS = (_KeywordMark(),)


def lru_key(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    """The key ``fn`` (an lru_cache function) files a call under, equal where functools'
    is: the arguments, as a tuple (one int or str argument stands for itself, as there)."""
    typed = bool(fn.cache_parameters().get("typed", False))
    # functools' own key maker (the C accelerator makes the same keys).
    key = functools._make_key(args, kwargs, typed, _KEYWORDS)
    return tuple(key) if isinstance(key, list) else key


def _unbound(fn: Any) -> tuple[tuple[Any, ...], Any]:
    """(the instance, the function) of a bound method; ((), fn) for anything else."""
    if inspect.ismethod(fn):
        return (fn.__self__,), original(fn.__func__)
    return (), original(fn)


_LRU_FIX = (
    "Put the missing input in the key: an lru_cache function's key is its arguments, so "
    "pass what the function reads (a global, a setting) as an argument."
)
_CACHETOOLS_FIX = (
    "Put the missing input in the key: the key= function of @cached (or @cachedmethod) "
    "leaves out an argument, or the function reads something that is not an argument."
)


def _lru_keyed(fn: Any) -> _Keyed | None:
    """check_keys' view of an lru_cache function (or a bound method of one)."""
    first, fn = _unbound(fn)
    if not is_lru_cache(fn):
        return None
    real = fn.__wrapped__

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        return lru_key(fn, first + args, kwargs)

    def run(*args: Any, **kwargs: Any) -> Any:
        return real(*first, *args, **kwargs)

    return key_of, run, _dotted(fn), _LRU_FIX


def _cachetools_keyed(fn: Any) -> _Keyed | None:
    """check_keys' view of a cachetools ``@cached`` function or ``@cachedmethod`` (named on
    its class, or bound to an instance)."""
    first, fn = _unbound(fn)
    key = getattr(fn, "cache_key", None)
    real = getattr(fn, "__wrapped__", None)
    if not callable(key) or not callable(real) or not hasattr(fn, "cache"):
        return None

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        found: Hashable = key(*first, *args, **kwargs)
        return found

    def run(*args: Any, **kwargs: Any) -> Any:
        return real(*first, *args, **kwargs)

    return key_of, run, _dotted(fn), _CACHETOOLS_FIX


def _dotted(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


_keyers.append(_lru_keyed)
_keyers.append(_cachetools_keyed)


class _Example:
    __slots__ = ("args", "key", "kwargs", "result")

    def __init__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], key: Hashable, result: Any
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.key = key
        self.result = result


def _as_call(example: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """An example as (args, kwargs): a tuple is the positional arguments, a dict the keyword
    arguments, anything else the one argument."""
    if type(example) is tuple:
        return example, {}
    if type(example) is dict and all(isinstance(k, str) for k in example):
        return (), dict(example)
    return (example,), {}


class KeyCheck:
    """What :func:`check_keys` found besides failures: ``notes`` (texts), ``calls`` made."""

    def __init__(self, name: str, calls: int, keys: int, notes: list[str]) -> None:
        self.name = name
        self.calls = calls
        self.keys = keys
        self.notes = notes

    def __repr__(self) -> str:
        return f"<KeyCheck {self.name} calls={self.calls} keys={self.keys} notes={len(self.notes)}>"


def _keyed(fn: Any) -> _Keyed:
    for keyer in reversed(_keyers):
        found: _Keyed | None = keyer(fn)
        if found is not None:
            return found
    raise TypeError(
        f"check_keys(fn, ...): fn is a function a Memoizer decorated (@memo.memoize), an "
        f"lru_cache (or cache) function, or a cachetools @cached or @cachedmethod one, got "
        f"{fn!r}; pass the decorated function, not the plain one"
    )


def _run(
    keyed: _Keyed, examples: Iterable[Any], notes: list[str], changed: list[Hashable]
) -> list[_Example]:
    """Each example's key (made twice: a key that changes by itself is noted once, into
    ``changed``) and the real function's result, with every cache bypassed."""
    from ._keys import _call_repr

    key_of, real, name, _ = keyed
    done: list[_Example] = []
    # What the function reaches is computed, never cached: the caches look at _bypass only
    # while ``active`` holds a verifier, so one that verifies no store stands in meanwhile.
    idle = Verifier(False, {})
    start(idle, None)
    token = _bypass.set(True)
    try:
        for example in examples:
            args, kwargs = _as_call(example)
            key = key_of(args, kwargs)
            again = key_of(args, kwargs)
            if again != key and not changed:
                changed.append(key)
                notes.append(
                    f"the key of {_call_repr(name, args, kwargs)} changes by itself ({key!r}, "
                    f"then {again!r}): it holds something that changes from call to call (a "
                    "timestamp, a counter, a random value, an object's id), so the cache "
                    "never hits"
                )
            done.append(_Example(args, kwargs, key, real(*args, **kwargs)))
    finally:
        _bypass.reset(token)
        stop(idle)
    return done


def _collision(name: str, done: list[_Example], compare: Compare, fix: str) -> str | None:
    from ._keys import _call_repr

    by_key: dict[Hashable, _Example] = {}
    for ex in done:
        first = by_key.setdefault(ex.key, ex)
        if first is ex or _leaf_same(first.result, ex.result, compare):
            continue
        a = _call_repr(name, first.args, first.kwargs)
        b = _call_repr(name, ex.args, ex.kwargs)
        lines = [
            f"cachemock check_keys: {a} and {b} get one key, {ex.key!r}, but the function "
            "gives them different results: the key leaves out an input that changes the result",
            f"  {a} -> {cut(first.result)}",
            f"  {b} -> {cut(ex.result)}",
        ]
        where = first_difference(first.result, ex.result, compare, ("first", "second"))
        if where is not None:
            lines.append(f"  first difference: {where}")
        lines.append(fix)
        return "\n".join(lines)
    return None


def _result_text(result: Any) -> str:
    from ._keys import _encode, _text, _Unencodable

    try:
        return _text(_encode(result))
    except (_Unencodable, TypeError, ValueError):
        return repr(result)


def _crowds(name: str, done: list[_Example], many: int, notes: list[str]) -> None:
    """Note equal results under ``many`` or more different keys."""
    from ._keys import _call_repr

    groups: dict[str, dict[Hashable, _Example]] = {}
    for ex in done:
        groups.setdefault(_result_text(ex.result), {}).setdefault(ex.key, ex)
    for keyed in groups.values():
        if len(keyed) >= many:
            calls = [_call_repr(name, ex.args, ex.kwargs) for ex in keyed.values()]
            shown = ", ".join(calls[:4])
            if len(calls) > 4:
                shown += f" and {len(calls) - 4} more"
            result = cut(next(iter(keyed.values())).result, 60)
            notes.append(
                f"{len(keyed)} different keys hold one equal result, {result}: "
                f"{shown}. If these calls should share an entry, the key holds an input the "
                "result does not depend on (a timestamp, a request id): the cache stores the "
                "result again under each key instead of hitting"
            )


def check_keys(
    fn: Any,
    examples: Iterable[Any] | None = None,
    *,
    strategy: Any = None,
    compare: Compare | None = None,
    many: int = 4,
    max_examples: int = 200,
) -> KeyCheck:
    """Check ``fn``'s key against its real function on ``examples`` or ``strategy``'s draws.

    Raises :class:`KeyCollisionError` when two calls get one key but different results; warns
    (:class:`KeyNoteWarning`) and returns as notes a key that changes by itself and ``many``
    or more keys holding one equal result. Nothing is cached or counted.
    """
    __tracebackhide__ = True
    keyed = _keyed(fn)
    name = keyed[2]
    same: Compare = compare if compare is not None else _equal
    if isinstance(many, bool) or not isinstance(many, int) or many < 2:
        raise ValueError(f"check_keys(many={many!r}): give an int >= 2")
    if (examples is None) == (strategy is None):
        raise TypeError(
            "check_keys(fn, examples) or check_keys(fn, strategy=...): give one of them, "
            "examples (argument tuples, keyword dicts, or single arguments) or a Hypothesis "
            "strategy that draws them"
        )
    notes: list[str] = []
    changed: list[Hashable] = []
    if strategy is not None:
        # No note of equal results under many keys here: drawn values repeat results often.
        done = _search(keyed, strategy, same, max_examples, notes, changed)
    else:
        done = _run(keyed, list(examples or ()), notes, changed)
        found = _collision(name, done, same, keyed[3])
        if found is not None:
            raise KeyCollisionError(found)
        _crowds(name, done, many, notes)
    for note in notes:
        warnings.warn(KeyNoteWarning(f"cachemock check_keys: {note}"), stacklevel=3)
    return KeyCheck(name, len(done), len({ex.key for ex in done}), notes)


def _search(
    keyed: _Keyed,
    strategy: Any,
    same: Compare,
    max_examples: int,
    notes: list[str],
    changed: list[Hashable],
) -> list[_Example]:
    """Draw batches of examples until one holds a collision (raised, shrunk by Hypothesis)."""
    try:
        import hypothesis
        from hypothesis import strategies as st
    except ImportError:
        raise ImportError(
            "check_keys(fn, strategy=...) needs Hypothesis: pip install "
            "'pytest-cachemock[hypothesis]' (or pass examples instead)"
        ) from None
    name = keyed[2]
    seen: list[_Example] = []

    @hypothesis.settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(st.lists(strategy, min_size=2, max_size=8))
    def search(batch: list[Any]) -> None:
        done = _run(keyed, batch, notes, changed)
        found = _collision(name, done, same, keyed[3])
        if found is not None:
            raise KeyCollisionError(found)
        seen.extend(done)

    search()
    return seen
