"""Issue 17: the test's store follows it into the threads it starts (isolation ``thread``),
threads that belong to no running test are foreign, and ``process`` counts every thread."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool

import pytest
from _plugin_app import make_app

from pytest_cachemock import (
    ForeignTrafficWarning,
    MemoryBackend,
    MockBackend,
    PatchCaches,
    Registry,
    RemoteCache,
    Stats,
)


class Notes(RemoteCache[int]):
    """A cache of its own registry's kind ``iso_notes`` (not discovered: no ``kind``)."""


def _registry() -> Registry:
    registry = Registry()
    registry.add("iso_notes", targets=[Notes], origin="test")
    return registry


NOTES = Notes(MemoryBackend(), namespace="iso_notes")


def _lookup(key: str) -> int | None:
    found = NOTES.get(key)
    if found is None:
        NOTES.put(key, len(key))
    return found


# -- thread: threads the test starts count and see its seeds and faults ------------------------


def test_executor_made_in_the_block_counts_into_it() -> None:
    with PatchCaches(registry=_registry()) as patch:
        NOTES.put("seeded", 1)
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(_lookup, ["seeded", "bb", "ccc", "bb"] * 5))
        assert found[::4] == [1] * 5  # every worker sees the test's entry
        stats = patch.stats()["iso_notes"]
        assert stats.hits + stats.misses == 20
        assert stats.puts == 1 + stats.misses
        assert patch.foreign_stats() == {}


def test_thread_pool_and_nested_threads_see_seeds_and_faults() -> None:
    with PatchCaches(registry=_registry()) as patch:
        patch.seed("iso_notes", {"iso_notes::k:v1": b"7"})
        with ThreadPool(2) as pool:
            assert pool.map(NOTES.get, ["k", "k"]) == [7, 7]
        patch.fail("iso_notes", on="get", times=3)
        errors: list[BaseException] = []

        def grandchild() -> None:
            try:
                NOTES.get("k")
            except ConnectionError as exc:
                errors.append(exc)

        def child() -> None:  # a thread started by a thread the test started
            inner = [threading.Thread(target=grandchild) for _ in range(4)]
            for thread in inner:
                thread.start()
            for thread in inner:
                thread.join()

        outer = threading.Thread(target=child)
        outer.start()
        outer.join()
        assert len(errors) == 3  # the fault of the test, used exactly 3 times across threads
        assert patch.stats()["iso_notes"] == Stats(hits=3, errors=3)


def test_a_thread_from_before_the_block_is_foreign_and_sees_nothing() -> None:
    go, done = threading.Event(), threading.Event()
    seen: list[int | None] = []

    def long_lived() -> None:
        go.wait()
        seen.append(NOTES.get("k"))
        NOTES.put("k", 5)
        done.set()

    worker = threading.Thread(target=long_lived)
    worker.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PatchCaches(registry=_registry()) as patch:
            NOTES.put("k", 1)
            go.set()
            done.wait(10)
            assert seen == [None]  # not the test's entry
            assert NOTES.get("k") == 1  # and its put is not the test's
            assert patch.stats()["iso_notes"] == Stats(puts=1, hits=1)
            assert patch.foreign_stats() == {"iso_notes": Stats(puts=1, misses=1)}
    worker.join()
    assert [w.category for w in caught] == [ForeignTrafficWarning]
    message = str(caught[0].message)
    assert "iso_notes (puts=1, hits=0, misses=1)" in message
    assert "isolation='process' counts every thread" in message
    assert "Foreign traffic" in patch.report()
    assert "iso_notes  puts=1, hits=0, misses=1" in patch.report()


