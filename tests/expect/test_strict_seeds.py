"""Strict seeds and forbidden puts (issue 20, step 3), as a user's test run shows them."""

from __future__ import annotations

import threading

import pytest
from _expect_app import make_priceapp

from pytest_cachemock import ForbiddenPutError, MockBackend, PatchCaches, Registry

UNREAD = [
    "cachemock: these entries were seeded with strict=True and never read:",
    "  - prices: 'prices::B-2:v1'",
    "  - prices: 'prices::C-3:v1'",
    "If the test does not need them, leave them out of the seed; if it may or may not read "
    "them, seed them with strict=False (the default).",
]
SWALLOWED = [
    "cachemock: the test forbids puts to these kinds, and the code put:",
    "  - rates: 'rates::EUR:v1'",
    "Each put raised ForbiddenPutError; the code under test may have caught it. If the writes "
    "are expected, drop the kind from forbid_puts.",
]


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    make_priceapp(pytester)
    return pytester


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_prices=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_a_strict_seed_never_read_fails_the_test_at_teardown(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import prices, quote

        SEED = {"A-1": {"price": 1}, "B-2": {"price": 2}, "C-3": {"price": 3}}

        def test_reads_one(patch_caches):
            patch_caches.seed("prices", SEED, cache=prices, strict=True)
            assert quote("A-1") == {"price": 1}

        def test_reads_all(patch_caches):
            patch_caches.seed("prices", SEED, cache=prices, strict=True)
            for sku in SEED:
                quote(sku)

        def test_not_strict(patch_caches):
            patch_caches.seed("prices", SEED, cache=prices)

        def test_reset_forgets_them(patch_caches):
            patch_caches.seed("prices", SEED, cache=prices, strict=True)
            patch_caches.reset()
        """,
    )
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        ["*_ ERROR at teardown of test_reads_one _*", *UNREAD, "*- cachemock (teardown) -*"]
    )
    assert "ERROR test_prices.py::test_reads_one - Failed: cachemock: these entries" in (
        result.stdout.str()
    )


def test_a_strict_seed_under_raw_keys_and_the_dropped_note(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_log_size = 2\n")
    result = _run(
        app,
        """
        from priceapp import prices, quote

        def test_early_read(patch_caches):
            patch_caches.seed("prices", {"prices::A-1:v1": b'{"p": 1}'}, strict=True)
            quote("A-1")                                 # read, then pushed out of the log
            quote("X"); quote("Y")
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: these entries were seeded with strict=True and never read:",
            "  - prices: 'prices::A-1:v1'",
            "(the log let 3 early operations go, past its size of 2: some of these may have "
            "been read; raise the ini option cachemock_log_size)",
            "If the test does not need them*",
        ]
    )


def test_a_failing_test_gets_no_second_error_at_teardown(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        from priceapp import prices

        def test_fails(patch_caches):
            patch_caches.seed("prices", {"A-1": {"price": 1}}, cache=prices, strict=True)
            assert False, "the test's own failure"
        """,
    )
    result.assert_outcomes(failed=1)
    assert "never read" not in result.stdout.str()


def test_a_strict_seed_is_refused_in_shared_mode() -> None:
    registry = Registry()
    registry.add("prices")
    with PatchCaches(registry=registry, isolation="shared") as patch:
        with pytest.raises(ValueError, match="strict=True") as refused:
            patch.seed("prices", {"k": b"v"}, strict=True)
        patch.seed("prices", {"k": b"v"})  # without strict: fine
    assert str(refused.value) == (
        "seed('prices', ..., strict=True): in isolation='shared' the reads of child processes "
        "are not in the test's log, so an entry never read cannot be told; seed without "
        "strict, or use isolation 'thread' or 'process'"
    )


def test_a_forbidden_put_raises_at_the_put_naming_the_key(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        import pytest
        from priceapp import prices, quote

        def test_put(patch_caches):
            patch_caches.forbid_puts("prices")
            quote("A-1")
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       pytest_cachemock.errors.ForbiddenPutError: cachemock: put of key "
            "'prices::A-1:v1' to kind 'prices', whose puts this test forbids "
            "(forbid_puts('prices'), or the marker's forbid_puts=); if the write is expected, "
            "drop the kind from forbid_puts",
        ]
    )
    assert "at teardown" not in result.stdout.str()


def test_a_swallowed_forbidden_put_fails_at_teardown(app: pytest.Pytester) -> None:
    result = _run(
        app,
        """
        import pytest
        from priceapp import rate, rates
        from pytest_cachemock import Stats

        @pytest.mark.cachemock(forbid_puts="rates")
        def test_swallowed(patch_caches):
            assert rate("EUR") == 1.0                    # the code caught the error
            assert patch_caches.stats()["rates"] == Stats(misses=1, errors=1)
            assert [op.outcome for op in patch_caches.log("rates")] == ["miss", "error"]

        @pytest.mark.cachemock(forbid_puts=["rates"])
        def test_reads_only(patch_caches):
            patch_caches.seed("rates", {"EUR": 1.1}, cache=rates)
            assert rate("EUR") == 1.1

        @pytest.mark.cachemock(forbid_puts=["rates"])
        def test_handled(patch_caches):
            rate("EUR")
            patch_caches.reset()                         # seen: nothing left to report
            with pytest.raises(Exception, match="whose puts this test forbids"):
                rates.put("USD", 1.0)                    # still forbidden after reset()
            patch_caches.reset()
        """,
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*_ ERROR at teardown of test_swallowed _*", *SWALLOWED])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "cachemock(forbid_puts=42)",
            "ERROR: cachemock: @pytest.mark.cachemock: forbid_puts=42: give a kind name or a "
            "list of kind names, such as forbid_puts='pages' or forbid_puts=[[]'pages', "
            "'prices'[]]; got an int (in test_marker.py::test_x)",
        ),
        (
            "cachemock(forbid_puts=['price'])",
            "ERROR: cachemock: @pytest.mark.cachemock(forbid_puts=...): unknown cache kind "
            "'price'. Did you mean 'prices'? Known kinds: prices, rates. "
            "(in test_marker.py::test_x)",
        ),
    ],
)
def test_a_bad_forbid_puts_marker_stops_the_run(
    app: pytest.Pytester, marker: str, message: str
) -> None:
    app.makepyfile(
        test_marker=f"""
        import pytest
        import priceapp

        @pytest.mark.{marker}
        def test_x():
            pass
        """
    )
    # In a child: the known kinds listed are this run's, not those other tests left alive here.
    result = app.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_forbid_puts_holds_for_adds_and_for_the_tests_threads() -> None:
    registry = Registry()
    registry.add("prices")
    with PatchCaches(registry=registry) as patch:
        mock = MockBackend("prices")
        mock.put("before", b"v")
        patch.forbid_puts("prices")
        with pytest.raises(ForbiddenPutError, match=r"put of key 'added' to kind 'prices'"):
            mock.add("added", b"v")
        caught: list[BaseException] = []

        def in_a_thread() -> None:
            try:
                mock.put("threaded", b"v")
            except BaseException as exc:
                caught.append(exc)

        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        assert [type(exc) for exc in caught] == [ForbiddenPutError]
        assert mock.get("before") == b"v"  # reads still work
        assert dict(patch.entries("prices")) == {"before": b"v"}
    with pytest.raises(AssertionError) as failed:
        patch.check_expectations()
    assert str(failed.value).splitlines()[1:3] == ["  - prices: 'added'", "  - prices: 'threaded'"]
    with pytest.raises(ValueError, match=r"unknown cache kind 'price'"):
        patch.forbid_puts("price")
