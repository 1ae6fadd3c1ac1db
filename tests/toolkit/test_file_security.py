"""FileBackend security: keys cannot escape the directory, permissions, foreign and tampered
entries are misses (never unpickled), and nothing is written before the first put.
"""

from __future__ import annotations

import logging
import pickle
import re
import shutil
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _formats import PATH_KEYS, every_file

from pytest_cachemock import (
    FileBackend,
    PickleSerde,
    RemoteCache,
    SignedPickleSerde,
    cache_stats,
)

pytestmark = pytest.mark.usefixtures("fresh_stats")

ENTRY = re.compile(r"^[0-9a-f]{40}\.ce$")

NASTY_KEYS = [
    *PATH_KEYS,
    "a\0b",
    "\0",
    "\ud800",  # a lone high surrogate
    "x\udfffy",  # a lone low surrogate
    ".lock",
]


@pytest.mark.parametrize("key", NASTY_KEYS, ids=lambda k: repr(k)[:30])
def test_traversal_style_keys_stay_inside_the_directory(tmp_path: Path, key: str) -> None:
    store = tmp_path / "inner" / "store"
    backend = FileBackend(store)
    backend.put(key, b"value")
    assert backend.get(key) == b"value"
    files = every_file(tmp_path)
    assert [f.parent for f in files] == [store]
    assert ENTRY.match(files[0].name)
    assert dict(backend.items()) == {key: b"value"}
    assert backend.delete(key) is True
    assert every_file(tmp_path) == []


def test_all_nasty_keys_together_are_distinct_entries(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    for n, key in enumerate(NASTY_KEYS):
        backend.put(key, str(n).encode())
    for n, key in enumerate(NASTY_KEYS):
        assert backend.get(key) == str(n).encode()
    files = every_file(tmp_path)
    assert len(files) == len(NASTY_KEYS)
    assert all(f.parent == store and ENTRY.match(f.name) for f in files)
    assert dict(backend.items()) == {key: str(n).encode() for n, key in enumerate(NASTY_KEYS)}
    # Nothing outside was touched or created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_delete_with_a_traversal_key_cannot_remove_outside_files(tmp_path: Path) -> None:
    outside = tmp_path / "x"
    outside.write_bytes(b"keep me")
    backend = FileBackend(tmp_path / "store")
    assert backend.delete("../x") is False
    assert backend.delete(str(outside)) is False
    assert outside.read_bytes() == b"keep me"


def test_a_planted_symlink_is_neither_followed_on_write_nor_trusted_on_read(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "victim"
    outside.write_bytes(b"precious")
    backend = FileBackend(tmp_path / "store")
    path = Path(backend.path_for("k"))
    path.symlink_to(outside)
    assert backend.get("k") is None  # not an entry of ours: a miss...
    assert cache_stats.snapshot()[backend.name]["exception"] == 1  # ...and counted
    backend.put("k", b"mine")
    assert outside.read_bytes() == b"precious"
    assert not path.is_symlink()
    assert backend.get("k") == b"mine"


@pytest.mark.usefixtures("umask0")
def test_permission_bits(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    backend.put("k", b"v")
    assert backend.add("other", b"w")
    backend.put("k", b"v2")  # a replacement: check it too
    files = every_file(store)
    assert len(files) >= 2
    for f in files:  # entries and the lock files of add()
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    backend.clear()
    for f in every_file(store):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


@pytest.mark.usefixtures("umask0")
def test_a_removed_directory_is_recreated_owner_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    shutil.rmtree(store)
    backend.put("k", b"v")
    assert backend.get("k") == b"v"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700


def test_nothing_is_written_before_the_first_put(tmp_path: Path) -> None:
    store = tmp_path / "store"
    backend = FileBackend(store)
    cache: RemoteCache[Any] = RemoteCache(backend)
    assert backend.get("k") is None
    assert cache.get("k") is None
    assert backend.delete("k") is False
    assert list(backend.items()) == []
    assert len(backend) == 0
    repr(backend)
    backend.path_for("k")
    assert list(store.iterdir()) == []
    cache.put("k", {"a": 1})
    assert len(list(store.iterdir())) == 1


# -- foreign and corrupt entries -----------------------------------------------------------


def _expect_miss_and_exception(
    backend: FileBackend, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = cache_stats.snapshot().get(backend.name, {})
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        caplog.clear()
        assert backend.get(key) is None
    after = cache_stats.snapshot()[backend.name]
    assert after["miss"] - before.get("miss", 0) == 1
    assert after["exception"] - before.get("exception", 0) == 1
    assert after["hit"] == before.get("hit", 0)
    assert len(caplog.records) == 1
    assert "treated as a miss" in caplog.records[0].getMessage()


def test_an_entry_copied_over_another_keys_file_is_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FileBackend(tmp_path)
    backend.put("a", b"value of a")
    backend.put("b", b"value of b")
    shutil.copyfile(backend.path_for("a"), backend.path_for("b"))
    _expect_miss_and_exception(backend, "b", caplog)
    assert "another key" in caplog.records[0].getMessage()
    assert backend.get("a") == b"value of a"


@pytest.mark.parametrize("version", [0, 1, 255])
def test_an_entry_of_another_format_version_is_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    backend = FileBackend(tmp_path)
    backend.put("k", b"value")
    path = Path(backend.path_for("k"))
    data = bytearray(path.read_bytes())
    assert data[:4] == b"CMF\x02"
    data[3] = version
    path.write_bytes(bytes(data))
    _expect_miss_and_exception(backend, "k", caplog)
    assert f"format version {version}" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"CMF", "truncated header"),
        (b"PK\x03\x04" + b"\0" * 40, "not a cachemock entry"),
        (struct.pack(">4sIQ8s", b"CMF\x02", 1, 100, b"\0" * 8) + b"k" + b"short", "length"),
        (struct.pack(">4sIQ8s", b"CMF\x02", 1, 1, b"\0" * 8) + b"k" + b"v", "digest"),
    ],
)
def test_corrupt_files_are_misses_with_an_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: str
) -> None:
    backend = FileBackend(tmp_path)
    Path(backend.path_for("k")).write_bytes(content)
    _expect_miss_and_exception(backend, "k", caplog)
    assert problem in caplog.records[0].getMessage()
    # items() skips the file, counting it as well; it does not raise.
    assert list(backend.items()) == []
    assert cache_stats.snapshot()[backend.name]["exception"] == 2


