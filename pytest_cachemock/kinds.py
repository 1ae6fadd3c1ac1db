"""Cache kinds: what a kind is (targets and switches), where kinds come from, and resolution.

A *target* is where a backend is chosen: an object with ``backend_override_cls`` (a
``RemoteCache`` subclass, a memoizer), or an attribute that holds a backend instance or
factory. A *switch* is a flag that turns a real cache on: an attribute or an environment
variable. Every place that declares a kind carries an ``origin`` string, so a reference that
does not resolve fails with an error naming where it was written.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, Callable, Union

from . import _discovery as discovery
from ._spots import _ENVIRON, _MISSING, Spots, Undo, _set
from .backends.base import Backend
from .errors import KindConfigError
from .mock import MockBackend

__all__ = [
    "AttributeSwitch",
    "CacheKind",
    "EnvSwitch",
    "KindConfigError",
    "ProfileEntry",
    "Registry",
    "Spots",
    "Switch",
    "Target",
    "Undo",
    "parse_entry",
]

_PROFILES: dict[str, str] = {
    "torch": "pytest_cachemock.integrations.torch:register_kinds",
    "django": "pytest_cachemock.integrations.django:register_kinds",
    "functools": "pytest_cachemock.integrations.functools:register_kinds",
    "cachetools": "pytest_cachemock.integrations.cachetools:register_kinds",
}
# Profiles whose kinds are named by entries (``[alias=]module:attribute`` or a whole module):
# the ini option ``cachemock_<profile>`` lists them, ``Registry.load_profile(name,
# entries=...)`` adds more; the profile's ``register_kinds`` takes ``entries=`` (a list of
# ProfileEntry).
_ENTRY_PROFILES: tuple[str, ...] = ("functools", "cachetools")
# Profile -> the module whose presence in sys.modules makes the default registry load it
# (the drop-in path: a PyTorch-style test that never configured the profile). torch itself,
# not torch._inductor: a test module that imports only torch compiles through Inductor all the
# same, and its first test must be mocked like the rest (loading then costs about 1.6 s, once).
_AUTOLOAD: dict[str, str] = {"torch": "torch"}


# -- resolving "package.module:Name.attr" ------------------------------------------------------


def _resolve(ref: str, origin: str) -> tuple[Any, str | None, Any]:
    """Resolve ``module:Qual.name`` to (parent, last attribute name, value).

    For a bare ``module:Name`` the parent is the module. The last attribute may be missing
    only when ``value`` is not needed; then ``value`` is ``_MISSING``.
    """
    module_name, sep, qual = ref.partition(":")
    if not sep or not module_name or not qual:
        raise KindConfigError(
            f"{origin}: {ref!r} is not a reference; write 'package.module:Name' or "
            "'package.module:Name.attribute'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise KindConfigError(f"{origin}: cannot import module {module_name!r} ({exc})") from exc
    parts = qual.split(".")
    for i, part in enumerate(parts[:-1]):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = module_name + ":" + ".".join(parts[:i]) if i else module_name
            raise KindConfigError(f"{origin}: {where} has no attribute {part!r}") from None
    last = parts[-1]
    value = getattr(obj, last, _MISSING)
    return obj, last, value


# -- targets -----------------------------------------------------------------------------------


_MockMaker = Callable[[str], Any]


class Target:
    """Where a backend is chosen; ``install(kind)`` puts a mock there and returns the undo."""

    def __init__(self, obj: Any, attr: str, make: _MockMaker, origin: str) -> None:
        self.obj = obj
        self.attr = attr
        self.make = make
        self.origin = origin

    @classmethod
    def override(cls, obj: Any, origin: str, make: _MockMaker | None = None) -> Target:
        """A target that is an object with ``backend_override_cls`` (a class or an instance)."""
        return cls(obj, "backend_override_cls", make or MockBackend.with_name, origin)

    @classmethod
    def attribute(cls, obj: Any, attr: str, origin: str) -> Target:
        """An attribute holding a backend instance (replaced by a mock) or factory.

        A backend instance or a Backend subclass gives mocks with its value contract: a
        bytes-only backend's (``stores_bytes``) refuse what it refuses.
        """
        value = getattr(obj, attr)
        if any(
            c.__name__ == "Redis" and c.__module__ == "redis.client" for c in type(value).__mro__
        ):
            from .integrations.redis import redis_client_mocks  # a redis-py client: fakeredis

            return cls(
                obj, attr, redis_client_mocks(value, f"{origin}: {_describe(obj)}.{attr}"), origin
            )
        if (
            callable(getattr(value, "get", None))
            and callable(getattr(value, "put", None))
            and (not isinstance(value, type))
        ):
            # The mock keeps the value contract of the backend it replaces (bytes-only, say).
            return cls(obj, attr, lambda kind: MockBackend.replacing(kind, value), origin)
        if callable(value):
            like = value if isinstance(value, type) and issubclass(value, Backend) else None
            return cls(obj, attr, lambda kind: MockBackend.with_name(kind, like), origin)
        raise KindConfigError(
            f"{origin}: {_describe(obj)}.{attr} holds a {type(value).__qualname__}, not a "
            "backend, a backend factory, or an object with backend_override_cls"
        )

    def install(self, kind: str) -> Undo:
        return _set(self.obj, self.attr, self.make(kind))

    def spot(self) -> tuple[Any, str] | None:
        """The (object, attribute) this target writes, or None when it is gone."""
        return (self.obj, self.attr)

    def refuses(self, op: str) -> str | None:
        """Why ``PatchCaches.seed`` (``op="seed"``) or ``fail`` (``"fail"``) cannot work on
        this target's kind, or None when it can (a mock backend takes both)."""
        return None

    def seed(self, mapping: Mapping[Any, Any]) -> bool:
        """Store ``mapping`` in a cache layer that keeps its own entries (a cachetools cache)
        and return True; False (the default) lets ``PatchCaches.seed`` fill the store."""
        return False

    def __repr__(self) -> str:
        return f"<Target {_describe(self.obj)}.{self.attr} from {self.origin}>"


