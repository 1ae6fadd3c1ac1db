"""Restoration holds whatever a test does to a target or a switch, in any stop order.

Each pytester session below ends with a test that checks every target and switch holds its
pre-plugin value again: the real backends, the flag on, the environment as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from _plugin_app import PRICES_INI, RESTORED_CHECK, SHOPAPP, make_app

from pytest_cachemock import MemoryBackend, MockBackend, PatchCaches
from pytest_cachemock.kinds import Registry, Switch

CHECK_RESTORED = RESTORED_CHECK + "\nOTHER = MemoryBackend()\n"


# -- 1. whatever the test did to a target or a switch -------------------------------------------


MONKEYPATCHED = (
    CHECK_RESTORED
    + """

def change_everything(monkeypatch):
    monkeypatch.setattr(shopapp.Pages, "backend_override_cls", lambda: OTHER)
    monkeypatch.setattr(shopapp.PriceClient, "backend", OTHER)
    monkeypatch.setattr(shopapp, "USE_REAL_PRICES", "set by the test")
    monkeypatch.setenv("SHOP_PRICES", "set by the test")


def test_01_monkeypatch_set_up_before_patch_caches(monkeypatch, patch_caches):
    change_everything(monkeypatch)

def test_02_restored():
    check_restored()

@pytest.mark.cachemock()                 # the marker's patch_caches comes after monkeypatch
def test_03_marker(monkeypatch):
    change_everything(monkeypatch)

def test_04_restored():
    check_restored()

def test_05_monkeypatch_after(patch_caches, monkeypatch):
    change_everything(monkeypatch)

def test_06_restored():
    check_restored()

def test_07_delattr_and_delenv(monkeypatch, patch_caches):
    monkeypatch.delattr(shopapp.Pages, "backend_override_cls")   # our mock: gone
    monkeypatch.delenv("SHOP_PRICES", raising=False)
    monkeypatch.setattr(shopapp, "USE_REAL_PRICES", True)

def test_08_restored():
    check_restored()

def test_09_set_directly(patch_caches):
    shopapp.Pages.backend_override_cls = lambda: OTHER
    shopapp.PriceClient.backend = OTHER
    shopapp.USE_REAL_PRICES = "set by the test"
    os.environ["SHOP_PRICES"] = "set by the test"

def test_10_restored():
    check_restored()

def test_11_fails(monkeypatch, patch_caches):
    change_everything(monkeypatch)
    raise AssertionError("the test failed")

def test_12_restored():
    check_restored()

@pytest.fixture
def broken(monkeypatch, patch_caches):
    change_everything(monkeypatch)
    raise RuntimeError("setup broke")

def test_13_error_in_setup(broken):
    pass

def test_14_restored():
    check_restored()

@pytest.fixture
def changes_then_breaks_at_teardown(monkeypatch, patch_caches):
    change_everything(monkeypatch)
    yield
    raise RuntimeError("teardown broke")

def test_15_error_at_teardown(changes_then_breaks_at_teardown):
    pass

def test_16_restored():
    check_restored()
"""
)


def test_monkeypatched_targets_and_switches_are_restored(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_monkeypatched=MONKEYPATCHED)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=14, failed=1, errors=2)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_13_error_in_setup*"])
    result.stdout.no_fnmatch_line("*test_*_restored FAILED*")


FIXTURE_VALUES = """
import os
import pytest
import shopapp


@pytest.fixture
def env_on(monkeypatch):           # set up before patch_caches, undone after it
    monkeypatch.setenv("SHOP_PRICES", "fixture")
    monkeypatch.setattr(shopapp, "USE_REAL_PRICES", "fixture")


def test_1_fixture_values_seen_before_the_plugin(env_on, patch_caches):
    assert "SHOP_PRICES" not in os.environ
    assert shopapp.USE_REAL_PRICES is False

def test_2_the_fixture_undid_its_own_values():
    # The fixture's teardown put back what it found; the plugin must not bring "fixture" back.
    assert "SHOP_PRICES" not in os.environ
    assert shopapp.USE_REAL_PRICES is True

@pytest.fixture
def leaves_a_value():              # set up before patch_caches, never undone
    shopapp.USE_REAL_PRICES = "left"
    yield

def test_3_a_value_left_by_a_fixture(leaves_a_value, patch_caches):
    assert shopapp.USE_REAL_PRICES is False

