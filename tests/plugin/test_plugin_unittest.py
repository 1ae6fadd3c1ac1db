"""unittest suites written the seed's way (``PatchCaches.setUp``/``tearDown``, ``with
PatchCaches()``) and the documented mixin, under pytest and under plain unittest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# -- kinds from the pytest configuration file, under plain unittest ----------------------------

PRICES_LINE = (
    "prices target=shopapp:PriceClient.backend switch=shopapp:USE_REAL_PRICES "
    "switch=env:SHOP_PRICES"
)

# The same kind declared in each file pytest reads, as a user writes it there.
CONFIG_FILES = {
    "pytest.ini": f"[pytest]\ncachemock_kinds =\n    {PRICES_LINE}\n",
    "pyproject.toml": (
        f'[project]\nname = "shop"\n\n[tool.pytest.ini_options]\ncachemock_kinds = """\n'
        f'{PRICES_LINE}\n"""\n'
    ),
    "pyproject.toml (tool.pytest)": f'[tool.pytest]\ncachemock_kinds = ["{PRICES_LINE}"]\n',
    "tox.ini": f"[tox]\nenvlist = py\n\n[pytest]\ncachemock_kinds =\n    {PRICES_LINE}\n",
    "setup.cfg": f"[metadata]\nname = x\n\n[tool:pytest]\ncachemock_kinds =\n    {PRICES_LINE}\n",
}

PRICES_TESTCASE = """
import unittest

import shopapp
from pytest_cachemock import MockBackend, PatchCaches, Stats, global_stats
from pytest_cachemock._state import current


class TestPrices(unittest.TestCase):
    def setUp(self):
        PatchCaches.setUp(self)

    def test_prices_is_mocked(self):
        with PatchCaches(enable=["prices"]):
            self.assertIsInstance(shopapp.PriceClient.backend, MockBackend)
            shopapp.price("mug")
            shopapp.price("mug")
        self.assertIs(shopapp.USE_REAL_PRICES, False)  # turned off by PatchCaches.setUp
        self.assertEqual(global_stats.prices, Stats(puts=1, hits=1, misses=1))
        print("ORIGIN", current().registry.declared()["prices"].origin)
"""