def _nothing() -> None:
    pass


class _DiscoveredTarget(Target):
    """A target found by discovery. Held weakly, so that the merged kinds a registry keeps
    do not keep alive a class (a test module's, say) that would otherwise go away."""

    def __init__(self, obj: Any, origin: str) -> None:
        super().__init__(None, "backend_override_cls", MockBackend.with_name, origin)
        self._ref = weakref.ref(obj)

    def install(self, kind: str) -> Undo:
        obj = self._ref()
        if obj is None:
            return _nothing
        return _set(obj, self.attr, self.make(kind))

    def spot(self) -> tuple[Any, str] | None:
        obj = self._ref()
        return None if obj is None else (obj, self.attr)

    def __repr__(self) -> str:
        return f"<Target {_describe(self._ref())}.{self.attr} from {self.origin}>"


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    name = getattr(obj, "__name__", None)
    if isinstance(name, str):
        return name
    return repr(obj)


# -- profile entries: "[alias=]module:attribute" or a whole module ----------------------------


class ProfileEntry:
    """One entry of a profile that names its caches (functools, cachetools).

    ``alias`` names the kind (else the attribute's last name); for a whole module
    (``attribute`` None) it is the prefix of the module's kinds (``alias_name``).
    """

    __slots__ = ("alias", "attribute", "module", "origin", "text")

    def __init__(
        self, alias: str | None, module: str, attribute: str | None, origin: str, text: str
    ) -> None:
        self.alias = alias
        self.module = module
        self.attribute = attribute
        self.origin = origin
        self.text = text

    @property
    def name(self) -> str:
        """The kind's name: the alias, or the attribute's last part (entries with one)."""
        return self.alias or (self.attribute or "").rpartition(".")[2]

    def reference(self) -> str:
        return f"{self.module}:{self.attribute}" if self.attribute else self.module

    def __repr__(self) -> str:
        return f"<ProfileEntry {self.text!r} from {self.origin}>"


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def parse_entry(text: object, origin: str) -> ProfileEntry:
    """Read ``[alias=]package.module:attribute`` or ``[alias=]package.module``."""
    if not isinstance(text, str):
        raise KindConfigError(
            f"{origin}: an entry is a string such as 'package.module:function', got {text!r}"
        )
    raw = text.strip()
    alias, sep, ref = raw.partition("=")
    alias, ref = (alias.strip(), ref.strip()) if sep else ("", raw)
    module, colon, attribute = ref.partition(":")
    if not _dotted(module) or (colon and not _dotted(attribute)) or (sep and not alias):
        raise KindConfigError(
            f"{origin}: cannot read the entry {text!r}; write 'package.module:name', "
            "'alias=package.module:name' or a whole module 'package.module'"
        )
    if sep:
        discovery.check_kind_name(alias, f"{origin}: alias")
    return ProfileEntry(alias or None, module, attribute or None, origin, raw)


