from __future__ import annotations

import pickle

import pytest

from pytest_cachemock import (
    JsonSerde,
    PassthroughSerde,
    PickleSerde,
    Serde,
    SignedPickleSerde,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
    ValuePicklingError,
    ValueUnPicklingError,
)


def test_json_round_trip_is_canonical_bytes() -> None:
    serde = JsonSerde()
    stored = serde.encode({"b": [1, 2.5, None], "a": "é"})
    assert isinstance(stored, bytes)
    assert stored == b'{"a":"\\u00e9","b":[1,2.5,null]}'
    assert serde.decode(stored) == {"a": "é", "b": [1, 2.5, None]}


def test_json_tuple_comes_back_as_list() -> None:
    serde = JsonSerde()
    assert serde.decode(serde.encode((1, 2))) == [1, 2]


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), b"raw"])
def test_json_encode_error_names_the_type(value: object) -> None:
    with pytest.raises(ValueEncodingError, match=type(value).__qualname__) as info:
        JsonSerde().encode(value)
    assert isinstance(info.value, UserError)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("stored", [b"{not json", b"\xff\xfe", 12])
def test_json_decode_error(stored: object) -> None:
    with pytest.raises(ValueDecodingError):
        JsonSerde().decode(stored)


def test_passthrough_keeps_identity() -> None:
    value = object()
    serde: PassthroughSerde[object] = PassthroughSerde()
    assert serde.decode(serde.encode(value)) is value


def test_serdes_satisfy_protocol() -> None:
    for serde in (JsonSerde(), PassthroughSerde(), PickleSerde(), SignedPickleSerde(b"k")):
        assert isinstance(serde, Serde)


def test_pickle_round_trip_and_errors() -> None:
    serde = PickleSerde()
    assert serde.decode(serde.encode({"a": (1, {2})})) == {"a": (1, {2})}
    with pytest.raises(ValuePicklingError, match="function"):
        serde.encode(lambda: 1)
    with pytest.raises(ValueUnPicklingError):
        serde.decode(b"not a pickle")
    with pytest.raises(ValueUnPicklingError, match="str"):
        serde.decode("text")


def test_signed_pickle_round_trip() -> None:
    serde = SignedPickleSerde("secret")
    assert serde.decode(serde.encode([1, "two"])) == [1, "two"]


def test_signed_pickle_never_unpickles_tampered_or_foreign_values() -> None:
    serde = SignedPickleSerde(b"secret")
    stored = serde.encode("fine")
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    with pytest.raises(ValueUnPicklingError, match="wrong signature"):
        serde.decode(tampered)
    # A pickle that would run code, signed with another key, is refused before unpickling.
    evil = SignedPickleSerde(b"other").TAG_SIZE * b"\0" + pickle.dumps(print)
    with pytest.raises(ValueUnPicklingError, match="wrong signature"):
        serde.decode(evil)
    with pytest.raises(ValueUnPicklingError, match="no signature"):
        serde.decode(b"short")
    with pytest.raises(ValueUnPicklingError, match="wrong signature"):
        serde.decode(SignedPickleSerde(b"other").encode("fine"))


@pytest.mark.parametrize("key", [b"", "", None, 3])
def test_signed_pickle_needs_a_key(key: object) -> None:
    with pytest.raises(ValueError, match="secret key"):
        SignedPickleSerde(key)  # type: ignore[arg-type]
