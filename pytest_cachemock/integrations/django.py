"""The built-in ``django`` profile: every alias of ``settings.CACHES`` as a kind ``django_<alias>``.

While mocks are installed, every cache object of an alias (``caches[alias]`` in any thread,
``django.core.cache.cache``, and objects bound at import time, ``cache = caches["default"]``)
is an in-memory cache of the current store with Django's backend API: its class is swapped
for a subclass of its own class whose methods read and write the kind's entries, and swapped
back when the mocks are removed. Cache objects made while mocks are installed are swapped as
they are made. Counts go into the kind's record in the current store:

- ``get``, ``has_key`` (``in``): a hit or a miss; ``get_many``: one hit or miss per key;
- ``set``: a put; ``set_many``: one put per key; ``add``: a put when it stores, a hit when the
  key is there already;
- ``get_or_set``: a hit, or a miss and a put; ``incr``/``decr``: a hit and a put, or a miss
  (then ``ValueError``); ``incr_version``/``decr_version``: a hit and a put, or a miss;
- ``delete``, ``delete_many``, ``touch``, ``clear``, ``close``: counted nowhere, and no fault
  armed by ``fail()`` applies to them (as ``MockBackend.delete``);
- the ``a*`` variants count as their sync twin, and run it in the calling thread (no thread
  hop: the calling thread's store is the test's).

Values are stored pickled (as every Django backend but the dummy one stores them), keyed by
the full key the cache makes (``make_key``: KEY_PREFIX, VERSION, KEY_FUNCTION), with an
expiry from the timeout (the alias's TIMEOUT by default; None: never; 0 or less: expired at
once), read from :data:`clock` on every operation. Aliases with the same BACKEND and LOCATION
share their entries, as they share a store in production; each counts on its own.

Django is imported only when the profile loads (:func:`register_kinds`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Callable

from .._spots import Undo
from ..errors import KindConfigError
from ..kinds import Registry, Target
from ..mock import KindRecord, MockBackend, current_store

__all__ = ["KIND_PREFIX", "DjangoEntries", "clock", "kind_name", "register_kinds"]

KIND_PREFIX = "django_"

clock: Callable[[], float] = time.time
"""What the mocked caches read the time from (seconds, as ``time.time``); a test may replace it
(``monkeypatch.setattr(pytest_cachemock.integrations.django, "clock", ...)``) to expire entries
without sleeping."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL  # what LocMemCache and RedisCache pickle with
_INSTALL = "pip install Django"
_Item = tuple[bytes, "float | None"]  # (pickled value, expiry time or None: never)
# The default of every timeout parameter: the alias's TIMEOUT, as Django's DEFAULT_TIMEOUT
# (which is one too: filled in when the profile loads, Django not imported before).
_DEFAULT: Any = object()
_django_default: list[Any] = [_DEFAULT]


def kind_name(alias: str) -> str:
    """The kind of a ``settings.CACHES`` alias: ``django_`` and the alias, each character
    that cannot be in a Python name replaced by ``_``."""
    return KIND_PREFIX + re.sub(r"\W", "_", alias)


# -- the entries of a kind ----------------------------------------------------------------------


