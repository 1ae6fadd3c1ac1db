"""Issue 17, isolation ``shared``: child processes started during the test count into it, see
its seeds and faults, and a child killed mid-operation corrupts nothing. Real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from _shared_work import MISSES, PUTS, SHELF, failing, forever, work

from pytest_cachemock import PatchCaches, Stats, global_stats

pytestmark = pytest.mark.slow

METHODS = ["fork", "spawn", "forkserver"]


def _run(ctx: multiprocessing.context.BaseContext, target: object, tags: list[str]) -> None:
    procs = [ctx.Process(target=target, args=(tag,)) for tag in tags]  # type: ignore[attr-defined]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0, (proc, proc.exitcode)


@pytest.mark.parametrize("method", METHODS)
def test_four_children_count_exactly_for_each_start_method(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    with PatchCaches(isolation="shared"):
        SHELF.put("parent", 7)
        _run(ctx, work, [f"c{n}" for n in range(4)])
        # Every child put, hit its own keys and the parent's, and missed: exactly.
        assert global_stats.shelf == Stats(
            puts=1 + 4 * PUTS, hits=4 * (PUTS + 1), misses=4 * MISSES
        )
        # The parent sees what the children put.
        assert SHELF.get("c3-9") == 9


def test_process_pool_executor_workers_count_and_see_the_parent() -> None:
    with PatchCaches(isolation="shared"):
        SHELF.put("parent", 5)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            found = list(pool.map(work, [f"w{n}" for n in range(4)]))
        assert found == [5, 5, 5, 5]
        assert global_stats.shelf == Stats(
            puts=1 + 4 * PUTS, hits=4 * (PUTS + 1), misses=4 * MISSES
        )


CHILD = textwrap.dedent(
    """
    from pytest_cachemock import MemoryBackend, RemoteCache

    class Shelf(RemoteCache[int]):
        kind = "shelf"

    shelf = Shelf(MemoryBackend(), namespace="shelf")
    print(shelf.get("seeded"), shelf.get("nothing"))
    shelf.put("from-child", 3)
    """
)


def test_a_plain_subprocess_python_child_gets_the_mocks_and_counts() -> None:
    with PatchCaches(isolation="shared") as patch:
        patch.seed("shelf", {"seeded": 41}, cache=SHELF)
        done = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["41", "None"]  # the seed is a hit in the child
        assert global_stats.shelf == Stats(puts=1, hits=1, misses=1)
        assert SHELF.get("from-child") == 3


def test_a_fault_armed_in_the_parent_fails_exactly_times_across_children() -> None:
    ctx = multiprocessing.get_context("fork")
    with PatchCaches(isolation="shared") as patch:
        patch.fail("shelf", on="get", times=3)
        with ctx.Pool(4) as pool:
            failed = pool.map(failing, [f"f{n}" for n in range(4)])
        assert sum(failed) == 3
        assert global_stats.shelf.errors == 3
        assert global_stats.shelf.misses == 4 * 5 - 3


def test_a_fault_until_reset_reaches_a_spawned_child() -> None:
    ctx = multiprocessing.get_context("spawn")
    with PatchCaches(isolation="shared") as patch:
        patch.fail("shelf", on="get")
        with ctx.Pool(1) as pool:
            assert pool.map(failing, ["s"]) == [5]
        assert global_stats.shelf == Stats(errors=5)


def _killed_child(ctx: multiprocessing.context.BaseContext, tmp: Path, tag: str) -> None:
    ready = tmp / f"{tag}.ready"
    proc = ctx.Process(target=forever, args=(tag, str(ready)))  # type: ignore[attr-defined]
    proc.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.is_alive(), "the child stopped before it got going"
        assert time.monotonic() < deadline, "the child never got going"
        time.sleep(0.01)
    time.sleep(0.05)  # in the middle of its puts
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_killed_mid_operation_loses_at_most_that_operation(
    method: str, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context(method)
    with PatchCaches(isolation="shared") as patch:
        for round_ in range(3):
            _killed_child(ctx, tmp_path, f"k{round_}")
        entries = dict(patch.entries("shelf"))
        stored = {key for key in entries if key.startswith(SHELF.key_for("k")[: -len(":v1")])}
        puts = global_stats.shelf.puts
        # Every counted put is stored; at most one put per killed child is stored uncounted.
        assert puts >= 300
        assert puts <= len(stored) <= puts + 3
        # The store is whole: every entry reads back, and a new child counts exactly in it.
        for key in stored:
            assert entries[key] is not None
        _run(ctx, work, ["after"])
        assert global_stats.shelf.puts == puts + PUTS
        assert SHELF.get("after-9") == 9


def test_a_torn_record_left_by_a_killed_writer_is_never_read(tmp_path: Path) -> None:
    # What a writer killed in the middle of its write leaves: bytes past the end it never
    # published. Readers never see them; the next write goes over them.
    with PatchCaches(isolation="shared"):
        SHELF.put("before", 1)
        log = Path(os.environ["CACHEMOCK_SHARED"]) / "entries.log"
        with open(log, "ab") as f:
            f.write(b"\x01\x00\x00\x00\xff\xff\xff\x7fhalf a rec")
        _run(multiprocessing.get_context("spawn"), work, ["torn"])
        assert SHELF.get("before") == 1
        assert SHELF.get("torn-9") == 9
        assert global_stats.shelf.puts == 1 + PUTS


def test_the_store_is_removed_after_the_test_and_the_stats_stay_readable() -> None:
    before = {name: os.environ.get(name) for name in ("CACHEMOCK_SHARED", "PYTHONPATH")}
    with PatchCaches(isolation="shared") as patch:
        where = Path(os.environ["CACHEMOCK_SHARED"])
        assert where.is_dir()
        _run(multiprocessing.get_context("fork"), work, ["gone"])
    assert not where.exists()
    assert {name: os.environ.get(name) for name in before} == before
    assert patch.stats()["shelf"] == Stats(puts=PUTS, hits=PUTS, misses=MISSES + 1)
    assert global_stats.shelf == Stats(puts=PUTS, hits=PUTS, misses=MISSES + 1)
    assert dict(patch.entries("shelf"))[SHELF.key_for("gone-3")] is not None


def test_a_later_test_starts_empty() -> None:
    with PatchCaches(isolation="shared"):
        SHELF.put("first", 1)
        _run(multiprocessing.get_context("forkserver"), work, ["one"])
    with PatchCaches(isolation="shared"):
        assert SHELF.get("first") is None
        assert SHELF.get("one-1") is None
        _run(multiprocessing.get_context("forkserver"), work, ["two"])
        assert global_stats.shelf == Stats(puts=PUTS, hits=PUTS, misses=MISSES + 3)


def test_the_marker_as_a_user_writes_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_children="""
        import multiprocessing, subprocess, sys
        import pytest
        from pytest_cachemock import MemoryBackend, RemoteCache, Stats

        class Prices(RemoteCache[int]):
            kind = "prices"

        prices = Prices(MemoryBackend())

        CHILD = '''
        from pytest_cachemock import MemoryBackend, RemoteCache
        class Prices(RemoteCache[int]):
            kind = "prices"
        prices = Prices(MemoryBackend())
        assert prices.get("apple") == 3
        prices.put("pear", 4)
        '''

        def look():
            assert prices.get("pear") == 4
            prices.put("plum", 5)

        @pytest.mark.cachemock(isolation="shared")
        def test_children_count(patch_caches, global_stats):
            assert patch_caches.isolation == "shared"
            patch_caches.seed("prices", {"apple": 3}, cache=prices)
            subprocess.run([sys.executable, "-c", CHILD], check=True, timeout=60)
            child = multiprocessing.get_context("fork").Process(target=look)
            child.start()
            child.join(60)
            assert child.exitcode == 0
            assert prices.get("plum") == 5
            assert global_stats.prices == Stats(puts=2, hits=3)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_kinds_declared_in_the_configuration_count_in_children(pytester: pytest.Pytester) -> None:
    # A kind of the ini file (an attribute holding a backend) reaches the children through the
    # store's manifest: the child mocks it before its own code runs, and a delete it makes is
    # seen by the parent.
    pytester.makepyfile(
        notesapp="""
        from pytest_cachemock import MemoryBackend, RemoteCache

        BACKEND = MemoryBackend()

        class Notes(RemoteCache[str]):
            pass

        def notes():
            return Notes(BACKEND)
        """,
        test_notes="""
        import subprocess, sys
        import pytest
        import notesapp
        from pytest_cachemock import Stats

        CHILD = '''
        import notesapp
        notes = notesapp.notes()
        assert notes.get("seeded") == "hello", notes.get("seeded")
        notes.put("from-child", "hi")
        notesapp.BACKEND.delete(notes.key_for("gone"))
        '''

        @pytest.mark.cachemock(isolation="shared")
        def test_child_uses_the_declared_kind(patch_caches, global_stats):
            notes = notesapp.notes()
            notes.put("gone", "soon")
            patch_caches.seed("notes", {"seeded": "hello"}, cache=notes)
            subprocess.run([sys.executable, "-c", CHILD], check=True, timeout=60)
            assert notes.get("from-child") == "hi"
            assert notes.get("gone") is None
            assert global_stats.notes == Stats(puts=2, hits=2, misses=1)
            assert notesapp.BACKEND.get("anything") is None  # still the mock
        """,
    )
    pytester.makeini("[pytest]\ncachemock_kinds = notes target=notesapp:BACKEND\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
