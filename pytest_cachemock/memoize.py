"""Memoizers: ``memoize``/``record``/``replay`` decorators over a toolkit backend.

Keys are digests of a canonical encoding of the arguments (never pickle), so an entry written
by one process is found by the next. A persistent backend gets an in-process front; a stored
entry is a self-describing record ``{"fn", "args", "result"}`` run through the serde.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import dataclasses
import enum
import errno
import functools
import hashlib
import inspect
import itertools
import json
import math
import os
import queue
import reprlib
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Iterator, Mapping
from pathlib import PurePath
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union, cast, overload

from typing_extensions import ParamSpec

from . import discovery
from .backends.base import Backend
from .backends.file import FileBackend
from .backends.memory import MemoryBackend
from .counters import cache_stats
from .errors import (
    FileLockTimeoutError,
    KeyEncodingError,
    LockTimeoutError,
    MemoizerWarning,
    ReplayMissError,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
)
from .errors import (
    SystemError as CacheSystemError,
)
from .locks import file_lock, flock
from .serde import JsonSerde, PickleSerde, Serde, SignedPickleSerde, decode_for, encode_for

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the backend's own lock is used
    fcntl = None  # type: ignore[assignment]

__all__ = ["Memoizer"]

P = ParamSpec("P")
R = TypeVar("R")

BackendFactory = Callable[[], Backend[Any]]
ParamsEncoder = Callable[..., object]
Context = Union[Mapping[str, object], Callable[[], Mapping[str, object]]]

DUMP_FORMAT = "pytest-cachemock/memoize"
DUMP_FORMAT_VERSION = 1
DEFAULT_KIND = "memoize"

_MISSING: Any = object()
# Arguments of these exact types are their own front key: equal values of them always have
# equal canonical encodings (bool and float are left out: True == 1, 0.0 == -0.0).
_FAST_TYPES = frozenset({str, int, type(None)})
_MEMOIZE, _RECORD, _REPLAY = "memoize", "record", "replay"
_SPEC_ATTR = "__cachemock_memo__"

_short_repr = reprlib.Repr()
_short_repr.maxstring = 40
_short_repr.maxother = 40
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxdict = _short_repr.maxset = 6


# -- canonical argument encoding ---------------------------------------------------------------


class _Unencodable(Exception):
    """Internal: a value with no canonical encoding; ``path`` grows on the way out."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value
        self.path: list[str] = []


# One encoder for every call: json.dumps() with options builds a new one each time.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def _text(encoded: object) -> str:
    """The canonical JSON text of an encoded value."""
    return _json_of(encoded)


# The pieces of that text for plain values, as the C encoder behind _canonical writes them
# (ensure_ascii strings, int.__repr__, float.__repr__ of finite floats): the fast path of
# _Fn.args_text must give the very bytes of the general path (tests/test_memoize.py checks).
_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
_int_repr = int.__repr__
_float_repr = float.__repr__
_isfinite = math.isfinite

# The C encoder behind _canonical, made once: JSONEncoder.encode makes one per call. It skips
# the check for circular values (a cycle ends in RecursionError): _json_of falls back to
# _canonical on any error, for the error _canonical gives.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_json_chunks: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, json.JSONEncoder().default, _json_str, None, ":", ",", True, False, False
    )
)


def _json_of(value: object) -> str:
    """``_canonical(value)``, faster."""
    if _json_chunks is not None:
        try:
            return "".join(_json_chunks(value, 0))
        except Exception:
            pass
    return _canonical(value)


# A JSON scanner with json.loads' defaults (no hooks), called without json.loads' wrapping.
_decoder: Any = json.JSONDecoder()
_scan_json: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _has_surrogates(text: str) -> bool:
    """True when ``text`` holds surrogate code points (which UTF-8 cannot encode).

    JSON's ``\\uXXXX`` escapes write ``"\\ud83d\\ude00"`` (two lone surrogates) and
    ``"\U0001f600"`` alike, so such strings are encoded apart (``$str``); every other string
    keeps its plain encoding, and its key.
    """
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_str(text: str) -> object:
    return {"$str": text.encode("utf-8", "surrogatepass").hex()}


def _encode(value: Any) -> object:
    """``value`` as plain JSON data that tells apart everything ``==`` might not.

    Plain JSON objects are dicts with ``str`` keys; every other shape is a JSON object whose
    keys start with ``$``, which a plain object never has (such dicts are tagged too).
    """
    t = type(value)
    if t is str:
        return _surrogate_str(value) if _has_surrogates(value) else value
    if t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if t is list:
        return _encode_items(value)
    if t is tuple:
        return {"$tuple": _encode_items(value)}
    if t is dict:
        return _encode_dict(value)
    if t is set or t is frozenset:
        return {"$set": sorted(_encode_items(value), key=_text)}
    if t is bytes or t is bytearray:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    return _encode_other(value)


def _encode_items(values: Any) -> list[object]:
    out = []
    for i, item in enumerate(values):
        try:
            out.append(_encode(item))
        except _Unencodable as exc:
            exc.path.append(f"[{i}]")
            raise
    return out


def _encode_dict(value: dict[Any, Any]) -> object:
    plain = True
    for k in value:
        if type(k) is not str or k.startswith("$") or _has_surrogates(k):
            plain = False
            break
    if plain:
        out: dict[str, object] = {}
        for k, v in value.items():
            try:
                out[k] = _encode(v)
            except _Unencodable as exc:
                exc.path.append(f"[{k!r}]")
                raise
        return out
    pairs = []
    for k, v in value.items():
        try:
            pairs.append([_encode(k), _encode(v)])
        except _Unencodable as exc:
            exc.path.append(f"[{_short_repr.repr(k)}]")
            raise
    pairs.sort(key=lambda kv: _text(kv[0]))
    return {"$dict": pairs}


def _encode_other(value: object) -> object:
    if isinstance(value, enum.Enum):
        return {"$enum": f"{_qualified(type(value))}.{value.name}"}
    if isinstance(value, type):
        return {"$type": _qualified(value)}
    if dataclasses.is_dataclass(value):
        fields: dict[str, object] = {}
        for field in dataclasses.fields(value):
            try:
                fields[field.name] = _encode(getattr(value, field.name))
            except _Unencodable as exc:
                exc.path.append(f".{field.name}")
                raise
        return {"$dataclass": _qualified(type(value)), "fields": fields}
    names = getattr(type(value), "_fields", None)
    if isinstance(value, tuple) and names is not None:
        named = dict(zip(names, value))
        return {"$namedtuple": _qualified(type(value)), "fields": _encode_dict(named)}
    if isinstance(value, PurePath):
        return {"$path": _encode(value.as_posix())}
    # Subclasses of the plain types (OrderedDict, a str subclass) encode as their base.
    for base in (bool, int, float, str, bytes, list, tuple, dict, frozenset, set):
        if isinstance(value, base):
            convert: Any = base
            return _encode(convert(value))
    raise _Unencodable(value)


