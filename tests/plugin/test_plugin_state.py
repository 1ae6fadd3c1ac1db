"""The plugin's state is per session: a nested session (pytester's in-process run) in a user's
suite leaves the outer session's kinds, switches and summary as they were."""

from __future__ import annotations

import pytest
from _plugin_app import PRICES_INI, make_app

# The way a user hits it: a suite whose ini declares a kind, a test that runs pytester's
# in-process pytest (a plugin's own test suite does that), then a test that uses the kind.
NESTED_THEN_KIND = """
import shopapp
from pytest_cachemock import MockBackend, PatchCaches, Stats

INNER = '''
def test_inner(patch_caches):
    pass
'''


def test_1_runs_a_nested_session(pytester):
    pytester.makeini("[pytest]\\ncachemock_kinds =\\n    inner_kind switch=env:INNER_ONLY\\n")
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_2_the_ini_kind_is_still_known_and_mocked(patch_caches, global_stats):
    assert shopapp.USE_REAL_PRICES is False            # its switch is off while mocked
    assert isinstance(shopapp.PriceClient.backend, MockBackend)
    assert "prices" in global_stats and "inner_kind" not in global_stats
    patch_caches.enable("prices")                      # a known kind
    assert shopapp.USE_REAL_PRICES is True


def test_3_a_bare_patch_caches_sees_the_session_kinds():
    with PatchCaches(switches="off") as patch:
        assert "prices" in patch.stats()
        assert shopapp.USE_REAL_PRICES is False
    assert shopapp.USE_REAL_PRICES is True
"""


# Two sessions that end in another order than they began (a plugin's test that configures
# two pytest sessions with pytester and closes the first one first). A save-and-restore of
# module globals puts back the wrong registry then; per-session state cannot.
OUT_OF_ORDER = """
import shopapp
from pytest_cachemock import MockBackend


def test_1_two_sessions_end_out_of_order(pytester):
    first = pytester.parseconfigure()
    second = pytester.parseconfigure()
    first._ensure_unconfigure()
    second._ensure_unconfigure()


def test_2_the_ini_kind_is_still_known_and_mocked(patch_caches, global_stats):
    assert shopapp.USE_REAL_PRICES is False
    assert isinstance(shopapp.PriceClient.backend, MockBackend)
    assert "prices" in global_stats
"""


@pytest.mark.parametrize(
    ("source", "tests"),
    [
        pytest.param(NESTED_THEN_KIND, 3, id="a nested in-process run"),
        pytest.param(OUT_OF_ORDER, 2, id="two sessions ending out of order"),
    ],
)
def test_inner_sessions_leave_the_outer_ini_kinds(
    pytester: pytest.Pytester, source: str, tests: int
) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_nested=source)
    result = pytester.runpytest("-p", "pytester", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)


SCRIPT = """
from pytest_cachemock import MockBackend, PatchCaches, RemoteCache, Stats, global_stats
from pytest_cachemock import patching
import shopapp

# Outside pytest: the process's registry (discovered kinds, and kinds added to it).
patching.default_registry.add(
    "prices", targets=[(shopapp.PriceClient, "backend")], switches=[(shopapp, "USE_REAL_PRICES")]
)
with PatchCaches(switches="off") as patch:
    assert isinstance(shopapp.PriceClient.backend, MockBackend)
    assert shopapp.USE_REAL_PRICES is False
    shopapp.render("a")
    assert global_stats.pages == Stats(puts=1, misses=1)
    assert sorted(global_stats) == ["pages", "prices"]
assert shopapp.USE_REAL_PRICES is True
print("ok")
"""


def test_patch_caches_without_pytest_uses_the_process_registry(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(script=SCRIPT)
    result = pytester.runpython(pytester.path / "script.py")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["ok"])
