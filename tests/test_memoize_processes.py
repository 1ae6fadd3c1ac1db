"""Memoizer across real processes: other hash seeds, single flight, first writer wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Each child memoizes one function into a shared FileBackend and prints a JSON line:
# what it returned and whether it computed. "go" (when given) is a file the child waits
# for, so that children started one by one call at the same moment.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pytest_cachemock import FileBackend, Memoizer

    directory, mode, go, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    memo = Memoizer(kind="procs", backend=FileBackend(directory), deterministic=mode == "record")
    computed = []

    def work(tags, options):
        computed.append(os.getpid())
        with open(os.path.join(directory, "runs.log"), "a") as log:
            log.write(f"{os.getpid()}\\n")
        time.sleep(sleep)
        return {"pid": os.getpid(), "tags": sorted(tags)}

    work.__qualname__ = "work"
    fn = memo.record(work) if mode == "record" else memo.memoize(work)
    args = (frozenset({"alpha", "beta", "gamma", "delta"}), {"b": {"y", "x"}, "a": (1, 2.0)})
    if go != "-":
        while not os.path.exists(go):
            time.sleep(0.002)
    result = fn(*args)
    print(json.dumps({"result": result, "computed": bool(computed),
                      "key": memo.key_for(work, *args)}))
    """
)


def spawn(directory: Path, mode: str, go: str = "-", sleep: float = 0.0, seed: str = "0"):
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), mode, go, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def runs(directory: Path) -> list[str]:
    log = directory / "runs.log"
    return log.read_text().split() if log.exists() else []


def test_disk_entries_survive_other_hash_seeds(tmp_path: Path) -> None:
    first = finish(spawn(tmp_path, "memoize", seed="1"))
    second = finish(spawn(tmp_path, "memoize", seed="2"))
    third = finish(spawn(tmp_path, "memoize", seed="3"))
    assert first["computed"] is True
    assert second["computed"] is False
    assert third["computed"] is False
    assert first["key"] == second["key"] == third["key"]
    assert first["result"] == second["result"] == third["result"]
    assert len(runs(tmp_path)) == 1


def test_single_flight_four_processes(tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [spawn(tmp_path, "memoize", str(go), sleep=0.5, seed=str(i)) for i in range(4)]
    time.sleep(0.5)  # let them import and reach the start line
    go.touch()
    results = [finish(p) for p in procs]
    assert len(runs(tmp_path)) == 1
    assert sum(bool(r["computed"]) for r in results) == 1
    assert len({json.dumps(r["result"]) for r in results}) == 1


def test_first_writer_wins_across_processes(tmp_path: Path) -> None:
    # record always computes; with deterministic=True every process returns what the
    # first one stored, even though each computed its own pid.
    results = [finish(spawn(tmp_path, "record", seed=str(i))) for i in range(3)]
    assert len(runs(tmp_path)) == 3
    pids = {r["result"]["pid"] for r in results}  # type: ignore[index]
    assert len(pids) == 1

    go = tmp_path / "go"
    racing = [spawn(tmp_path, "record", str(go), seed=str(i)) for i in range(3)]
    time.sleep(0.5)
    go.touch()
    assert {r["result"]["pid"] for r in map(finish, racing)} == pids  # type: ignore[index]


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
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(offset)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_lock_follows_a_directory_that_was_deleted_and_made_again(tmp_path: Path) -> None:
    import shutil

    from pytest_cachemock import FileBackend, Memoizer

    directory = tmp_path / "store"
    memo = Memoizer(kind="relock", backend=FileBackend(directory))
    seen: list[str] = []

    @memo.memoize
    def work(n: int) -> int:
        key = memo.key_for(work, n)
        seen.append(probe(directory / ".memoize.lock", int(key[-10:], 16)))
        return n

    assert work(1) == 1
    memo.flush()
    shutil.rmtree(directory)
    directory.mkdir()
    assert work(2) == 2  # the lock file was removed with the directory: it is made again
    memo.flush()
    # While each call computed, another process could not take its key's byte of the lock
    # file that is in the directory now.
    assert seen == ["held", "held"]
    assert (directory / ".memoize.lock").exists()