def _entry_value(entry: ProfileEntry) -> Any:
    """What an entry with an attribute names (imported now), or an error naming what is not
    there."""
    parent, attr, value = _resolve(entry.reference(), entry.origin)
    if value is _MISSING:
        raise KindConfigError(f"{entry.origin}: {_describe(parent)} has no attribute {attr!r}")
    return value


def _find_module(entry: ProfileEntry) -> None:
    """That a whole-module entry's module exists (it is imported when its caches are looked
    for, not now)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(entry.module)
    except ImportError as exc:  # a parent package that is not there
        raise KindConfigError(
            f"{entry.origin}: cannot find module {entry.module!r} ({exc})"
        ) from None
    if found is None:
        raise KindConfigError(f"{entry.origin}: cannot find module {entry.module!r}")


_Scan = Callable[[Any, ProfileEntry], Iterable[tuple[str, Iterable[Target]]]]
# The one target that installs the targets of several kinds of a module at once.
_Group = Callable[[list[tuple[str, list[Target]]]], Target]


class _ModuleKinds:
    """The kinds of a whole-module entry: every cache ``scan`` finds at the module's top
    level, looked for when kinds are first read after the module is (or is made) imported, so
    a module imported late counts; looked for again after it is reloaded."""

    def __init__(self, entry: ProfileEntry, scan: _Scan, group: _Group | None = None) -> None:
        self.entry = entry
        self.scan = scan
        self.group = group
        self._module: Any = None
        self._kinds: dict[str, CacheKind] = {}

    def __call__(self) -> dict[str, CacheKind]:
        entry = self.entry
        module = sys.modules.get(entry.module)
        if module is not None and module is self._module:
            return self._kinds
        if module is None:
            try:
                module = importlib.import_module(entry.module)
            except ImportError as exc:
                raise KindConfigError(
                    f"{entry.origin}: cannot import module {entry.module!r} ({exc})"
                ) from exc
        kinds: dict[str, CacheKind] = {}
        for name, targets in self.scan(module, entry):
            full = f"{entry.alias}_{name}" if entry.alias else name
            discovery.check_kind_name(full, f"{entry.origin}: kind")
            kinds[full] = CacheKind(full, targets, (), f"{entry.origin}, {entry.module}:{name}")
        self._module, self._kinds = module, kinds
        return kinds


def _taken(name: str, entry: ProfileEntry, other: CacheKind) -> KindConfigError:
    """Two entries (or an entry and another declaration) that would give one kind name."""
    if entry.attribute is None:
        fix = (
            f"give the module an alias, which prefixes its kinds: 'alias={entry.module}' "
            f"makes 'alias_{name}'"
        )
    else:
        fix = f"give one of them an alias: 'other_name={entry.reference()}'"
    return KindConfigError(
        f"{entry.origin}: cache kind {name!r} is already declared by {other.origin}; {fix}"
    )


# -- switches ----------------------------------------------------------------------------------


class Switch(ABC):
    """A flag that turns a real cache on. ``set(on)`` returns the undo."""

    origin: str = ""

    @property
    def key(self) -> Hashable:
        """Switches with equal keys are one flag, set once per ``PatchCaches``."""
        return self

    @abstractmethod
    def set(self, on: bool) -> Undo:
        """Turn the flag on or off; return how to put it back."""

    def spot(self) -> tuple[Any, str] | None:
        """Where the flag lives: (object, attribute), or (a Spots, name) (_ENVIRON for a variable).

        A switch with a spot is read back after a test, so a monkeypatch that restored the
        plugin's value after the plugin left is undone; one without (None) is not checked.
        ``set()`` of such a switch returns ``(object or spots, name, old, new)``.
        """
        return None


class AttributeSwitch(Switch):
    def __init__(self, obj: Any, attr: str, origin: str) -> None:
        self.obj = obj
        self.attr = attr
        self.origin = origin

    @property
    def key(self) -> Hashable:
        return (id(self.obj), self.attr)

    def set(self, on: bool) -> Undo:
        return _set(self.obj, self.attr, on)

    def spot(self) -> tuple[Any, str] | None:
        return (self.obj, self.attr)

    def __repr__(self) -> str:
        return f"<Switch {_describe(self.obj)}.{self.attr}>"


class EnvSwitch(Switch):
    """An environment variable: unset when off, ``"1"`` when on."""

    def __init__(self, name: str, origin: str) -> None:
        if not name or "=" in name:
            raise KindConfigError(f"{origin}: {name!r} is not an environment variable name")
        self.name = name
        self.origin = origin

    @property
    def key(self) -> Hashable:
        return ("env", self.name)

    def set(self, on: bool) -> Undo:
        old = os.environ.get(self.name, _MISSING)
        if on:
            os.environ[self.name] = "1"
            return (_ENVIRON, self.name, old, "1")
        os.environ.pop(self.name, None)
        return (_ENVIRON, self.name, old, _MISSING)

    def spot(self) -> tuple[Any, str] | None:
        return (_ENVIRON, self.name)

    def __repr__(self) -> str:
        return f"<Switch env:{self.name}>"


# -- kinds and the registry ----------------------------------------------------------------------

_TargetSpec = Union[str, Target, Any]
_SwitchSpec = Union[str, Switch]


class CacheKind:
    """A named family of cache traffic: its targets and switches; for verify mode, the
    function that recomputes a value from the cache's own key and the comparator."""

    def __init__(
        self,
        name: str,
        targets: Iterable[Target] = (),
        switches: Iterable[Switch] = (),
        origin: str = "",
        recompute: Callable[[str], Any] | None = None,
        compare: Callable[[Any, Any], bool] | None = None,
    ) -> None:
        self.name = name
        self.targets = list(targets)
        # What PatchCaches installs: the targets, but for the kinds of a whole module that
        # the profile installs as one group (see Registry.add_module): the group's target on
        # the first of them, nothing on the others.
        self.installs: list[Target] = self.targets
        self.switches = list(switches)
        self.origin = origin
        self.recompute = recompute
        self.compare = compare

    def __repr__(self) -> str:
        return f"<CacheKind {self.name!r} targets={self.targets} switches={self.switches}>"