class DjangoEntries(MutableMapping[str, Any]):
    """The entries of one Django store (BACKEND and LOCATION) in a cachemock store: full key ->
    the value (unpickled when read; entries whose time is up are left out). Setting a key
    (``seed()``) stores the value pickled, never expiring; nothing is counted."""

    __slots__ = ("data", "storage")

    def __init__(self, storage: tuple[str, str]) -> None:
        self.storage = storage
        self.data: dict[str, _Item] = {}

    def __getitem__(self, key: str) -> Any:
        item = self.data[key]
        if _expired(item):
            raise KeyError(key)
        return pickle.loads(item[0])

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store every entry pickled, or none when one is refused (``seed()`` goes through here)."""
        staged: dict[str, _Item] = {}
        for key, value in dict(other, **kwargs).items():
            if not isinstance(key, str):
                raise TypeError(
                    f"seed: a key of a django kind is the full key the cache makes (str, such "
                    f"as ':1:name'), got {key!r}; nothing was stored"
                )
            try:
                staged[key] = (pickle.dumps(value, _PROTOCOL), None)
            except Exception as exc:
                raise TypeError(
                    f"seed: a django kind stores values pickled, as Django's backends do; the "
                    f"value of {key!r}, a {type(value).__qualname__}, cannot be pickled "
                    f"({exc}); nothing was stored"
                ) from exc
        self.data.update(staged)

    def __delitem__(self, key: str) -> None:
        item = self.data.pop(key)
        if _expired(item):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, item in list(self.data.items()) if not _expired(item)])

    def __len__(self) -> int:
        return sum(1 for item in list(self.data.values()) if not _expired(item))

    def clear(self) -> None:
        self.data.clear()

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _expired(item: _Item) -> bool:
    expiry = item[1]
    return expiry is not None and expiry <= clock()


# Per box of the store (weakly), the entries of each Django store: the kinds of aliases that
# share a BACKEND and LOCATION use one DjangoEntries.
_boxes: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], DjangoEntries]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.RLock()
_local = current_store().local
_mocks: dict[str, MockBackend] = {}  # kind -> a MockBackend for its faults and record lookup


def _entries(record: KindRecord, storage: tuple[str, str]) -> DjangoEntries:
    """The entries of ``storage`` in the box of this thread, made the record's (slow path)."""
    with _lock:
        entries: Any = record.entries
        if type(entries) is DjangoEntries and entries.storage == storage:
            return entries
        box = current_store().box()
        found = _boxes.setdefault(box, {}).get(storage)
        if found is None:
            found = _boxes[box][storage] = DjangoEntries(storage)
        record.use_entries(found)
        return found


def _mock(kind: str) -> MockBackend:
    found = _mocks.get(kind)
    if found is None:
        found = _mocks.setdefault(kind, MockBackend(kind))
    return found


# -- the mocked cache class ---------------------------------------------------------------------


