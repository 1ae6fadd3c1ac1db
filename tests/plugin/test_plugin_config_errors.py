"""Configuration mistakes as a user makes them, each a usage error before any test runs."""

from __future__ import annotations

import pytest
from _plugin_app import make_app

# -- cachemock_autouse ---------------------------------------------------------------------------


def test_autouse_that_is_not_a_boolean_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncachemock_autouse = maybe\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_autouse = 'maybe' is not a boolean; "
            "write true or false (also accepted, in any case: yes/no, on/off, 1/0, y/n, t/f)"
        ]
    )
    assert "test_never_runs" not in result.stdout.str()


def test_autouse_given_as_yes_still_applies_the_plugin(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeini("[pytest]\ncachemock_autouse = Yes\n")
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import MockBackend

        def test_mocked():
            assert isinstance(shopapp.pages.backend, MockBackend)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


# -- a switch that is not a flag -----------------------------------------------------------------

_NOT_A_FLAG = (
    "holds a MemoryBackend, not a flag; a switch is an attribute holding a bool (or None, an "
    "int or a str) ('package.module:obj.attr'), or an environment variable ('env:NAME'); a "
    "backend goes in target=, not switch="
)


def test_ini_switch_naming_a_backend_is_refused(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    line = "prices switch=shopapp:PriceClient.backend"
    pytester.makeini(f"[pytest]\ncachemock_kinds =\n    {line}\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: cachemock: ini option cachemock_kinds, line 1 ({line!r}): "
            f"switch 'shopapp:PriceClient.backend' {_NOT_A_FLAG}"
        ]
    )
    assert "test_never_runs" not in result.stdout.str()


def test_hook_switch_pair_naming_a_backend_is_refused(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeconftest(
        """
        import shopapp

        def pytest_cachemock_register_kinds(registry):
            registry.add("prices", switches=[(shopapp.PriceClient, "backend")])
        """
    )
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: hook pytest_cachemock_register_kinds in *conftest.py:*: "
            f"switch shopapp.PriceClient.backend {_NOT_A_FLAG}"
        ]
    )
