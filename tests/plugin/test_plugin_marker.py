"""The ``cachemock`` marker (validation, closest wins, ``pytestmark``) and ``cachemock_autouse``."""

from __future__ import annotations

import pytest
from _plugin_app import PRICES_INI, make_app


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.cachemock(*, enable=(), isolation='thread', verify=False,"
            " forbid_puts=(), snapshot=False): *"
        ]
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cachemock
        def test_strict(): pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_marker_installs_mocks_and_enables_kinds(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest
        import shopapp
        from pytest_cachemock import MockBackend, Stats, global_stats

        @pytest.mark.cachemock
        def test_bare_marker():
            assert isinstance(shopapp.pages.backend, MockBackend)
            assert shopapp.USE_REAL_PRICES is False
            shopapp.render("a")
            assert global_stats.pages == Stats(puts=1, misses=1)

        @pytest.mark.cachemock(enable=("prices",))
        def test_enable_tuple():
            assert shopapp.USE_REAL_PRICES is True

        @pytest.mark.cachemock(enable="prices")
        def test_enable_one_string(patch_caches):
            assert shopapp.USE_REAL_PRICES is True
            assert patch_caches.active

        @pytest.mark.cachemock(isolation="thread")
        def test_isolation_thread():
            assert shopapp.USE_REAL_PRICES is False

        def test_unmarked_is_untouched():
            assert shopapp.pages.backend is shopapp.pages.real_backend
            assert shopapp.USE_REAL_PRICES is True
        """
    )
    pytester.runpytest().assert_outcomes(passed=5)


def test_closest_marker_wins(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest
        import shopapp

        pytestmark = pytest.mark.cachemock(enable=["prices"])

        def test_module_marker():
            assert shopapp.USE_REAL_PRICES is True

        @pytest.mark.cachemock(enable=())
        def test_function_marker_overrides_module():
            assert shopapp.USE_REAL_PRICES is False

        @pytest.mark.cachemock(enable=())
        class TestClass:
            def test_class_marker_overrides_module(self):
                assert shopapp.USE_REAL_PRICES is False

            @pytest.mark.cachemock(enable=["prices"])
            def test_method_marker_overrides_class(self):
                assert shopapp.USE_REAL_PRICES is True

        class TestClassMark:
            pytestmark = [pytest.mark.cachemock(enable=[])]

            def test_class_pytestmark(self):
                assert shopapp.USE_REAL_PRICES is False
        """
    )
    pytester.runpytest().assert_outcomes(passed=5)


