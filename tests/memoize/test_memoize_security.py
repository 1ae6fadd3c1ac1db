"""Memoizer against hostile files: malicious dumps, planted symlinks and lock files, bombs."""

from __future__ import annotations

import base64
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
from _formats import snap

from pytest_cachemock import (
    FileBackend,
    JsonSerde,
    LogBackend,
    Memoizer,
    PassthroughSerde,
    PickleSerde,
    SignedPickleSerde,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
)


def price(sku: str) -> dict[str, Any]:
    return {"sku": sku, "total": 3}


class Boom:
    """Unpickling this runs ``open(path, "w")``: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_loading_a_dump_with_a_pickle_serde_runs_no_code_from_it(tmp_path: Path) -> None:
    proof = tmp_path / "code-ran"
    dump = tmp_path / "quotes.memo.json"
    # A dump as a hostile committer would write it: a real entry's key, a malicious pickle.
    writer = Memoizer(kind="pickled_quotes", serde=PickleSerde())
    writer.memoize(price)("A1")
    assert writer.dump(dump) == 1
    data = json.loads(dump.read_text())
    (block,) = data["scopes"].values()
    (key,) = block["entries"]
    evil = {"args": {"sku": "A1"}, "fn": f"{price.__module__}.price", "result": Boom(str(proof))}
    block["entries"][key] = {"$base64": base64.b64encode(pickle.dumps(evil)).decode()}
    dump.write_text(json.dumps(data))

    reader = Memoizer(kind="pickled_quotes", serde=PickleSerde())
    with pytest.raises(UserError, match="SignedPickleSerde") as info:
        reader.load(dump)
    assert str(dump) in str(info.value)
    assert not proof.exists()
    # And nothing was put into the backend that a later call would unpickle.
    calls = []

    def price_again(sku: str) -> dict[str, Any]:
        calls.append(sku)
        return price(sku)

    price_again.__qualname__ = "price"
    assert reader.memoize(price_again)("A1") == {"sku": "A1", "total": 3}
    assert calls == ["A1"]
    assert not proof.exists()


def test_a_signed_dump_loads_and_a_forged_entry_in_it_runs_nothing(tmp_path: Path) -> None:
    proof = tmp_path / "code-ran"
    dump = tmp_path / "signed.memo.json"
    serde = SignedPickleSerde(b"team secret")
    writer = Memoizer(kind="signed_dump", serde=serde)
    writer.memoize(price)("A1")
    writer.memoize(price)("B2")
    assert writer.dump(dump) == 2
    data = json.loads(dump.read_text())
    (block,) = data["scopes"].values()
    key = sorted(block["entries"])[0]
    evil = {"args": {"sku": "A1"}, "fn": f"{price.__module__}.price", "result": Boom(str(proof))}
    forged = b"\0" * SignedPickleSerde.TAG_SIZE + pickle.dumps(evil)
    block["entries"][key] = {"$base64": base64.b64encode(forged).decode()}
    dump.write_text(json.dumps(data))
    reader = Memoizer(kind="signed_dump", serde=serde)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert reader.load(dump) == 1
    assert not proof.exists()


def test_the_key_lock_file_refuses_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "must-not-exist"
    log = tmp_path / "memo.log"
    os.symlink(target, tmp_path / "memo.log.memoize.lock")
    directory = tmp_path / "entries"
    directory.mkdir()
    os.symlink(tmp_path / "must-not-exist-either", directory / ".memoize.lock")
    for backend, name in ((LogBackend(log), "sym_log"), (FileBackend(directory), "sym_file")):
        memo = Memoizer(kind=name, backend=backend)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert memo.memoize(price)("A1") == {"sku": "A1", "total": 3}
            memo.flush()
        messages = [str(w.message) for w in caught]
        assert any("symlink" in m and ".memoize.lock" in m for m in messages), messages
        assert snap(name)["exception"] >= 1
    assert not target.exists()
    assert not (tmp_path / "must-not-exist-either").exists()


def test_dump_takes_no_lock_where_another_user_can_plant_one(tmp_path: Path) -> None:
    dump = tmp_path / "quotes.memo.json"
    memo = Memoizer(kind="planted_dump_lock")
    memo.memoize(price)("A1")
    # Another user plants every lock path this dump could use in the shared temp directory,
    # as files nobody may open.
    planted = []
    import hashlib

    digest = hashlib.sha256(str(dump).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    lock = Path(tempfile.gettempdir()) / f"pytest-cachemock-dump-{digest}.lock"
    lock.mkdir()  # a directory: opening it for writing fails, as another user's file would
    planted.append(lock)
    try:
        assert memo.dump(dump) == 1
        assert memo.dump(dump) == 1
    finally:
        for p in planted:
            p.rmdir()
    before = set(os.listdir(tmp_path))
    assert before == {"quotes.memo.json"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_deeply_nested_dump_is_a_decoding_error_and_stays_as_it_was(tmp_path: Path) -> None:
    dump = tmp_path / "bomb.memo.json"
    text = (
        '{"format": "pytest-cachemock/memoize", "format_version": 1, "scopes": '
        + _nested(100_000)
        + "}"
    )
    dump.write_text(text)
    memo = Memoizer(kind="bomb_dump")
    memo.memoize(price)("A1")
    with pytest.raises(ValueDecodingError, match=r"bomb\.memo\.json"):
        memo.load(dump)
    with pytest.raises(ValueDecodingError, match=r"bomb\.memo\.json"):
        memo.dump(dump)
    assert dump.read_text() == text


def test_dumping_a_deeply_nested_result_is_a_clear_error_and_keeps_the_old_dump(
    tmp_path: Path,
) -> None:
    dump = tmp_path / "deep.memo.json"
    good = Memoizer(kind="deep_result", serde=JsonSerde())
    good.memoize(price)("A1")
    assert good.dump(dump) == 1
    old = dump.read_bytes()

    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    objects = Memoizer(kind="deep_result", serde=PassthroughSerde())

    def nest(n: int) -> list[Any]:
        return deep

    objects.memoize(nest)(1)
    with pytest.raises(ValueEncodingError, match=r"deep\.memo\.json"):
        objects.dump(dump)
    assert dump.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["deep.memo.json"]
