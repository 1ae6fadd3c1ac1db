"""The operation log (issue 20): order, outcomes, the bound, threads, isolation modes, reports.

Direct tests drive real ``RemoteCache``/``MockBackend`` objects under ``PatchCaches``; the
report section is checked with pytester, as users see it.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from pytest_cachemock import (
    CacheLog,
    CacheOp,
    MockBackend,
    PatchCaches,
    Registry,
    Stats,
    cache_stats,
)


def _registry(*names: str) -> Registry:
    registry = Registry()
    for name in names:
        registry.add(name)
    return registry


def test_the_log_holds_every_operation_in_order_with_its_outcome() -> None:
    with PatchCaches(registry=_registry("prices", "pages")) as patch:
        prices, pages = MockBackend("prices"), MockBackend("pages")
        assert prices.get("a") is None
        prices.put("a", b"1")
        assert prices.get("a") == b"1"
        assert pages.add("p", "x") is True
        assert pages.add("p", "y") is False
        assert prices.delete("a") is True
        assert prices.delete("a") is False
        log = patch.log()
    assert isinstance(log, CacheLog)
    assert list(log) == [
        CacheOp("prices", "get", "a", "miss"),
        CacheOp("prices", "put", "a", "stored"),
        CacheOp("prices", "get", "a", "hit"),
        CacheOp("pages", "add", "p", "stored"),
        CacheOp("pages", "add", "p", "hit"),
        CacheOp("prices", "delete", "a", "hit"),
        CacheOp("prices", "delete", "a", "miss"),
    ]
    assert log.dropped == 0
    assert [op.op for op in patch.log("pages")] == ["add", "add"]


def test_an_injected_fault_is_logged_as_an_error() -> None:
    with PatchCaches(registry=_registry("prices")) as patch:
        mock = MockBackend("prices")
        patch.fail("prices", on="get", times=1)
        with pytest.raises(ConnectionError):
            mock.get("k")
        assert mock.get("k") is None
        assert list(patch.log()) == [
            CacheOp("prices", "get", "k", "error"),
            CacheOp("prices", "get", "k", "miss"),
        ]


def test_past_the_bound_the_oldest_go_and_are_counted() -> None:
    with PatchCaches(registry=_registry("prices"), log_size=5) as patch:
        mock = MockBackend("prices")
        for i in range(12):
            mock.put(f"k{i}", b"v")
        mock.delete("k0")  # logged, counted by no counter
        log = patch.log()
    assert [op.key for op in log] == ["k8", "k9", "k10", "k11", "k0"]
    assert log.dropped == 8
    assert log.size == 5
    assert patch.stats()["prices"] == Stats(puts=12)  # the counts are exact whatever the log


def test_a_log_size_of_zero_keeps_nothing_and_counts_everything_dropped() -> None:
    with PatchCaches(registry=_registry("prices"), log_size=0) as patch:
        mock = MockBackend("prices")
        mock.get("a")
        mock.put("a", b"v")
        assert list(patch.log()) == []
        assert patch.log().dropped == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_log_size_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"log_size=.*: give an int >= 0 \(0 keeps no log\)"):
        PatchCaches(log_size=bad)  # type: ignore[arg-type]


def test_reset_empties_the_log_with_the_counters() -> None:
    with PatchCaches(registry=_registry("prices")) as patch:
        mock = MockBackend("prices")
        mock.put("a", b"v")
        patch.reset()
        mock.get("a")
        assert list(patch.log()) == [CacheOp("prices", "get", "a", "miss")]
        assert patch.log().dropped == 0


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_threads_of_the_test_log_into_one_log_each_in_its_own_order(isolation: str) -> None:
    n, per_thread = 4, 500
    with PatchCaches(registry=_registry("prices"), isolation=isolation) as patch:
        mock = MockBackend("prices")
        start = threading.Barrier(n)

        def work(t: int) -> None:
            start.wait()
            for i in range(per_thread):
                mock.put(f"t{t}-{i}", b"v")
                mock.get(f"t{t}-{i}")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = patch.log()
        assert patch.stats()["prices"] == Stats(puts=n * per_thread, hits=n * per_thread)
    assert len(log) == 2 * n * per_thread
    assert log.dropped == 0
    for t in range(n):
        mine = [op for op in log if op.key.startswith(f"t{t}-")]
        expected = []
        for i in range(per_thread):
            expected += [("put", f"t{t}-{i}", "stored"), ("get", f"t{t}-{i}", "hit")]
        assert [(op.op, op.key, op.outcome) for op in mine] == expected


def test_a_thread_that_belongs_to_no_test_is_not_in_its_log() -> None:
    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    mock = MockBackend("prices")

    def long_lived() -> None:
        ready.set()
        go.wait()
        mock.put("foreign", b"v")
        done.set()

    thread = threading.Thread(target=long_lived)
    thread.start()  # before the block: foreign to it
    ready.wait()
    patch = PatchCaches(registry=_registry("prices")).start()
    go.set()
    done.wait()
    mock.put("mine", b"v")
    assert [op.key for op in patch.log()] == ["mine"]
    with pytest.warns(Warning, match="belong to no running test"):
        patch.stop()
    thread.join()


def _child_puts(n: int) -> None:
    mock = MockBackend("prices")
    for i in range(n):
        mock.put(f"child-{i}", b"v")


def test_in_shared_mode_the_log_holds_the_test_process_operations() -> None:
    # Children count into the test's stats; their operations are not in its log
    # (docs/expectations.md says so).
    registry = _registry("prices")
    with PatchCaches(registry=registry, isolation="shared") as patch:
        mock = MockBackend("prices")
        mock.put("parent", b"v")
        child = multiprocessing.get_context("fork").Process(target=_child_puts, args=(3,))
        child.start()
        child.join()
        assert child.exitcode == 0
        mock.get("child-0")
        assert patch.stats()["prices"] == Stats(puts=4, hits=1)
        assert list(patch.log()) == [
            CacheOp("prices", "put", "parent", "stored"),
            CacheOp("prices", "get", "child-0", "hit"),
        ]
        assert patch.log().dropped == 0


def test_the_fast_path_and_the_general_path_count_alike() -> None:
    # get/put of a ready kind skip Backend.get/put; a kind with a fault armed (and disarmed
    # again) takes the general path. Both count the same in the kind, cache_stats and the log.
    def run(slow: bool) -> tuple[Stats, dict[str, int], list[CacheOp]]:
        with PatchCaches(registry=_registry("prices")) as patch:
            mock = MockBackend("prices")
            cache_stats.reset()
            for i in range(3):
                if slow:
                    patch.fail("prices", times=None)
                    patch.fail("prices", times=0)  # disarmed, not ready yet: general path
                mock.get(f"k{i}")
                mock.put(f"k{i}", b"v")
                mock.get(f"k{i}")
            with pytest.raises(TypeError):
                mock.get(3)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                mock.put("k", None)
            raw = cache_stats.snapshot()["mock:prices"]
            return patch.stats()["prices"], dict(raw), list(patch.log())

    assert run(slow=False) == run(slow=True)
    stats, raw, _ = run(slow=False)
    assert stats == Stats(puts=3, hits=3, misses=3, errors=2)
    assert (raw["put"], raw["hit"], raw["miss"], raw["exception"]) == (3, 3, 3, 2)


REPORT_TEST = """
from pytest_cachemock import MockBackend

