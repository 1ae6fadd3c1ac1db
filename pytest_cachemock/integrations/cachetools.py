"""The built-in ``cachetools`` profile: cachetools caches and memoized functions as kinds.

A cache object (``Cache``, ``LRUCache``, ``TTLCache``, ...) or the cache of a ``@cached``
function is swapped, in place, for an empty one of the same type and parameters while a test
runs (the same object: every reference to it sees the test's cache), and its own contents
come back afterwards. A ``@cachedmethod`` method is replaced on its class by the same
decorator over per-test caches, one per instance, like the instance's own. Lookups
(``cache[key]``, ``get``) count a hit or a miss, stores a put, in the test's store.

Verify mode (``_verify``): while a verifier runs, each ``@cached`` function is replaced,
wherever a module global holds it, by a stand-in that calls it and learns from its cache
whether the call hit (the first lookup of that call, in that thread); a ``@cachedmethod``'s
per-test method on its class likewise. A recompute reaches the caches in place: they miss and
store nothing, uncounted.

This module imports cachetools only when the profile is loaded.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Callable

from .. import _verify
from .._spots import Undo, _restore, _set
from ..errors import KindConfigError
from ..kinds import ProfileEntry, Registry, Target, _entry_value, _find_module
from ..mock import KindRecord, current_store

__all__ = ["CacheTarget", "MethodTarget", "register_kinds"]

_store = current_store()
# Set while the plugin itself reads or writes a cache (entries(), seed(), a cache's own
# calls inside a counted one: an eviction's pop): nothing is counted then.
_quiet = threading.local()
_classes: dict[type[Any], type[Any]] = {}
_classes_lock = threading.Lock()
# True while verify mode runs in any test (_verify.follow keeps it so).
_verifying = False
_verify.follow(globals())
# Per thread, the calls of stand-ins in progress, innermost last: [kind, hit, key], the hit
# and key of the first lookup of a cache of that kind the call made (None: none yet).
_calls = threading.local()


def _looked(cache: Any, hit: bool, key: Any) -> None:
    """A counted lookup of ``cache``: the answer of the innermost stand-in call's own."""
    stack: list[list[Any]] | None = getattr(_calls, "stack", None)
    if stack:
        slot = stack[-1]
        if slot[1] is None and slot[0] == cache._cachemock_kind:
            slot[1] = hit
            slot[2] = key


def _cachetools() -> Any:
    try:
        cachetools = importlib.import_module("cachetools")
    except ImportError as exc:
        raise KindConfigError(
            f"the 'cachetools' profile needs cachetools, which cannot be imported ({exc}); "
            "pip install cachetools, or drop 'cachetools' from cachemock_profiles"
        ) from None
    return cachetools


def _fault(record: KindRecord, op: str, key: object) -> None:
    """Raise the fault armed on the kind for ``op``, counting it as an error."""
    fault = record.fault
    if fault is None or not fault.matches(op):
        return
    fault = record.take_fault()
    if fault is None:
        return
    record.errors += 1
    if record._box is not None:
        record._box.oplog.note(record.kind, op, key, "error")  # type: ignore[arg-type]  # shown as its repr
    exc = fault.exc
    if isinstance(exc, type):
        exc = exc(f"cachemock: injected failure on {op} of kind {record.kind!r}, key {key!r}")
    raise exc