def _make_target(spec: _TargetSpec, origin: str) -> Target:
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, str):
        parent, attr, value = _resolve(spec, origin)
        if value is _MISSING:
            raise KindConfigError(f"{origin}: {spec!r} does not exist")
        if hasattr(value, "backend_override_cls"):
            return Target.override(value, origin)
        assert attr is not None
        return Target.attribute(parent, attr, origin)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str):
        obj, attr = spec
        if not hasattr(obj, attr):
            raise KindConfigError(f"{origin}: {_describe(obj)} has no attribute {attr!r}")
        return Target.attribute(obj, attr, origin)
    if hasattr(spec, "backend_override_cls"):
        return Target.override(spec, origin)
    raise KindConfigError(
        f"{origin}: cannot use {spec!r} as a target: give a class or object with "
        "backend_override_cls, an (object, 'attribute') pair, or a 'module:Name.attr' string"
    )


def _make_switch(spec: _SwitchSpec | tuple[Any, str], origin: str) -> Switch:
    if isinstance(spec, Switch):
        return spec
    if isinstance(spec, str):
        if spec.startswith("env:"):
            return EnvSwitch(spec[4:], origin)
        parent, attr, value = _resolve(spec, origin)
        if value is _MISSING:
            raise KindConfigError(f"{origin}: switch {spec!r} does not exist")
        assert attr is not None
        _check_flag(value, repr(spec), origin)
        return AttributeSwitch(parent, attr, origin)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str):
        obj, attr = spec
        if not hasattr(obj, attr):
            raise KindConfigError(f"{origin}: switch {_describe(obj)}.{attr} does not exist")
        _check_flag(getattr(obj, attr), f"{_describe(obj)}.{attr}", origin)
        return AttributeSwitch(obj, attr, origin)
    raise KindConfigError(
        f"{origin}: cannot use {spec!r} as a switch: give 'env:NAME', 'module:obj.attr' or an "
        "(object, 'attribute') pair"
    )