class _MockedCache:
    """The methods every mocked Django cache object has (first in the MRO of its class)."""

    _cachemock_kind = ""
    _cachemock_storage: tuple[str, str] = ("", "")
    _cachemock_original: type[Any] = object
    _missing_key: Any
    default_timeout: float | None

    if TYPE_CHECKING:  # Django's BaseCache's, after this class in the MRO

        def make_and_validate_key(self, key: Any, version: Any = None) -> str: ...

    # -- finding the record --

    def _cachemock_live(self, op: str, key: str) -> tuple[KindRecord, dict[str, _Item]]:
        """The kind's record (an armed fault for ``op`` raised) and its entries' data."""
        kind = self._cachemock_kind
        try:
            record = _local.ready[kind]
        except (KeyError, AttributeError):
            record = _mock(kind)._live(op, key)
        entries: Any = record.entries
        if type(entries) is not DjangoEntries:
            entries = _entries(record, self._cachemock_storage)
        return record, entries.data

    def _cachemock_quiet(self) -> dict[str, _Item]:
        """The kind's entries' data, for what counts nothing and no fault applies to."""
        record = current_store().record(self._cachemock_kind)
        entries: Any = record.entries
        if type(entries) is not DjangoEntries:
            entries = _entries(record, self._cachemock_storage)
        data: dict[str, _Item] = entries.data
        return data

    def _cachemock_expiry(self, timeout: Any) -> float | None:
        if timeout is _DEFAULT or timeout is _django_default[0]:
            timeout = self.default_timeout
        elif timeout is not None and timeout <= 0:
            return clock() - 1.0  # already expired
        return None if timeout is None else clock() + timeout

    def _cachemock_found(self, data: dict[str, _Item], key: str) -> _Item | None:
        item = data.get(key)
        if item is not None and _expired(item):
            data.pop(key, None)
            return None
        return item

    # -- Django's backend API --

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        record, data = self._cachemock_live("get", key)
        item = self._cachemock_found(data, key)
        if item is None:
            record.misses += 1
            return default
        record.hits += 1
        return pickle.loads(item[0])

    def set(self, key: Any, value: Any, timeout: Any = _DEFAULT, version: Any = None) -> None:
        key = self.make_and_validate_key(key, version=version)
        pickled = pickle.dumps(value, _PROTOCOL)
        record, data = self._cachemock_live("put", key)
        data[key] = (pickled, self._cachemock_expiry(timeout))
        record.puts += 1

    def add(self, key: Any, value: Any, timeout: Any = _DEFAULT, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        pickled = pickle.dumps(value, _PROTOCOL)
        record, data = self._cachemock_live("put", key)
        if self._cachemock_found(data, key) is not None:
            record.hits += 1
            return False
        data[key] = (pickled, self._cachemock_expiry(timeout))
        record.puts += 1
        return True

    def touch(self, key: Any, timeout: Any = _DEFAULT, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        data = self._cachemock_quiet()
        item = self._cachemock_found(data, key)
        if item is None:
            return False
        data[key] = (item[0], self._cachemock_expiry(timeout))
        return True

    def delete(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        data = self._cachemock_quiet()
        item = data.pop(key, None)
        return item is not None and not _expired(item)

    def has_key(self, key: Any, version: Any = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        record, data = self._cachemock_live("get", key)
        if self._cachemock_found(data, key) is None:
            record.misses += 1
            return False
        record.hits += 1
        return True

    def __contains__(self, key: Any) -> bool:
        return self.has_key(key)

    def get_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        made = [(key, self.make_and_validate_key(key, version=version)) for key in keys]
        if not made:
            return {}
        record, data = self._cachemock_live("get", made[0][1])
        found: dict[Any, Any] = {}
        for key, full in made:
            item = self._cachemock_found(data, full)
            if item is None:
                record.misses += 1
            else:
                record.hits += 1
                found[key] = pickle.loads(item[0])
        return found

    def set_many(
        self, data: Mapping[Any, Any], timeout: Any = _DEFAULT, version: Any = None
    ) -> list[Any]:
        staged = [
            (self.make_and_validate_key(key, version=version), pickle.dumps(value, _PROTOCOL))
            for key, value in data.items()
        ]
        if not staged:
            return []
        record, entries = self._cachemock_live("put", staged[0][0])
        expiry = self._cachemock_expiry(timeout)
        for full, pickled in staged:
            entries[full] = (pickled, expiry)
            record.puts += 1
        return []

    def delete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        data = self._cachemock_quiet()
        for full in made:
            data.pop(full, None)

    def get_or_set(
        self, key: Any, default: Any, timeout: Any = _DEFAULT, version: Any = None
    ) -> Any:
        full = self.make_and_validate_key(key, version=version)
        record, data = self._cachemock_live("get", full)
        item = self._cachemock_found(data, full)
        if item is not None:
            record.hits += 1
            return pickle.loads(item[0])
        record.misses += 1
        if callable(default):
            default = default()
        pickled = pickle.dumps(default, _PROTOCOL)
        record, data = self._cachemock_live("put", full)
        if self._cachemock_found(data, full) is None:  # as add(): another may have stored
            item = data[full] = (pickled, self._cachemock_expiry(timeout))
            record.puts += 1
        else:
            item = data[full]
        return default if _expired(item) else pickle.loads(item[0])

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        full = self.make_and_validate_key(key, version=version)
        record, data = self._cachemock_live("get", full)
        item = self._cachemock_found(data, full)
        if item is None:
            record.misses += 1
            raise ValueError(f"Key '{full}' not found")
        record.hits += 1
        new = pickle.loads(item[0]) + delta
        record, data = self._cachemock_live("put", full)
        data[full] = (pickle.dumps(new, _PROTOCOL), item[1])  # the expiry stays
        record.puts += 1
        return new

    def decr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        return self.incr(key, -delta, version=version)

    def clear(self) -> None:
        self._cachemock_quiet().clear()

    def incr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        if version is None:
            version = getattr(self, "version", 1)
        value = self.get(key, self._missing_key, version=version)
        if value is self._missing_key:
            raise ValueError(f"Key '{key}' not found")
        self.set(key, value, version=version + delta)
        self.delete(key, version=version)
        return int(version + delta)

    def decr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return self.incr_version(key, -delta, version)

    def close(self, **kwargs: Any) -> None:
        pass

    # -- the async variants: the sync twin, in the calling thread --

    async def aget(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self.get(key, default, version)

    async def aset(
        self, key: Any, value: Any, timeout: Any = _DEFAULT, version: Any = None
    ) -> None:
        self.set(key, value, timeout, version)

    async def aadd(
        self, key: Any, value: Any, timeout: Any = _DEFAULT, version: Any = None
    ) -> bool:
        return self.add(key, value, timeout, version)

    async def atouch(self, key: Any, timeout: Any = _DEFAULT, version: Any = None) -> bool:
        return self.touch(key, timeout, version)

    async def adelete(self, key: Any, version: Any = None) -> bool:
        return self.delete(key, version)

    async def ahas_key(self, key: Any, version: Any = None) -> bool:
        return self.has_key(key, version)

    async def aget_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        return self.get_many(keys, version)

    async def aset_many(
        self, data: Mapping[Any, Any], timeout: Any = _DEFAULT, version: Any = None
    ) -> list[Any]:
        return self.set_many(data, timeout, version)

    async def adelete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        self.delete_many(keys, version)

    async def aget_or_set(
        self, key: Any, default: Any, timeout: Any = _DEFAULT, version: Any = None
    ) -> Any:
        return self.get_or_set(key, default, timeout, version)

    async def aincr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        return self.incr(key, delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        return self.decr(key, delta, version)

    async def aclear(self) -> None:
        self.clear()

    async def aincr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return self.incr_version(key, delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return self.decr_version(key, delta, version)

    async def aclose(self, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        original = self._cachemock_original
        return (
            f"<{original.__module__}.{original.__qualname__} of kind "
            f"{self._cachemock_kind!r}, mocked by pytest-cachemock>"
        )


_classes: dict[tuple[type[Any], str], type[Any]] = {}


def _mocked_class(original: type[Any], kind: str, storage: tuple[str, str]) -> type[Any]:
    """The subclass of ``original`` (a Django cache backend class) mocked for ``kind``."""
    found = _classes.get((original, kind))
    if found is None or found._cachemock_storage != storage:
        found = type(
            original.__name__,
            (_MockedCache, original),
            {
                "_cachemock_kind": kind,
                "_cachemock_storage": storage,
                "_cachemock_original": original,
                "__module__": __name__,
                "__qualname__": original.__qualname__,
            },
        )
        _classes[(original, kind)] = found
    return found


# -- swapping the class of every cache object of an alias ---------------------------------------


class _Install:
    """One install of one alias's mock: the objects it swapped, to swap back."""

    __slots__ = ("alias", "kind", "storage", "swapped")

    def __init__(self, alias: str, kind: str, storage: tuple[str, str]) -> None:
        self.alias = alias
        self.kind = kind
        self.storage = storage
        self.swapped: list[tuple[Any, type[Any], type[Any]]] = []  # (object, old, new)

    def swap(self, obj: Any) -> None:
        old = type(obj)
        original = getattr(old, "_cachemock_original", old)
        new = _mocked_class(original, self.kind, self.storage)
        obj.__class__ = new
        self.swapped.append((obj, old, new))


# An alias of a CacheHandler: (id of the handler, alias). Django has one handler, ``caches``;
# the tests make others.
_Alias = tuple[int, str]
# alias -> its running installs, oldest first; cache object -> its alias (weakly).
_running: dict[_Alias, list[_Install]] = {}
_aliases: weakref.WeakKeyDictionary[Any, _Alias] = weakref.WeakKeyDictionary()


def _note(obj: Any, alias: _Alias) -> None:
    # An object that takes no weak reference is found through the handler only.
    with contextlib.suppress(TypeError):
        _aliases[obj] = alias


def _watch(caches: Any) -> None:
    """Note the alias of every cache object ``caches`` makes from now on (in any thread), and
    swap it at once while mocks of its alias are installed. Done once per process: the
    wrapper returns what Django's ``create_connection`` returns."""
    if getattr(caches.__dict__.get("create_connection"), "_cachemock", False):
        return
    make = caches.create_connection

    def create_connection(alias: str) -> Any:
        obj = make(alias)
        key = (id(caches), alias)
        with _lock:
            _note(obj, key)
            for install in _running.get(key, ()):
                install.swap(obj)
        return obj

    create_connection._cachemock = True  # type: ignore[attr-defined]
    caches.create_connection = create_connection


def _install(caches: Any, alias: str, kind: str, storage: tuple[str, str]) -> Undo:
    install = _Install(alias, kind, storage)
    key = (id(caches), alias)
    with _lock:
        objs: dict[int, Any] = {}
        here = getattr(caches._connections, alias, None)  # this thread's, made before _watch
        if here is not None:
            _note(here, key)
            objs[id(here)] = here
        for obj, of in list(_aliases.items()):
            if of == key:
                objs[id(obj)] = obj
        for obj in objs.values():
            install.swap(obj)
        _running.setdefault(key, []).append(install)
    # The kind's entries in this store from the start: seed() and entries() before any call.
    _entries(current_store().record(kind), storage)

    def undo() -> None:
        with _lock:
            running = _running.get(key, [])
            running[:] = [other for other in running if other is not install]
            for obj, old, new in reversed(install.swapped):
                if type(obj) is new:
                    obj.__class__ = old
            install.swapped.clear()

    return undo


class DjangoCacheTarget(Target):
    """Every cache object of one ``settings.CACHES`` alias (see the module docstring)."""

    def __init__(self, caches: Any, alias: str, storage: tuple[str, str], origin: str) -> None:
        super().__init__(caches, alias, lambda kind: None, origin)
        self.alias = alias
        self.storage = storage

    def install(self, kind: str) -> Undo:
        return _install(self.obj, self.alias, kind, self.storage)

    def spot(self) -> tuple[Any, str] | None:
        return None  # not an attribute: nothing to read back after a test

    def __repr__(self) -> str:
        return f"<Target django caches[{self.alias!r}] from {self.origin}>"


# -- the profile --------------------------------------------------------------------------------


def _settings(origin: str) -> tuple[str, Mapping[str, Any]]:
    """Django's version and ``settings.CACHES``, or a KindConfigError saying what to do."""
    try:
        django = importlib.import_module("django")
        conf = importlib.import_module("django.conf")
    except ImportError as exc:
        raise KindConfigError(
            f"{origin}: the 'django' profile needs Django, which cannot be imported ({exc}); "
            f"{_INSTALL}, or drop 'django' from cachemock_profiles / --cachemock-profile"
        ) from None
    settings = conf.settings
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise KindConfigError(
            f"{origin}: the 'django' profile reads settings.CACHES, but Django's settings are "
            "not configured when the plugin loads the profile; set DJANGO_SETTINGS_MODULE "
            "(with pytest-django: the DJANGO_SETTINGS_MODULE ini option or --ds), or call "
            "django.conf.settings.configure(CACHES=...) at the top of the conftest.py next "
            "to the pytest configuration"
        )
    try:
        caches_setting = settings.CACHES
    except Exception as exc:  # the settings module does not import, or is broken
        raise KindConfigError(
            f"{origin}: the 'django' profile cannot read settings.CACHES "
            f"(DJANGO_SETTINGS_MODULE={os.environ.get('DJANGO_SETTINGS_MODULE')!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(caches_setting, Mapping):
        raise KindConfigError(
            f"{origin}: settings.CACHES is a {type(caches_setting).__qualname__}, not a dict "
            "of alias -> cache settings"
        )
    return str(django.__version__), caches_setting


def register_kinds(registry: Registry, *, origin: str) -> None:
    """Declare a kind ``django_<alias>`` for every alias of ``settings.CACHES``."""
    version, caches_setting = _settings(origin)
    caches = importlib.import_module("django.core.cache").caches
    _declare(registry, caches, caches_setting, f"{origin} (profile 'django', Django {version})")


def _declare(
    registry: Registry, caches: Any, caches_setting: Mapping[str, Any], where: str
) -> None:
    """Declare the kind of every alias of ``caches_setting``, whose objects ``caches`` (a
    Django ``CacheHandler``) makes."""
    base = importlib.import_module("django.core.cache.backends.base")
    _django_default[0] = base.DEFAULT_TIMEOUT
    _watch(caches)
    given: dict[str, str] = {}
    for alias, params in caches_setting.items():
        kind = kind_name(str(alias))
        if kind in given:
            raise KindConfigError(
                f"{where}: the CACHES aliases {given[kind]!r} and {alias!r} both give the "
                f"cache kind {kind!r} (a character that cannot be in a Python name becomes "
                "'_'); rename one of them"
            )
        given[kind] = str(alias)
        backend = str(params.get("BACKEND", "")) if isinstance(params, Mapping) else ""
        location = params.get("LOCATION", "") if isinstance(params, Mapping) else ""
        storage = (backend, repr(location))
        registry.add(
            kind, targets=[DjangoCacheTarget(caches, str(alias), storage, where)], origin=where
        )