def test_fails(patch_caches):
    mock = MockBackend("pages")
    for i in range(30):
        mock.get(f"page-{i}")
    mock.put("page-29", "html")
    assert False
"""


def test_the_report_section_shows_the_newest_operations(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "def pytest_cachemock_register_kinds(registry):\n    registry.add('pages')\n"
    )
    pytester.makepyfile(test_report=REPORT_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- cachemock (call) -*",
            "Cache operations (31, the last 20 shown):",
            "  pages  get 'page-11' -> miss",
            "  pages  get 'page-29' -> miss",
            "  pages  put 'page-29' -> stored",
        ]
    )
    assert "'page-10' -> miss" not in result.stdout.str()


def test_the_ini_option_sets_the_bound(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncachemock_log_size = 3\n")
    pytester.makepyfile(
        test_size="""
        from pytest_cachemock import MockBackend

        def test_bound(patch_caches):
            mock = MockBackend("x")
            for i in range(5):
                mock.get(str(i))
            log = patch_caches.log()
            assert [op.key for op in log] == ["2", "3", "4"]
            assert log.dropped == 2 and log.size == 3
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_bad_ini_bound_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncachemock_log_size = lots\n")
    pytester.makepyfile(test_x="def test_x(): pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_log_size = 'lots' is not a number of "
            "operations; write an int >= 0 (0 keeps no log; the default is 10000)"
        ]
    )
