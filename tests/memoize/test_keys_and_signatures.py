"""Attacks on what keeps entries apart: namespaced keys, signatures bound to keys, and the
checks every backend makes of what it is handed directly."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from _formats import snap

from pytest_cachemock import (
    Backend,
    FileBackend,
    MemoryBackend,
    RemoteCache,
    SignedPickleSerde,
    UserError,
    ValueUnPicklingError,
)
from pytest_cachemock.backends.log import LogBackend
from pytest_cachemock.backends.sqlite import SqliteBackend

# -- namespaces and keys never collide -------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a", "b::c"), ("a::b", "c")),
        (("a", ":b"), ("a:", "b")),
        (("a%3A", "b"), ("a:", "b")),
        (("x", "k"), ("x::k:v1", "")),
    ],
)
def test_caches_sharing_a_backend_never_read_each_others_entries(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    shared = MemoryBackend()
    one = RemoteCache[str](shared, namespace=first[0])
    two = RemoteCache[str](shared, namespace=second[0])
    one.put(first[1], "one's")
    assert two.get(second[1]) is None
    two.put(second[1], "two's")
    assert one.get(first[1]) == "one's"
    assert two.get(second[1]) == "two's"
    assert one.key_for(first[1]) != two.key_for(second[1])


def test_full_keys_are_distinct_for_every_namespace_key_and_version() -> None:
    # Every namespace and key of up to three characters from the separators' alphabet.
    alphabet = ":%3Av1"
    words = ["".join(p) for n in range(0, 4) for p in itertools.product(alphabet, repeat=n)]
    seen: dict[str, tuple[str, str, int]] = {}
    for namespace in (w for w in words if w):
        for version in (0, 1, 13):
            cache = RemoteCache[str](namespace=namespace, version=version)
            for key in words:
                full = cache.key_for(key)
                assert seen.setdefault(full, (namespace, key, version)) == (
                    namespace,
                    key,
                    version,
                )


def test_plain_namespaces_keep_their_keys() -> None:
    assert RemoteCache[str](namespace="sessions").key_for("alice") == "sessions::alice:v1"


# -- a signature binds a value to its full key -----------------------------------------------

SECRET = "s3cret"


def _signed(backend: Backend[Any], namespace: str, version: int = 1) -> RemoteCache[Any]:
    return RemoteCache[Any](
        backend, SignedPickleSerde(SECRET), namespace=namespace, version=version
    )


@pytest.mark.parametrize(
    ("namespace", "key", "version"),
    [("users", "bob", 1), ("users", "alice", 2), ("admins", "alice", 1)],
    ids=["another-key", "another-version", "another-namespace"],
)
def test_a_signed_entry_copied_elsewhere_is_refused(
    tmp_path: Path, namespace: str, key: str, version: int, fresh_stats: None
) -> None:
    backend = FileBackend(tmp_path / "signed")
    alice = _signed(backend, "users")
    alice.put("alice", {"admin": True})
    target = _signed(backend, namespace, version)
    # Someone who can write the store but has no secret copies alice's bytes over.
    backend.put(target.key_for(key), backend.get(alice.key_for("alice")))
    assert target.get(key) is None
    assert snap("RemoteCache")["exception"] == 1
    assert alice.get("alice") == {"admin": True}


def test_a_signed_entry_reads_back_under_its_own_key(tmp_path: Path) -> None:
    cache = _signed(FileBackend(tmp_path / "signed"), "users")
    cache.put("alice", {"admin": True, "groups": {"a", "b"}})
    assert cache.get("alice") == {"admin": True, "groups": {"a", "b"}}


def test_the_signature_error_names_the_key() -> None:
    serde = SignedPickleSerde(SECRET)
    stored = serde.encode_keyed("users::alice:v1", {"admin": True})
    assert serde.decode_keyed("users::alice:v1", stored) == {"admin": True}
    with pytest.raises(ValueUnPicklingError, match=r"wrong signature for key 'users::bob:v1'"):
        serde.decode_keyed("users::bob:v1", stored)
    # Keys that only differ where a length prefix would be needed stay apart too.
    with pytest.raises(ValueUnPicklingError):
        serde.decode_keyed("users::alice:v", stored)


# -- what a backend is handed directly -------------------------------------------------------
# A key that is not a str, and None to store, on every backend with their counts:
# tests/toolkit/test_backend_contract.py. Here: the whole wording of the None refusal.


def _backends(tmp_path: Path) -> list[Backend[Any]]:
    return [
        MemoryBackend(),
        FileBackend(tmp_path / "files"),
        LogBackend(tmp_path / "cache.log"),
        SqliteBackend(tmp_path / "cache.db"),
    ]


def test_every_backend_refuses_to_store_none(tmp_path: Path, fresh_stats: None) -> None:
    for backend in _backends(tmp_path):
        for call in (lambda b=backend: b.put("k", None), lambda b=backend: b.add("k", None)):
            with pytest.raises(UserError, match="cannot store None for key 'k': None means a miss"):
                call()
        assert backend.get("k") is None
        assert snap(backend.name)["exception"] == 2  # the refusals are counted, as any error
