"""Memoizers: ``memoize``/``record``/``replay`` decorators over a toolkit backend.

Keys are digests of a canonical encoding of the arguments (never pickle), so an entry written
by one process is found by the next. A persistent backend gets an in-process front; a stored
entry is a self-describing record ``{"fn", "args", "result"}`` run through the serde.

This module holds the :class:`Memoizer` itself (configuration, scope, decorators and the
warm-hit path); the rest is in private modules, one concept each: ``_keys`` (argument
encoding, the one key builder), ``_flight`` (single flight and the one compute path),
``_route`` (read, lock and store over a backend), ``_writer`` (the write-behind thread),
``_dump`` (the dump format), and ``locks.range_lock`` (the per-key lock between processes).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import itertools
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union, cast, overload

from typing_extensions import ParamSpec

from . import _discovery as discovery
from . import _dump
from ._dump import DUMP_FORMAT, DUMP_FORMAT_VERSION
from ._flight import _Flight, make_async, make_sync
from ._keys import (
    _MEMOIZE,
    _MISSING,
    _RECORD,
    _REPLAY,
    _SPEC_ATTR,
    ParamsEncoder,
    _encode,
    _encoding_error,
    _entry_key,
    _Fn,
    _qualified,
    _text,
    _Unencodable,
)
from ._route import _Route
from ._verify import MEMO_ATTR as _MEMO_ATTR
from ._writer import _writer
from .backends.base import Backend, not_a_backend
from .backends.memory import MemoryBackend
from .counters import cache_stats
from .errors import MemoizerWarning, UserError, ValueEncodingError
from .serde import JsonSerde, Serde, _canonical, encode_for

__all__ = ["DUMP_FORMAT", "DUMP_FORMAT_VERSION", "Memoizer"]

P = ParamSpec("P")
R = TypeVar("R")

BackendFactory = Callable[[], Backend[Any]]
Context = Union[Mapping[str, object], Callable[[], Mapping[str, object]]]

DEFAULT_KIND = "memoize"


class Memoizer:
    """Memoizes functions into a backend, with keys that hold across processes and runs.

    ``backend=None`` keeps results in memory; a ``FileBackend`` (or another shared backend)
    persists them, with an in-process front that a backend hit fills. ``serde`` (JSON by
    default) encodes the stored records; every call returns what it gives back. ``version``
    and ``context`` (a mapping, or a callable returning one) are folded into every key.
    ``deterministic=True`` makes the first stored result win, in every process.

    A memoizer is a cache kind for the pytest plugin (``kind``, or ``"memoize"`` without
    one): while ``backend_override_cls`` is set, every call goes to the backend it makes.
    """

    backend_override_cls: ClassVar[Optional[BackendFactory]] = None

    def __init__(
        self,
        *,
        kind: str | None = None,
        backend: Backend[Any] | None = None,
        serde: Serde[Any, Any] | None = None,
        version: int = 1,
        context: Context | None = None,
        deterministic: bool = False,
    ) -> None:
        if kind is not None:
            discovery.check_kind_name(kind, "Memoizer(kind=...)")
        refused = not_a_backend("Memoizer", backend)
        if refused is not None:
            raise refused
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise UserError(f"Memoizer version must be an int >= 0, got {version!r}")
        self.kind = kind
        self.name: str = kind or DEFAULT_KIND
        self.version = version
        self.deterministic = bool(deterministic)
        self.serde: Serde[Any, Any] = serde if serde is not None else JsonSerde()
        # decode_for(self.serde, ...), its choice made once: a hit in a fresh process decodes.
        self._decode_keyed: Callable[[str, Any], Any] | None = getattr(
            self.serde, "decode_keyed", None
        )
        self._owns_backend = backend is None
        self._backend: Backend[Any] = backend if backend is not None else MemoryBackend()
        # A backend that keeps limits (a bounded or expiring MemoryBackend) must stay the only
        # store, or its limits would not hold; every other backend gets a front.
        self._use_front = not self._backend.keeps_limits
        self._context_fn: Callable[[], Mapping[str, object]] | None = None
        self._scope_ids: dict[str, str] = {}
        if context is None:
            context = self.default_context()
        if callable(context):
            self._context_fn = context
            self._context_text = ""
            self._scope_id = ""
        elif isinstance(context, Mapping):
            self._context_text, self._scope_id = self._scope_of(context)
        else:
            raise UserError(
                f"Memoizer context must be a mapping or a callable returning one, got a "
                f"{type(context).__qualname__}"
            )
        self._counters = cache_stats.counters(self.name)
        self._fns: list[_Fn] = []
        self._flights: dict[str, _Flight] = {}
        # Single flight keeps the error of a computation that raised for the callers that
        # began before it ended (their lookup may have missed before the flight started):
        # key -> (sequence number at the end, error). Bounded; see _missed_sync.
        self._seq = itertools.count()
        self._raised: dict[str, tuple[int, BaseException]] = {}
        self._aflights: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._strict = False
        # What failed in the current outage ("read", "write", "lock"); it ends when each
        # has worked again. One warning per outage: a full disk fails every write while reads
        # work, and that is one outage.
        self._outage: set[str] = set()
        self._override_factory: BackendFactory | None = None
        self._override: _Route | None = None
        # The steps of every call past the front (_route.py); an override gets its own.
        self._route = _Route(self, self._backend, real=True)
        discovery.register(self.name, self)

    @staticmethod
    def default_context() -> dict[str, object]:
        """The context used when none is given: the Python implementation and major.minor."""
        impl = sys.implementation.name
        return {"python": f"{impl}-{sys.version_info[0]}.{sys.version_info[1]}"}

    # -- backends ------------------------------------------------------------------------------

    @property
    def backend(self) -> Backend[Any]:
        """The backend in use now: the override's when one is set, else the real one."""
        factory = self._factory()
        return self._backend if factory is None else self._override_route(factory).backend

    @property
    def real_backend(self) -> Backend[Any]:
        """The backend this memoizer was built with, whatever the override."""
        return self._backend

    @property
    def strict(self) -> bool:
        """True after ``load(..., strict=True)``: a miss in ``memoize`` raises."""
        return self._strict

    def _factory(self) -> BackendFactory | None:
        # Read through Any: mypy takes a callable class attribute read on an instance for a
        # method, but the plugin sets a plain factory on the instance.
        memo: Any = self
        return cast(Optional[BackendFactory], memo.backend_override_cls)

    def _override_route(self, factory: BackendFactory) -> _Route:
        """The route to the backend ``factory`` makes (one per factory)."""
        route = self._override
        if route is not None and factory is self._override_factory:
            return route
        with self._lock:
            if factory is not self._override_factory or self._override is None:
                made = factory()
                # The override learns what it replaces (a mock keeps a bytes-only contract).
                stand_in = getattr(made, "stand_in_for", None)
                if stand_in is not None:
                    made = stand_in(self._backend)
                self._override = _Route(self, made, real=False)
                self._override_factory = factory
            return self._override

    # -- scope (version and context) -----------------------------------------------------------

    def _scope_of(self, context: Mapping[str, object]) -> tuple[str, str]:
        try:
            encoded = _encode(dict(context))
        except _Unencodable as exc:
            raise _encoding_error(exc, "the context", f"Memoizer {self.name!r}") from None
        text = _text(encoded)
        scope_id = self._scope_ids.get(text)
        if scope_id is None:
            scope = _text({"context": encoded, "version": self.version})
            scope_id = hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]
            if len(self._scope_ids) > 1024:
                self._scope_ids.clear()
            self._scope_ids[text] = scope_id
        return text, scope_id

    def _current_scope(self) -> tuple[str, str]:
        """(context text, scope id) for this call."""
        if self._context_fn is None:
            return self._context_text, self._scope_id
        context = self._context_fn()
        if not isinstance(context, Mapping):
            raise UserError(
                f"Memoizer {self.name!r}: the context callable must return a mapping, got a "
                f"{type(context).__qualname__}"
            )
        return self._scope_of(context)

    def _key(self, scope_id: str, qualname: str, encoded_args: object) -> str:
        """The key of a stored record's function and arguments (``load`` checks entries)."""
        return _entry_key(self.name, scope_id, _canonical(qualname), _text(encoded_args))

    def key_for(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """The backend key of ``fn(*args, **kwargs)`` (``fn`` decorated by this memoizer or not)."""
        spec = self._spec_of(fn)
        _, scope_id = self._current_scope()
        text, _ = spec.key_text(args, kwargs)
        return _entry_key(self.name, scope_id, spec.qual_json, text)

    def entry_for(
        self, fn: Callable[..., Any], result: object, /, *args: Any, **kwargs: Any
    ) -> tuple[str, Any]:
        """``(key, stored)``: the entry a call ``fn(*args, **kwargs)`` returning ``result`` stores.

        ``stored`` is the serde's encoding of ``{"fn", "args", "result"}``; hand such pairs to
        ``patch_caches.seed(kind, dict(pairs))`` or to ``backend.put(key, stored)``.
        """
        spec = self._spec_of(fn)
        _, scope_id = self._current_scope()
        text, encoded = spec.key_text(args, kwargs)
        if encoded is _MISSING:
            encoded = spec.plain_args(args, kwargs)
        key = _entry_key(self.name, scope_id, spec.qual_json, text)
        return key, self._encode_record(spec, key, encoded, result)

    def _spec_of(self, fn: Callable[..., Any]) -> _Fn:
        spec = getattr(fn, _SPEC_ATTR, None)
        if isinstance(spec, _Fn):
            return spec
        if not callable(fn):
            raise UserError(f"expected a function, got a {type(fn).__qualname__}")
        return _Fn(fn, _MEMOIZE, None)

    # -- decorators ----------------------------------------------------------------------------

    @overload
    def memoize(self, fn: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def memoize(
        self,
        fn: None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def memoize(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Return the stored result when there is one, else compute, store and return it."""
        return self._decorator(_MEMOIZE, fn, params_encoder, name)

    @overload
    def record(self, fn: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def record(
        self,
        fn: None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def record(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Always compute and store (with ``deterministic``, return what was stored first)."""
        return self._decorator(_RECORD, fn, params_encoder, name)

    @overload
    def replay(self, fn: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def replay(
        self,
        fn: None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def replay(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        params_encoder: ParamsEncoder | None = None,
        name: str | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Only read: return the stored result, or raise :class:`ReplayMissError`."""
        return self._decorator(_REPLAY, fn, params_encoder, name)

    def _decorator(
        self,
        mode: str,
        fn: Callable[P, R] | None,
        params_encoder: ParamsEncoder | None,
        name: str | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        if name is not None and (not isinstance(name, str) or not name):
            raise UserError(f"name must be a non-empty str (the function's key name), got {name!r}")
        if params_encoder is not None and not callable(params_encoder):
            raise UserError(
                f"params_encoder must be a callable taking the function's arguments, got a "
                f"{type(params_encoder).__qualname__}"
            )

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            return self._wrap(mode, fn, params_encoder, name)

        if fn is None:
            return decorate
        return decorate(fn)

    def _wrap(
        self,
        mode: str,
        fn: Callable[P, R],
        params_encoder: ParamsEncoder | None,
        name: str | None = None,
    ) -> Callable[P, R]:
        if not callable(fn):
            raise UserError(
                f"Memoizer.{mode}() decorates a function, got a {type(fn).__qualname__}; "
                f"write @memo.{mode}() or @memo.{mode}(params_encoder=...)"
            )
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise UserError(
                f"cannot {mode} {_qualified(fn)}(): it is a generator function, and a "
                "generator cannot be stored; memoize a function that returns a list instead"
            )
        spec = _Fn(fn, mode, params_encoder, self._use_front, name)
        with self._lock:
            self._fns.append(spec)
        wrapper = (
            make_async(self, spec) if inspect.iscoroutinefunction(fn) else make_sync(self, spec)
        )
        functools.update_wrapper(wrapper, fn)
        setattr(wrapper, _SPEC_ATTR, spec)
        setattr(wrapper, _MEMO_ATTR, self)  # for check_keys
        return cast(Callable[P, R], wrapper)

    def _prepare(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any], fk: object, real: bool
    ) -> tuple[str, object, object]:
        """(key, encoded args, front key) for a call that missed the fast front.

        The encoded arguments are _MISSING when the key came from ``args_text``: only a call
        that stores needs them (``_Fn.plain_args``).
        """
        if real and self._override is not None:
            self._override = None  # the override is gone; let its backend go too
        if self._context_fn is None:
            context_text, scope_id = self._context_text, self._scope_id
        else:
            context_text, scope_id = self._current_scope()
        text: str | None = spec.args_text(args, kwargs)  # key_text, its fast case inlined
        encoded: object = _MISSING
        if text is None:
            text, encoded = spec.key_text(args, kwargs)
        if fk is None:
            fk = ("$", text)
        if self._context_fn is not None:
            fk = (context_text, fk)
        return _entry_key(self.name, scope_id, spec.qual_json, text), encoded, fk

    # -- stored records ------------------------------------------------------------------------

    def _encode_record(self, spec: _Fn, key: str, encoded: object, result: object) -> Any:
        record = {"args": encoded, "fn": spec.qualname, "result": result}
        try:
            return encode_for(self.serde, key, record)
        except Exception as exc:
            raise ValueEncodingError(
                f"{spec.label} returned a {type(result).__qualname__} that the memoizer's "
                f"serde ({self.serde!r}) cannot store: {exc}; return plain data or give the "
                "Memoizer another serde"
            ) from exc

    def _decode_record(self, key: str, stored: Any) -> dict[str, Any] | None:
        keyed = self._decode_keyed
        record = self.serde.decode(stored) if keyed is None else keyed(key, stored)
        if type(record) is not dict or "result" not in record or "fn" not in record:
            return None
        return cast(dict[str, Any], record)

    def _failed(self, exc: Exception, what: str, backend: Backend[Any] | None = None) -> None:
        next(self._counters.exception)
        with self._lock:
            first = not self._outage
            self._outage.add(what)
        if not first:
            return
        # Never len() or bool() of the backend here (a damaged store raises from those), and
        # a repr that raises must not lose the caller's result either.
        shown = backend if backend is not None else self._backend
        try:
            where = repr(shown)
        except Exception:
            where = f"<{type(shown).__qualname__}>"
        warnings.warn(
            f"Memoizer {self.name!r}: backend {where} failed to {what} "
            f"({type(exc).__name__}: {exc}); results are computed and returned without "
            f"the backend until it works again (counted as exceptions in "
            f"cache_stats[{self.name!r}])",
            MemoizerWarning,
            stacklevel=6,
        )

    def _recovered(self, what: str) -> None:
        with self._lock:
            self._outage.discard(what)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until stored results are on disk (a ``FileBackend`` is written behind).

        Returns False when ``timeout`` seconds passed first. Exiting the interpreter,
        ``dump()`` and ``cache_clear()`` flush by themselves.
        """
        return _writer.flush(timeout)

    # -- clearing ------------------------------------------------------------------------------

    def cache_clear(self) -> None:
        """Forget every result: the fronts, and this memoizer's entries in its backend.

        Entries of other caches that share the backend stay. A backend that cannot list its
        entries (its ``lists_entries`` is False) keeps them; only the fronts are cleared.
        """
        _writer.flush()
        with self._lock:
            fns = list(self._fns)
        for spec in fns:
            spec.front.clear()
        if self._owns_backend:  # a MemoryBackend of its own: every entry is ours
            self._backend.clear()
        else:
            self._delete_own(self._backend)
        override = self._override
        if override is not None:
            self._delete_own(override.backend)

    def _own_items(self, backend: Backend[Any], prefix: str) -> Iterator[tuple[str, Any]]:
        if not backend.lists_entries:
            return iter(())
        return ((k, v) for k, v in backend.items() if isinstance(k, str) and k.startswith(prefix))

    def _delete_own(self, backend: Backend[Any]) -> None:
        if not backend.lists_entries:
            return
        for key, _ in list(self._own_items(backend, self.name + "/")):
            backend.delete(key)

    # -- dumps (_dump.py) ----------------------------------------------------------------------

    def dump(self, path: str | os.PathLike[str]) -> int:
        """Write this memoizer's entries (this version and context) to the JSON file ``path``.

        What the file already holds is kept (other memoizers, versions and contexts) and
        merged; the file is replaced atomically under a file lock. Returns the number of
        entries written for this memoizer.
        """
        return _dump.dump(self, path)

    def load(self, path: str | os.PathLike[str], *, strict: bool = False) -> int:
        """Put the entries of a dump (those of this version and context) into the backend.

        With ``strict=True`` every later miss of ``memoize`` raises :class:`ReplayMissError`
        (``record`` still computes). A missing file loads nothing, or raises
        ``FileNotFoundError`` when strict. Returns the number of entries loaded.
        """
        return _dump.load(self, path, strict=strict)

    def __repr__(self) -> str:
        return (
            f"<Memoizer kind={self.name!r} version={self.version} backend={self._backend!r} "
            f"serde={self.serde!r} deterministic={self.deterministic}>"
        )
