"""Issue 17: tests run in parallel threads. Two tests in two threads, each with its own
``PatchCaches``, do not see each other's counts or entries in mode ``thread``; under
pytest-run-parallel the copies of one test share its fixture, so they count into one store."""

from __future__ import annotations

import threading

import pytest
from _plugin_app import make_app

from pytest_cachemock import MemoryBackend, PatchCaches, Registry, RemoteCache, Stats


class Rows(RemoteCache[int]):
    """A cache of its own registry's kind ``par_rows``."""


ROWS = Rows(MemoryBackend(), namespace="par_rows")


def test_two_tests_in_two_threads_stay_apart() -> None:
    registry = Registry()
    registry.add("par_rows", targets=[Rows], origin="test")
    both = threading.Barrier(2)
    seen: dict[int, tuple[Stats, list[str]]] = {}

    def one_test(n: int) -> None:
        with PatchCaches(registry=registry) as patch:
            both.wait()  # both tests run at once
            for i in range(n):
                if ROWS.get(f"row-{i}") is None:
                    ROWS.put(f"row-{i}", i)
            both.wait()  # and both have done their traffic before either reads
            seen[n] = (patch.stats()["par_rows"], sorted(patch.entries("par_rows")))
            both.wait()

    threads = [threading.Thread(target=one_test, args=(n,)) for n in (3, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen[3] == (Stats(puts=3, misses=3), [f"par_rows::row-{i}:v1" for i in range(3)])
    assert seen[5] == (Stats(puts=5, misses=5), [f"par_rows::row-{i}:v1" for i in range(5)])


def test_pytest_run_parallel_copies_share_the_tests_store(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_run_parallel")
    make_app(pytester)
    pytester.makepyfile(
        test_copies="""
        import threading
        import pytest
        import shopapp
        from pytest_cachemock import Stats

        @pytest.fixture
        def totals(patch_caches, num_parallel_threads):
            yield
            # after every copy ran: one store for the test, each copy's traffic in it
            n = num_parallel_threads
            assert patch_caches.stats()["pages"] == Stats(puts=n, misses=n)
            assert len(patch_caches.entries("pages")) == n

        def test_each_copy_renders_its_own_page(totals):
            shopapp.render(f"page-{threading.get_ident()}")

        def test_next_test_starts_empty(global_stats):
            assert global_stats.pages == Stats()
        """
    )
    # pytest-django (in the test extra) brings autouse fixtures that run-parallel calls
    # thread-unsafe (monkeypatch): this suite has no Django.
    result = pytester.runpytest("--parallel-threads=3", "-v", "-p", "no:django")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_each_copy_renders_its_own_page PARALLEL PASSED*"])
