"""Issue 15, item 7: reading ``global_stats`` where nothing is mocked (the fixture forgotten) is
said, with a ``NotMockedWarning`` at the reading line; reading after a ``with PatchCaches()``
block, as the seed does, is not."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _plugin_app import make_app


def test_forgotten_fixture_warns_once_at_the_users_line(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        test_forgot="""
        import shopapp
        from pytest_cachemock import Stats, global_stats

        def test_used_the_plugin(patch_caches):
            shopapp.render("home")
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_forgot_the_fixture():
            shopapp.render("home")
            assert global_stats.pages == global_stats.pages  # two reads, one warning
        """
    )
    result = pytester.runpytest("-rw")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "test_forgot.py::test_forgot_the_fixture",
            "  *test_forgot.py:10: NotMockedWarning: global_stats.pages read while no"
            " PatchCaches has run in this test: nothing was mocked, the real caches were used,"
            " and these counts are not the code's. To count, request the patch_caches (or"
            " global_stats) fixture, mark the test with @pytest.mark.cachemock, or wrap the"
            " code in `with PatchCaches():`",
        ]
    )


def test_warning_can_be_made_an_error(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import global_stats

        def test_forgot():
            global_stats.report(file=None)
        """
    )
    result = pytester.runpytest("-W", "error::pytest_cachemock.NotMockedWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NotMockedWarning: global_stats.report() read while no*"])


def test_no_warning_where_a_patch_caches_ran_or_runs(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        import shopapp
        from pytest_cachemock import PatchCaches, Stats, global_stats

        def test_read_after_the_block():
            with PatchCaches():
                shopapp.render("a")
            assert global_stats.pages == Stats(puts=1, misses=1)   # the seed's way

        @pytest.fixture(scope="module")
        def module_mocks():
            with PatchCaches() as patch:
                yield patch

        def test_module_scoped_first(module_mocks):
            shopapp.render("b")
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_module_scoped_second(module_mocks):
            assert global_stats.pages == Stats(puts=1, misses=1)   # still running

        @pytest.mark.cachemock
        def test_marker():
            assert global_stats.pages == Stats()

        def test_fixture(global_stats):
            assert global_stats.pages == Stats()
        """
    )
    result = pytester.runpytest("-W", "error::pytest_cachemock.NotMockedWarning")
    result.assert_outcomes(passed=5)


def test_outside_pytest_a_read_with_no_block_warns_and_after_one_does_not() -> None:
    script = """
import warnings
from pytest_cachemock import NotMockedWarning, PatchCaches, RemoteCache, Stats, global_stats

class Notes(RemoteCache[str]):
    kind = "notes"

warnings.simplefilter("error", NotMockedWarning)
try:
    global_stats.notes
except NotMockedWarning as exc:
    assert "in this thread" in str(exc) and "with PatchCaches():" in str(exc), exc
else:
    raise AssertionError("no warning")
with PatchCaches():
    Notes().put("a", "x")
assert global_stats.notes == Stats(puts=1)                    # no warning after the block
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