def _counting_class(base: type[Any]) -> type[Any]:
    """``base`` with lookups and stores counted into the test's store (made once per class)."""
    if getattr(base, "_cachemock_base", None) is not None:
        return base
    found = _classes.get(base)
    if found is not None:
        return found

    def __getitem__(self: Any, key: Any) -> Any:
        if getattr(_quiet, "on", False):
            return base.__getitem__(self, key)
        if _verifying and _verify.bypassing():  # inside a verify mode recompute: no cache
            raise KeyError(key)
        record = _store.record(self._cachemock_kind)
        _fault(record, "get", key)
        _quiet.on = True
        try:
            value = base.__getitem__(self, key)
        except KeyError:
            record.misses += 1
            record.log.append((record.kind, "get", key, "miss"))
            if _verifying:
                _looked(self, False, key)
            raise
        finally:
            _quiet.on = False
        record.hits += 1
        record.log.append((record.kind, "get", key, "hit"))
        if _verifying:
            _looked(self, True, key)
        return value

    def __setitem__(self: Any, key: Any, value: Any) -> None:
        if getattr(_quiet, "on", False):
            base.__setitem__(self, key, value)
            return
        if _verifying and _verify.bypassing():
            return
        record = _store.record(self._cachemock_kind)
        _fault(record, "put", key)
        _quiet.on = True
        try:
            base.__setitem__(self, key, value)  # a ValueError (too large) stores nothing
        finally:
            _quiet.on = False
        record.puts += 1
        record.log.append((record.kind, "put", key, "stored"))

    def get(self: Any, key: Any, default: Any = None) -> Any:
        # cachetools' get asks ``key in self`` first: a miss never reaches __getitem__.
        if getattr(_quiet, "on", False):
            return base.get(self, key, default)
        if _verifying and _verify.bypassing():
            return default
        record = _store.record(self._cachemock_kind)
        _fault(record, "get", key)
        _quiet.on = True
        try:
            present = key in self
            value = base.get(self, key, default)
        finally:
            _quiet.on = False
        if present:
            record.hits += 1
        else:
            record.misses += 1
        record.log.append((record.kind, "get", key, "hit" if present else "miss"))
        if _verifying:
            _looked(self, present, key)
        return value

    def setdefault(self: Any, key: Any, default: Any = None) -> Any:
        # cachetools' locked wrappers store a computed value with setdefault: a put, or a
        # hit when another thread stored it meanwhile.
        if getattr(_quiet, "on", False):
            return base.setdefault(self, key, default)
        if _verifying and _verify.bypassing():
            return default
        record = _store.record(self._cachemock_kind)
        present = key in self
        _fault(record, "get" if present else "put", key)
        _quiet.on = True
        try:
            value = base.setdefault(self, key, default)
        finally:
            _quiet.on = False
        if present:
            record.hits += 1
            record.log.append((record.kind, "get", key, "hit"))
        else:
            record.puts += 1
            record.log.append((record.kind, "put", key, "stored"))
        return value

    def pop(self: Any, *args: Any) -> Any:  # removing is neither a lookup nor a store
        was, _quiet.on = getattr(_quiet, "on", False), True
        try:
            return base.pop(self, *args)
        finally:
            _quiet.on = was

    namespace = {
        "__getitem__": __getitem__,
        "__setitem__": __setitem__,
        "get": get,
        "setdefault": setdefault,
        "pop": pop,
        "_cachemock_base": base,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
    }
    with _classes_lock:
        found = _classes.get(base)
        if found is None:
            found = _classes[base] = type(base.__name__, (base,), namespace)
    return found


def _empty_like(cache: Any, where: str) -> Any:
    """A new empty cache of ``cache``'s type with its parameters (maxsize, ttl, timer, ...)."""
    cls = type(cache)
    params: dict[str, Any] = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == "getsizeof":
            value = cache.__dict__.get("getsizeof")  # set on the instance only when given
        elif name == "timer":
            timer = cache.timer  # cachetools wraps the timer it was given
            value = getattr(timer, "_Timer__timer", timer)
        elif hasattr(cache, name):
            value = getattr(cache, name)
        elif param.default is not param.empty:
            continue
        else:
            raise KindConfigError(
                f"{where}: cannot make an empty {cls.__qualname__} like it for each test: "
                f"its __init__ takes {name!r}, which the cache does not keep as an attribute "
                f"of that name; keep it as self.{name}, or name another cache"
            )
        params[name] = value
    try:
        return cls(**params)
    except Exception as exc:
        raise KindConfigError(
            f"{where}: cannot make an empty {cls.__qualname__} like it for each test: "
            f"{cls.__qualname__}(**{params!r}) raised {exc!r}"
        ) from None