def test_markers_merge_closest_first_per_argument(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        test_merge="""
        import pytest
        import shopapp

        @pytest.mark.cachemock(enable=["prices"])
        class TestClassEnables:
            @pytest.mark.cachemock(isolation="thread")
            def test_function_isolation_and_class_enable_both_apply(self, patch_caches):
                assert patch_caches.isolation == "thread"
                assert shopapp.USE_REAL_PRICES is True

            @pytest.mark.cachemock
            def test_a_bare_function_marker_keeps_the_class_enable(self):
                assert shopapp.USE_REAL_PRICES is True

            @pytest.mark.cachemock(enable=["pages"])
            def test_the_closest_enable_replaces_the_class_list(self):
                assert shopapp.USE_REAL_PRICES is False

        @pytest.mark.cachemock(enable=["prices"])
        @pytest.mark.cachemock(enable=())
        def test_of_two_markers_on_a_function_the_one_nearest_the_def_wins():
            assert shopapp.USE_REAL_PRICES is False
        """,
        test_far="""
        import pytest

        pytestmark = pytest.mark.cachemock(isolation="nope")

        @pytest.mark.cachemock(enable=["prices"])
        def test_the_module_isolation_applies_too():
            pass
        """,
    )
    pytester.runpytest("test_merge.py").assert_outcomes(passed=4)
    result = pytester.runpytest("test_far.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*isolation='nope'*(in *test_the_module_isolation_applies_too)"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'cachemock("prices")',
            "@pytest.mark.cachemock takes keyword arguments only (enable=..., isolation=...),"
            " got ('prices',)",
        ),
        (
            "cachemock(enabled=['prices'])",
            "@pytest.mark.cachemock(enabled=...): unknown argument 'enabled'; did you mean"
            " enable? The marker takes enable=, isolation=, verify=, forbid_puts=, snapshot=",
        ),
        (
            "cachemock(colour=1)",
            "*unknown argument 'colour' The marker takes enable=, isolation=, verify="
            ", forbid_puts=, snapshot=",
        ),
        (
            "cachemock(enable=42)",
            "@pytest.mark.cachemock: enable=42: give a kind name or a list of kind names, such as"
            " enable='pages' or enable=[[]'pages', 'prices'[]]; got an int",
        ),
        ("cachemock(enable=['pages', None])", "*got a NoneType in the list"),
        (
            "cachemock(isolation='shard')",
            "@pytest.mark.cachemock: isolation='shard' is not an isolation mode; choose one of"
            " 'thread', 'process', 'shared'",
        ),
        ("cachemock(isolation='nonsense')", "*isolation='nonsense' is not an isolation mode*"),
        (
            "cachemock(enable=['price'])",
            "@pytest.mark.cachemock(enable=...): unknown cache kind 'price'. Did you mean"
            " 'prices'? Known kinds: *prices*",
        ),
    ],
)
def test_invalid_marker_stops_the_run_once_before_any_test(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    # Issue 15, items 2 and 6: one usage error at start-up naming the marker, the argument and
    # the tests; no plugin source, no private names, no test runs.
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        f"""
        import pytest

        pytestmark = pytest.mark.{marker}

        def test_one():
            pass

        def test_two():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: cachemock: {message} (in test_*.py::test_one, test_*.py::test_two)"]
    )
    assert [line for line in result.stderr.lines if line] == result.stderr.lines[:1]
    out = result.stdout.str() + result.stderr.str()
    assert "passed" not in out
    assert "_check_marker" not in out
    assert "_marker_options" not in out
    assert "def patch_caches" not in out


def test_invalid_markers_are_listed_together_and_long_lists_cut(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(5))
        @pytest.mark.cachemock(enabled="prices")
        def test_typo(n):
            pass

        @pytest.mark.cachemock(enable="pagez")
        def test_unknown():
            pass

        @pytest.mark.cachemock(enable="pages")
        def test_fine():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: *unknown argument 'enabled'*"
            " (in *test_typo[[]0[]], *test_typo[[]1[]], *test_typo[[]2[]] and 2 more)",
            "cachemock: @pytest.mark.cachemock(enable=...): unknown cache kind 'pagez'. Did you"
            " mean 'pages'? * (in *::test_unknown)",
        ]
    )


def test_invalid_marker_on_a_deselected_test_does_not_stop_the_run(
    pytester: pytest.Pytester,
) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cachemock(enabled="prices")
        def test_typo():
            pass

        def test_other():
            pass
        """
    )
    pytester.runpytest("-k", "other").assert_outcomes(passed=1, deselected=1)


def test_marker_checked_in_the_fixture_when_it_is_asked_late(pytester: pytest.Pytester) -> None:
    # A test that asks for patch_caches with getfixturevalue() is not seen at collection: its
    # marker is checked at setup, and the failure shows the message without plugin source.
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def late(request):
            request.node.add_marker(pytest.mark.cachemock(isolation="nope"))
            return request.getfixturevalue("patch_caches")

        def test_late(late):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cachemock: @pytest.mark.cachemock: isolation='nope'*"])
    assert "def patch_caches" not in result.stdout.str()


def test_unknown_kind_in_enable_is_an_error(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        def test_enable(patch_caches):
            patch_caches.enable("pagez")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E*UnknownKindUsageError: unknown cache kind 'pagez'. Did you mean 'pages'?*"]
    )


def test_autouse_applies_the_plugin_to_every_test(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI + "cachemock_autouse = true\n")
    pytester.makepyfile(
        """
        import unittest
        import pytest
        import shopapp
        from pytest_cachemock import MockBackend, Stats, global_stats

        def test_plain_function():
            assert isinstance(shopapp.pages.backend, MockBackend)
            assert shopapp.USE_REAL_PRICES is False
            shopapp.render("a")
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_next_one_starts_clean():
            assert global_stats.pages == Stats()

        @pytest.mark.cachemock(enable=["prices"])
        def test_marker_still_configures():
            assert shopapp.USE_REAL_PRICES is True

        class TestCase(unittest.TestCase):
            def test_unittest_too(self):
                self.assertIsInstance(shopapp.pages.backend, MockBackend)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)
    pytester.makeini(PRICES_INI + "cachemock_autouse = false\n")
    pytester.runpytest().assert_outcomes(passed=2, failed=2)
