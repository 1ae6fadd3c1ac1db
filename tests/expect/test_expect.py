"""Count checks that explain themselves (issue 20, step 2), as a user's test run shows them.

Every failure message of ``expect()``/``assert_stats()`` is matched line by line on the
output of a real pytest run of a small test file, and the traceback is checked to point at
the test's own line.
"""

from __future__ import annotations

import pytest
from _expect_app import make_priceapp

from pytest_cachemock import Expect, PatchCaches, Registry, Stats, at_least, at_most


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    make_priceapp(pytester)
    return pytester


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_prices=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_a_block_with_the_expected_counts_passes(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_warm(patch_caches):
            quote("A-1")
            with patch_caches.expect(prices=Stats(hits=1)):
                quote("A-1")
            with patch_caches.expect(prices=Stats(), rates=Stats()):
                pass
            patch_caches.assert_stats(prices=Stats(puts=1, hits=1, misses=1))
        """,
    )
    result.assert_outcomes(passed=1)


def test_a_block_with_other_counts_fails_at_the_with_line(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_cold(patch_caches):
            quote("Z-9")
            with patch_caches.expect(prices=Stats(puts=1, hits=1, misses=1)):
                quote("A-1")
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       with patch_caches.expect(prices=Stats(puts=1, hits=1, misses=1)):",
            "E       AssertionError: prices: expected 1 hit, got 0",
            "E         prices operations in the block (2):",
            "E           get 'prices::A-1:v1' -> miss",
            "E           put 'prices::A-1:v1' -> stored",
            "",
            "test_prices.py:6: AssertionError",
        ]
    )
    out = result.stdout.str()
    assert "Z-9' -> miss\nE" not in out  # before the block: not the block's
    assert "_expect.py" not in out  # the plugin's frames are hidden
    assert "FAILED test_prices.py::test_cold - AssertionError: prices: expected 1 hit, got 0" in out


def test_assert_stats_checks_the_test_so_far(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_twice(patch_caches):
            quote("A-1")
            quote("B-2")
            patch_caches.assert_stats(prices=Stats(puts=1, misses=1))
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       patch_caches.assert_stats(prices=Stats(puts=1, misses=1))",
            "E       AssertionError: prices: expected 1 put, got 2",
            "E       prices: expected 1 miss, got 2",
            "E         prices operations so far in the test (4):",
            "E           get 'prices::A-1:v1' -> miss",
            "E           put 'prices::A-1:v1' -> stored",
            "E           get 'prices::B-2:v1' -> miss",
            "E           put 'prices::B-2:v1' -> stored",
        ]
    )


def test_bounds_and_no_puts_read_as_the_check(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        import pytest
        from priceapp import quote, rate
        from pytest_cachemock import Expect, Stats, at_least, at_most

        def test_at_least(patch_caches):
            quote("A-1")
            patch_caches.assert_stats(prices=Expect(hits=at_least(1)))

        def test_at_most(patch_caches):
            for sku in ("A", "B", "C"):
                quote(sku)
            patch_caches.assert_stats(prices=Expect(misses=at_most(2)))

        def test_no_puts(patch_caches):
            quote("A-1"); quote("B-2")
            patch_caches.assert_stats(prices=Expect(puts=0))

        def test_plural(patch_caches):
            quote("A-1")
            patch_caches.assert_stats(prices=Stats(puts=2, misses=1))

        def test_no_operations(patch_caches):
            quote("A-1")
            with patch_caches.expect(rates=Expect(misses=1)):
                pass

        def test_two_kinds(patch_caches):
            quote("A-1")
            rate("EUR")
            patch_caches.assert_stats(prices=Expect(hits=1), rates=Expect(puts=0))

        def test_errors_count_with_a_stats(patch_caches):
            patch_caches.fail("prices", on="get", times=1)
            with pytest.raises(ConnectionError):
                quote("A-1")
            patch_caches.assert_stats(prices=Stats())
        """,
    )
    result.assert_outcomes(failed=7)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: prices: expected at least 1 hit, got 0",
            "E       AssertionError: prices: expected at most 2 misses, got 3",
            "E       AssertionError: prices: expected no puts, got 2",
            "E       AssertionError: prices: expected 2 puts, got 1",
            "E       AssertionError: rates: expected 1 miss, got 0",
            "E         rates: no operations in the block",
            "E       AssertionError: prices: expected 1 hit, got 0",
            "E         prices operations so far in the test (2):",
            "E           get 'prices::A-1:v1' -> miss",
            "E           put 'prices::A-1:v1' -> stored",
            "E       rates: expected no puts, got 1",
            "E         rates operations so far in the test (2):",
            "E           get 'rates::EUR:v1' -> miss",
            "E           put 'rates::EUR:v1' -> stored",
            "E       AssertionError: prices: expected no errors, got 1",
            "E         prices operations so far in the test (1):",
            "E           get 'prices::A-1:v1' -> error",
        ]
    )