class _View(MutableMapping[Any, Any]):
    """The entries of a kind's per-test caches, read and written without counting."""

    def __init__(self, caches: Callable[[], list[Any]]) -> None:
        self.caches = caches

    def _run(self, fn: Callable[[], Any]) -> Any:
        was, _quiet.on = getattr(_quiet, "on", False), True
        try:
            return fn()
        finally:
            _quiet.on = was

    def __getitem__(self, key: Any) -> Any:
        def find() -> Any:
            for cache in self.caches():
                if key in cache:
                    return cache[key]
            raise KeyError(key)

        return self._run(find)

    def __setitem__(self, key: Any, value: Any) -> None:
        caches = self.caches()
        if caches:
            self._run(lambda: caches[0].__setitem__(key, value))

    def __delitem__(self, key: Any) -> None:
        def delete() -> None:
            for cache in self.caches():
                if key in cache:
                    del cache[key]
                    return
            raise KeyError(key)

        self._run(delete)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._run(lambda: [k for cache in self.caches() for k in list(cache)]))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def clear(self) -> None:
        self._run(lambda: [cache.clear() for cache in self.caches()])

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _swap(cache: Any, kind: str, where: str) -> Undo:
    """Give ``cache`` (in place) the state of an empty cache like it, counted as ``kind``."""
    fresh = _empty_like(cache, where)
    state = fresh.__dict__
    state["_cachemock_kind"] = kind
    old_cls, old_state = type(cache), cache.__dict__
    cache.__dict__ = state
    cache.__class__ = _counting_class(old_cls)

    def undo() -> None:
        cache.__class__ = old_cls
        cache.__dict__ = old_state

    return undo


def _stand_in(fn: Any, kind: str, where: str, method: bool = False) -> Any:
    """What calls the ``@cached`` function (or per-test ``@cachedmethod``) ``fn`` while
    verify mode runs: ``fn`` itself, and when its own lookup hit, the check.

    Whether it hit is this thread's own answer: the counting cache tells the innermost
    stand-in call of this thread its first lookup of the kind, so other threads' calls and
    the calls nested in this one cannot be taken for it. The check runs after ``fn``
    returned, outside the decorator's lock (a recompute that calls ``fn`` again would wait
    for that lock forever).
    """
    real = fn.__wrapped__

    def call(*args: Any, **kwargs: Any) -> Any:
        if not _verifying:
            return fn(*args, **kwargs)
        if _verify.bypassing():  # inside a recompute: no cache
            return real(*args, **kwargs)
        stack: list[list[Any]] | None = getattr(_calls, "stack", None)
        if stack is None:
            stack = _calls.stack = []
        slot: list[Any] = [kind, None, None]
        stack.append(slot)
        try:
            result = fn(*args, **kwargs)
        finally:
            stack.pop()
        if slot[1] is True and _verify.verified(kind):
            from .._keys import _call_repr

            shown = args[1:] if method else args  # a method's instance is its class's name
            _verify.hit(
                kind,
                repr(slot[2]),
                result,
                lambda: real(*args, **kwargs),
                lambda: _call_repr(where, shown, kwargs),
            )
        return result

    return _verify.dressed(call, fn)