def test_4_is_left():
    assert shopapp.USE_REAL_PRICES == "left"
"""


def test_values_of_fixtures_around_the_plugin_are_kept(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_fixture_values=FIXTURE_VALUES)
    pytester.runpytest().assert_outcomes(passed=4)


@pytest.mark.slow
def test_monkeypatched_targets_restored_in_a_subprocess(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_monkeypatched=MONKEYPATCHED)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=14, failed=1, errors=2)


# -- 2. PatchCaches stopped in any order ---------------------------------------------------------


class _Spots:
    backend: Any = MemoryBackend()
    flag: Any = "orig"


class _CallbackSwitch(Switch):
    """A switch whose undo is a callable (as the torch profile's are), over a dict."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.store = store
        self.origin = "test"

    def set(self, on: bool) -> Any:
        old = self.store["value"]
        self.store["value"] = on

        def undo() -> None:
            self.store["value"] = old

        return undo


ENV = "CACHEMOCK_TEST_ORDER"


@pytest.fixture
def spots(monkeypatch: pytest.MonkeyPatch) -> tuple[Registry, dict[str, Any]]:
    monkeypatch.setenv(ENV, "orig")
    monkeypatch.setattr(_Spots, "backend", MemoryBackend())
    monkeypatch.setattr(_Spots, "flag", "orig")
    store = {"value": "orig"}
    registry = Registry()
    registry.add(
        "order_one",
        targets=[(_Spots, "backend")],
        switches=[(_Spots, "flag"), f"env:{ENV}", _CallbackSwitch(store)],
        origin="test",
    )
    return registry, store


def _state(store: dict[str, Any]) -> tuple[Any, ...]:
    return (type(_Spots.backend).__name__, _Spots.flag, os.environ.get(ENV), store["value"])


ORIGINAL = ("MemoryBackend", "orig", "orig", "orig")
OFF = ("MockBackend", False, None, False)
ON = ("MockBackend", True, "1", True)


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_interleaved_stops_restore_everything(
    spots: tuple[Registry, dict[str, Any]], order: str
) -> None:
    registry, store = spots
    real = _Spots.backend
    a = PatchCaches(registry=registry, switches="off").start()
    assert _state(store) == OFF
    b = PatchCaches(registry=registry, enable=["order_one"]).start()
    assert _state(store) == ON
    first, second = (a, b) if order == "ab" else (b, a)
    first.stop()
    # The one still running keeps its values: b's switches on, a's off.
    assert _state(store) == (OFF if first is b else ON)
    assert isinstance(_Spots.backend, MockBackend)
    second.stop()
    assert _state(store) == ORIGINAL
    assert _Spots.backend is real


def test_stop_from_the_middle_of_three(spots: tuple[Registry, dict[str, Any]]) -> None:
    registry, store = spots
    real = _Spots.backend
    a = PatchCaches(registry=registry, switches="off").start()
    b = PatchCaches(registry=registry, enable=["order_one"]).start()
    c = PatchCaches(registry=registry, switches="off").start()
    b.stop()
    assert _state(store) == OFF  # c's
    c.stop()
    assert _state(store) == OFF  # a's
    a.enable("order_one")
    assert _state(store) == ON
    a.stop()
    assert _state(store) == ORIGINAL
    assert _Spots.backend is real


def test_enable_on_a_lower_patch_then_out_of_order_stops(
    spots: tuple[Registry, dict[str, Any]],
) -> None:
    registry, store = spots
    a = PatchCaches(registry=registry, switches="off").start()
    b = PatchCaches(registry=registry, switches="off").start()
    a.enable("order_one")  # written while b is the newest
    assert _state(store) == ON
    b.stop()
    assert _state(store) == ON  # a's enable stays
    a.stop()
    assert _state(store) == ORIGINAL


def test_stop_twice_and_stop_without_start(spots: tuple[Registry, dict[str, Any]]) -> None:
    registry, store = spots
    never = PatchCaches(registry=registry, switches="off")
    never.stop()  # nothing to do
    assert _state(store) == ORIGINAL
    a = PatchCaches(registry=registry, switches="off").start()
    b = PatchCaches(registry=registry, switches="off").start()
    a.stop()
    a.stop()  # the second stop does nothing: b keeps its mocks
    assert _state(store) == OFF
    b.stop()
    b.stop()
    assert _state(store) == ORIGINAL
    # A stopped PatchCaches starts again, newest on top.
    with b:
        assert _state(store) == OFF
    assert _state(store) == ORIGINAL


def test_classmethod_setup_interleaved_with_an_instance(
    spots: tuple[Registry, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_cachemock import _state as live

    registry, store = spots
    monkeypatch.setattr(live.current(), "registry", registry)
    PatchCaches.setUp()
    patch = PatchCaches(enable=["order_one"]).start()
    assert _state(store) == ON
    PatchCaches.tearDown()  # the setUp's flags, under the running PatchCaches
    assert _state(store) == ON
    patch.stop()
    assert _state(store) == ORIGINAL


# -- 3. unittest: a setUp that fails after PatchCaches.setUp() -----------------------------------

BROKEN_SETUP = """
import os
import unittest

import shopapp
from pytest_cachemock import PatchCaches
{declare}

class CacheMockTestCase(unittest.TestCase):
    # The mixin recipe of docs/plugin.md.
    enable = ()

    def setUp(self):
        super().setUp()
        self.caches = PatchCaches(enable=self.enable, switches="off").start()
        self.addCleanup(self.caches.stop)


class TestA1DocumentedPattern(unittest.TestCase):
    def setUp(self):
        super().setUp()
        {setup_call}
        raise RuntimeError("setUp broke after PatchCaches.setUp()")

    def tearDown(self):                   # unittest skips it: setUp raised
        PatchCaches.tearDown()
        super().tearDown()

    def test_never_runs(self):
        pass


class TestA2Mixin(CacheMockTestCase):
    def setUp(self):
        super().setUp()
        raise RuntimeError("setUp broke after the mixin's setUp")

    def test_never_runs(self):
        pass


class TestB1Restored(unittest.TestCase):
    def test_switches_and_targets_are_back(self):
        self.assertIs(shopapp.USE_REAL_PRICES, True)
        self.assertEqual(os.environ.get("SHOP_PRICES"), "real")
        self.assertIs(shopapp.pages.backend, shopapp.pages.real_backend)
        self.assertIsNone(shopapp.Pages.backend_override_cls)
"""

# Under plain unittest there is no ini file: the module declares the prices kind itself.
DECLARE = """
from pytest_cachemock import patching
patching.default_registry.add(
    "prices",
    targets=[(shopapp.PriceClient, "backend")],
    switches=[(shopapp, "USE_REAL_PRICES"), "env:SHOP_PRICES"],
    origin="test module",
)
"""

SETUP_CALLS = {
    "seed": "PatchCaches.setUp()",  # with PatchCaches.tearDown() in tearDown, as the seed does
    "testcase": "PatchCaches.setUp(self)",
    "cleanup": "PatchCaches.setUp(); self.addCleanup(PatchCaches.tearDown)",
}


@pytest.mark.parametrize("setup", sorted(SETUP_CALLS))
def test_failing_setup_restores_switches_under_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setup: str
) -> None:
    make_app(pytester, ini=PRICES_INI)
    monkeypatch.setenv("SHOP_PRICES", "real")
    pytester.makepyfile(test_broken=BROKEN_SETUP.format(declare="", setup_call=SETUP_CALLS[setup]))
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*TestB1Restored::test_switches_and_targets_are_back PASSED*"])


# Plain unittest has no plugin to close what a failed setUp left open: only the two patterns
# with a cleanup are safe there (docs/plugin.md says so).
@pytest.mark.slow
@pytest.mark.parametrize("setup", ["cleanup", "testcase"])
def test_failing_setup_restores_switches_under_unittest(
    pytester: pytest.Pytester, setup: str
) -> None:
    pytester.makepyfile(
        shopapp=SHOPAPP,
        test_broken=BROKEN_SETUP.format(declare=DECLARE, setup_call=SETUP_CALLS[setup]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_broken"],
        cwd=pytester.path,
        env={**os.environ, "SHOP_PRICES": "real"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Ran 3 tests" in proc.stderr, proc.stderr
    assert "FAILED (errors=2)" in proc.stderr, proc.stderr
    assert re.search(r"test_switches_and_targets_are_back \(.*\) \.\.\. ok", proc.stderr)


# -- 4. a nested session (pytester's inline run) -------------------------------------------------

NESTED = """
import shopapp
from pytest_cachemock import MockBackend, Stats

INNER = '''
def test_inner(patch_caches):
    patch_caches.enable()
'''


def test_1_runs_a_nested_session(pytester, patch_caches):
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    # The outer test's mocks and switches are still in place after the nested session.
    assert isinstance(shopapp.PriceClient.backend, MockBackend)
    assert shopapp.USE_REAL_PRICES is False


def test_2_the_outer_kinds_are_still_declared(patch_caches, global_stats):
    assert shopapp.USE_REAL_PRICES is False            # the ini kind's switch
    assert isinstance(shopapp.PriceClient.backend, MockBackend)
    assert global_stats.prices == Stats()


def test_3_restored():
    assert shopapp.USE_REAL_PRICES is True
    assert not isinstance(shopapp.PriceClient.backend, MockBackend)
"""


def test_a_nested_session_keeps_the_outer_sessions_kinds(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_nested=NESTED)
    pytester.runpytest("-p", "pytester").assert_outcomes(passed=3)


def test_setup_wants_the_running_testcase() -> None:
    with pytest.raises(TypeError, match=r"testcase is the running unittest.TestCase .*got 42"):
        PatchCaches.setUp(42)


NESTED_REPORT = """
import shopapp

INNER = '''
import shopapp

def test_inner(patch_caches):
    shopapp.render("inner")
'''


def test_1_runs_a_nested_session(pytester):
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_2_outer(patch_caches):
    shopapp.render("outer")
"""


def test_a_nested_session_is_not_in_the_outer_summary(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(test_nested=NESTED_REPORT)
    result = pytester.runpytest("-p", "pytester", "--cachemock-report")
    result.assert_outcomes(passed=2)
    # Only test_2_outer counts: one test, one put, one miss.
    result.stdout.fnmatch_lines(["pages *1 *1 *0 *1 *0"])


NESTED_SAME_ID = """
INNER = '''
def test_1(patch_caches):
    pass
'''


def test_1(pytester, patch_caches):
    pytester.makepyfile(test_nested=INNER)          # the same node id as this test
    inner = pytester.runpytest("-p", "no:cacheprovider", "--import-mode=importlib")
    inner.assert_outcomes(passed=1)
    assert False, "the outer test fails"
"""


def test_a_nested_session_keeps_the_outer_report_section(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(test_nested=NESTED_SAME_ID)
    result = pytester.runpytest("-p", "pytester")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- cachemock (call) -*"])


# -- 4. a switch whose flag is not an attribute ------------------------------------------------

SPOTS_CONFTEST = """
from pytest_cachemock.kinds import _MISSING, Spots, Switch

FLAGS = {"remote": "orig"}


class DictSpots(Spots):
    def read(self, name):
        return FLAGS.get(name, _MISSING)

    def write(self, name, state):
        if state is _MISSING:
            FLAGS.pop(name, None)
        else:
            FLAGS[name] = state


SPOTS = DictSpots()


class DictSwitch(Switch):
    origin = "conftest"

    def set(self, on):
        old = SPOTS.read("remote")
        SPOTS.write("remote", on)
        return (SPOTS, "remote", old, on)

    def spot(self):
        return (SPOTS, "remote")


def pytest_cachemock_register_kinds(registry):
    registry.add("remote", switches=[DictSwitch()], origin="conftest")
"""

SPOTS_TESTS = """
import pytest
from conftest import FLAGS


@pytest.fixture
def saver():
    saved = []
    yield saved
    for value in saved:
        FLAGS["remote"] = value  # writes back the plugin's False it saw


def test_1_saved_while_the_plugin_ran(saver, patch_caches):
    saver.append(FLAGS["remote"])
    FLAGS["remote"] = True

def test_2_restored():
    assert FLAGS["remote"] == "orig"

@pytest.fixture
def leaves_a_value():
    yield
    FLAGS["remote"] = "left by a fixture"

def test_3_a_value_left_on_purpose(leaves_a_value, patch_caches):
    pass

def test_4_is_kept():
    assert FLAGS["remote"] == "left by a fixture"
"""


def test_a_switch_kept_in_spots_is_checked_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SPOTS_CONFTEST)
    pytester.makepyfile(test_spots=SPOTS_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