def run_unittest(
    cwd: Path, *args: str, app: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m unittest ARGS`` in ``cwd``, with ``app`` (shopapp's folder) importable."""
    environ = {k: v for k, v in os.environ.items() if k != "CACHEMOCK_CONFIGFILE"}
    pythonpath = [str(app or cwd), *filter(None, [environ.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, "-m", "unittest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**environ, "PYTHONPATH": os.pathsep.join(pythonpath), **env},
    )


@pytest.mark.parametrize("config", list(CONFIG_FILES))
def test_unittest_reads_the_kinds_of_the_pytest_config_file(
    pytester: pytest.Pytester, config: str
) -> None:
    filename = config.split()[0]
    pytester.makepyfile(shopapp=SHOPAPP, test_prices=PRICES_TESTCASE)
    (pytester.path / filename).write_text(CONFIG_FILES[config])
    proc = run_unittest(pytester.path, "test_prices")
    assert proc.returncode == 0, proc.stderr
    assert "Ran 1 test" in proc.stderr
    section = {"pytest.ini": "[pytest]", "tox.ini": "[pytest]", "setup.cfg": "[tool:pytest]"}
    where = section.get(config, "[tool.pytest]" if "(" in config else "[tool.pytest.ini_options]")
    path = pytester.path / filename
    assert f"ORIGIN {path} {where} cachemock_kinds, line 1 ('prices target=" in proc.stdout


def test_unittest_finds_the_config_file_upward_the_first_one_wins(
    pytester: pytest.Pytester,
) -> None:
    # As pytest does: from the current directory upward; in a directory, pytest.ini before
    # pyproject.toml before tox.ini before setup.cfg; a file without a pytest section is passed.
    pytester.makepyfile(shopapp=SHOPAPP)
    sub = pytester.path / "sub" / "deeper"
    sub.mkdir(parents=True)
    (sub / "test_prices.py").write_text(PRICES_TESTCASE)
    (sub / "setup.cfg").write_text("[metadata]\nname = other\n")  # no [tool:pytest]: passed
    (pytester.path / "sub" / "tox.ini").write_text("[tox]\nenvlist = py\n")  # no [pytest]
    (pytester.path / "pyproject.toml").write_text(CONFIG_FILES["pyproject.toml"])
    (pytester.path / "setup.cfg").write_text("[tool:pytest]\ncachemock_kinds = bad line\n")
    proc = run_unittest(sub, "test_prices", app=pytester.path)
    assert proc.returncode == 0, proc.stderr
    assert f"ORIGIN {pytester.path / 'pyproject.toml'} [tool.pytest" in proc.stdout

    # A pytest.ini in the same directory comes first, even without the kind: prices is unknown.
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    proc = run_unittest(sub, "test_prices", app=pytester.path)
    assert proc.returncode != 0
    assert "unknown cache kind 'prices'" in proc.stderr


def test_unittest_config_file_env_var(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shopapp=SHOPAPP, test_prices=PRICES_TESTCASE)
    (pytester.path / "pyproject.toml").write_text(CONFIG_FILES["pyproject.toml"])
    proc = run_unittest(pytester.path, "test_prices", CACHEMOCK_CONFIGFILE="off")
    assert "unknown cache kind 'prices'" in proc.stderr
    elsewhere = pytester.path / "conf" / "cachemock.ini"
    elsewhere.parent.mkdir()
    elsewhere.write_text(CONFIG_FILES["pytest.ini"])
    proc = run_unittest(pytester.path, "test_prices", CACHEMOCK_CONFIGFILE=str(elsewhere))
    assert proc.returncode == 0, proc.stderr
    assert f"ORIGIN {elsewhere} [pytest] cachemock_kinds, line 1" in proc.stdout
    proc = run_unittest(pytester.path, "test_prices", CACHEMOCK_CONFIGFILE="missing.ini")
    assert proc.returncode != 0
    assert "CACHEMOCK_CONFIGFILE='missing.ini': no such file" in proc.stderr


def test_unittest_bad_kind_line_names_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shopapp=SHOPAPP, test_prices=PRICES_TESTCASE)
    (pytester.path / "setup.cfg").write_text(
        "[tool:pytest]\ncachemock_kinds =\n    prices target=shopapp:PriceClient.backend\n"
        "    pages targte=shopapp:Pages\n"
    )
    proc = run_unittest(pytester.path, "test_prices")
    assert proc.returncode != 0
    assert "KindConfigError" in proc.stderr
    assert (
        f"{pytester.path / 'setup.cfg'} [tool:pytest] cachemock_kinds, line 2 "
        "('pages targte=shopapp:Pages'): cannot read 'targte=shopapp:Pages'"
    ) in proc.stderr


def test_the_example_suite_unittest_file_runs_under_plain_unittest() -> None:
    # examples/pytest.ini declares prices; examples/tests/test_unittest_style.py enables it.
    examples = Path(__file__).resolve().parents[2] / "examples"
    proc = run_unittest(examples, "discover", "-s", "tests", "-p", "test_unittest_style.py")
    assert proc.returncode == 0, proc.stderr
    assert "Ran 3 tests" in proc.stderr


def test_under_pytest_the_session_reads_the_config_once(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    (pytester.path / "pyproject.toml").write_text(CONFIG_FILES["pyproject.toml"])
    pytester.makepyfile(
        test_prices="""
        from pytest_cachemock import _state

        def test_kinds_are_the_sessions(global_stats):
            kind = _state.current().registry.declared()["prices"]
            assert kind.origin.startswith("ini option cachemock_kinds, line 1 ")
            assert _state.PROCESS.registry.declared() == {}
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_unittest_kinds_declared_in_code_on_the_process_registry(
    pytester: pytest.Pytester,
) -> None:
    # The documented stand-in for the conftest hook, which unittest does not run: a package
    # __init__ (or the test module) adds the kind to the process registry.
    pytester.makepyfile(shopapp=SHOPAPP)
    pkg = pytester.path / "tests"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import shopapp\n"
        "from pytest_cachemock import PatchCaches\n\n"
        "PatchCaches().registry.add(\n"
        '    "prices",\n'
        "    targets=[(shopapp.PriceClient, 'backend')],\n"
        "    switches=[(shopapp, 'USE_REAL_PRICES'), 'env:SHOP_PRICES'],\n"
        ")\n"
    )
    (pkg / "test_prices.py").write_text(PRICES_TESTCASE)
    proc = run_unittest(pytester.path, "discover", "-s", "tests", "-t", ".")
    assert proc.returncode == 0, proc.stderr
    assert "ORIGIN Registry.add" in proc.stdout