class CacheTarget(Target):
    """A cachetools cache object, or the cache of a ``@cached`` function (``key`` given,
    and ``fn``, the function, for verify mode)."""

    def __init__(
        self, cache: Any, where: str, origin: str, key: Any = None, fn: Any = None
    ) -> None:
        super().__init__(cache, "__dict__", _no_mock, origin)
        self.where = where
        self.key = key
        self.fn = fn
        _empty_like(cache, f"{origin}: {where}")  # refused now rather than in every test

    @property
    def verifiable(self) -> bool:
        return self.fn is not None

    @property
    def not_verifiable(self) -> str:
        """Why verify mode cannot check this kind ("" when it can)."""
        if self.fn is not None:
            return ""
        return (
            f"is a cachetools cache object ({self.where}), filled by code the plugin does not "
            "know, so its hits cannot be checked: verify the @cached function that fills it "
            "(name the function in cachemock_cachetools), or do not verify this kind"
        )

    def verify_wrap(self, kind: str) -> _verify.Rebind | None:
        fn, where = self.fn, self.where
        if fn is None:
            return None  # a cache object: its callers are not known
        return fn, lambda: _stand_in(fn, kind, where), ()

    def install(self, kind: str) -> Undo:
        cache = self.obj
        undo = _swap(cache, kind, self.where)
        # Each counted lookup and store is logged (one operation each), as a mock's are.
        current_store().record(kind).use_entries(_View(lambda: [cache]), logs=True)
        return undo

    def spot(self) -> tuple[Any, str] | None:
        return None

    def seed(self, mapping: Mapping[Any, Any]) -> bool:
        """Store ``mapping`` in the test's cache, uncounted. For a ``@cached`` function a key
        is the call's arguments: a tuple, or one value for a function of one argument."""
        cache = self.obj
        was, _quiet.on = getattr(_quiet, "on", False), True
        try:
            for args, value in mapping.items():
                if self.key is None:
                    cache[args] = value
                else:
                    cache[self.key(*args) if isinstance(args, tuple) else self.key(args)] = value
        finally:
            _quiet.on = was
        return True

    def __repr__(self) -> str:
        return f"<CacheTarget {self.where} from {self.origin}>"


class MethodTarget(Target):
    """A ``@cachedmethod`` method: replaced on its class by the same decorator over per-test
    caches (one per instance, a new empty cache like the instance's own)."""

    verifiable = True

    def __init__(self, owner: Any, attr: str, method: Any, where: str, origin: str) -> None:
        super().__init__(owner, attr, _no_mock, origin)
        self.method = method
        self.where = where
        self.installed: Any = None  # the method it put on the class, while it is there

    def verify_wrap(self, kind: str) -> _verify.Rebind | None:
        replaced, where = self.installed, self.where
        if replaced is None:
            return None
        return replaced, lambda: _stand_in(replaced, kind, where, True), ((self.obj, self.attr),)

    def install(self, kind: str) -> Undo:
        cachetools = _cachetools()
        method = self.method
        real = method.cache
        caches: dict[int, tuple[Any, Any]] = {}  # id(instance) -> (instance, its test cache)
        lock = threading.Lock()
        where = self.where

        def per_test(instance: Any) -> Any:
            found = caches.get(id(instance))
            if found is None:
                own = real(instance)
                if own is None:
                    return None
                fresh = _empty_like(own, where)
                fresh.__dict__["_cachemock_kind"] = kind
                fresh.__class__ = _counting_class(type(fresh))
                with lock:
                    found = caches.setdefault(id(instance), (instance, fresh))
            return found[1]

        options: dict[str, Any] = {"key": method.cache_key, "lock": method.cache_lock}
        if getattr(method, "cache_condition", None) is not None:
            options["condition"] = method.cache_condition
        replaced = cachetools.cachedmethod(per_test, **options)(method.__wrapped__)
        current_store().record(kind).use_entries(
            _View(lambda: [cache for _, cache in list(caches.values())]), logs=True
        )
        written = _set(self.obj, self.attr, replaced)
        self.installed = replaced

        def undo() -> None:
            if self.installed is replaced:
                self.installed = None
            _restore(written)
            caches.clear()

        return undo

    def spot(self) -> tuple[Any, str] | None:
        return None

    def refuses(self, op: str) -> str | None:
        if op == "seed":
            return (
                f"{self.where} is a @cachedmethod, whose caches are per instance: call the "
                "method on the instance in the test to fill its cache"
            )
        return None

    def __repr__(self) -> str:
        return f"<MethodTarget {self.where} from {self.origin}>"


