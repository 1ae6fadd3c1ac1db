"""Serdes: how a cache turns values into what its backend stores, and back.

``JsonSerde`` is the default and the one to use for anything that leaves the process.
Pickle is opt-in; ``SignedPickleSerde`` checks an HMAC-SHA256 tag before it unpickles, so a
value written by someone without the key is refused, never executed.

A serde may also bind a stored value to the key it is stored under (``encode_keyed`` and
``decode_keyed``, see :class:`KeyedSerde`); the cache controllers call :func:`encode_for` and
:func:`decode_for`, which use those methods where a serde has them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, Callable, Generic, TypeVar, cast

from typing_extensions import Protocol, runtime_checkable

from .errors import (
    ValueDecodingError,
    ValueEncodingError,
    ValuePicklingError,
    ValueUnPicklingError,
)

__all__ = [
    "JsonSerde",
    "KeyedSerde",
    "PassthroughSerde",
    "PickleSerde",
    "Serde",
    "SignedPickleSerde",
    "decode_for",
    "encode_for",
]

T = TypeVar("T")
S = TypeVar("S")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Serde(Protocol[T, S]):
    """Turns a value of type ``T`` into its stored form ``S`` and back."""

    def encode(self, value: T) -> S: ...

    def decode(self, stored: S) -> T: ...


@runtime_checkable
class KeyedSerde(Protocol[T, S]):
    """A serde whose stored form is bound to the key it is stored under: what was stored for
    one key is refused under any other (a copied entry is not a valid entry)."""

    def encode_keyed(self, key: str, value: T) -> S: ...

    def decode_keyed(self, key: str, stored: S) -> T: ...


def encode_for(serde: Serde[T, S], key: str, value: T) -> S:
    """``value`` encoded by ``serde`` for storing under ``key`` (bound to it where the serde
    can bind, see :class:`KeyedSerde`)."""
    keyed = getattr(serde, "encode_keyed", None)
    return serde.encode(value) if keyed is None else cast(S, keyed(key, value))


def decode_for(serde: Serde[T, S], key: str, stored: S) -> T:
    """``stored``, read under ``key``, decoded by ``serde``; a keyed serde refuses an entry
    that was stored under another key."""
    keyed = getattr(serde, "decode_keyed", None)
    return serde.decode(stored) if keyed is None else cast(T, keyed(key, stored))


def _type_name(value: object) -> str:
    return type(value).__qualname__


# -- canonical JSON, fast ------------------------------------------------------------------------

# What JsonSerde writes: json.dumps(value, sort_keys=True, separators=(",", ":"),
# allow_nan=False). json.dumps with options builds a JSONEncoder, and JSONEncoder.encode a C
# encoder, on every call; the C encoder is made once here instead. It skips the check for
# circular values (a cycle ends in RecursionError), so any error falls back to _canonical,
# for the error json.dumps gives. tests/toolkit/test_serde.py checks the bytes are json.dumps' own.
_canonical: Callable[[Any], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=False
).encode
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_json_chunks: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )
)


def _json_text(value: object) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, no NaN): json.dumps'."""
    if _json_chunks is not None:
        try:
            return "".join(_json_chunks(value, 0))
        except Exception:
            pass
    return _canonical(value)


# A JSON scanner with json.loads' defaults (no hooks), called without json.loads' wrapping.
_decoder: Any = json.JSONDecoder()
_scan_json: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once


class JsonSerde:
    """JSON text as UTF-8 bytes. Keys are sorted, so equal values store equal bytes.

    JSON has no tuples and only string keys: a tuple comes back as a list. NaN and the
    infinities are refused, since other JSON readers reject them.
    """

    def encode(self, value: Any) -> bytes:
        if _json_chunks is not None:
            try:
                return "".join(_json_chunks(value, 0)).encode("utf-8")
            except Exception:
                pass  # json.dumps gives the error (or the answer, for a cycle: its error)
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueEncodingError(
                f"JsonSerde cannot encode a value of type {_type_name(value)}: {exc}; store "
                "plain dicts, lists, strings, numbers, booleans and None, or give the cache "
                "another serde (PickleSerde, SignedPickleSerde)"
            ) from exc
        return text.encode("utf-8")

    def decode(self, stored: Any) -> Any:
        if type(stored) is bytes:
            # json.loads without its wrapping, for what encode writes: strict UTF-8, no BOM, no
            # whitespace around. Anything else (or failing) goes to json.loads, for its answer
            # or its error.
            try:
                text = stored.decode("utf-8")
                found, end = _scan_json(text, 0)
                if end == len(text):
                    return found
            except Exception:
                pass
        if not isinstance(stored, (bytes, bytearray, str)):
            raise ValueDecodingError(f"JsonSerde expects stored bytes, got a {_type_name(stored)}")
        try:
            return json.loads(stored)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueDecodingError(f"stored value is not valid JSON: {exc}") from exc

    def __repr__(self) -> str:
        return "JsonSerde()"