def test_a_long_list_is_cut_and_a_dropped_part_is_said(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_log_size = 60\n")
    result = _run(
        app,
        """
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_many(patch_caches):
            for i in range(40):
                quote(f"S-{i}")
            patch_caches.assert_stats(prices=Stats())
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: prices: expected no puts, got 40",
            "E       prices: expected no misses, got 40",
            "E         prices operations so far in the test (80):",
            "E           (20 earlier operations are no longer in the log, which keeps the last 60:"
            " raise the ini option cachemock_log_size to see them)",
            "E           ... 10 more before these",
            "E           get 'prices::S-15:v1' -> miss",
        ]
    )
    assert result.stdout.str().count("E           get 'prices::S-") == 25


def test_a_block_that_raises_checks_nothing(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_raises(patch_caches):
            with patch_caches.expect(prices=Stats(hits=5)):
                quote("A-1")
                raise KeyError("the code's own error")
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * KeyError: *the code's own error*"])
    assert "expected 5 hits" not in result.stdout.str()


def test_threads_of_the_block_count_in_it(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        import threading
        from priceapp import quote
        from pytest_cachemock import Stats

        def test_threads(patch_caches):
            with patch_caches.expect(prices=Stats(puts=4, misses=4)):
                threads = [threading.Thread(target=quote, args=(f"T-{i}",)) for i in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        """,
    )
    result.assert_outcomes(passed=1)


def _kinds() -> Registry:
    registry = Registry()
    registry.add("prices")
    return registry


def test_bad_values_fail_at_the_call() -> None:
    with PatchCaches(registry=_kinds()) as patch:
        with pytest.raises(TypeError) as bad:
            patch.expect(prices=1)  # type: ignore[arg-type]
        assert str(bad.value) == (
            "expect(prices=...): give a Stats (every counter exact) or an Expect (e.g. "
            "Expect(hits=at_least(1), puts=0)), got 1"
        )
        with pytest.raises(TypeError, match=r"^assert_stats\(prices=\.\.\.\): give a Stats"):
            patch.assert_stats(prices={"hits": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"unknown cache kind 'price'\. Did you mean"):
            patch.expect(price=Stats())
    with pytest.raises(TypeError, match=r"^at_least\(n\): give an int >= 0, got -1$"):
        at_least(-1)
    with pytest.raises(TypeError, match=r"^at_most\(n\): give an int >= 0, got 1.5$"):
        at_most(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Expect\(hits=\.\.\.\): give an int >= 0, got True$"):
        Expect(hits=True)


def test_expect_values_read_back() -> None:
    assert repr(Expect(puts=0, hits=at_least(1))) == "Expect(puts=0, hits=at_least(1))"
    assert at_most(2) == at_most(2)
    assert at_most(2) != at_least(2)
    with pytest.raises(AttributeError, match="frozen"):
        Expect().hits = 1  # type: ignore[misc]