_ENCODABLE = (
    "None, bool, int, float, str, bytes, lists, tuples, dicts, sets, enums, dataclasses, "
    "named tuples, paths and classes"
)


def _encoding_error(exc: _Unencodable, what: str, where: str) -> KeyEncodingError:
    path = "".join(reversed(exc.path))
    at = f" (at {what}{path})" if path else ""
    return KeyEncodingError(
        f"{where}: cannot encode {what}, a {type(exc.value).__qualname__}{at}: a memoizer key "
        f"takes {_ENCODABLE}. Pass params_encoder= to memoize()/record()/replay() to turn the "
        "arguments into those (e.g. params_encoder=lambda obj, n: (obj.id, n))"
    )


# -- the per-function part ---------------------------------------------------------------------


class _Fn:
    """What a memoizer keeps about one decorated function."""

    __slots__ = (
        "_defaults",
        "_names",
        "_sorted",
        "fn",
        "front",
        "label",
        "mode",
        "params_encoder",
        "qual_json",
        "qualname",
        "shown",
        "signature",
        "use_front",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        mode: str,
        params_encoder: ParamsEncoder | None,
        use_front: bool = False,
        name: str | None = None,
    ) -> None:
        self.fn = fn
        self.mode = mode
        self.use_front = use_front and mode != _RECORD
        self.params_encoder = params_encoder
        self.qualname = name if name is not None else _identity(fn)
        self.qual_json = _canonical(self.qualname)
        # The name in messages: the function's own (its identity may carry a digest).
        self.shown = name if name is not None else _qualified(fn)
        self.label = f"{self.shown}()"
        self.front: dict[object, Any] = {}
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        # Signature.bind costs microseconds; most signatures are plain parameters, bound here
        # by hand (anything unusual, including a wrong call, goes through bind()).
        self._names: tuple[str, ...] | None = None
        self._defaults: dict[str, object] = {}
        # (position, '"name":') in the order the canonical encoding sorts the names.
        self._sorted: tuple[tuple[int, str], ...] = ()
        if self.signature is not None:
            params = list(self.signature.parameters.values())
            if all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
                self._names = tuple(p.name for p in params)
                self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
                self._sorted = tuple(
                    (self._names.index(name), _json_str(name) + ":") for name in sorted(self._names)
                )

    def _bind_plain(
        self, names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any] | None:
        if len(args) > len(names):
            return None
        named = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in named or k not in names:
                return None
            named[k] = v
        if len(named) < len(names):
            for name in names[len(args) :]:
                if name not in named:
                    if name not in self._defaults:
                        return None
                    named[name] = self._defaults[name]
        return named

    def args_text(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The canonical text of the encoded arguments when all are plain values, else None.

        The fast path of ``_text(encode_args(...))`` for the common case (a plain signature,
        no ``params_encoder``, arguments that are str, int, float, bool or None): the text is
        put together without building the encoding first, and is the same, byte for byte.
        """
        names = self._names
        if names is None or self.params_encoder is not None:
            return None
        if not kwargs and len(args) == len(names):
            values: Any = args
        else:
            named = self._bind_plain(names, args, kwargs)
            if named is None:
                return None
            values = [named[name] for name in names]
        parts = []
        for pos, prefix in self._sorted:
            v = values[pos]
            t = type(v)
            if t is str:
                if not v.isascii() and _has_surrogates(v):
                    return None
                parts.append(prefix + _json_str(v))
            elif t is int:
                parts.append(prefix + _int_repr(v))
            elif t is float and _isfinite(v):
                parts.append(prefix + _float_repr(v))
            elif t is bool:
                parts.append(prefix + ("true" if v else "false"))
            elif v is None:
                parts.append(prefix + "null")
            else:
                return None
        return "{" + ",".join(parts) + "}"

    def plain_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """``encode_args`` for a call that ``args_text`` took (plain values encode as they are)."""
        names = self._names
        if names is not None and not kwargs and len(args) == len(names):
            return dict(zip(names, args))
        return self.encode_args(self.label, args, kwargs)

    def encode_args(self, where: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """The canonical encoding of one call's arguments (defaults applied)."""
        if self.params_encoder is not None:
            params = self.params_encoder(*args, **kwargs)
            try:
                return _encode(params)
            except _Unencodable as exc:
                raise _encoding_error(exc, "the value params_encoder returned", where) from None
            except RecursionError:
                raise KeyEncodingError(
                    f"{where}: the value params_encoder returned is nested too deeply or "
                    "refers to itself"
                ) from None
        named: dict[str, Any] | None = None
        if self._names is not None:
            named = self._bind_plain(self._names, args, kwargs)
        if named is not None:
            pass
        elif self.signature is None:
            named = {"*args": list(args), "**kwargs": dict(kwargs)}
        else:
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            named = bound.arguments
            for param in self.signature.parameters.values():
                if param.kind is inspect.Parameter.VAR_POSITIONAL:
                    named[param.name] = list(named[param.name])
        out: dict[str, object] = {}
        for name, value in named.items():
            try:
                out[name] = _encode(value)
            except _Unencodable as exc:
                raise _encoding_error(exc, f"argument {name!r}", where) from None
            except RecursionError:
                raise KeyEncodingError(
                    f"{where}: argument {name!r} is nested too deeply or refers to itself"
                ) from None
        return out


def _fast_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """A front key made of the arguments themselves, or None when they are not all simple."""
    for a in args:
        if type(a) not in _FAST_TYPES:
            return None
    if not kwargs:
        return args
    for v in kwargs.values():
        if type(v) not in _FAST_TYPES:
            return None
    return (args, tuple(kwargs.items()))


def _identity(fn: Callable[..., Any]) -> str:
    """The name of ``fn`` in keys: ``module.qualname``, unique for a module-level function.

    A lambda or a function defined in another (``<lambda>``/``<locals>`` in its qualified
    name) shares that name with every other one defined there: a digest of its code and of
    the values it captured (read when it is decorated; an object without a canonical
    encoding counts by its type) is added, so two of them share entries only when they have
    the same code and capture equal values. ``name=`` replaces all of it.
    """
    spec = getattr(fn, _SPEC_ATTR, None)
    if isinstance(spec, _Fn):  # a memoized function: the one it memoizes
        return spec.qualname
    qualname = _qualified(fn)
    if "<" not in qualname:
        return qualname
    code = getattr(fn, "__code__", None)
    if code is None:
        return qualname
    captured: list[object] = []
    for var, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # empty: the function itself, not yet assigned (recursion)
            captured.append([var, {"$empty": True}])
            continue
        try:
            captured.append([var, _encode(value)])
        except (_Unencodable, RecursionError):
            # An object with no canonical encoding (a lock, a counter, a logger) has nothing
            # that is the same in the next process: it counts by its type only.
            captured.append([var, {"$captured": _qualified(type(value))}])
    fingerprint = _json_of([_code_form(code), captured])
    digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]
    return f"{qualname}#{digest}"


