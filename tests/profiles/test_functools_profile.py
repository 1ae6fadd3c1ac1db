"""The ``functools`` profile, as a user meets it: pytest runs on small test files over a small
app whose functions are decorated with ``functools.lru_cache`` / ``functools.cache``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_cachemock

GEO = """
import functools

calls = []

@functools.lru_cache(maxsize=None)
def lookup(city):
    calls.append(city)
    if city == "nowhere":
        raise LookupError(city)
    return city.upper()

@functools.lru_cache(maxsize=2)
def near(city):
    return city[:2]

@functools.cache
def area(city):
    return len(city)

def plain(city):
    return city

class Atlas:
    @functools.lru_cache(maxsize=None)
    def page(self, n):
        return n * 10
"""

LATE = """
import functools
from geo import lookup          # imported, not defined here: not one of this module's kinds

@functools.lru_cache(maxsize=None)
def first(x):
    return x

@functools.cache
def second(x):
    return -x
"""


def _app(pytester: pytest.Pytester, ini: str) -> None:
    pytester.makepyfile(geo=GEO, lateapp=LATE)
    pytester.syspathinsert()
    pytester.makeini("[pytest]\ncachemock_profiles = functools\n" + ini)


ENTRIES = "cachemock_functools =\n    geo:lookup\n    rates=geo:near\n    geo:area\n"


def test_each_test_starts_empty_and_counts_from_cache_info(pytester: pytest.Pytester) -> None:
    _app(pytester, ENTRIES)
    pytester.makepyfile(
        """
        import pytest
        import geo
        from pytest_cachemock import Stats, global_stats

        def test_a_plain_test_fills_the_cache():
            geo.lookup("paris")
            assert geo.lookup.cache_info().currsize == 1

        def test_the_plugin_empties_it_first(patch_caches):
            assert geo.lookup.cache_info().currsize == 0
            geo.lookup("paris"); geo.lookup("paris"); geo.lookup("rome")
            with pytest.raises(LookupError):
                geo.lookup("nowhere")          # a miss that stores nothing
            info = geo.lookup.cache_info()
            assert (info.hits, info.misses) == (1, 3)
            assert global_stats.lookup == Stats(puts=2, hits=1, misses=3)
            assert patch_caches.stats()["lookup"] == Stats(puts=2, hits=1, misses=3)

        def test_nothing_comes_back_after_it():
            # The plugin's test left "paris" and "rome": emptied when it ended.
            assert geo.lookup.cache_info().currsize == 0
            geo.calls.clear()
            geo.lookup("paris")
            assert geo.calls == ["paris"]

        def test_a_second_plugin_test_counts_alone(global_stats):
            geo.lookup("oslo")
            assert global_stats.lookup == Stats(puts=1, misses=1)
            assert global_stats.area == Stats()

        def test_an_alias_names_the_kind_and_a_full_bounded_cache_puts_each_miss(global_stats):
            for city in ("paris", "rome", "oslo", "oslo"):
                geo.near(city)
            assert geo.near.cache_info().currsize == 2
            assert global_stats.rates == Stats(puts=3, hits=1, misses=3)

        def test_functools_cache_too(global_stats):
            geo.area("x"); geo.area("x")
            assert global_stats.area == Stats(puts=1, hits=1, misses=1)

        def test_reset_empties_and_zeroes(patch_caches, global_stats):
            geo.lookup("a")
            patch_caches.reset()
            assert geo.lookup.cache_info().currsize == 0
            geo.lookup("a")
            assert global_stats.lookup == Stats(puts=1, misses=1)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=7)


def test_stats_stay_readable_after_the_block_and_reach_the_report(
    pytester: pytest.Pytester,
) -> None:
    _app(pytester, ENTRIES)
    pytester.makepyfile(
        """
        import geo
        from pytest_cachemock import PatchCaches, Stats

        def test_after_the_block():
            with PatchCaches() as patch:
                geo.lookup("a"); geo.lookup("a")
            assert geo.lookup.cache_info().currsize == 0      # emptied on the way out
            assert patch.stats()["lookup"] == Stats(puts=1, hits=1, misses=1)

        def test_reported(global_stats):
            geo.lookup("b"); geo.lookup("b"); geo.lookup("c")
        """
    )
    result = pytester.runpytest("--cachemock-report")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*cachemock: cache stats per kind*", "lookup *2 *3 *2 *3 *0"])


