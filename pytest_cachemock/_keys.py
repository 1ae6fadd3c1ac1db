"""Memoizer keys: the canonical encoding of a call's arguments, and the key built from it.

An argument encodes as plain JSON data that tells apart everything ``==`` might not (``1``,
``1.0`` and ``True``; a tuple and a list; ``0.0`` and ``-0.0``), never as a pickle, so a key is
the same in every process and run. A key is ``{kind}/{scope id}/{digest}``, the digest of the
canonical JSON text of ``[scope id, function name, encoded arguments]``: made in one place,
:func:`_entry_key`, from the arguments' text (:meth:`_Fn.key_text`).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import inspect
import json
import math
import reprlib
from pathlib import PurePath
from typing import Any, Callable

from .errors import KeyEncodingError
from .serde import _canonical, _json_text

ParamsEncoder = Callable[..., object]

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


_text: Callable[[object], str] = _json_text
"""The canonical JSON text of an encoded value (JsonSerde's, see serde._json_text)."""

# The pieces of that text for plain values, as the C encoder behind _canonical writes them
# (ensure_ascii strings, int.__repr__, float.__repr__ of finite floats): the fast path of
# _Fn.args_text must give the very bytes of the general path (tests/memoize/test_memoize.py checks).
_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
_int_repr = int.__repr__
_float_repr = float.__repr__
_isfinite = math.isfinite


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

    def key_text(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, object]:
        """(canonical text of the encoded arguments, the encoding or _MISSING).

        The encoding is _MISSING when the text came from ``args_text``: only a call that
        stores needs it (:meth:`plain_args` makes it then).
        """
        text = self.args_text(args, kwargs)
        if text is not None:
            return text, _MISSING
        encoded = self.encode_args(self.label, args, kwargs)
        return _text(encoded), encoded

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
    fingerprint = _json_text([_code_form(code), captured])
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


def _entry_key(name: str, scope_id: str, qual_json: str, args_text: str) -> str:
    """The backend key of a call: the one place keys are made.

    ``qual_json`` and ``args_text`` are canonical JSON texts; the digest is of the canonical
    text of ``[scope_id, qualname, encoded args]``, put together from them (a scope id is hex
    digits, so its text is itself in quotes).
    """
    full = f'["{scope_id}",{qual_json},{args_text}]'
    return f"{name}/{scope_id}/{hashlib.sha256(full.encode('utf-8')).hexdigest()[:32]}"