def test_no_entry_reaches_a_later_block_through_a_long_lived_pool() -> None:
    pool = ThreadPoolExecutor(max_workers=1)  # lives across both blocks
    try:
        with PatchCaches(registry=_registry()) as first:
            assert pool.submit(_lookup, "x").result() is None  # the worker starts here
            assert first.stats()["iso_notes"] == Stats(puts=1, misses=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with PatchCaches(registry=_registry()) as second:
                assert pool.submit(_lookup, "x").result() is None  # not the first's entry
                assert second.stats()["iso_notes"] == Stats()
        assert [w.category for w in caught] == [ForeignTrafficWarning]
        assert "iso_notes (puts=1, hits=0, misses=1)" in str(caught[0].message)
    finally:
        pool.shutdown()


# -- process: every thread of the process ------------------------------------------------------


def test_process_mode_counts_8_threads_times_10000_exactly() -> None:
    begin = threading.Barrier(9)
    end = threading.Barrier(9)
    mock = MockBackend("iso_notes")

    def hammer(n: int) -> None:  # started before the block: counted only in process mode
        begin.wait()
        for i in range(10_000):
            if i % 2:
                mock.put(f"{n}:{i}", b"v")  # 5,000 puts
            else:
                mock.get(f"{n}:{i - 1}")  # 5,000 gets, each of the put before (the first: -1)
        end.wait()

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    with PatchCaches(registry=_registry(), isolation="process") as patch:
        begin.wait()
        end.wait()
        assert len(patch.entries("iso_notes")) == 40_000
        assert patch.stats()["iso_notes"] == Stats(puts=40_000, hits=39_992, misses=8)
        assert patch.foreign_stats() == {}
    for thread in threads:
        thread.join()


def test_process_mode_fault_is_used_exactly_times_across_threads() -> None:
    with PatchCaches(registry=_registry(), isolation="process") as patch:
        patch.fail("iso_notes", on="put", times=5)
        failures: list[BaseException] = []
        lock = threading.Lock()

        def put(n: int) -> None:
            for i in range(50):
                try:
                    NOTES.put(f"{n}-{i}", i)
                except ConnectionError as exc:
                    with lock:
                        failures.append(exc)

        threads = [threading.Thread(target=put, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(failures) == 5
        assert patch.stats()["iso_notes"] == Stats(puts=395, errors=5)


# -- as users meet it: the fixture, the marker, the options ------------------------------------

POOLAPP = """
from concurrent.futures import ThreadPoolExecutor

EXECUTOR = ThreadPoolExecutor(max_workers=2)   # module-level: lives across tests

def fetch_all(cache, keys):
    def one(key):
        found = cache.get(key)
        if found is None:
            cache.put(key, key.upper())
            return key.upper()
        return found
    return list(EXECUTOR.map(one, keys))
"""


def test_module_level_executor_no_leak_between_tests(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(poolapp=POOLAPP)
    pytester.makepyfile(
        test_pool="""
        import shopapp, poolapp
        from concurrent.futures import ThreadPoolExecutor
        from pytest_cachemock import Stats

        def test_own_pool_counts(global_stats):
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(shopapp.render, ["a", "b", "a"]))
            assert global_stats.pages.hits + global_stats.pages.misses == 3

        def test_first_uses_the_module_pool(global_stats):
            assert poolapp.fetch_all(shopapp.pages, ["x"]) == ["X"]

        def test_second_sees_nothing_of_the_first(patch_caches, global_stats):
            assert poolapp.fetch_all(shopapp.pages, ["x"]) == ["X"]
            assert patch_caches.entries("pages") == {}
            assert global_stats.pages == Stats()
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-rw")
    # The module's pool starts its worker in the second test (counted there); in the third,
    # that worker belongs to no running test: foreign, warned about once.
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "test_pool.py::test_second_sees_nothing_of_the_first",
            "*ForeignTrafficWarning: cache traffic from threads that belong to no running test*",
        ]
    )


@pytest.mark.parametrize(
    "how",
    [
        ("marker", "@pytest.mark.cachemock(isolation='process')", []),
        ("option", "", ["--cachemock-isolation=process"]),
        ("ini", "", []),
    ],
    ids=lambda how: how[0],
)
def test_process_mode_from_marker_option_or_ini(
    pytester: pytest.Pytester, how: tuple[str, str, list[str]]
) -> None:
    name, marker, args = how
    make_app(pytester, ini="[pytest]\ncachemock_isolation = process\n" if name == "ini" else None)
    pytester.makepyfile(poolapp=POOLAPP)
    pytester.makepyfile(
        test_mode=f"""
        import pytest, shopapp, poolapp
        from pytest_cachemock import Stats

        def test_warm(global_stats):
            poolapp.fetch_all(shopapp.pages, ["x"])

        {marker}
        def test_counted(patch_caches, global_stats):
            assert patch_caches.isolation == "process"
            assert poolapp.fetch_all(shopapp.pages, ["x", "x"])
            assert global_stats.pages.hits + global_stats.pages.misses == 2
        """
    )
    result = pytester.runpytest(*args, "-W", "error::pytest_cachemock.ForeignTrafficWarning")
    result.assert_outcomes(passed=2)


def test_bad_isolation_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--cachemock-isolation=shard")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: option --cachemock-isolation=shard: isolation='shard' is not"
            " an isolation mode; choose one of 'thread', 'process', 'shared'"
        ]
    )