def test_a_failing_test_shows_the_kind_in_its_report_section(pytester: pytest.Pytester) -> None:
    _app(pytester, ENTRIES)
    pytester.makepyfile(
        """
        import geo
        from pytest_cachemock import Stats

        def test_wrong(global_stats):
            geo.lookup("a")
            assert global_stats.lookup == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*global_stats.lookup == Stats(puts=1, hits=1, misses=1) failed*",
            "*hits: expected 1, got 0*",
        ]
    )


def test_a_whole_module_late_import_and_a_method(pytester: pytest.Pytester) -> None:
    _app(pytester, "cachemock_functools =\n    lateapp\n    atlas=geo:Atlas.page\n")
    pytester.makepyfile(
        """
        import sys
        from pytest_cachemock import Stats, global_stats

        def test_its_functions_are_kinds(global_stats):
            import lateapp
            lateapp.first(1); lateapp.first(1); lateapp.second(2)
            assert global_stats.first == Stats(puts=1, hits=1, misses=1)
            assert global_stats.second == Stats(puts=1, misses=1)
            assert "lookup" not in list(global_stats)     # imported from geo, not lateapp's

        def test_the_method_cache_is_one_for_every_instance(global_stats):
            import geo
            geo.Atlas().page(1); geo.Atlas().page(2)
            assert global_stats.atlas == Stats(puts=2, misses=2)

        def test_emptied_again(global_stats):
            import geo, lateapp
            assert lateapp.first.cache_info().currsize == 0
            assert geo.Atlas.page.cache_info().currsize == 0
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_a_module_imported_only_inside_a_test_is_found(pytester: pytest.Pytester) -> None:
    # Nothing imports lateapp before the test: the plugin finds its caches when it installs.
    _app(pytester, "cachemock_functools =\n    late=lateapp\n")
    pytester.makepyfile(
        """
        import sys
        from pytest_cachemock import Stats

        def test_late(global_stats):
            import lateapp
            lateapp.second(1)
            assert global_stats.late_second == Stats(puts=1, misses=1)
            assert global_stats.late_first == Stats()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_hook_form(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(geo=GEO)
    pytester.syspathinsert()
    pytester.makeconftest(
        """
        def pytest_cachemock_register_kinds(registry):
            registry.load_profile("functools", entries=["geo:lookup", "where=geo:area"])
        """
    )
    pytester.makepyfile(
        """
        import geo
        from pytest_cachemock import Stats

        def test_hook(global_stats):
            geo.lookup("a"); geo.area("a"); geo.area("a")
            assert global_stats.lookup == Stats(puts=1, misses=1)
            assert global_stats.where == Stats(puts=1, hits=1, misses=1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_autouse_empties_before_the_tests_own_fixtures(pytester: pytest.Pytester) -> None:
    _app(pytester, ENTRIES + "cachemock_autouse = true\n")
    pytester.makepyfile(
        """
        import pytest
        import geo
        from pytest_cachemock import Stats, global_stats

        @pytest.fixture
        def warm():
            # Runs after the plugin emptied the caches: what it fills stays, and counts.
            assert geo.lookup.cache_info().currsize == 0
            geo.lookup("paris")

        def test_one(warm):
            geo.lookup("paris")
            assert global_stats.lookup == Stats(puts=1, hits=1, misses=1)
            geo.lookup("rome")

        def test_two_starts_empty_without_asking():
            assert geo.lookup.cache_info().currsize == 0
            assert global_stats.lookup == Stats()
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_seed_and_fail_say_why_not(pytester: pytest.Pytester) -> None:
    _app(pytester, ENTRIES)
    pytester.makepyfile(
        """
        import pytest
        from pytest_cachemock import UserError

        def test_seed(patch_caches):
            with pytest.raises(UserError) as info:
                patch_caches.seed("lookup", {"a": 1})
            assert str(info.value) == (
                "seed('lookup', ...): geo.lookup is an lru_cache function, and functools has "
                "no way to store a result without calling the function: call it in the test "
                "to fill its cache"
            )

        def test_fail(patch_caches):
            with pytest.raises(UserError) as info:
                patch_caches.fail("lookup")
            assert str(info.value) == (
                "fail('lookup', ...): geo.lookup is an lru_cache function, whose lookups run "
                "inside functools and cannot be made to fail: make the function itself raise "
                "(monkeypatch what it calls)"
            )
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


# -- configuration errors: once, at start-up ------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "nosuchmod:lookup",
            "ini option cachemock_functools, entry 'nosuchmod:lookup': cannot import module "
            "'nosuchmod' (No module named 'nosuchmod')",
        ),
        (
            "geo:lookupp",
            "ini option cachemock_functools, entry 'geo:lookupp': geo has no attribute 'lookupp'",
        ),
        (
            "geo:plain",
            "ini option cachemock_functools, entry 'geo:plain': geo:plain is not an lru_cache "
            "or cache function: it is a function without an lru_cache: decorate it with "
            "@functools.lru_cache or @functools.cache (outermost, or name the decorated "
            "function itself)",
        ),
        (
            "geo:calls",
            "ini option cachemock_functools, entry 'geo:calls': geo:calls is not an lru_cache "
            "or cache function: it holds a list; name a function decorated with "
            "@functools.lru_cache",
        ),
        (
            "geo:lookup\n    lateapp:first\n    geo:lookup",
            "ini option cachemock_functools, entry 'geo:lookup': cache kind 'lookup' is already "
            "declared by ini option cachemock_functools, entry 'geo:lookup'; give one of them "
            "an alias: 'other_name=geo:lookup'",
        ),
        (
            "nosuchmod",
            "ini option cachemock_functools, entry 'nosuchmod': cannot find module 'nosuchmod'",
        ),
        (
            "geo: lookup",
            "ini option cachemock_functools, entry 'geo: lookup': cannot read the entry "
            "'geo: lookup'; write 'package.module:name', 'alias=package.module:name' or a "
            "whole module 'package.module'",
        ),
        (
            "1x=geo:lookup",
            "ini option cachemock_functools, entry '1x=geo:lookup': alias = '1x' is not a "
            "valid cache kind name: use a Python identifier such as 'sessions' or 'fx_graph' "
            "(it becomes an attribute of global_stats)",
        ),
    ],
    ids=[
        "no-module",
        "no-attribute",
        "not-cached",
        "not-a-function",
        "twice",
        "no-module-whole",
        "unreadable",
        "bad-alias",
    ],
)
def test_a_bad_entry_stops_the_run_at_start_up(
    pytester: pytest.Pytester, lines: str, message: str
) -> None:
    _app(pytester, f"cachemock_functools =\n    {lines}\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: cachemock: {message}"])
    assert "test_never_runs" not in result.stdout.str()


