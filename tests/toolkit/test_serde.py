from __future__ import annotations

import collections
import enum
import json
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


class _Level(enum.IntEnum):
    LOW = 1


class _Text(str):
    pass


# Values of every shape JSON takes, plain and nested, and the subclasses json.dumps accepts.
JSON_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    -(2**64),
    0.0,
    -0.0,
    1.5,
    1e300,
    5e-324,
    0.1 + 0.2,
    "",
    "plain",
    "é",
    "ключ",
    "\U0001f600",
    "\ud83d",
    'quote" back\\slash\n\t\x00\x7f',
    [],
    {},
    [1, [2, [3, {}]]],
    (1, "two"),
    {"b": 1, "a": [None, {"z": 0, "y": "é"}]},
    {2: "int key", 1: "sorted as text"},
    {True: 1},
    {1.5: "float key"},
    {None: 0},
    collections.OrderedDict([("z", 1), ("a", 2)]),
    _Level.LOW,
    _Text("sub"),
    {"k": _Level.LOW},
    [list(range(50)), {str(i): i for i in range(50)}],
]


def test_json_encode_is_json_dumps_byte_for_byte() -> None:
    # JsonSerde.encode takes a fast path (one C encoder made once); its bytes must be what
    # json.dumps with the canonical options writes, which is what it wrote before.
    serde = JsonSerde()
    for value in JSON_VALUES:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        assert serde.encode(value) == expected.encode("utf-8"), value
        assert serde.decode(serde.encode(value)) == json.loads(expected), value


def test_json_encode_errors_are_those_of_json_dumps() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    for value in (float("inf"), [float("nan")], {1j: 1}, {"a": {1, 2}}, cycle, {1: 0, "a": 0}):
        with pytest.raises(ValueEncodingError, match="JsonSerde cannot encode"):
            JsonSerde().encode(value)


def test_json_decode_fast_path_gives_json_loads_answer() -> None:
    serde = JsonSerde()
    for stored in (
        b'{"a":[1,2.5,null,true],"b":"\\u00e9"}',
        b"NaN",
        b"-Infinity",
        b'"x"',
        b" [1] ",  # whitespace around: json.loads' path
        b'\xef\xbb\xbf{"a":1}',  # a BOM: json.loads' path
        '{"a":1}'.encode("utf-16"),
        bytearray(b'{"a":1}'),
        '{"a":1}',
    ):
        assert repr(serde.decode(stored)) == repr(json.loads(stored)), stored
    for bad in (b"", b'{"a":1} trailing', b"[1,", b"\xff"):
        with pytest.raises(ValueDecodingError):
            serde.decode(bad)


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
