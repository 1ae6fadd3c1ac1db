"""Processes and threads for the tests: threads started together, worker processes (with the
scripts they run), a driver child that holds a backend open, a lock probe, memoizer children,
and a disk filled for real.

Worker scripts open their backend from their first three arguments: the backend's class name
in ``pytest_cachemock``, its path, and its keyword arguments as JSON (``backend_args``); the
script's own arguments follow, in ``args``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import pytest
from _selfcheck import VALUES_SOURCE

PATIENCE = 60.0

T = TypeVar("T")


# -- threads -------------------------------------------------------------------------------


class Counter:
    """Counts calls of a function, per argument tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.calls.append(args)


def run_threads(count: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run ``work(n, start)`` in ``count`` threads that wait on ``start`` together; their
    results in thread order. An error in one aborts the barrier (so no thread waits for it
    forever) and fails the test; so does a thread still running after PATIENCE."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = work(n, start)
        except BaseException as exc:  # reported below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert errors == []
    assert not any(t.is_alive() for t in threads)
    return results


# -- worker processes ----------------------------------------------------------------------

BackendKind = Union[type, str]


def backend_args(kind: BackendKind, path: Path | str, **kwargs: Any) -> list[str]:
    """The first arguments of a worker script: which backend to open, where, and how."""
    name = kind if isinstance(kind, str) else kind.__name__
    return [name, str(path), json.dumps(kwargs)]


# Opens the backend named by the first three arguments; the rest are the script's, in args.
_OPEN_BACKEND = """
import json, sys
import pytest_cachemock
backend = getattr(pytest_cachemock, sys.argv[1])(sys.argv[2], **json.loads(sys.argv[3]))
args = sys.argv[4:]
"""


def worker_script(body: str) -> str:
    """A worker's source: the self-checking values, the backend opened, then ``body``."""
    return VALUES_SOURCE + _OPEN_BACKEND + textwrap.dedent(body)


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


def expect_line(p: subprocess.Popen[str], expected: str) -> None:
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    if line != expected:  # pragma: no cover - a failed worker: show why
        assert p.stderr is not None
        p.kill()
        pytest.fail(f"worker said {line!r}, not {expected!r}: {p.stderr.read()}")


def start_together(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker printed "ready", then let them all go at once."""
    for p in procs:
        expect_line(p, "ready")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()


def last_json(p: subprocess.Popen[str]) -> Any:
    out, err = p.communicate(timeout=PATIENCE)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


# Reads and writes self-checking values of shared keys; reports what it saw as JSON.
# args: writer, ops, seed, number of keys, value sizes (JSON). "big" counts values read
# that were over 64 KiB.
RW_WORKER = worker_script(
    """
    import random
    writer, ops, seed, nkeys, sizes = (
        args[0], int(args[1]), int(args[2]), int(args[3]), json.loads(args[4])
    )
    keys = [f"shared-{i}" for i in range(nkeys)]
    rng = random.Random(seed)
    seen = {"get": 0, "hit": 0, "foreign": 0, "big": 0, "put": 0, "bad": []}
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
        seen["big"] += len(value) > 65536
    seen["stats"] = pytest_cachemock.cache_stats.snapshot().get(backend.name, {})
    print(json.dumps(seen), flush=True)
    """
)

# add() of the same fresh keys; reports the ones it won. args: writer, number of keys.
ADD_WORKER = worker_script(
    """
    writer, nkeys = args[0], int(args[1])
    print("ready", flush=True)
    sys.stdin.readline()
    won = [f"fresh-{i}" for i in range(nkeys) if backend.add(f"fresh-{i}", writer.encode())]
    print(json.dumps({"writer": writer, "won": won}), flush=True)
    """
)

# Replaces the values of keys k0..k<n-1> with self-checking ones of writer "new", round and
# round, until it is killed; prints "writing" after its first put. args: number of keys.
KILLED_WRITER = worker_script(
    """
    nkeys = int(args[0])
    seq = 0
    while True:
        for i in range(nkeys):
            key = f"k{i}"
            backend.put(key, make_value(key, "new", seq, 50_000 + 37 * seq % 150_000))
            seq += 1
            if seq == 1:
                print("writing", flush=True)
    """
)

# Holds one backend open (and what it keeps of it) across the commands it is sent, one JSON
# line each, and answers each with one JSON line. Values travel as latin-1.
DRIVER = worker_script(
    """
    import hashlib, os
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op, key = cmd["op"], cmd.get("key")
        try:
            if op == "get":
                value = backend.get(key)
                out = None if value is None else value.decode("latin-1")
            elif op == "digest":
                value = backend.get(key)
                out = None if value is None else [len(value), hashlib.sha256(value).hexdigest()]
            elif op == "put":
                out = backend.put(key, cmd["value"].encode("latin-1"))
            elif op == "add":
                out = backend.add(key, cmd["value"].encode("latin-1"))
            elif op == "delete":
                out = backend.delete(key)
            elif op in ("clear", "compact", "close"):
                out = getattr(backend, op)()
            elif op == "items":
                out = {k: v.decode("latin-1") for k, v in backend.items()}
            elif op == "len":
                out = len(backend)
            elif op == "ino":  # which file a LogBackend's descriptor is on
                out = os.fstat(backend._file.fd).st_ino
            elif op == "stats":
                out = pytest_cachemock.cache_stats.snapshot().get(backend.name, {})
            else:
                raise ValueError(op)
        except Exception as exc:
            print(json.dumps({"error": repr(exc)}), flush=True)
        else:
            print(json.dumps({"ok": out}), flush=True)
    """
)


class Driver:
    """Sends commands to a DRIVER child; returns its answers."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def __call__(self, op: str, key: str | None = None, value: bytes | None = None) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        cmd: dict[str, Any] = {"op": op, "key": key}
        if value is not None:
            cmd["value"] = value.decode("latin-1")
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:  # pragma: no cover - the child died: show why
            assert self.proc.stderr is not None
            self.proc.kill()
            pytest.fail(f"driver died: {self.proc.stderr.read()}")
        reply = json.loads(line)
        assert "error" not in reply, reply["error"]
        return reply["ok"]

    def get(self, key: str) -> bytes | None:
        found = self("get", key)
        return None if found is None else str(found).encode("latin-1")


@contextmanager
def driver(kind: BackendKind, path: Path, **kwargs: Any) -> Iterator[Driver]:
    """A DRIVER child holding a ``kind`` backend on ``path`` open."""
    with workers(DRIVER, [backend_args(kind, path, **kwargs)]) as (proc,):
        expect_line(proc, "ready")
        yield Driver(proc)


# -- byte-range locks ----------------------------------------------------------------------

# Tries, from another process, to lock the byte that a key's single flight locks.
PROBE = textwrap.dedent(
    """
    import fcntl, os, sys
    path, offset = sys.argv[1], int(sys.argv[2])
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:
        print("held")
    else:
        print("free")
    """
)


def probe(path: Path, offset: int) -> str:
    """ "held" or "free": whether another process could lock byte ``offset`` of ``path``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(offset)],
        capture_output=True,
        text=True,
        check=True,
        timeout=PATIENCE,
    )
    return done.stdout.strip()


# -- memoizer children ---------------------------------------------------------------------

# Each child memoizes one function into a shared backend and prints a JSON line: what it
# returned, whether it computed, the key, its counts, and whether a writer thread was started.
# Each call that computes appends the child's pid to "runs.log" in the folder that holds the
# backend's path. "go" (when not "-") is a file the child waits for, after printing "ready",
# so that children started one by one call at the same moment.
# args: mode ("memoize", or "record" with deterministic=True), go, sleep.
MEMO_CHILD = worker_script(
    """
    import os, time
    import pytest_cachemock.memoize as memoize_module
    from pytest_cachemock import Memoizer, cache_stats

    mode, go, sleep = args[0], args[1], float(args[2])
    memo = Memoizer(kind="procs", backend=backend, deterministic=mode == "record")
    computed = []
    runs_path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), "runs.log")

    def work(tags, options):
        computed.append(os.getpid())
        with open(runs_path, "a") as runs:
            runs.write(f"{os.getpid()}\\n")
        time.sleep(sleep)
        return {"pid": os.getpid(), "tags": sorted(tags)}

    work.__qualname__ = "work"
    fn = memo.record(work) if mode == "record" else memo.memoize(work)
    args = (frozenset({"alpha", "beta", "gamma", "delta"}), {"b": {"y", "x"}, "a": (1, 2.0)})
    print("ready", flush=True)
    if go != "-":
        while not os.path.exists(go):
            time.sleep(0.002)
    result = fn(*args)
    print(json.dumps({
        "pid": os.getpid(),
        "result": result,
        "computed": bool(computed),
        "key": memo.key_for(work, *args),
        "stats": cache_stats.snapshot().get("procs", {}),
        "writer_thread": memoize_module._writer._thread is not None,
        "outstanding": memoize_module._writer._outstanding,
    }))
    """
)


def spawn(
    kind: BackendKind, path: Path, mode: str, go: str = "-", sleep: float = 0.0, seed: str = "0"
) -> subprocess.Popen[str]:
    """A MEMO_CHILD on a ``kind`` backend at ``path``, with PYTHONHASHSEED=``seed``."""
    return subprocess.Popen(
        [sys.executable, "-c", MEMO_CHILD, *backend_args(kind, path), mode, go, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED=seed),
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":  # pragma: no cover - a failed child: show why
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child did not start: {line!r} {err}")


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON line of a MEMO_CHILD, once it exited with 0."""
    try:
        out, err = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on a timeout
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def runs(path: Path) -> list[str]:
    """The pids of the MEMO_CHILD calls that computed, for a backend at ``path``."""
    log = path.parent / "runs.log"
    return log.read_text().split() if log.exists() else []


def race(
    kind: BackendKind, path: Path, mode: str, n: int, sleep: float = 0.0
) -> list[dict[str, Any]]:
    """The JSON lines of ``n`` MEMO_CHILDs that call at the same moment."""
    go = path.parent / f"go-{mode}-{time.monotonic_ns()}"
    procs = [spawn(kind, path, mode, str(go), sleep=sleep, seed=str(i + 1)) for i in range(n)]
    try:
        for p in procs:
            wait_ready(p)
        go.touch()
        return [finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # pragma: no cover - a failed test
                p.kill()
                p.communicate()


def fill_disk(directory: Path, keep: int = 0) -> Path:
    """Fill the file system of ``directory`` with one file, leaving about ``keep`` bytes free;
    returns the filler (unlink it to free the space)."""
    filler = directory / "filler.bin"
    with open(filler, "wb") as out:
        chunk = b"\0" * 65536
        try:
            while True:
                free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
                if free <= keep:
                    break
                out.write(chunk[: max(1, min(len(chunk), free - keep))])
                out.flush()
        except OSError:
            pass
    return filler