def test_entries_without_the_profile_say_how_to_load_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(geo=GEO)
    pytester.syspathinsert()
    pytester.makeini("[pytest]\ncachemock_functools =\n    geo:lookup\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_functools lists caches, but the "
            "'functools' profile is not loaded; add it: cachemock_profiles = functools"
        ]
    )


def test_a_module_whose_names_collide_is_refused_when_the_tests_are_collected(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(other="import functools\n\n@functools.cache\ndef first(x):\n    return x\n")
    _app(pytester, "cachemock_functools =\n    lateapp\n    other\n")
    pytester.makepyfile("def test_uses(patch_caches): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_functools, entry 'other': cache kind "
            "'first' is already declared by ini option cachemock_functools, entry 'lateapp', "
            "lateapp:first; give the module an alias, which prefixes its kinds: "
            "'alias=other' makes 'alias_first'"
        ]
    )


def test_a_module_with_no_cache_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(empty="def f(): pass\n")
    _app(pytester, "cachemock_functools =\n    empty\n")
    pytester.makepyfile("def test_uses(patch_caches): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_functools, entry 'empty': module 'empty' "
            "defines no lru_cache or cache function at its top level (methods are named one "
            "by one: 'module:Class.method')"
        ]
    )


# -- outside pytest: a unittest run reads the same configuration --------------------------

UNIT = """
import unittest
import geo
from pytest_cachemock import PatchCaches, Stats

class TestLookup(unittest.TestCase):
    def test_counted(self):
        geo.lookup("before")
        with PatchCaches() as patch:
            self.assertEqual(geo.lookup.cache_info().currsize, 0)
            geo.lookup("a"); geo.lookup("a")
        self.assertEqual(patch.stats()["lookup"], Stats(puts=1, hits=1, misses=1))
        self.assertEqual(patch.stats()["first"], Stats())
"""


def _unittest(cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CACHEMOCK_CONFIGFILE"}
    root = str(Path(pytest_cachemock.__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "unittest", "test_unit"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**environ, "PYTHONPATH": os.pathsep.join([str(cwd), root])},
    )


def test_unittest_reads_the_entries_of_the_config_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(geo=GEO, lateapp=LATE, test_unit=UNIT)
    (pytester.path / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'cachemock_profiles = ["functools"]\n'
        'cachemock_functools = ["geo:lookup", "lateapp"]\n'
    )
    proc = _unittest(pytester.path)
    assert proc.returncode == 0, proc.stderr
    assert "Ran 1 test" in proc.stderr


def test_unittest_refuses_entries_without_the_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(geo=GEO, test_unit=UNIT)
    (pytester.path / "pytest.ini").write_text("[pytest]\ncachemock_functools =\n    geo:lookup\n")
    proc = _unittest(pytester.path)
    assert proc.returncode != 0
    assert (
        f"{pytester.path / 'pytest.ini'} [pytest] cachemock_functools lists caches, but the "
        "'functools' profile is not loaded; add it: cachemock_profiles = functools"
    ) in proc.stderr
