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


def test_a_nested_session_leaves_the_outer_ini_kinds(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_nested=NESTED_THEN_KIND)
    result = pytester.runpytest("-p", "pytester", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