def _no_mock(kind: str) -> Any:
    raise AssertionError("a cachetools target installs no mock")


def _target(value: Any, owner: Any, attr: str, where: str, entry: ProfileEntry) -> Target:
    """The target for what an entry names, or an error saying why it cannot be one."""
    cachetools = _cachetools()
    origin = entry.origin
    value = _verify.original(value)
    if isinstance(value, cachetools.Cache):
        return CacheTarget(value, where, origin)
    if callable(value) and hasattr(value, "cache_key") and hasattr(value, "cache"):
        cache = value.cache
        if isinstance(cache, cachetools.Cache):
            return CacheTarget(cache, where, origin, key=value.cache_key, fn=value)
        if cache is None:
            why = "is decorated with cache=None, which caches nothing"
        elif isinstance(cache, Mapping):
            why = (
                f"caches in a {type(cache).__qualname__}, which cannot be emptied and "
                "counted per test in place; give @cached a cachetools cache (LRUCache(...))"
            )
        elif callable(cache) and isinstance(owner, type):
            return MethodTarget(owner, attr, value, where, origin)
        else:
            why = "is a @cachedmethod: name it on its class, 'module:Class.method'"
        raise KindConfigError(f"{origin}: {entry.reference()} {why}")
    if callable(getattr(value, "cache_info", None)) and callable(
        getattr(value, "cache_clear", None)
    ):
        hint = "it is an lru_cache function: list it in cachemock_functools"
    else:
        hint = f"it holds a {type(value).__qualname__}"
    raise KindConfigError(
        f"{origin}: {entry.reference()} is not a cachetools cache, @cached function or "
        f"@cachedmethod: {hint}"
    )


def _scan(module: Any, entry: ProfileEntry) -> list[tuple[str, list[Target]]]:
    """The caches and @cached functions at the top level of ``module``; a function whose
    cache is itself at the top level counts into that cache's kind."""
    cachetools = _cachetools()
    found: list[tuple[str, list[Target]]] = []
    seen: set[int] = set()
    top = list(vars(module).items())
    for name, value in top:
        if isinstance(value, cachetools.Cache) and id(value) not in seen:
            seen.add(id(value))
            found.append((name, [CacheTarget(value, f"{module.__name__}.{name}", entry.origin)]))
    for name, value in top:
        value = _verify.original(value)
        cache = getattr(value, "cache", None) if callable(value) else None
        if (
            isinstance(cache, cachetools.Cache)
            and hasattr(value, "cache_key")
            and getattr(value, "__module__", None) == module.__name__
            and id(cache) not in seen
        ):
            seen.add(id(cache))
            where = f"{module.__name__}.{name}"
            target = CacheTarget(cache, where, entry.origin, key=value.cache_key, fn=value)
            found.append((name, [target]))
    if not found:
        raise KindConfigError(
            f"{entry.origin}: module {module.__name__!r} has no cachetools cache or @cached "
            "function at its top level (methods are named one by one: 'module:Class.method')"
        )
    return found


def register_kinds(registry: Registry, *, origin: str, entries: list[ProfileEntry]) -> None:
    """Declare a kind per named cache; a whole module's are found later."""
    if entries:
        _cachetools()
    for entry in entries:
        if entry.attribute is None:
            _find_module(entry)
            registry.add_module(entry, _scan)
            continue
        value = _entry_value(entry)
        attribute = entry.attribute
        parent, _, attr = attribute.rpartition(".")
        owner = (
            _entry_value(ProfileEntry(None, entry.module, parent, entry.origin, ""))
            if parent
            else None
        )
        where = f"{entry.module}.{attribute}"
        registry.add_entry_kind(entry, [_target(value, owner, attr, where, entry)])
