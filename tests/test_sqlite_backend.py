"""SqliteBackend: entries, counting, files and permissions, refusals, lock timeouts, threads,
processes, fork and reopening.

Values shared between threads or processes check themselves: each holds its key, its writer,
its size and a SHA-256 of the rest, so a reader tells a whole value of the right key from a
torn, mixed or foreign one without knowing which writer came last.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from _selfcheck import VALUES_SOURCE, check_value, make_value

import pytest_cachemock
from pytest_cachemock import (
    CacheError,
    FileLockTimeoutError,
    LockTimeoutError,
    SqliteBackend,
    ValueEncodingError,
    cache_stats,
)
from pytest_cachemock import SystemError as CacheSystemError

pytestmark = pytest.mark.usefixtures("fresh_stats")

PATIENCE = 60.0
NAME = "backend:SqliteBackend"


# -- helpers -------------------------------------------------------------------------------

# Also run, as source text, by the worker processes below: keep it self-contained.


def snap(name: str = NAME) -> dict[str, int]:
    return cache_stats.snapshot().get(name, {"hit": 0, "miss": 0, "put": 0, "exception": 0})


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


def db_files(db: Path) -> set[Path]:
    """The files SQLite may keep for ``db``."""
    return {db, Path(f"{db}-wal"), Path(f"{db}-shm")}


@pytest.fixture
def umask0() -> Iterator[None]:
    """A permissive umask, so permission bits come from the backend and not the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def workers(code: str, args: list[list[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Python processes running ``code``; killed if still alive at the end."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *a],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    stream.close()


def start_together(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker printed "ready", then let them all go at once."""
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":  # pragma: no cover - a failed worker: show why
            assert p.stderr is not None
            p.kill()
            pytest.fail(f"worker did not start: {line!r} {p.stderr.read()}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def last_json(p: subprocess.Popen[str]) -> Any:
    out, err = p.communicate(timeout=PATIENCE)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


# -- entries -------------------------------------------------------------------------------


def test_public_name_and_repr(tmp_path: Path) -> None:
    from pytest_cachemock.backends import SqliteBackend as from_backends
    from pytest_cachemock.backends.sqlite import SqliteBackend as from_module

    assert pytest_cachemock.SqliteBackend is from_backends is from_module is SqliteBackend
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    assert backend.path == tmp_path / "db.sqlite3"
    assert str(tmp_path / "db.sqlite3") in repr(backend)


def test_get_put_replace_delete_clear_items_len(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    assert backend.get("missing") is None
    assert len(backend) == 0
    assert list(backend.items()) == []
    backend.put("b", b"bee")
    backend.put("a", b"ay")
    assert backend.get("a") == b"ay"
    assert backend.get("b") == b"bee"
    backend.put("a", b"a much longer second value")  # a replacement
    assert backend.get("a") == b"a much longer second value"
    backend.put("a", b"x")  # and a shorter one
    assert backend.get("a") == b"x"
    assert len(backend) == 2
    assert list(backend.items()) == [("a", b"x"), ("b", b"bee")]  # sorted by key
    assert backend.delete("a") is True
    assert backend.delete("a") is False
    assert backend.delete("never") is False
    assert backend.get("a") is None
    assert dict(backend.items()) == {"b": b"bee"}
    assert len(backend) == 1
    backend.put("c", b"see")
    backend.clear()
    assert len(backend) == 0
    assert list(backend.items()) == []
    assert backend.get("b") is None
    backend.put("b", b"again")  # usable after clear()
    assert backend.get("b") == b"again"


def test_add_stores_only_where_nothing_is(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    assert backend.add("k", b"first") is True
    assert backend.add("k", b"second") is False
    assert backend.get("k") == b"first"
    backend.delete("k")
    assert backend.add("k", b"third") is True
    assert backend.get("k") == b"third"
    backend.put("k", b"replaced")  # put still replaces what add stored
    assert backend.get("k") == b"replaced"
    assert len(backend) == 1


@pytest.mark.parametrize(
    "value",
    [bytearray(b"\x00from a bytearray\xff"), memoryview(b"\x00from a memoryview\xff")],
    ids=["bytearray", "memoryview"],
)
def test_bytes_like_values_come_back_as_bytes(tmp_path: Path, value: Any) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    backend.put("k", value)
    assert backend.add("new", value) is True
    for key in ("k", "new"):
        got = backend.get(key)
        assert type(got) is bytes
        assert got == bytes(value)
    assert all(type(v) is bytes for _, v in backend.items())


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("text", "str"), ({"a": 1}, "dict"), (12, "int"), (None, "NoneType")],
)
def test_non_bytes_values_are_refused(tmp_path: Path, value: object, type_name: str) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    for method in (backend.put, backend.add):
        with pytest.raises(ValueEncodingError) as info:
            method("the/key", value)  # type: ignore[operator]
        message = str(info.value)
        assert f"got a {type_name} for key 'the/key'" in message
        assert "serde" in message
        assert isinstance(info.value, CacheError)
    assert backend.get("the/key") is None
    assert len(backend) == 0
    assert snap() == {"hit": 0, "miss": 1, "put": 0, "exception": 2}


def test_empty_and_five_megabyte_values_round_trip(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    big = os.urandom(5 * 1024 * 1024 + 3)
    backend.put("empty", b"")
    backend.put("big", big)
    got = backend.get("empty")
    assert got == b""
    assert got is not None  # an empty value is a hit, not a miss
    assert backend.add("empty", b"other") is False
    assert backend.get("big") == big
    assert dict(backend.items()) == {"big": big, "empty": b""}
    again = SqliteBackend(tmp_path / "db.sqlite3")
    assert again.get("big") == big
    assert snap()["hit"] == 4  # get(empty), add(empty) refused, get(big) twice
    assert snap()["miss"] == 0


ODD_KEYS = [
    "ключ/日本語/🔑",
    "../x",
    "../../../../../../../../tmp/escaped",
    "/etc/passwd",
    "a/../../b",
    "..",
    ".",
    "",
    "k" * 100_000,
    "C:\\Windows\\system32",
    "~/.ssh/id_rsa",
    "'; DROP TABLE cachemock_entries; --",
    "%_*?[]\t\n\r\x01\x7f",
    "e\u0301 vs \u00e9",  # two spellings of é: two keys
    "db.sqlite3-wal",
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:30])
def test_odd_keys_round_trip_and_make_no_files(tmp_path: Path, key: str) -> None:
    db = tmp_path / "inner" / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put(key, b"value")
    assert backend.get(key) == b"value"
    assert dict(backend.items()) == {key: b"value"}
    assert set(every_file(tmp_path)) <= db_files(db)
    assert backend.delete(key) is True
    assert backend.get(key) is None
    assert len(backend) == 0


def test_all_odd_keys_together_are_distinct_entries(tmp_path: Path) -> None:
    db = tmp_path / "store" / "db.sqlite3"
    backend = SqliteBackend(db)
    for n, key in enumerate(ODD_KEYS):
        backend.put(key, str(n).encode())
    for n, key in enumerate(ODD_KEYS):
        assert backend.get(key) == str(n).encode()
    assert len(backend) == len(ODD_KEYS)
    assert dict(backend.items()) == {key: str(n).encode() for n, key in enumerate(ODD_KEYS)}
    # Nothing outside the directory, and nothing in it but the database's own files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert set(every_file(tmp_path)) <= db_files(db)


@pytest.mark.parametrize("key", ["\ud800", "x\udfffy"], ids=["high", "low"])
def test_lone_surrogate_keys_round_trip_like_file_backend(tmp_path: Path, key: str) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    backend.put(key, b"value")
    assert backend.get(key) == b"value"
    assert dict(backend.items()) == {key: b"value"}


def test_items_is_taken_at_the_call(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    backend.put("a", b"1")
    listed = backend.items()
    backend.put("b", b"2")
    backend.delete("a")
    assert list(listed) == [("a", b"1")]


# -- counting ------------------------------------------------------------------------------


def test_cache_stats_count_under_the_backend_name(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    assert backend.name == NAME
    assert backend.get("k") is None  # miss
    backend.put("k", b"v")  # put
    assert backend.get("k") == b"v"  # hit
    assert backend.add("k", b"w") is False  # an entry already there: a hit
    assert backend.add("new", b"n") is True  # stored: a put
    backend.delete("k")  # not counted
    backend.clear()  # not counted
    list(backend.items())  # not counted
    len(backend)  # not counted
    assert snap() == {"hit": 2, "miss": 1, "put": 2, "exception": 0}


def test_custom_name(tmp_path: Path) -> None:
    one = SqliteBackend(tmp_path / "db.sqlite3", name="sqlite:one")
    two = SqliteBackend(tmp_path / "db.sqlite3", name="sqlite:two")
    assert one.name == "sqlite:one"
    one.put("k", b"v")
    assert two.get("k") == b"v"
    assert two.get("absent") is None
    assert snap("sqlite:one") == {"hit": 0, "miss": 0, "put": 1, "exception": 0}
    assert snap("sqlite:two") == {"hit": 1, "miss": 1, "put": 0, "exception": 0}
    assert NAME not in cache_stats.snapshot()


# -- files, permissions and refusals -------------------------------------------------------


@pytest.mark.usefixtures("umask0")
def test_owner_only_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    db = directory / "db.sqlite3"
    backend = SqliteBackend(db)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    backend.put("k", b"v")
    files = every_file(directory)
    assert set(files) == db_files(db)  # the -wal and -shm exist while it is open
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_an_existing_directory_is_used_as_it_is(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    backend.put("k", b"v")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert backend.get("k") == b"v"


def test_a_directory_path_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        SqliteBackend(tmp_path)
    message = str(info.value)
    assert repr(str(tmp_path)) in message
    assert "is a directory" in message
    assert os.path.join(str(tmp_path), "cache.sqlite3") in message  # what to pass instead
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [os.urandom(8192), b"this is a text file, not a database\n" * 40],
    ids=["random-bytes", "text"],
)
def test_a_non_database_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(CacheSystemError) as info:
        SqliteBackend(path)
    message = str(info.value)
    assert isinstance(info.value, CacheError)
    assert repr(str(path)) in message
    assert "delete it or pass another path" in message
    assert path.read_bytes() == content  # left alone


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    db = tmp_path / "db.sqlite3"
    db.symlink_to(victim)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(db)))):
        SqliteBackend(db)
    assert victim.read_bytes() == b"precious"
    assert db.is_symlink()
    # A dangling link: following it would create the file it names.
    dangling = tmp_path / "other.sqlite3"
    dangling.symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(dangling)))):
        SqliteBackend(dangling)
    assert not (tmp_path / "created-through-the-link").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite3", "other.sqlite3", "victim"]


def test_a_symlink_planted_after_close_is_refused_on_reopen(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"v")
    backend.close()
    for f in db_files(db):
        f.unlink(missing_ok=True)
    db.symlink_to(victim)
    with pytest.raises(CacheSystemError, match=re.escape(repr(str(db)))):
        backend.get("k")
    assert victim.read_bytes() == b"precious"
    assert snap()["exception"] == 1


def _newer_database(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cachemock_entries (key TEXT PRIMARY KEY, value BLOB)")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _newer_database(path, 7)
    with pytest.raises(CacheSystemError) as info:
        SqliteBackend(path)
    message = str(info.value)
    assert repr(str(path)) in message
    assert "schema version 7" in message
    assert "reads version 1" in message
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (7,)  # not downgraded
    conn.close()


def test_a_refused_newer_database_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _newer_database(path, 7)
    before = path.read_bytes()
    with pytest.raises(CacheSystemError):
        SqliteBackend(path)
    assert path.read_bytes() == before


def test_an_older_unversioned_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).close()  # an empty database, user_version 0
    backend = SqliteBackend(path)
    backend.put("k", b"v")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("SELECT key, value FROM cachemock_entries").fetchall() == [
        (b"k", b"v")
    ]  # keys are UTF-8 bytes
    conn.close()


@pytest.mark.parametrize("timeout", [-1, -0.5, True, False, "x", None, float("nan")])
def test_a_bad_lock_timeout_is_refused(tmp_path: Path, timeout: object) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        SqliteBackend(tmp_path / "db.sqlite3", lock_timeout=timeout)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # refused before anything is made


def test_zero_and_integer_lock_timeouts_are_accepted(tmp_path: Path) -> None:
    assert SqliteBackend(tmp_path / "a.sqlite3", lock_timeout=0).lock_timeout == 0.0
    assert SqliteBackend(tmp_path / "b.sqlite3", lock_timeout=3).lock_timeout == 3.0


# -- persistence ---------------------------------------------------------------------------


def test_entries_persist_into_a_second_instance(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    first = SqliteBackend(db)
    first.put("k", b"v")
    first.put("gone", b"x")
    first.delete("gone")
    second = SqliteBackend(str(db))  # a str path works too
    assert second.get("k") == b"v"
    assert second.get("gone") is None
    second.put("from-second", b"2")
    assert first.get("from-second") == b"2"  # and back: no stale snapshot in the first
    first.close()
    second.close()
    assert SqliteBackend(db).get("k") == b"v"


_PERSIST_CHILD = textwrap.dedent(
    """
    import json, sys
    from pytest_cachemock import SqliteBackend
    backend = SqliteBackend(sys.argv[1])
    seen = {key: (None if value is None else value.decode()) for key, value in
            ((k, backend.get(k)) for k in ("parent", "unicode/ключ", "absent"))}
    backend.put("child", b"from the child")
    print(json.dumps(seen))
    """
)


@pytest.mark.slow
def test_entries_persist_into_another_process(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("parent", b"from the parent")
    backend.put("unicode/ключ", "значение".encode())
    with workers(_PERSIST_CHILD, [[str(db)]]) as (proc,):
        seen = last_json(proc)
    assert seen == {"parent": "from the parent", "unicode/ключ": "значение", "absent": None}
    assert backend.get("child") == b"from the child"  # the open connection sees it


# -- lock timeout --------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT OR REPLACE INTO cachemock_entries (key, value) VALUES (CAST('held' AS BLOB), x'01')"
    )
    print("holding", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    print("committed", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_a_write_waits_lock_timeout_then_raises_while_reads_go_on(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db, lock_timeout=0.2)
    backend.put("k", b"before")
    with workers(_HOLDER, [[str(db)]]) as (holder,):
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"

        started = time.monotonic()
        with pytest.raises(FileLockTimeoutError) as info:
            backend.put("k", b"after")
        waited = time.monotonic() - started
        assert 0.15 <= waited < 2.0  # it waited about lock_timeout, and no longer
        assert isinstance(info.value, LockTimeoutError)
        assert isinstance(info.value, CacheSystemError)
        assert str(db) in str(info.value)
        assert "0.2 s" in str(info.value)
        assert info.value.timeout == 0.2

        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            backend.add("new", b"n")
        assert time.monotonic() - started < 2.0

        # WAL: readers do not wait for the writer, and see only what was committed.
        started = time.monotonic()
        assert backend.get("k") == b"before"
        assert backend.get("held") is None
        assert len(backend) == 1
        assert time.monotonic() - started < 1.0  # had they waited, they would have raised
        assert snap() == {"hit": 1, "miss": 1, "put": 1, "exception": 2}

        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "committed"
        backend.put("k", b"after")  # the writer is gone: it goes through
        assert backend.get("k") == b"after"
        assert backend.get("held") == b"\x01"
        holder.stdin.write("exit\n")
        holder.stdin.flush()
        holder.wait(PATIENCE)
        assert holder.returncode == 0


_SLOW_WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    print("holding", flush=True)
    time.sleep(0.3)
    conn.execute("COMMIT")
    sys.stdin.readline()
    """
)


@pytest.mark.slow
def test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db)  # rollback journal: the state of a file still being set up
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with workers(_SLOW_WRITER, [[str(db)]]) as (holder,):
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        backend = SqliteBackend(db, lock_timeout=5)  # the writer is done in 0.3 s
        backend.put("k", b"v")
        assert backend.get("k") == b"v"


# -- threads -------------------------------------------------------------------------------

THREADS = 8
OPS_PER_THREAD = 2_000
THREAD_KEYS = 40


def test_threads_share_one_backend_with_exact_counts(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    start = threading.Barrier(THREADS)
    results: list[dict[str, int]] = [{} for _ in range(THREADS)]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        rng = random.Random(n)
        seen = {"hit": 0, "miss": 0, "put": 0, "bad": 0}
        try:
            start.wait(PATIENCE)
            for i in range(OPS_PER_THREAD):
                key = f"key-{rng.randrange(THREAD_KEYS)}"
                roll = rng.random()
                if roll < 0.2:
                    backend.put(key, make_value(key, f"t{n}", i, rng.choice((128, 700, 3000))))
                    seen["put"] += 1
                elif roll < 0.3:
                    added = backend.add(key, make_value(key, f"t{n}", i, 200))
                    seen["put" if added else "hit"] += 1
                else:
                    value = backend.get(key)
                    if value is None:
                        seen["miss"] += 1
                        continue
                    seen["hit"] += 1
                    try:
                        check_value(key, value)
                    except ValueError:
                        seen["bad"] += 1
            results[n] = seen
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert errors == []
    assert not any(t.is_alive() for t in threads)
    total = {field: sum(r[field] for r in results) for field in ("hit", "miss", "put", "bad")}
    assert total["bad"] == 0
    assert total["hit"] + total["miss"] + total["put"] == THREADS * OPS_PER_THREAD
    assert total["hit"] > 0
    assert total["put"] > 0
    assert snap() == {
        "hit": total["hit"],
        "miss": total["miss"],
        "put": total["put"],
        "exception": 0,
    }
    for key, value in backend.items():
        check_value(key, value)
    assert len(backend) <= THREAD_KEYS


# -- processes -----------------------------------------------------------------------------

_RW_WORKER = (
    VALUES_SOURCE
    + """
import json, random, sys
from pytest_cachemock import SqliteBackend, cache_stats

db, writer, ops, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keys = [f"shared-{i}" for i in range(12)]
sizes = [128, 1000, 4000, 30000, 120000]
rng = random.Random(seed)
backend = SqliteBackend(db)
seen = {"get": 0, "hit": 0, "foreign": 0, "put": 0, "bad": []}
print("ready", flush=True)
sys.stdin.readline()
for i in range(ops):
    key = rng.choice(keys)
    if rng.random() < 0.4:
        backend.put(key, make_value(key, writer, i, rng.choice(sizes)))
        seen["put"] += 1
        continue
    seen["get"] += 1
    value = backend.get(key)
    if value is None:
        continue
    seen["hit"] += 1
    try:
        who, _ = check_value(key, value)
    except ValueError as exc:
        seen["bad"].append(f"{key}: {exc}")
        continue
    seen["foreign"] += who != writer
seen["stats"] = cache_stats.snapshot().get(backend.name, {})
print(json.dumps(seen), flush=True)
"""
)


@pytest.mark.slow
def test_four_processes_share_keys_and_never_see_a_torn_value(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    # Made here first: opening a fresh file from several processes at once is the bug of
    # test_opening_waits_for_a_writer_on_a_database_not_yet_in_wal_mode.
    SqliteBackend(db).close()
    writers = [f"w{n}" for n in range(4)]
    args = [[str(db), w, "400", str(n)] for n, w in enumerate(writers)]
    with workers(_RW_WORKER, args) as procs:
        start_together(procs)
        reports = [last_json(p) for p in procs]
    for report in reports:
        assert report["bad"] == []
        assert report["stats"]["exception"] == 0
        assert report["stats"]["hit"] == report["hit"]
        assert report["stats"]["miss"] == report["get"] - report["hit"]
        assert report["stats"]["put"] == report["put"]
    assert sum(r["foreign"] for r in reports) > 0  # they really read each other's values
    backend = SqliteBackend(db)
    entries = dict(backend.items())
    assert sorted(entries) == sorted(f"shared-{i}" for i in range(12))
    for key, value in entries.items():
        who, _ = check_value(key, value)  # a whole value of its own key...
        assert who in writers  # ...written by one of them


_ADD_WORKER = textwrap.dedent(
    """
    import json, sys
    from pytest_cachemock import SqliteBackend
    db, writer, nkeys = sys.argv[1], sys.argv[2], int(sys.argv[3])
    backend = SqliteBackend(db)
    print("ready", flush=True)
    sys.stdin.readline()
    won = [f"fresh-{i}" for i in range(nkeys) if backend.add(f"fresh-{i}", writer.encode())]
    print(json.dumps({"writer": writer, "won": won}), flush=True)
    """
)


@pytest.mark.slow
def test_add_from_four_processes_has_exactly_one_winner_per_key(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    SqliteBackend(db).close()  # see test_four_processes_share_keys_and_never_see_a_torn_value
    nkeys = 300
    args = [[str(db), f"w{n}", str(nkeys)] for n in range(4)]
    with workers(_ADD_WORKER, args) as procs:
        start_together(procs)
        reports = [last_json(p) for p in procs]
    winners: dict[str, list[str]] = {}
    for report in reports:
        for key in report["won"]:
            winners.setdefault(key, []).append(report["writer"])
    assert sum(len(r["won"]) for r in reports) == nkeys  # the True returns, all processes
    assert sorted(winners) == sorted(f"fresh-{i}" for i in range(nkeys))
    assert all(len(w) == 1 for w in winners.values())
    stored = dict(SqliteBackend(db).items())
    assert {key: value.decode() for key, value in stored.items()} == {
        key: w[0] for key, w in winners.items()
    }


# -- fork ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_backend_used_before_a_fork_works_in_the_child_and_after(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    backend.put("parent", b"p")
    assert backend.get("parent") == b"p"  # the parent's connection is open and used
    parents_connection = backend._conn
    assert parents_connection is not None
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        try:
            seen = backend.get("parent")
            for i in range(200):
                backend.put(f"child-{i % 20}", f"c{i}".encode())
            added = backend.add("shared", b"child")
            # SQLite connections must not cross a fork: the child opened its own.
            own = backend._conn is not None and backend._conn is not parents_connection
            out.put(("ok", seen, added, len(backend), own))
        except BaseException as exc:  # pragma: no cover - reported by the test
            out.put(("error", repr(exc), None, None, None))

    proc = ctx.Process(target=child)
    proc.start()
    for i in range(200):  # the parent writes at the same time
        backend.put(f"parent-{i % 20}", f"p{i}".encode())
    result = out.get(timeout=PATIENCE)
    proc.join(PATIENCE)
    assert result[0] == "ok", result
    assert proc.exitcode == 0
    assert result[1] == b"p"
    assert result[2] is True  # the child stored "shared" first
    assert result[3] >= 22  # parent, shared and its 20 keys
    assert result[4] is True
    # The parent keeps working on its own connection, and sees what the child wrote.
    assert backend.get("child-19") == b"c199"
    assert backend.get("parent-19") == b"p199"
    assert backend.add("shared", b"parent") is False
    assert backend._conn is parents_connection
    assert backend.get("shared") == b"child"
    backend.put("after", b"a")
    assert backend.get("after") == b"a"
    assert len(backend) == 43
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


# -- close ---------------------------------------------------------------------------------


def test_close_then_use_again_reopens(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"v")
    backend.close()
    backend.close()  # twice is fine
    assert backend.get("k") == b"v"  # reopened
    backend.close()
    backend.put("k2", b"w")
    backend.close()
    assert backend.add("k3", b"x") is True
    backend.close()
    assert len(backend) == 3
    backend.close()
    assert dict(backend.items()) == {"k": b"v", "k2": b"w", "k3": b"x"}
    backend.close()
    assert backend.delete("k") is True
    backend.close()
    backend.clear()
    assert len(backend) == 0
    assert snap()["exception"] == 0


def test_close_lets_sqlite_checkpoint_and_remove_its_side_files(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    backend = SqliteBackend(db)
    backend.put("k", b"v" * 10_000)
    assert Path(f"{db}-wal").exists()
    backend.close()  # the last connection: SQLite checkpoints and removes -wal and -shm
    assert every_file(tmp_path) == [db]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM cachemock_entries").fetchone() == (b"v" * 10_000,)
    conn.close()