def test_items_skips_foreign_files_and_stray_names(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    backend.put("good", b"1")
    (tmp_path / ("0" * 40 + ".ce")).write_bytes(b"garbage")
    (tmp_path / "README").write_text("not an entry")
    assert dict(backend.items()) == {"good": b"1"}
    assert len(backend) == 1


# -- tampered signed pickles ---------------------------------------------------------------

EXPLOITED: list[str] = []


def _exploit(tag: str) -> None:
    EXPLOITED.append(tag)


class Evil:
    """Unpickling this runs code: it would flip the module's flag."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_exploit, ("reduce",))


class EvilState:
    def __setstate__(self, state: Any) -> None:
        _exploit("setstate")


@pytest.fixture(autouse=True)
def _no_exploit() -> Iterator[None]:
    EXPLOITED.clear()
    yield
    EXPLOITED.clear()


class SecretCache(RemoteCache[Any]):
    pass


def test_control_unsigned_pickle_would_run_the_payload(tmp_path: Path) -> None:
    """The fixture works: without a signature, the payload does run on get."""
    cache = SecretCache(FileBackend(tmp_path), PickleSerde())
    cache.backend.put(cache.key_for("k"), pickle.dumps(Evil()))
    cache.get("k")
    assert EXPLOITED == ["reduce"]


@pytest.mark.parametrize("payload", [Evil(), EvilState()], ids=["reduce", "setstate"])
@pytest.mark.parametrize("how", ["unsigned", "other_key", "tag_kept", "flipped_byte", "short"])
def test_tampered_signed_pickle_is_never_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, payload: object, how: str
) -> None:
    serde = SignedPickleSerde(b"our secret")
    backend = FileBackend(tmp_path)
    cache = SecretCache(backend, serde)
    cache.put("k", {"fine": True})
    full = cache.key_for("k")
    good = backend.get(full)
    assert good is not None
    evil = pickle.dumps(payload)
    tampered = {
        "unsigned": evil,
        "other_key": SignedPickleSerde(b"attacker").encode(payload),
        "tag_kept": good[: serde.TAG_SIZE] + evil,
        "flipped_byte": good[:-1] + bytes([good[-1] ^ 0x01]),
        "short": good[:5],
    }[how]
    if how == "flipped_byte":
        # Tamper on disk, the way someone with write access to the directory would.
        path = Path(backend.path_for(full))
        path.write_bytes(path.read_bytes()[: -len(good)] + tampered)
    else:
        backend.put(full, tampered)

    cache_stats.reset()
    with caplog.at_level(logging.WARNING, logger="pytest_cachemock"):
        assert cache.get("k") is None
    assert EXPLOITED == []
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    if how == "flipped_byte":
        # Damage on disk is caught by the file's own digest, before the serde sees anything.
        assert cache_stats.snapshot()["SecretCache"] == {
            "hit": 0,
            "miss": 1,
            "put": 0,
            "exception": 0,
        }
        assert cache_stats.snapshot()[backend.name]["exception"] == 1
        assert "digest mismatch" in messages[0]
        return
    assert cache_stats.snapshot()["SecretCache"] == {
        "hit": 0,
        "miss": 1,
        "put": 0,
        "exception": 1,
    }
    assert "signature" in messages[0]
    assert full in messages[0]


def test_signed_pickle_round_trips_through_a_file_cache(tmp_path: Path) -> None:
    cache = SecretCache(FileBackend(tmp_path), SignedPickleSerde("our secret"))
    cache.put("k", {"set": {1, 2}, "tuple": (1, "a")})
    assert cache.get("k") == {"set": {1, 2}, "tuple": (1, "a")}
    # The same directory read with another secret: a miss, not an unpickle.
    other = SecretCache(FileBackend(tmp_path), SignedPickleSerde("another secret"))
    assert other.get("k") is None
