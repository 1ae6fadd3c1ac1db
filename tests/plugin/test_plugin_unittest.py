"""unittest suites written the seed's way (``PatchCaches.setUp``/``tearDown``, ``with
PatchCaches()``) and the documented mixin, under pytest and under plain unittest."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _plugin_app import PRICES_INI, SHOPAPP, make_app

SEED_STYLE = """
import os
import unittest

import shopapp
from pytest_cachemock import MockBackend, PatchCaches, Stats, global_stats


class TestSeedStyle(unittest.TestCase):
    def setUp(self):
        super().setUp()
        PatchCaches.setUp()

    def tearDown(self):
        super().tearDown()
        PatchCaches.tearDown()

    def test_stats_after_the_block(self):
        with PatchCaches():
            self.assertIsInstance(shopapp.pages.backend, MockBackend)
            shopapp.render("home")
            shopapp.render("home")
        self.assertIs(shopapp.pages.backend, shopapp.pages.real_backend)
        global_stats.report()
        self.assertEqual(global_stats.pages, Stats(1, 1, 1))
        self.assertEqual(global_stats.pages.num_get_hit, 1)
        self.assertEqual(list(global_stats.pages.cache), ["pages::home:v1"])

    def test_each_block_starts_empty(self):
        with PatchCaches():
            shopapp.render("home")
        self.assertEqual(global_stats.pages, Stats(1, 0, 1))


class CacheMockTestCase(unittest.TestCase):
    \"\"\"The mixin recipe of docs/plugin.md: mocks for the whole test, stopped by a cleanup.\"\"\"

    enable = ()

    def setUp(self):
        super().setUp()
        self.caches = PatchCaches(enable=self.enable, switches="off").start()
        self.addCleanup(self.caches.stop)


class TestMixin(CacheMockTestCase):
    def test_counts(self):
        shopapp.render("a")
        self.assertEqual(self.caches.stats()["pages"], Stats(puts=1, misses=1))

    def test_failing_test_still_restores(self):
        shopapp.render("a")
        self.fail("on purpose")



def test_restored_after_the_testcases():  # pytest runs it last; unittest does not collect it
    assert shopapp.pages.backend is shopapp.pages.real_backend
    assert shopapp.Pages.backend_override_cls is None
"""

SWITCHES = """
import unittest

import shopapp
from pytest_cachemock import PatchCaches


class TestSwitches(unittest.TestCase):
    def setUp(self):
        PatchCaches.setUp()

    def tearDown(self):
        PatchCaches.tearDown()

    def test_off_inside(self):
        self.assertIs(shopapp.USE_REAL_PRICES, False)
        with PatchCaches(enable=["prices"]):
            self.assertIs(shopapp.USE_REAL_PRICES, True)
        self.assertIs(shopapp.USE_REAL_PRICES, False)


def test_back_on_after_the_class():
    assert shopapp.USE_REAL_PRICES is True
"""


def test_seed_style_testcase_under_pytest(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(test_seed_style=SEED_STYLE, test_switches=SWITCHES)
    result = pytester.runpytest()
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        ["*_ TestMixin.test_failing_test_still_restores _*", "E*AssertionError: on purpose"]
    )


def test_seed_style_testcase_under_unittest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shopapp=SHOPAPP, test_seed_style=SEED_STYLE)
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_seed_style"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Ran 4 tests" in proc.stderr
    assert "FAILED (failures=1)" in proc.stderr
    assert "test_failing_test_still_restores" in proc.stderr
    # global_stats.report() wrote the seed's report to stderr.
    assert "  pages  puts=1, hits=1, misses=1" in proc.stderr
