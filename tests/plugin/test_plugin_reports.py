"""The "cachemock" report section of failing tests and the ``--cachemock-report`` summary.

These check whole lines of output, so they run pytest in a subprocess: an inline run would also
list the kinds that other test modules of this process defined.
"""

from __future__ import annotations

import pytest
from _plugin_app import PRICES_INI, make_app

REPORTED = """
import pytest
import shopapp
from pytest_cachemock import Stats

def test_fails(global_stats):
    shopapp.render("home")
    shopapp.pages.put("big", "y" * 300)
    assert global_stats.pages == Stats(puts=2, hits=1, misses=1)

def test_passes(patch_caches):
    shopapp.render("a")

def test_fails_without_plugin():
    assert False

@pytest.fixture
def broken_teardown(patch_caches):
    yield
    raise RuntimeError("teardown broke")

def test_teardown_fails(broken_teardown):
    shopapp.render("t")
"""


def test_failing_test_gets_a_cachemock_section(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(REPORTED)
    result = pytester.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=2, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_teardown_fails _*",
            "*- cachemock (teardown) -*",
            "  pages   puts=1, hits=0, misses=1",
            "    'pages::t:v1': b'\"<h1>t</h1>\"'",
            "*_ test_fails _*",
            "*- cachemock (call) -*",
            "global_stats.pages == Stats(puts=2, hits=1, misses=1) failed;"
            " actual Stats(puts=2, hits=0, misses=1):",
            "  hits: expected 1, got 0",
            "Cache stats:",
            "  prices  puts=0, hits=0, misses=0",
            "  pages   puts=2, hits=0, misses=1",
            "Cache entries:",
            "  pages:",
            "    'pages::big:v1': b'\"yyyy*y... (305 chars)",
            "    'pages::home:v1': b'\"<h1>home</h1>\"'",
            "*_ test_fails_without_plugin _*",
        ]
    )
    out = result.stdout.str()
    # Long values are cut at 100 characters of their repr.
    long_line = next(line for line in out.splitlines() if "'pages::big:v1'" in line)
    assert len(long_line.split(": ", 1)[1]) == 100 + len("... (305 chars)")
    # Only tests that used the plugin and failed get a section.
    assert out.count("- cachemock (") == 2
    without = out.split("_ test_fails_without_plugin _")[1].split("short test summary")[0]
    assert "- cachemock (" not in without


def test_report_method_and_global_stats_report(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import global_stats

        def test_report(patch_caches, capsys):
            assert "Cache entries: (none)" in patch_caches.report()
            shopapp.render("a")
            text = patch_caches.report()
            assert text.splitlines()[:2] == ["Cache stats:", "  pages  puts=1, hits=0, misses=1"]
            assert "'pages::a:v1': b'\\"<h1>a</h1>\\"'" in text
            assert global_stats.report() == text            # written to stderr, as the seed
            assert capsys.readouterr().err == text + "\\n"
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_session_summary_table(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import pytest
        import shopapp

        def test_pages_twice(patch_caches):
            shopapp.render("a"); shopapp.render("a")

        @pytest.mark.cachemock(enable=["prices"])
        def test_prices():
            shopapp.price("x"); shopapp.render("b")

        def test_fault(patch_caches):
            patch_caches.fail("pages", on="get", times=1)
            with pytest.raises(ConnectionError):
                shopapp.render("c")

        def test_no_plugin():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--cachemock-report")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*= cachemock: cache stats per kind =*",
            "kind    tests  puts  hits  misses  errors",
            "pages       3     2     1       2       1",
            "prices      1     1     0       1       0",
        ]
    )
    assert "cachemock: cache stats" not in pytester.runpytest_subprocess().stdout.str()


def test_session_summary_when_no_test_used_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest_subprocess("--cachemock-report")
    result.stdout.fnmatch_lines(
        ["*= cachemock: cache stats per kind =*", "no test used the cachemock plugin"]
    )


def test_session_summary_counts_what_a_test_did_before_reset(pytester: pytest.Pytester) -> None:
    """``reset()`` zeroes what the test asserts on; the session's totals keep every operation
    the test made, before and after it, whichever spelling of reset the test uses."""
    make_app(pytester)
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import Stats, global_stats

        def test_reset_by_the_fixture(patch_caches):
            shopapp.render("a"); shopapp.render("a")  # puts=1, hits=1, misses=1
            patch_caches.reset()
            shopapp.render("b")                       # puts=1, misses=1
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_reset_by_global_stats(global_stats):
            shopapp.render("c")                       # puts=1, misses=1
            global_stats.reset()
            global_stats.reset()                      # twice: nothing counted twice
            assert global_stats.pages == Stats()

        def test_reset_twice_with_traffic_between(patch_caches):
            patch_caches.fail("pages", on="get", times=1)
            try:
                shopapp.render("d")                   # errors=1
            except ConnectionError:
                pass
            patch_caches.reset()
            shopapp.render("d")                       # puts=1, misses=1
            patch_caches.reset()
        """
    )
    result = pytester.runpytest_subprocess("--cachemock-report")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= cachemock: cache stats per kind =*",
            "kind   tests  puts  hits  misses  errors",
            "pages      3     4     1       4       1",
        ]
    )


@pytest.mark.parametrize("show", ["no", "log", "stderr"])
def test_the_section_stays_when_captured_output_is_left_out(
    pytester: pytest.Pytester, show: str
) -> None:
    """``--show-capture`` quiets what the code under test printed or logged (torch's debug
    logs); the cachemock section is part of the failure and stays, right after the traceback."""
    make_app(pytester)
    pytester.makepyfile(
        """
        import logging
        import sys
        import shopapp
        from pytest_cachemock import Stats

        def test_fails(global_stats):
            logging.getLogger("noisy").warning("%s log line", "library")
            print("library", "stderr line", file=sys.stderr)
            shopapp.render("home")
            assert global_stats.pages == Stats(puts=1, hits=1)
        """
    )
    result = pytester.runpytest_subprocess(f"--show-capture={show}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       assert *",
            "*- cachemock (call) -*",
            "global_stats.pages == Stats(puts=1, hits=1, misses=0) failed;*",
            "Cache stats:",
            "  pages  puts=1, hits=0, misses=1",
        ]
    )
    out = result.stdout.str()
    assert ("library log line" in out) is (show == "log")
    assert ("library stderr line" in out) is (show == "stderr")