def _code_form(code: Any) -> object:
    """What a code object does, as canonical data (no file name or line numbers)."""
    consts: list[object] = []
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            consts.append(_code_form(const))
        else:
            try:
                consts.append(_encode(const))
            except _Unencodable:
                consts.append(repr(const))
    return {
        "code": code.co_code.hex(),
        "consts": consts,
        "names": list(code.co_names),
        "varnames": list(code.co_varnames),
        "freevars": list(code.co_freevars),
    }


def _call_repr(qualname: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [_short_repr.repr(a) for a in args]
    parts += [f"{k}={_short_repr.repr(v)}" for k, v in kwargs.items()]
    return f"{qualname}({', '.join(parts)})"


class _Flight:
    """One computation in progress that other threads wait for.

    ``running`` is held by the leading thread until the result (or error) is set: waiters
    acquire and release it (a plain lock costs a tenth of a ``threading.Event``).
    """

    __slots__ = ("error", "running", "value")

    def __init__(self) -> None:
        self.running = threading.Lock()
        self.running.acquire()
        self.value: Any = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        with self.running:
            pass


def _noop() -> None:
    pass


class _Held:
    """A held lock; ``release`` may be handed to whoever finishes the work."""

    __slots__ = ("release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self.release = release


# -- locks between processes: byte ranges of one file per FileBackend directory ----------------

_LOCK_FILE = ".memoize.lock"
_lock_fds: dict[str, int] = {}
_lock_fds_guard = threading.Lock()


def _range_lock_path(backend: Backend[Any]) -> str:
    """The file whose byte ranges lock keys of ``backend`` between processes, or "".

    On-disk backends name a path next to their store through ``sidecar_path(name)``; a
    backend without one (memory, a server) has no such file.
    """
    sidecar = getattr(backend, "sidecar_path", None)
    return cast(str, sidecar(_LOCK_FILE)) if callable(sidecar) else ""


def _open_lock_file(path: str, stale: int | None) -> int:
    """The descriptor of the lock file at ``path``, opened once per process (and again when
    the file it had was removed). A stale descriptor is left open, never closed: another
    thread may still release a byte of it, and a closed number could be reused by any file.
    """
    with _lock_fds_guard:
        fd = _lock_fds.get(path)
        if fd is None or fd == stale:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            try:
                # O_NOFOLLOW: a symlink planted at the lock's path is refused, never followed
                # (following it would create its target), as the stores refuse them.
                fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except OSError as exc:
                if exc.errno == errno.ELOOP or os.path.islink(path):
                    raise CacheSystemError(
                        f"the memoizer's key lock file {path!r} is a symlink; refusing to "
                        "follow it. Remove it (the lock file is made again as a plain file)"
                    ) from exc
                raise
            _lock_fds[path] = fd
        return fd


def _range_lock(path: str, timeout: float, key: str) -> _Held:
    """Lock one byte of ``<directory>/.memoize.lock``, at an offset taken from ``key``.

    POSIX record locks belong to the process: threads of one process do not exclude each
    other (the in-process single flight does that), any thread may release, and the file
    descriptor is never closed (closing it would drop every lock the process holds on it).
    Waits up to the backend's ``lock_timeout``, polling, then raises FileLockTimeoutError.
    """
    assert fcntl is not None
    fd = _lock_fds.get(path)
    if fd is None:
        fd = _open_lock_file(path, None)
    # Keys end in 32 hex digits of a digest: 40 bits of them spread keys over the file.
    offset = int(key[-10:], 16) if len(key) >= 10 else 0
    deadline = None
    delay = 0.0005
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            if os.fstat(fd).st_nlink:
                break
            # The file was removed (its directory deleted and made again, say): a lock on
            # it excludes nobody. Take the same byte of the file now at ``path``.
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
            fd = _open_lock_file(path, fd)
            continue
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
        if now >= deadline:
            raise FileLockTimeoutError(f"{path}@{offset}", timeout, "another process holds it")
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.02)

    def release() -> None:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    return _Held(release)


# -- writing behind ----------------------------------------------------------------------------


class _Writer:
    """One background thread per process that puts memoized entries into their backends.

    Until an entry is written, ``pending`` serves it to lookups in this process; the key's
    lock between processes is released only once the entry is on disk, so another process
    that waited for it finds it. Everything is written before the interpreter exits (and
    before a ``multiprocessing`` child exits), or on ``flush()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[
            tuple[Memoizer, Backend[Any], str, Any, Optional[Callable[[], None]]]
        ] = queue.SimpleQueue()
        self._pending: dict[tuple[Backend[Any], str], Any] = {}
        self._outstanding = 0  # submitted and not yet written
        self._thread: threading.Thread | None = None
        self._hooked = False

    def pending(self, backend: Backend[Any], key: str) -> Any:
        return self._pending.get((backend, key)) if self._pending else None

    def submit(
        self,
        memo: Memoizer,
        backend: Backend[Any],
        key: str,
        stored: Any,
        release: Callable[[], None] | None,
    ) -> None:
        with self._lock:
            self._pending[(backend, key)] = stored
            self._outstanding += 1
            if self._thread is None:
                self._start()
        self._queue.put((memo, backend, key, stored, release))

    def _start(self) -> None:
        # Caller holds the lock.
        if not self._hooked:
            self._hooked = True
            register = getattr(threading, "_register_atexit", None)
            try:
                # Runs in threading._shutdown(): at interpreter exit, and when a
                # multiprocessing child exits (which skips atexit).
                if register is None:
                    raise RuntimeError
                register(self.flush)
            except RuntimeError:
                atexit.register(self.flush)
        self._thread = threading.Thread(
            target=self._run, name="pytest-cachemock-memoize-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        get = self._queue.get
        while True:
            memo, backend, key, stored, release = get()
            try:
                backend.put(key, stored)
            except Exception as exc:
                memo._failed(exc, "write", backend)
            else:
                if memo._outage:
                    memo._recovered("write")
            finally:
                if release is not None:
                    release()
                with self._lock:
                    if self._pending.get((backend, key)) is stored:
                        del self._pending[(backend, key)]
                    self._outstanding -= 1
                    if not self._outstanding:
                        self._idle.notify_all()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every submitted entry is written; False when ``timeout`` ran out."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._outstanding, timeout)

    def _after_fork(self) -> None:
        # The child has no writer thread; what was queued is the parent's to write.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()
        self._pending.clear()
        self._outstanding = 0
        self._thread = None


_writer = _Writer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_writer._after_fork)


# -- the memoizer ------------------------------------------------------------------------------


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
        if backend is not None and not callable(getattr(backend, "get", None)):
            raise UserError(
                f"Memoizer needs a backend with get/put, got a {type(backend).__qualname__}; "
                "pass None (in memory), MemoryBackend(), LogBackend(path), SqliteBackend(path) "
                "or FileBackend(directory)"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise UserError(f"Memoizer version must be an int >= 0, got {version!r}")
        self.kind = kind
        self.name: str = kind or DEFAULT_KIND
        self.version = version
        self.deterministic = bool(deterministic)
        self.serde: Serde[Any, Any] = serde if serde is not None else JsonSerde()
        self._json_serde = type(self.serde) is JsonSerde
        self._owns_backend = backend is None
        self._backend: Backend[Any] = backend if backend is not None else MemoryBackend()
        # On a backend with a sidecar_path (FileBackend, LogBackend, SqliteBackend; POSIX): the
        # per-key lock between processes is a byte-range lock in one file next to the store.
        # A FileBackend's plain stores are written behind (see _store); the others' are cheap
        # enough to write in the call.
        self._lock_path = _range_lock_path(self._backend) if fcntl is not None else ""
        self._range_lock = bool(self._lock_path)
        self._write_behind = isinstance(self._backend, FileBackend) and self._range_lock
        # A bounded or expiring memory backend must stay the only store, or its limits
        # would not hold; every other backend gets a front.
        self._use_front = not (
            isinstance(self._backend, MemoryBackend)
            and (self._backend.max_entries is not None or self._backend.ttl is not None)
        )
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
        self._override: Backend[Any] | None = None
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
        return self._backend if factory is None else self._override_backend(factory)

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

    def _override_backend(self, factory: BackendFactory) -> Backend[Any]:
        with self._lock:
            if factory is not self._override_factory or self._override is None:
                self._override = factory()
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
        text = _json_of([scope_id, qualname, encoded_args])
        return f"{self.name}/{scope_id}/{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"

    def key_for(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """The backend key of ``fn(*args, **kwargs)`` (``fn`` decorated by this memoizer or not)."""
        spec = self._spec_of(fn)
        _, scope_id = self._current_scope()
        return self._key(scope_id, spec.qualname, spec.encode_args(spec.label, args, kwargs))

    def entry_for(
        self, fn: Callable[..., Any], result: object, /, *args: Any, **kwargs: Any
    ) -> tuple[str, Any]:
        """``(key, stored)``: the entry a call ``fn(*args, **kwargs)`` returning ``result`` stores.

        ``stored`` is the serde's encoding of ``{"fn", "args", "result"}``; hand such pairs to
        ``patch_caches.seed(kind, dict(pairs))`` or to ``backend.put(key, stored)``.
        """
        spec = self._spec_of(fn)
        _, scope_id = self._current_scope()
        encoded = spec.encode_args(spec.label, args, kwargs)
        key = self._key(scope_id, spec.qualname, encoded)
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
            self._make_async(spec) if inspect.iscoroutinefunction(fn) else self._make_sync(spec)
        )
        functools.update_wrapper(wrapper, fn)
        setattr(wrapper, _SPEC_ATTR, spec)
        return cast(Callable[P, R], wrapper)

    def _make_sync(self, spec: _Fn) -> Callable[..., Any]:
        front = spec.front
        hit = self._counters.hit
        slow = self._slow_sync
        # With a callable context every call needs the context, so the front is keyed on it.
        fast_front = spec.use_front and self._context_fn is None
        fast_types = _FAST_TYPES
        missing = _MISSING
        memo: Any = self  # see _factory()

        def call(*args: Any, **kwargs: Any) -> Any:
            if memo.backend_override_cls is None:
                # _fast_key, inlined: this is the warm-hit path.
                if kwargs:
                    fk = _fast_key(args, kwargs)
                else:
                    fk = args
                    for a in args:
                        if type(a) not in fast_types:
                            fk = None
                            break
                if fast_front and fk is not None:
                    value = front.get(fk, missing)
                    if value is not missing:
                        next(hit)
                        return value
                return slow(spec, args, kwargs, fk)
            return self._mocked_sync(spec, args, kwargs)

        return call

    def _make_async(self, spec: _Fn) -> Callable[..., Awaitable[Any]]:
        front = spec.front
        hit = self._counters.hit
        fast_front = spec.use_front and self._context_fn is None
        memo: Any = self  # see _factory()

        async def call(*args: Any, **kwargs: Any) -> Any:
            if memo.backend_override_cls is None:
                fk = _fast_key(args, kwargs)
                if fast_front and fk is not None:
                    value = front.get(fk, _MISSING)
                    if value is not _MISSING:
                        next(hit)
                        return value
                return await self._slow_async(spec, args, kwargs, fk)
            return await self._mocked_async(spec, args, kwargs)

        return call

    # -- the real path -------------------------------------------------------------------------

    def _prepare(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any], fk: object
    ) -> tuple[str, object, object]:
        """(key, encoded args, front key) for a call that missed the fast front.

        The encoded arguments are _MISSING when the key came from ``args_text``: only a call
        that stores needs them (``_Fn.plain_args``).
        """
        self._override = None  # the override is gone; let its backend go too
        if self._context_fn is None:
            context_text, scope_id = self._context_text, self._scope_id
        else:
            context_text, scope_id = self._current_scope()
        text = spec.args_text(args, kwargs)
        encoded: object = _MISSING
        if text is None:
            encoded = spec.encode_args(spec.label, args, kwargs)
            text = _text(encoded)
        if fk is None:
            fk = ("$", text)
        if self._context_fn is not None:
            fk = (context_text, fk)
        # _key() from the text: _canonical([a, b, c]) is "[" + a's text + "," + b's + "," +
        # c's + "]", and a scope id is hex digits, so its text is itself in quotes.
        full = f'["{scope_id}",{spec.qual_json},{text}]'
        digest = hashlib.sha256(full.encode("utf-8")).hexdigest()
        return f"{self.name}/{scope_id}/{digest[:32]}", encoded, fk

    @staticmethod
    def _front_get(spec: _Fn, fk: object) -> Any:
        return spec.front.get(fk, _MISSING) if spec.use_front else _MISSING

    @staticmethod
    def _front_put(spec: _Fn, fk: object, value: Any) -> None:
        if spec.use_front:
            spec.front[fk] = value

    def _slow_sync(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any], fk: object
    ) -> Any:
        key, encoded, fk = self._prepare(spec, args, kwargs, fk)
        if spec.mode == _RECORD:
            next(self._counters.miss)
            return self._compute_sync(spec, key, encoded, fk, args, kwargs, lock=False)
        ticket = next(self._seq)
        value = spec.front.get(fk, _MISSING) if spec.use_front else _MISSING
        if value is _MISSING:
            value = self._lookup(self._backend, spec, key)
            if value is _MISSING:
                return self._missed_sync(spec, key, encoded, fk, args, kwargs, ticket)
            if spec.use_front:
                spec.front[fk] = value
        next(self._counters.hit)
        return value

    def _missed_sync(
        self,
        spec: _Fn,
        key: str,
        encoded: object,
        fk: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ticket: int,
    ) -> Any:
        self._refuse_if_replaying(spec, args, kwargs)
        error: BaseException | None = None
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                raised = self._raised.get(key)
                if raised is not None and raised[0] > ticket:
                    # A computation of this key raised after this call began: this call
                    # overlapped it, so it shares its error rather than running again.
                    error = raised[1]
                else:
                    flight = self._flights[key] = _Flight()
        if error is not None:
            next(self._counters.miss)
            raise error
        assert flight is not None
        if not leader:
            flight.wait()
            if flight.error is not None:
                next(self._counters.miss)
                raise flight.error
            next(self._counters.hit)
            return flight.value
        try:
            flight.value = self._compute_sync(spec, key, encoded, fk, args, kwargs, lock=True)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if flight.error is not None:
                    if len(self._raised) >= 256:
                        # Oldest first: a caller that began that long ago has long since
                        # joined a flight or found its own.
                        del self._raised[next(iter(self._raised))]
                    self._raised[key] = (next(self._seq), flight.error)
                elif self._raised:
                    self._raised.pop(key, None)
            flight.running.release()
        return flight.value

    def _compute_sync(
        self,
        spec: _Fn,
        key: str,
        encoded: object,
        fk: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        lock: bool,
    ) -> Any:
        backend = self._backend
        held = self._process_lock(backend, spec, key) if lock else None
        try:
            if lock:
                value = self._stored_meanwhile(backend, spec, key, fk, held)
                if value is not _MISSING:
                    return value
            if spec.mode != _RECORD:
                next(self._counters.miss)
            result = spec.fn(*args, **kwargs)
            if encoded is _MISSING:
                encoded = spec.plain_args(args, kwargs)
            value = self._store(backend, spec, key, encoded, result, held)
            self._front_put(spec, fk, value)
            return value
        finally:
            if held is not None:
                held.release()

    def _stored_meanwhile(
        self, backend: Backend[Any], spec: _Fn, key: str, fk: object, held: _Held | None
    ) -> Any:
        """The result stored since this call's lookup missed (a hit, counted), or _MISSING.

        Another thread of this process may have stored it between that lookup and this
        flight (it fills the front before its flight ends), and another process while this
        one waited for the key's lock; the backend is read again only where that can be.
        """
        value = self._front_get(spec, fk)
        if value is _MISSING and (held is not None or not spec.use_front):
            value = self._lookup(backend, spec, key)
        if value is not _MISSING:
            self._front_put(spec, fk, value)
            next(self._counters.hit)
        return value

    async def _slow_async(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any], fk: object
    ) -> Any:
        key, encoded, fk = self._prepare(spec, args, kwargs, fk)
        if spec.mode == _RECORD:
            next(self._counters.miss)
            return await self._compute_async(spec, key, encoded, fk, args, kwargs, lock=False)
        while True:
            value = self._front_get(spec, fk)
            if value is _MISSING:
                value = self._lookup(self._backend, spec, key)
            if value is not _MISSING:
                self._front_put(spec, fk, value)
                next(self._counters.hit)
                return value
            self._refuse_if_replaying(spec, args, kwargs)
            loop = asyncio.get_running_loop()
            with self._lock:
                found = self._aflights.get(key)
                leader = found is None or found[0] is not loop
                if leader:
                    future: asyncio.Future[Any] = loop.create_future()
                    if found is None:
                        self._aflights[key] = (loop, future)
                else:
                    assert found is not None
                    future = found[1]
            if leader:
                return await self._lead_async(spec, key, encoded, fk, args, kwargs, future)
            # asyncio.wait neither raises the computation's error nor cancels it when
            # this awaiter is cancelled.
            await asyncio.wait((future,))
            if future.cancelled():
                continue  # the leading call was cancelled: try again, perhaps as the leader
            error = future.exception()
            if error is not None:
                next(self._counters.miss)
                raise error
            next(self._counters.hit)
            return future.result()

    async def _lead_async(
        self,
        spec: _Fn,
        key: str,
        encoded: object,
        fk: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> Any:
        try:
            value = await self._compute_async(spec, key, encoded, fk, args, kwargs, lock=True)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: having no waiter is not an error
            raise
        except BaseException:
            # Cancelled (or interrupted): waiters try again rather than share the cancellation.
            future.cancel()
            raise
        else:
            future.set_result(value)
            return value
        finally:
            with self._lock:
                if self._aflights.get(key, (None, None))[1] is future:
                    del self._aflights[key]

    async def _compute_async(
        self,
        spec: _Fn,
        key: str,
        encoded: object,
        fk: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        lock: bool,
    ) -> Any:
        backend = self._backend
        # The per-key file lock is taken in the event loop's thread (bounded by the
        # backend's lock_timeout); awaits of one key in this process share one computation.
        held = self._process_lock(backend, spec, key) if lock else None
        try:
            if lock:
                value = self._stored_meanwhile(backend, spec, key, fk, held)
                if value is not _MISSING:
                    return value
            if spec.mode != _RECORD:
                next(self._counters.miss)
            result = await spec.fn(*args, **kwargs)
            if encoded is _MISSING:
                encoded = spec.plain_args(args, kwargs)
            value = self._store(backend, spec, key, encoded, result, held)
            self._front_put(spec, fk, value)
            return value
        finally:
            if held is not None:
                held.release()

    def _refuse_if_replaying(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if spec.mode == _REPLAY or (self._strict and spec.mode == _MEMOIZE):
            next(self._counters.miss)
            self._replay_miss(spec, args, kwargs)

    def _replay_miss(self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        context_text, _ = self._current_scope()
        why = (
            "replay() never computes"
            if spec.mode == _REPLAY
            else "this memoizer is strict since load(..., strict=True)"
        )
        raise ReplayMissError(
            f"no stored result for {_call_repr(spec.shown, args, kwargs)} in memoizer "
            f"{self.name!r} (version {self.version}, context {context_text}); {why}. Record it "
            "first (memo.record, or memoize without strict) and dump it, or load a dump "
            "that holds it"
        )

    def _process_lock(self, backend: Backend[Any], spec: _Fn, key: str) -> _Held | None:
        """The per-key lock between processes, held; None when there is none or it failed.

        On a ``FileBackend`` (POSIX) it is a byte-range lock in one file of the directory
        (a few microseconds, where a ``filelock`` takes about 80); elsewhere the backend's
        own ``lock(key)`` when it has one.
        """
        try:
            if self._range_lock:
                timeout = cast(float, getattr(backend, "lock_timeout", 10.0))
                held = _range_lock(self._lock_path, timeout, key)
            else:
                make = getattr(backend, "lock", None)
                if not callable(make):
                    return None
                cm = cast(contextlib.AbstractContextManager[object], make(key))
                cm.__enter__()

                def release() -> None:
                    cm.__exit__(None, None, None)

                held = _Held(release)
            if self._outage:
                self._recovered("lock")
            return held
        except LockTimeoutError as exc:
            next(self._counters.exception)
            warnings.warn(
                f"Memoizer {self.name!r}: {exc}; computing {spec.label} without it (counted "
                f"as an exception in cache_stats[{self.name!r}])",
                MemoizerWarning,
                stacklevel=6,
            )
            return None
        except Exception as exc:
            self._failed(exc, "lock")
            return None

    # -- stored records ------------------------------------------------------------------------

    def _encode_record(self, spec: _Fn, key: str, encoded: object, result: object) -> Any:
        record = {"args": encoded, "fn": spec.qualname, "result": result}
        if self._json_serde:
            # What JsonSerde.encode writes (json.dumps with these very options), without
            # building an encoder per call; anything it refuses goes to the serde for its error.
            try:
                return _json_of(record).encode("utf-8")
            except Exception:
                pass
        try:
            return encode_for(self.serde, key, record)
        except Exception as exc:
            raise ValueEncodingError(
                f"{spec.label} returned a {type(result).__qualname__} that the memoizer's "
                f"serde ({self.serde!r}) cannot store: {exc}; return plain data or give the "
                "Memoizer another serde"
            ) from exc

    def _decode_record(self, key: str, stored: Any) -> dict[str, Any] | None:
        record: Any = _MISSING
        if self._json_serde and type(stored) is bytes:
            # json.loads without its wrapping, for what JsonSerde wrote: strict UTF-8, no BOM,
            # no whitespace around. Whatever else (or fails) goes to the serde, which gives
            # json.loads' answer or error.
            try:
                text = stored.decode("utf-8")
                found, end = _scan_json(text, 0)
                if end == len(text):
                    record = found
            except Exception:
                pass
        if record is _MISSING:
            record = decode_for(self.serde, key, stored)
        if type(record) is not dict or "result" not in record or "fn" not in record:
            return None
        return cast(dict[str, Any], record)

    def _lookup(self, backend: Backend[Any], spec: _Fn, key: str) -> Any:
        """The stored result of ``key``, or _MISSING; backend and decoding errors are misses."""
        try:
            stored = None
            if self._write_behind and _writer._pending:
                stored = _writer.pending(backend, key)
            if stored is None:
                stored = backend.get(key)
        except Exception as exc:
            self._failed(exc, "read", backend)
            return _MISSING
        if self._outage:
            self._recovered("read")
        if stored is None:
            return _MISSING
        try:
            record = self._decode_record(key, stored)
        except Exception as exc:
            next(self._counters.exception)
            warnings.warn(
                f"Memoizer {self.name!r}: cannot decode the stored entry {key!r} of "
                f"{spec.label} ({exc}); treated as a miss",
                MemoizerWarning,
                stacklevel=5,
            )
            return _MISSING
        if record is None or record["fn"] != spec.qualname:
            next(self._counters.exception)
            return _MISSING
        return record["result"]

    def _store(
        self,
        backend: Backend[Any],
        spec: _Fn,
        key: str,
        encoded: object,
        result: object,
        held: _Held | None = None,
    ) -> Any:
        """Store ``result``; return what callers get (the stored result that won).

        On a ``FileBackend`` a plain store is written behind, by a background thread that
        then releases the key's lock (``held``, handed over): a first call always creates a
        file, which costs 20 to 800 us on the ext4 of docs/performance.md (more than the rest
        of the call), and the front and the writer's pending table serve this process
        meanwhile. Writing in the caller was measured at about torch's first call; see there.
        """
        stored = self._encode_record(spec, key, encoded, result)
        record = self._decode_record(key, stored)
        if record is None:
            raise ValueDecodingError(
                f"the memoizer's serde ({self.serde!r}) does not give back the record it "
                f"encoded for {spec.label}"
            )
        value = record["result"]
        if self._write_behind and not self.deterministic:
            release = None
            if held is not None:
                release, held.release = held.release, _noop
            _writer.submit(self, backend, key, stored, release)
            next(self._counters.put)
            return value
        try:
            if self.deterministic:
                added = backend.add(key, stored)
            else:
                backend.put(key, stored)
                added = True
        except Exception as exc:
            self._failed(exc, "write", backend)
            if not self.deterministic:
                return value
            # First writer wins: a result that was not stored is not the stored one, and
            # another process may hold another. Return the stored result, or raise.
            winner = self._lookup(backend, spec, key)
            if winner is not _MISSING:
                return winner
            raise CacheSystemError(
                f"Memoizer {self.name!r} is deterministic, but it could not store the result "
                f"of {spec.label} under {key!r} ({type(exc).__name__}: {exc}), and no stored "
                "result is there: returning its own could differ from what other callers "
                "return. Fix the backend (a full disk, a lock held too long) and call again"
            ) from exc
        if self._outage:
            self._recovered("write")
        if added:
            next(self._counters.put)
            return value
        winner = self._lookup(backend, spec, key)
        if winner is _MISSING:
            # An entry is there (add refused ours) but cannot be read: every process that
            # returned its own result here would return a different one.
            raise CacheSystemError(
                f"Memoizer {self.name!r} is deterministic, but the entry stored under {key!r} "
                f"for {spec.label} cannot be read (damaged, or not a record of this function; "
                "see the warning), and this call's result could not be stored in its place: "
                "returning it could differ from what other callers return. Remove the entry "
                "(cache_clear(), or the backend's delete(key)) and call again"
            )
        return winner

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

    # -- the mocked path -----------------------------------------------------------------------

    def _mocked_prepare(
        self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Backend[Any], str, object]:
        factory = self._factory()
        assert factory is not None
        backend = self._override_backend(factory)
        _, scope_id = self._current_scope()
        encoded = spec.encode_args(spec.label, args, kwargs)
        return backend, self._key(scope_id, spec.qualname, encoded), encoded

    def _mocked_lookup(
        self, backend: Backend[Any], spec: _Fn, key: str, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        if spec.mode == _RECORD:
            next(self._counters.miss)
            return _MISSING
        value = self._lookup(backend, spec, key)
        if value is not _MISSING:
            next(self._counters.hit)
            return value
        if spec.mode == _REPLAY:
            next(self._counters.miss)
            self._replay_miss(spec, args, kw)
        next(self._counters.miss)
        return _MISSING

    def _mocked_store(
        self, backend: Backend[Any], spec: _Fn, key: str, encoded: object, result: object
    ) -> Any:
        stored = self._encode_record(spec, key, encoded, result)
        record = self._decode_record(key, stored)
        if spec.mode == _RECORD and self.deterministic:
            # First writer wins here too; get-then-put keeps the mock's counts plain.
            winner = self._lookup(backend, spec, key)
            if winner is not _MISSING:
                return winner
        try:
            backend.put(key, stored)
        except Exception as exc:
            self._failed(exc, "write", backend)
        else:
            if self._outage:
                self._recovered("write")
            next(self._counters.put)
        return None if record is None else record["result"]

    def _mocked_sync(self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend, key, encoded = self._mocked_prepare(spec, args, kwargs)
        value = self._mocked_lookup(backend, spec, key, args, kwargs)
        if value is not _MISSING:
            return value
        return self._mocked_store(backend, spec, key, encoded, spec.fn(*args, **kwargs))

    async def _mocked_async(self, spec: _Fn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend, key, encoded = self._mocked_prepare(spec, args, kwargs)
        value = self._mocked_lookup(backend, spec, key, args, kwargs)
        if value is not _MISSING:
            return value
        result = await spec.fn(*args, **kwargs)
        return self._mocked_store(backend, spec, key, encoded, result)

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
        entries (no ``items()``/``delete()``) keeps them; only the fronts are cleared.
        """
        _writer.flush()
        with self._lock:
            fns = list(self._fns)
        for spec in fns:
            spec.front.clear()
        if self._owns_backend and isinstance(self._backend, MemoryBackend):
            self._backend.clear()
        else:
            self._delete_own(self._backend)
        if self._override is not None:
            self._delete_own(self._override)

    def _own_items(self, backend: Backend[Any], prefix: str) -> Iterator[tuple[str, Any]]:
        items = getattr(backend, "items", None)
        if not callable(items):
            return iter(())
        return ((k, v) for k, v in items() if isinstance(k, str) and k.startswith(prefix))

    def _delete_own(self, backend: Backend[Any]) -> None:
        delete = getattr(backend, "delete", None)
        if not callable(delete):
            return
        for key, _ in list(self._own_items(backend, self.name + "/")):
            delete(key)

    # -- dumps ---------------------------------------------------------------------------------

    def dump(self, path: str | os.PathLike[str]) -> int:
        """Write this memoizer's entries (this version and context) to the JSON file ``path``.

        What the file already holds is kept (other memoizers, versions and contexts) and
        merged; the file is replaced atomically under a file lock. Returns the number of
        entries written for this memoizer.
        """
        _writer.flush()
        items = getattr(self._backend, "items", None)
        if not callable(items):
            raise UserError(
                f"Memoizer {self.name!r} cannot dump: its backend {self._backend!r} cannot "
                "list its entries (it has no items())"
            )
        context_text, scope_id = self._current_scope()
        prefix = f"{self.name}/{scope_id}/"
        ours: dict[str, object] = {}
        target = os.path.abspath(os.fspath(path))
        for key, stored in self._own_items(self._backend, prefix):
            try:
                form = _dump_form(stored)
            except RecursionError:
                raise ValueEncodingError(
                    f"Memoizer {self.name!r} cannot dump to {target!r}: the entry {key!r} is "
                    "nested too deeply (or refers to itself) to be written as JSON; the file "
                    "is left as it was. Return flatter results, or cache_clear() that one"
                ) from None
            if form is not None:
                ours[key] = form
        with self._dump_lock(target):
            existing = _read_dump(target, missing_ok=True)
            scopes = existing["scopes"] if existing is not None else {}
            block = scopes.get(f"{self.name}/{scope_id}")
            entries: dict[str, object] = dict(block["entries"]) if block else {}
            if self.deterministic:
                for key, form in ours.items():
                    entries.setdefault(key, form)
            else:
                entries.update(ours)
            scopes[f"{self.name}/{scope_id}"] = {
                "context": json.loads(context_text),
                "entries": entries,
                "kind": self.name,
                "version": self.version,
            }
            _write_json_atomic(
                target,
                {"format": DUMP_FORMAT, "format_version": DUMP_FORMAT_VERSION, "scopes": scopes},
            )
        return len(entries)

    def load(self, path: str | os.PathLike[str], *, strict: bool = False) -> int:
        """Put the entries of a dump (those of this version and context) into the backend.

        With ``strict=True`` every later miss of ``memoize`` raises :class:`ReplayMissError`
        (``record`` still computes). A missing file loads nothing, or raises
        ``FileNotFoundError`` when strict. Returns the number of entries loaded.
        """
        target = os.path.abspath(os.fspath(path))
        if isinstance(self.serde, PickleSerde) and not isinstance(self.serde, SignedPickleSerde):
            # Every loaded entry is unpickled at its first hit, and unpickling runs whatever
            # code the file's writer put in it: a dump is a file others write (it is committed).
            raise UserError(
                f"Memoizer {self.name!r} will not load {target!r}: its serde is PickleSerde, "
                "and unpickling a dump's entries runs any code whoever wrote the file put in "
                "them. Use JsonSerde (the default) or SignedPickleSerde(secret), whose "
                "signature is checked with the secret before anything is unpickled"
            )
        dump = _read_dump(target, missing_ok=not strict)
        if dump is None:
            return 0
        context_text, scope_id = self._current_scope()
        block = dump["scopes"].get(f"{self.name}/{scope_id}")
        if block is None:
            held = _describe_scopes(dump["scopes"])
            message = (
                f"dump {target!r} holds no entries for memoizer {self.name!r} at version "
                f"{self.version}, context {context_text}; it holds {held}. Record them with "
                "this version and context, or check what changed"
            )
            if strict:
                raise UserError(message)
            warnings.warn(message, MemoizerWarning, stacklevel=2)
            return 0
        backend = self._backend
        loaded = bad = 0
        for key, form in block["entries"].items():
            stored = _stored_from_form(form)
            record = None
            if stored is not None:
                try:
                    record = self._decode_record(key, stored)
                except Exception:
                    record = None
            if (
                record is None
                or not isinstance(record["fn"], str)
                or self._key(scope_id, record["fn"], record.get("args")) != key
            ):
                bad += 1
                continue
            try:
                if self.deterministic:
                    backend.add(key, stored)
                else:
                    backend.put(key, stored)
            except Exception as exc:
                self._failed(exc, "write", backend)
                bad += 1
                continue
            loaded += 1
        if bad:
            for _ in range(bad):
                next(self._counters.exception)
            warnings.warn(
                f"Memoizer {self.name!r}: skipped {bad} entr{'y' if bad == 1 else 'ies'} of "
                f"{target!r} that cannot be decoded or do not match their keys",
                MemoizerWarning,
                stacklevel=2,
            )
        self._strict = bool(strict)
        return loaded

    @contextlib.contextmanager
    def _dump_lock(self, target: str) -> Iterator[None]:
        # The lock is the dump's directory itself, locked through a descriptor of it: nothing
        # is created (so nothing is left next to a dump kept in a repository), and no other
        # user can plant it, as anyone could a predictable name in the temporary directory.
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        timeout = cast(float, getattr(self._backend, "lock_timeout", 10.0))
        if fcntl is None:  # pragma: no cover - Windows: a lock file next to the dump
            with file_lock(target + ".lock", timeout):
                yield
            return
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            flock(fd, fcntl.LOCK_EX, timeout, directory, "another dump holds it")
            yield
        finally:
            os.close(fd)  # drops the flock

    def __repr__(self) -> str:
        return (
            f"<Memoizer kind={self.name!r} version={self.version} backend={self._backend!r} "
            f"serde={self.serde!r} deterministic={self.deterministic}>"
        )


# -- dump file helpers -------------------------------------------------------------------------


def _json_bytes(value: object) -> bytes:
    """JSON as JsonSerde writes it, so a parsed record turns back into the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _is_record(value: object) -> bool:
    return isinstance(value, dict) and {"fn", "args", "result"} <= value.keys()


def _dump_form(stored: Any) -> Any:
    """How a stored entry is written in a dump: the record itself when it is JSON."""
    if isinstance(stored, (bytes, bytearray)):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            parsed = json.loads(stored)
            if _is_record(parsed) and _json_bytes(parsed) == bytes(stored):
                return parsed
        return {"$base64": base64.b64encode(bytes(stored)).decode("ascii")}
    try:
        _text(stored)
    except (TypeError, ValueError):
        return None
    return {"$object": stored}


def _stored_from_form(form: object) -> Any:
    if _is_record(form):
        try:
            return _json_bytes(form)
        except (TypeError, ValueError):
            return None
    if isinstance(form, dict) and len(form) == 1:
        if isinstance(form.get("$base64"), str):
            with contextlib.suppress(ValueError):
                return base64.b64decode(form["$base64"], validate=True)
            return None
        if "$object" in form:
            return form["$object"]
    return None


def _read_dump(path: str, *, missing_ok: bool) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueDecodingError(
            f"{path!r} is not a memoizer dump: it is not valid JSON ({exc}); remove it or "
            "pass another path"
        ) from exc
    except RecursionError:
        raise ValueDecodingError(
            f"{path!r} is not a memoizer dump: it is nested too deeply to read (no dump "
            "is); it is left as it was. Remove it or pass another path"
        ) from None
    if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
        raise ValueDecodingError(
            f"{path!r} is not a pytest-cachemock memoizer dump (no "
            f'"format": "{DUMP_FORMAT}"); it was written by something else. Remove it or '
            "pass another path"
        )
    if data.get("format_version") != DUMP_FORMAT_VERSION:
        raise ValueDecodingError(
            f"{path!r} is a memoizer dump of format version {data.get('format_version')!r}; "
            f"this version reads {DUMP_FORMAT_VERSION}. Record it again"
        )
    scopes = data.get("scopes")
    if not isinstance(scopes, dict) or not all(
        isinstance(b, dict) and isinstance(b.get("entries"), dict) for b in scopes.values()
    ):
        raise ValueDecodingError(
            f"{path!r} is a damaged memoizer dump: its scopes are not as written; record it again"
        )
    return data


def _describe_scopes(scopes: dict[str, Any]) -> str:
    if not scopes:
        return "nothing"
    parts = []
    for block in scopes.values():
        context = _text(block.get("context"))
        n = len(block["entries"])
        parts.append(
            f"{block.get('kind')!r} version {block.get('version')} context {context} "
            f"({n} entr{'y' if n == 1 else 'ies'})"
        )
    return "; ".join(parts)


_tmp_seq = itertools.count()


def _write_json_atomic(path: str, data: object) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{next(_tmp_seq)}.tmp")
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