class PassthroughSerde(Generic[T]):
    """Stores the value itself; for in-process backends that hold objects."""

    def encode(self, value: T) -> T:
        return value

    def decode(self, stored: T) -> T:
        return stored

    def __repr__(self) -> str:
        return "PassthroughSerde()"


class PickleSerde:
    """Pickle, opt-in. Unpickling runs code: use it only for stores no one else can write."""

    protocol = pickle.HIGHEST_PROTOCOL

    def encode(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=self.protocol)
        except Exception as exc:
            raise ValuePicklingError(
                f"cannot pickle a value of type {_type_name(value)}: {exc}"
            ) from exc

    def decode(self, stored: Any) -> Any:
        if not isinstance(stored, (bytes, bytearray)):
            raise ValueUnPicklingError(
                f"PickleSerde expects stored bytes, got a {_type_name(stored)}"
            )
        try:
            return pickle.loads(stored)
        except Exception as exc:
            raise ValueUnPicklingError(f"cannot unpickle stored value: {exc}") from exc

    def __repr__(self) -> str:
        return "PickleSerde()"


class SignedPickleSerde(PickleSerde):
    """Pickle with an HMAC-SHA256 tag in front; the tag is checked before anything is unpickled.

    The tag covers the full key the value is stored under (when stored through a cache, which
    calls :meth:`encode_keyed`), so an entry copied to another key, namespace or version is
    refused like a forged one. A missing or wrong tag raises :class:`ValueUnPicklingError`,
    which a ``RemoteCache`` counts as an exception and treats as a miss. :meth:`encode` and
    :meth:`decode` sign and check for no key (the empty one).
    """

    TAG_SIZE = hashlib.sha256().digest_size

    def __init__(self, key: bytes | str) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, (bytes, bytearray)) or not key:
            raise ValueError(
                "SignedPickleSerde needs a non-empty secret key (bytes or str), "
                "e.g. SignedPickleSerde(os.environ['CACHE_SECRET'])"
            )
        self._key = bytes(key)

    def _tag(self, key: str, payload: bytes) -> bytes:
        # The key's length goes first, so no (key, payload) pair reads as another.
        kb = key.encode("utf-8", "surrogatepass")
        mac = hmac.new(self._key, _SIGNED_CONTEXT, hashlib.sha256)
        mac.update(len(kb).to_bytes(8, "big"))
        mac.update(kb)
        mac.update(payload)
        return mac.digest()

    def encode_keyed(self, key: str, value: Any) -> bytes:
        """``value`` pickled and signed for storing under ``key``."""
        payload = super().encode(value)
        return self._tag(key, payload) + payload

    def decode_keyed(self, key: str, stored: Any) -> Any:
        """The value of ``stored``, after checking it was signed with our secret for ``key``."""
        if not isinstance(stored, (bytes, bytearray)) or len(stored) < self.TAG_SIZE:
            raise ValueUnPicklingError("stored value has no signature; refusing to unpickle it")
        tag, payload = bytes(stored[: self.TAG_SIZE]), bytes(stored[self.TAG_SIZE :])
        if not hmac.compare_digest(tag, self._tag(key, payload)):
            raise ValueUnPicklingError(
                f"stored value has a wrong signature for key {key!r} (written with another "
                "secret, stored under another key, or tampered with); refusing to unpickle it"
            )
        return super().decode(payload)

    def encode(self, value: Any) -> bytes:
        return self.encode_keyed("", value)

    def decode(self, stored: Any) -> Any:
        return self.decode_keyed("", stored)

    def __repr__(self) -> str:
        return "SignedPickleSerde(<key>)"


_SIGNED_CONTEXT = b"pytest-cachemock signed pickle v2\0"
