"""Fault injection (``fail``), ``seed``, ``entries`` and ``reset`` of the controller."""

from __future__ import annotations

import pytest
from _plugin_app import make_app

# An application that degrades gracefully: a cache error means "compute it".
RESILIENT = """
import logging
import shopapp

def render_safely(name):
    try:
        return shopapp.render(name)
    except (ConnectionError, TimeoutError) as exc:
        logging.getLogger("shop").warning("cache down: %s", exc)
        return "<h1>" + name + "</h1>"
"""


def test_fail_on_get_put_both_with_times(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(resilient=RESILIENT)
    pytester.makepyfile(
        """
        import pytest
        import shopapp
        from resilient import render_safely
        from pytest_cachemock import Stats, cache_stats

        def test_get_fails_forever(patch_caches, global_stats, caplog):
            patch_caches.fail("pages", on="get")
            for _ in range(3):
                assert render_safely("home") == "<h1>home</h1>"
            assert global_stats.pages == Stats(errors=3)
            assert "cache down: cachemock: injected failure on get of kind 'pages'," \\
                " key 'pages::home:v1'" in caplog.text
            patch_caches.reset()                   # disarms
            render_safely("home")
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_put_fails_twice(patch_caches, global_stats):
            patch_caches.fail("pages", on="put", times=2)
            render_safely("a"); render_safely("a"); render_safely("a"); render_safely("a")
            assert global_stats.pages == Stats(puts=1, hits=1, misses=3, errors=2)

        def test_both_once(patch_caches, global_stats):
            patch_caches.fail("pages", times=1)
            render_safely("a")                     # the get fails
            render_safely("a")                     # miss + put
            assert global_stats.pages == Stats(puts=1, misses=1, errors=1)

        def test_times_zero_disarms(patch_caches, global_stats):
            patch_caches.fail("pages")
            patch_caches.fail("pages", times=0)
            render_safely("a")
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_custom_exception_class_and_instance(patch_caches):
            patch_caches.fail("pages", exc=TimeoutError)
            with pytest.raises(TimeoutError, match="injected failure on get of kind 'pages'"):
                shopapp.render("a")
            boom = OSError("disk on fire")
            patch_caches.fail("pages", on="put", exc=boom)
            with pytest.raises(OSError, match="disk on fire"):
                shopapp.pages.put("k", "v")

        def test_errors_count_in_the_library_stats_too(patch_caches):
            patch_caches.fail("pages", on="get", times=1)
            render_safely("a")
            added = patch_caches.library_stats()
            assert added["Pages"]["exception"] == 1
            assert added["mock:pages"]["exception"] == 1

        def test_next_test_has_no_fault(global_stats):
            shopapp.render("a")
            assert global_stats.pages == Stats(puts=1, misses=1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=7)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ('fail("pages", on="read")', "ValueError: on='read': choose one of 'get', 'put', 'both'"),
        ('fail("pages", exc="boom")', "TypeError: exc must be an exception class or instance*"),
        ('fail("pages", times=-1)', "ValueError: times must be None or an int >= 0, got -1"),
        ('fail("pages", times=True)', "ValueError: times must be None or an int >= 0, got True"),
        ('fail("pagez")', "*unknown cache kind 'pagez'. Did you mean 'pages'?*"),
        ('seed("pages", {1: "x"})', "TypeError: seed('pages', ...): keys are str, got 1"),
        ('seed("pages", {"k": None})', "TypeError: seed('pages', ...): value of 'k' is None*"),
        ('entries("pagez")', "*unknown cache kind 'pagez'*"),
    ],
)
def test_controller_argument_errors(pytester: pytest.Pytester, call: str, error: str) -> None:
    make_app(pytester)
    pytester.makepyfile(
        f"import shopapp\n\ndef test_call(patch_caches):\n    patch_caches.{call}\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f">*patch_caches.{call}", f"E*{error}"])
    assert "pytest_cachemock/patching.py" not in result.stdout.str()  # points at the user's line


def test_seed_and_entries(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        import shopapp
        from pytest_cachemock import Stats

        def test_seeded_entries_are_hits(patch_caches, global_stats):
            # Seed with what the controller would store: the full key and the encoded value.
            patch_caches.seed("pages", {"pages::home:v1": b'"<h1>cached</h1>"'})
            assert global_stats.pages == Stats()            # seeding does not count
            assert shopapp.render("home") == "<h1>cached</h1>"
            assert global_stats.pages == Stats(hits=1)

        def test_entries_are_live_and_read_only(patch_caches):
            entries = patch_caches.entries("pages")
            assert dict(entries) == {}
            shopapp.render("a")
            assert dict(entries) == {"pages::a:v1": b'"<h1>a</h1>"'}
            with pytest.raises(TypeError):
                entries["x"] = 1
            patch_caches.reset()
            assert dict(patch_caches.entries("pages")) == {}
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)