def _check_flag(value: Any, where: str, origin: str) -> None:
    """Refuse a switch attribute that holds an object rather than a flag (a backend, a class).

    A flag is a plain value that code reads as true or false: a bool, ``None`` (torch's
    remote-cache flags are ``Optional[bool]``, unset by default), an int (0/1) or a str.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return
    raise KindConfigError(
        f"{origin}: switch {where} holds a {type(value).__qualname__}, not a flag; a switch is "
        "an attribute holding a bool (or None, an int or a str) ('package.module:obj.attr'), "
        "or an environment variable ('env:NAME'); a backend goes in target=, not switch="
    )


def _one_or_many(specs: Any, one: type) -> Iterable[Any]:
    """``specs`` as a list: one reference string, one ``one`` instance, one object with
    ``backend_override_cls``, one (object, 'attribute') pair, or an iterable of them."""
    if isinstance(specs, (str, one)) or hasattr(specs, "backend_override_cls"):
        return [specs]
    if (
        isinstance(specs, tuple)
        and len(specs) == 2
        and not isinstance(specs[0], str)
        and isinstance(specs[1], str)
        and ":" not in specs[1]
    ):
        return [specs]
    try:
        return list(specs)
    except TypeError:  # not iterable: one spec, refused by name if it is not one
        return [specs]


class Registry:
    """Declared cache kinds (ini lines, the register hook, profiles), plus discovered ones.

    ``kinds()`` merges in the ``RemoteCache`` subclasses and memoizers that declare a kind,
    read when called, so classes defined after start-up count. A declared kind and discovered
    targets of the same name are one kind: a declaration may add switches (and targets) to a
    ``RemoteCache`` subclass's kind. A name may be declared once.
    """

    def __init__(self) -> None:
        self._declared: dict[str, CacheKind] = {}
        self._merged: dict[str, CacheKind] | None = None
        self._merged_at: Any = -1
        self._lock = threading.Lock()
        self._origin = "Registry.add"
        self._profiles: set[str] = set()
        self._modules: list[_ModuleKinds] = []  # whole-module entries of the profiles

    @contextlib.contextmanager
    def declaring(self, origin: str) -> Iterator[None]:
        """Kinds added inside the block are reported as declared by ``origin``."""
        saved, self._origin = self._origin, origin
        try:
            yield
        finally:
            self._origin = saved

    def add(
        self,
        name: str,
        *,
        targets: _TargetSpec | Iterable[_TargetSpec] = (),
        switches: _SwitchSpec | tuple[Any, str] | Iterable[_SwitchSpec | tuple[Any, str]] = (),
        origin: str | None = None,
        verify: Callable[[str], Any] | str | None = None,
        compare: Callable[[Any, Any], bool] | str | None = None,
    ) -> CacheKind:
        """Declare kind ``name`` with its targets and switches (resolved now).

        ``targets`` and ``switches`` each take one reference (a ``'module:Name.attr'`` string,
        an ``(object, 'attribute')`` pair, a ``Target`` or ``Switch``) or a list of them.
        ``verify`` (a function or a ``'module:name'`` reference) recomputes a value from the
        cache's own key, for verify mode; ``compare(cached, fresh)`` replaces ``==`` there.
        """
        if origin is None:
            origin = self._origin
        # The message reads "<origin>: kind = 'x' is not a valid cache kind name".
        discovery.check_kind_name(name, f"{origin}: kind")
        if name in self._declared:
            raise KindConfigError(
                f"{origin}: cache kind {name!r} is already declared by "
                f"{self._declared[name].origin}; give one of them another name"
            )
        kind = CacheKind(
            name,
            [_make_target(t, origin) for t in _one_or_many(targets, Target)],
            [_make_switch(s, origin) for s in _one_or_many(switches, Switch)],
            origin,
            _callable(verify, "verify", origin),
            _callable(compare, "compare", origin),
        )
        self._declared[name] = kind
        self._merged = None
        return kind

    def add_line(self, line: str, origin: str) -> CacheKind | None:
        parsed = _parse_kind_line(line, origin)
        if parsed is None:
            return None
        name, targets, switches, extra = parsed
        return self.add(name, targets=targets, switches=switches, origin=origin, **extra)

    def load_profile(
        self, name: str, origin: str | None = None, *, entries: Iterable[str] = ()
    ) -> None:
        """Load the built-in profile ``name``; a profile that names its caches (functools,
        cachetools) takes ``entries`` (``[alias=]module:attribute`` or a whole module).

        Loading a loaded profile again only adds its new entries.
        """
        if origin is None:
            origin = self._origin
        ref = _PROFILES.get(name)
        if ref is None:
            known = ", ".join(sorted(_PROFILES))
            raise KindConfigError(f"{origin}: unknown profile {name!r}; known profiles: {known}")
        items = [entries] if isinstance(entries, str) else list(entries)
        if items and name not in _ENTRY_PROFILES:
            raise KindConfigError(
                f"{origin}: the {name!r} profile takes no entries (it finds its caches "
                f"itself); profiles with entries: {', '.join(_ENTRY_PROFILES)}"
            )
        if name in self._profiles and not items:
            return
        self._profiles.add(name)
        module_name, _, func = ref.partition(":")
        register = getattr(importlib.import_module(module_name), func)
        if name in _ENTRY_PROFILES:
            parsed = [parse_entry(item, f"{origin}, entry {str(item).strip()!r}") for item in items]
            register(self, origin=origin, entries=parsed)
        else:
            register(self, origin=origin)

    def add_entry_kind(self, entry: ProfileEntry, targets: Iterable[Target]) -> CacheKind:
        """Declare the kind of a profile entry naming one cache (its name: the entry's);
        a name already taken is an error suggesting an alias."""
        name = entry.name
        other = self._declared.get(name)
        if other is not None:
            raise _taken(name, entry, other)
        return self.add(name, targets=list(targets), origin=entry.origin)

    def add_module(self, entry: ProfileEntry, scan: _Scan, group: _Group | None = None) -> None:
        """Declare the kinds of a whole-module entry: what ``scan(module, entry)`` finds,
        (name, targets) pairs, looked for when kinds are read (see ``_ModuleKinds``).

        With ``group``, the kinds the module keeps are installed as one: ``group([(name,
        targets), ...])`` makes the one target that installs them all (a hundred lru_cache
        functions cost one install, not a hundred).
        """
        self._modules.append(_ModuleKinds(entry, scan, group))
        self._merged = None

    def autoload(self) -> None:
        """Load each built-in profile whose library is already imported, once (see _AUTOLOAD)."""
        for name, module in _AUTOLOAD.items():
            if name not in self._profiles and sys.modules.get(module) is not None:
                self.load_profile(name, f"PatchCaches, as {module} is imported")

    def declared(self) -> Mapping[str, CacheKind]:
        return self._declared

    def kinds(self) -> dict[str, CacheKind]:
        """Declared kinds plus discovered ones; same-named discovered targets join one kind."""
        version: Any = discovery.version()
        found = [source() for source in self._modules] if self._modules else None
        if found is not None:
            version = (version, *map(id, found))
        merged = self._merged
        if merged is not None and self._merged_at == version:
            return merged
        with self._lock:
            merged = dict(self._declared)
            # A cache an entry of its own names keeps that kind: a module's scan skips it.
            named = {(id(t.obj), t.attr) for kind in self._declared.values() for t in kind.targets}
            for source, kinds in zip(self._modules, found or ()):
                kept: list[CacheKind] = []
                for name, kind in kinds.items():
                    if all((id(t.obj), t.attr) in named for t in kind.targets):
                        continue
                    named.update((id(t.obj), t.attr) for t in kind.targets)
                    other = merged.get(name)
                    if other is not None:
                        raise _taken(name, source.entry, other)
                    kept.append(kind)
                if source.group is not None and kept:
                    # Copies (the module's own kinds stay as scanned): one install for all.
                    kept = [
                        CacheKind(k.name, k.targets, k.switches, k.origin, k.recompute, k.compare)
                        for k in kept
                    ]
                    leader = source.group([(k.name, k.targets) for k in kept])
                    for k in kept:
                        k.installs = []
                    kept[0].installs = [leader]
                for kind in kept:
                    merged[kind.name] = kind
            for kind_name, target in discovery.discovered():
                origin = f"{_describe(target)} (kind = {kind_name!r})"
                existing = merged.get(kind_name)
                if existing is None:
                    existing = merged[kind_name] = CacheKind(kind_name, origin=origin)
                elif existing is self._declared.get(kind_name):
                    # A declaration adds targets and switches to a discovered kind of its
                    # name: the merged kind is a copy, the declared one stays as declared.
                    existing = merged[kind_name] = CacheKind(
                        kind_name,
                        existing.targets,
                        existing.switches,
                        f"{existing.origin}, and {origin}",
                        existing.recompute,
                        existing.compare,
                    )
                found_target = _DiscoveredTarget(target, origin)
                existing.targets.append(found_target)
                if existing.installs is not existing.targets:  # a module's grouped kind
                    existing.installs.append(found_target)
            self._merged = merged
            self._merged_at = version
        return merged

    def names(self) -> list[str]:
        return list(self.kinds())

    def clear(self) -> None:
        self._declared.clear()
        self._merged = None
        self._profiles.clear()
        self._modules.clear()


def _load(
    registry: Registry,
    *,
    lines: Iterable[str] = (),
    profiles: Iterable[tuple[str, str]] = (),
    hooks: Iterable[Callable[..., object]] = (),
    entries: Mapping[str, Iterable[str]] | None = None,
) -> Registry:
    """Declare every configured kind in ``registry``, in order: ini lines, profiles, hooks.

    ``lines`` are ``cachemock_kinds`` lines; ``profiles`` are (name, origin) pairs, a name
    given twice loaded once (the first origin); ``entries`` are the ``cachemock_<profile>``
    lines of the profiles that name their caches; ``hooks`` are the implementations of
    ``pytest_cachemock_register_kinds``, each called once with the registry so that an error
    names where its kind was declared.
    """
    for number, line in enumerate(lines, start=1):
        registry.add_line(line, f"ini option cachemock_kinds, line {number} ({line.strip()!r})")
    first: dict[str, str] = {}
    for name, origin in profiles:
        first.setdefault(name, origin)
    given = {name: _entry_lines(found) for name, found in (entries or {}).items()}
    for name, found in given.items():
        if found and name not in first:
            raise KindConfigError(
                f"ini option cachemock_{name} lists caches, but the {name!r} profile is not "
                f"loaded; add it: cachemock_profiles = {name}"
            )
    for name, origin in first.items():
        found = given.get(name, [])
        registry.load_profile(
            name, f"ini option cachemock_{name}" if found else origin, entries=found
        )
    for hook in hooks:
        where = getattr(hook, "__code__", None)
        place = f"{where.co_filename}:{where.co_firstlineno}" if where else repr(hook)
        with registry.declaring(f"hook pytest_cachemock_register_kinds in {place}"):
            hook(registry=registry)
    return registry


def _entry_lines(lines: Iterable[str]) -> list[str]:
    """The entries of a ``cachemock_<profile>`` option: its lines but blank and ``#`` ones."""
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


def _callable(ref: Any, what: str, origin: str) -> Any:
    """``ref`` (a callable, or a ``'module:name'`` reference to one), or None."""
    if ref is None or (callable(ref) and not isinstance(ref, str)):
        return ref
    if isinstance(ref, str):
        _, _, value = _resolve(ref, origin)
        if value is _MISSING:
            raise KindConfigError(f"{origin}: {what}={ref!r} does not exist")
        if callable(value):
            return value
        raise KindConfigError(
            f"{origin}: {what}={ref!r} holds a {type(value).__qualname__}, not a function"
        )
    raise KindConfigError(
        f"{origin}: {what}= takes a function or a 'package.module:name' reference, got {ref!r}"
    )


def _parse_kind_line(
    line: str, origin: str
) -> tuple[str, list[str], list[str], dict[str, str]] | None:
    """Parse one ``cachemock_kinds`` line: ``name target=REF ... switch=REF ...``.

    REF is ``package.module:Name`` or ``package.module:Name.attr``; a switch may also be
    ``env:NAME``; ``verify=REF`` and ``compare=REF`` name functions (verify mode). Blank
    lines and lines starting with ``#`` are skipped.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    tokens = text.split()
    name = tokens[0].rstrip(":")
    targets: list[str] = []
    switches: list[str] = []
    extra: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if sep and value and key in ("verify", "compare") and key not in extra:
            extra[key] = value
            continue
        if not sep or not value or key not in ("target", "switch"):
            raise KindConfigError(
                f"{origin}: cannot read {token!r} in {text!r}; write "
                "'name target=package.module:Name switch=package.module:FLAG switch=env:VAR' "
                "(and verify=package.module:fn, compare=package.module:fn for verify mode)"
            )
        (targets if key == "target" else switches).append(value)
    if not targets and not switches and not extra:
        raise KindConfigError(f"{origin}: kind {name!r} has neither a target nor a switch")
    return name, targets, switches, extra
