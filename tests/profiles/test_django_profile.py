"""The ``django`` profile: every alias of ``settings.CACHES`` is a kind ``django_<alias>``.

Each suite runs pytest in a subprocess on a small Django project (a settings module with a
LocMem alias, a second LocMem alias with a prefix and a timeout, a database alias whose table
does not exist, and a dummy alias) and an app module that binds cache objects at import time.
Django's settings are process-wide, so nothing here configures them in this process.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_cachemock import KindConfigError, PatchCaches, Registry, Stats

pytest.importorskip("django")

import pytest_cachemock.integrations.django as django_profile

HERE = Path(__file__).resolve().parent

SETTINGS = """
SECRET_KEY = "not secret"
USE_TZ = True
INSTALLED_APPS = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "sessions",
        "KEY_PREFIX": "s",
        "TIMEOUT": 60,
    },
    # Its table is never created: a call that reached the database would fail.
    "tables": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "no_such_table",
    },
    "off": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}
"""

SHOP = '''
from django.core.cache import cache, caches

pages = caches["default"]        # bound at import time: the real LocMemCache object
sessions = caches["sessions"]


def render(name):
    """Read-through page cache."""
    key = f"page:{name}"
    html = pages.get(key)
    if html is None:
        html = f"<h1>{name}</h1>"
        pages.set(key, html)
    return html


def login(user):
    sessions.set(f"user:{user}", {"user": user}, timeout=None)


def price(sku):
    """Through the default-cache proxy."""
    return cache.get_or_set(f"price:{sku}", lambda: len(sku) * 100)
'''

# Without pytest-django: the conftest configures the settings, then imports the app (whose
# cache objects exist before the plugin loads the profile) and puts a real entry in.
CONFTEST = """
from django.conf import settings

import djsettings

settings.configure(**{k: v for k, v in vars(djsettings).items() if k.isupper()})

import shop

shop.pages.set("page:home", "REAL")  # in the real cache: no mocked test may see it
"""

INI = "[pytest]\ncachemock_profiles = django\n"
NO_PYTEST_DJANGO = ("-p", "no:django", "-p", "no:cacheprovider")

# The same tests run without pytest-django and with it.
BASIC = """
import asyncio
import threading

import pytest
from django.core.cache import cache, caches
from django.db.utils import OperationalError

import shop
from pytest_cachemock import Stats
from pytest_cachemock.integrations.django import DjangoEntries
from pytest_cachemock.mock import current_store

REAL = type(shop.pages)
made_in_a_thread = []


def test_1_counts_per_alias(patch_caches, global_stats):
    assert type(shop.pages) is not REAL and isinstance(shop.pages, REAL)
    assert shop.render("home") == "<h1>home</h1>"     # a miss (not the real entry), a put
    assert shop.render("home") == "<h1>home</h1>"     # a hit
    shop.login("ann")
    assert global_stats.django_default == Stats(puts=1, hits=1, misses=1)
    assert global_stats.django_sessions == Stats(puts=1, hits=0, misses=0)
    assert global_stats.django_tables == Stats(0, 0, 0)
    assert dict(patch_caches.entries("django_sessions")) == {"s:1:user:ann": {"user": "ann"}}
    assert caches["default"] is shop.pages
    assert cache.get("page:home") == "<h1>home</h1>"  # the proxy: one more hit
    assert patch_caches.stats()["django_default"] == Stats(puts=1, hits=2, misses=1)


def test_2_the_next_test_starts_empty(patch_caches, global_stats):
    assert shop.pages.get("page:home") is None
    assert caches["sessions"].get("user:ann") is None
    assert global_stats.django_default == Stats(puts=0, hits=0, misses=1)
    assert global_stats.django_sessions == Stats(puts=0, hits=0, misses=1)


def test_3_database_and_dummy_aliases_are_in_memory(patch_caches, global_stats):
    tables, off = caches["tables"], caches["off"]
    tables.set("n", 1)
    assert tables.incr("n") == 2
    assert off.add("k", "v") is True and off.add("k", "w") is False
    assert off.get("k") == "v"
    assert global_stats.django_tables == Stats(puts=2, hits=1, misses=0)
    assert global_stats.django_off == Stats(puts=1, hits=2, misses=0)


def test_4_threads_and_new_objects(patch_caches, global_stats):
    def work():
        mine = caches["default"]                      # a new object, made in this thread
        made_in_a_thread.append(mine)
        mine.set("t", 1)
        assert shop.pages.get("t") == 1

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert made_in_a_thread[0] is not shop.pages
    assert type(made_in_a_thread[0]) is type(shop.pages)
    del caches["default"]                             # this thread makes a new one too
    assert caches["default"].get("t") == 1
    assert global_stats.django_default == Stats(puts=1, hits=2, misses=0)


def test_5_async_variants(patch_caches, global_stats):
    async def main():
        await cache.aset("a", 1)
        assert await cache.aget("a") == 1
        assert await cache.aget_or_set("b", 2) == 2
        assert await cache.aincr("a") == 2
        assert await cache.ahas_key("a")

    asyncio.run(main())
    assert global_stats.django_default == Stats(puts=3, hits=3, misses=1)


def test_6_seed_fail_and_reset(patch_caches, global_stats):
    assert isinstance(current_store().record("django_default").entries, DjangoEntries)
    patch_caches.seed("django_default", {":1:page:about": "<h1>seeded</h1>"})
    assert dict(global_stats.django_default.cache) == {":1:page:about": "<h1>seeded</h1>"}
    assert shop.render("about") == "<h1>seeded</h1>"
    assert global_stats.django_default == Stats(puts=0, hits=1, misses=0)
    patch_caches.fail("django_default", on="get", times=1)
    with pytest.raises(ConnectionError, match="injected failure on get of kind 'django_default'"):
        shop.render("x")
    assert shop.render("x") == "<h1>x</h1>"
    assert global_stats.django_default.errors == 1
    patch_caches.reset()
    assert dict(patch_caches.entries("django_default")) == {}
    assert global_stats.django_default == Stats(0, 0, 0)


def test_6b_a_nested_patch_caches_has_its_own_store(patch_caches, global_stats):
    from pytest_cachemock import PatchCaches

    shop.render("home")
    outer_class = type(shop.pages)
    with PatchCaches() as inner:
        assert shop.pages.get("page:home") is None        # the inner store is empty
        shop.login("bob")
        assert inner.stats()["django_sessions"] == Stats(puts=1, hits=0, misses=0)
    assert type(shop.pages) is outer_class                # still mocked for the outer one
    # This thread keeps the inner store until the next start (stats readable after a block).
    assert inner.stats()["django_default"] == Stats(puts=0, hits=0, misses=1)


def test_7_without_the_plugin_the_real_caches_are_back():
    assert type(shop.pages) is REAL
    assert shop.pages.get("page:home") == "REAL"
    assert caches["sessions"].get("user:ann") is None     # nothing leaked into the real one
    assert all(type(obj) is REAL for obj in made_in_a_thread)
    # The real database cache: no table (pytest-django: no database access outside django_db).
    with pytest.raises((OperationalError, RuntimeError)):
        caches["tables"].get("n")
"""


def _project(pytester: pytest.Pytester, conftest: str | None = CONFTEST, ini: str = INI) -> None:
    pytester.makepyfile(djsettings=SETTINGS, shop=SHOP)
    if conftest is not None:
        pytester.makeconftest(conftest)
    pytester.makeini(ini)


def _plugin_is_ours(pytester: pytest.Pytester) -> None:
    """The child imports this checkout's package (the one this suite tests)."""
    import pytest_cachemock

    pytester.makepyfile(
        test_0_which=f"""
        import pytest_cachemock

        def test_the_package_under_test_is_imported():
            assert pytest_cachemock.__file__ == {pytest_cachemock.__file__!r}
        """
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_cachemock

    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    root = str(Path(pytest_cachemock.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", root)


@pytest.mark.usefixtures("env")
def test_without_pytest_django(pytester: pytest.Pytester) -> None:
    _project(pytester)
    _plugin_is_ours(pytester)
    pytester.makepyfile(test_basic=BASIC)
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO, "-v")
    result.assert_outcomes(passed=9)


@pytest.mark.usefixtures("env")
def test_with_pytest_django(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_django")
    _project(
        pytester,
        conftest='import shop\n\nshop.pages.set("page:home", "REAL")\n',
        ini=INI + "DJANGO_SETTINGS_MODULE = djsettings\n",
    )
    _plugin_is_ours(pytester)
    pytester.makepyfile(
        test_basic=BASIC,
        test_django_fixtures="""
        import pytest
        from django.core.cache import caches
        from pytest_cachemock import Stats

        def test_settings_fixture_and_no_database_access(settings, patch_caches, global_stats):
            settings.DEBUG = True
            caches["tables"].set("k", 1)          # pytest-django blocks the database here
            assert caches["tables"].get("k") == 1
            assert global_stats.django_tables == Stats(puts=1, hits=1, misses=0)
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*django: version: 5.*settings: djsettings (from ini)*"])
    result.assert_outcomes(passed=10)


@pytest.mark.usefixtures("env")
def test_under_xdist_each_worker_has_its_own_store(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    _project(pytester)
    same = """
    import os
    from pytest_cachemock import Stats
    import shop

    def test_{n}_a(global_stats):
        assert shop.render("home") == "<h1>home</h1>"
        assert shop.render("home") == "<h1>home</h1>"
        assert global_stats.django_default == Stats(puts=1, hits=1, misses=1)
        print("worker", os.environ["PYTEST_XDIST_WORKER"])

    def test_{n}_b(global_stats):
        assert shop.pages.get("page:home") is None
        assert global_stats.django_default == Stats(puts=0, hits=0, misses=1)
    """
    pytester.makepyfile(test_one=same.format(n=1), test_two=same.format(n=2))
    result = pytester.runpytest_subprocess(
        *NO_PYTEST_DJANGO, "-n", "2", "--cachemock-report", "-rA"
    )
    result.assert_outcomes(passed=4)
    workers = set(result.stdout.str().split("worker ")[1:])
    assert len({w.split()[0] for w in workers}) == 2, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*= cachemock: cache stats per kind =*",
            "kind*tests*puts*hits*misses*errors",
            "django_default*4*2*2*4*0",
        ]
    )


@pytest.mark.usefixtures("env")
def test_a_failing_test_reports_the_django_kinds(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        """
        import shop

        def test_fails(patch_caches):
            shop.render("home")
            shop.login("ann")
            assert False
        """
    )
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- cachemock (call) -*",
            "*django_default*puts=1, hits=0, misses=1",
            "*django_sessions*puts=1, hits=0, misses=0",
            "*':1:page:home': '<h1>home</h1>'",
            "*'s:1:user:ann': {'user': 'ann'}",
        ]
    )


@pytest.mark.usefixtures("env")
def test_isolation_process_counts_a_thread_started_before_the_test(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester)
    pytester.makepyfile(
        """
        import queue
        import threading

        import pytest
        from django.core.cache import caches
        from pytest_cachemock import Stats

        jobs, done = queue.Queue(), queue.Queue()

        def serve():                      # a long-lived worker, started before any test
            mine = caches["default"]      # its own object, made before the test
            while True:
                key = jobs.get()
                if key is None:
                    return
                done.put(mine.get_or_set(key, "made"))

        worker = threading.Thread(target=serve, daemon=True)
        worker.start()

        @pytest.mark.cachemock(isolation="process")
        def test_the_worker_counts_into_the_test(global_stats):
            jobs.put("k")
            assert done.get(timeout=10) == "made"
            assert global_stats.django_default == Stats(puts=1, hits=0, misses=1)

        def test_in_thread_mode_its_traffic_is_foreign(global_stats):
            jobs.put("k")
            assert done.get(timeout=10) == "made"     # mocked: not the real store's
            assert global_stats.django_default == Stats(0, 0, 0)

        def test_afterwards_the_workers_object_is_real_again():
            real = caches["default"]
            assert real.get("k") is None         # nothing of the test reached the real store
            jobs.put("k")
            assert done.get(timeout=10) == "made"
            assert real.get("k") == "made"       # the worker's object writes it now
            jobs.put(None)
        """
    )
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*ForeignTrafficWarning: cache traffic from threads that belong to no running test*"
            "django_default (puts=1, hits=0, misses=1)*"
        ]
    )


@pytest.mark.usefixtures("env")
def test_djangos_cache_behaviours_on_the_mock(pytester: pytest.Pytester) -> None:
    """A selection of Django's own cache tests (tests/cache/tests.py), rewritten for the mock."""
    source = (HERE / "_django_reference.py").read_text()
    pytester.makepyfile(test_reference=source)
    pytester.makeconftest((HERE / "_django_reference_conftest.py").read_text())
    pytester.makeini(INI + "cachemock_autouse = true\n")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO, "-v")
    defined = source.count("\ndef test_") + source.count("\nasync def test_")
    assert defined > 30
    result.assert_outcomes(passed=defined + 1)  # one of them runs for two keys
    result.stdout.no_fnmatch_line("*Warning*")


# -- user errors ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
def test_settings_not_configured_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, conftest=None)
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: ini option cachemock_profiles ('django'): the 'django' profile reads "
        "settings.CACHES, but Django's settings are not configured when the plugin loads the "
        "profile; set DJANGO_SETTINGS_MODULE (with pytest-django: the DJANGO_SETTINGS_MODULE "
        "ini option or --ds), or call django.conf.settings.configure(CACHES=...) at the top of "
        "the conftest.py next to the pytest configuration\n"
    ) in result.stderr.str()


@pytest.mark.usefixtures("env")
def test_django_not_installed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, conftest='import sys\nsys.modules["django"] = None  # not installed\n')
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: ini option cachemock_profiles ('django'): the 'django' profile needs "
        "Django, which cannot be imported (import of django halted; None in sys.modules); "
        "pip install Django, or drop 'django' from cachemock_profiles / --cachemock-profile\n"
    ) in result.stderr.str()


@pytest.mark.usefixtures("env")
def test_a_settings_module_that_does_not_import_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(pytester, conftest=None)
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "no_such_settings")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: ini option cachemock_profiles ('django'): the 'django' profile "
        "cannot read settings.CACHES (DJANGO_SETTINGS_MODULE='no_such_settings'): "
        "ModuleNotFoundError: No module named 'no_such_settings'\n"
    ) in result.stderr.str()


@pytest.mark.usefixtures("env")
def test_two_aliases_that_give_one_kind_name(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from django.conf import settings

        locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        settings.configure(CACHES={"default": locmem, "page-cache": locmem, "page_cache": locmem})
        """
    )
    pytester.makeini(INI)
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_profiles ('django') (profile 'django', "
            "Django 5.*): the CACHES aliases 'page-cache' and 'page_cache' both give the cache "
            "kind 'django_page_cache' (a character that cannot be in a Python name becomes "
            "'_'); rename one of them"
        ]
    )


@pytest.mark.usefixtures("env")
def test_caches_that_is_not_a_dict_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from django.conf import settings\n\nsettings.configure(CACHES=['default'])\n"
    )
    pytester.makeini(INI)
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess(*NO_PYTEST_DJANGO)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: ini option cachemock_profiles ('django'): settings.CACHES is a "
        "list, not a dict of alias -> cache settings\n"
    ) in result.stderr.str()


# -- the project of docs/profiles.md ------------------------------------------------------------

DOCS = HERE.parents[1] / "docs" / "profiles.md"


def _docs_project() -> tuple[str, dict[str, str]]:
    """The Django section's pyproject.toml and files (each python block names its file on its
    first line, ``# path``), as the page shows them."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Django's cache framework", 1)[1].split("\n## ", 1)[0]
    toml = ""
    files: dict[str, str] = {}
    for match in re.finditer(r"^( *)```(\w+)\n(.*?)^\1```$", section, re.M | re.S):
        indent, language, body = match.groups()
        body = "".join(line[len(indent) :] + "\n" for line in body.splitlines())
        first = body.splitlines()[0]
        if language == "toml":
            toml = body
        elif language == "python" and first.startswith("# ") and first.endswith(".py"):
            files[first[2:].split()[0]] = body
        elif language == "python" and first.startswith("# conftest.py"):
            files["conftest.py"] = body
    return toml, files


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("with_pytest_django", [False, True])
def test_the_docs_project_runs(pytester: pytest.Pytester, with_pytest_django: bool) -> None:
    toml, files = _docs_project()
    assert sorted(files) == [
        "conftest.py",
        "shop/pages.py",
        "shop/settings.py",
        "tests/test_expiry.py",
        "tests/test_pages.py",
    ]
    if with_pytest_django:
        pytest.importorskip("pytest_django")
        del files["conftest.py"]
        toml += 'DJANGO_SETTINGS_MODULE = "shop.settings"\npythonpath = ["."]\n'
        args: tuple[str, ...] = ("-p", "no:cacheprovider")
    else:
        toml += 'pythonpath = ["."]\n'
        args = NO_PYTEST_DJANGO
    (pytester.path / "pyproject.toml").write_text(toml)
    (pytester.path / "shop").mkdir()
    (pytester.path / "shop" / "__init__.py").write_text("")
    (pytester.path / "tests").mkdir()
    for name, source in files.items():
        (pytester.path / name).write_text(source)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=4)


# -- in this process: a private CacheHandler, no global settings ---------------------------------
#
# Django's CacheHandler takes its CACHES as an argument, and LocMem and dummy caches need no
# settings: the per-test cache is tested here directly, with real Django classes, while
# django.conf.settings stays unconfigured in this process.

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"


@pytest.fixture
def handler() -> Any:
    from django.core.cache import CacheHandler

    return CacheHandler(
        {
            "default": {"BACKEND": LOCMEM, "LOCATION": "direct-default"},
            "v2": {"BACKEND": LOCMEM, "LOCATION": "direct-default", "VERSION": 2},
            "short": {"BACKEND": LOCMEM, "LOCATION": "direct-short", "TIMEOUT": 5},
            "off": {"BACKEND": DUMMY},
        }
    )


@pytest.fixture
def registry(handler: Any) -> Registry:
    registry = Registry()
    django_profile._declare(registry, handler, handler.settings, "direct test")
    return registry


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    frozen = [1_000_000.0]
    monkeypatch.setattr(django_profile, "clock", lambda: frozen[0])
    return frozen


def test_direct_kinds_and_their_targets(registry: Registry) -> None:
    assert list(registry.declared()) == [
        "django_default",
        "django_v2",
        "django_short",
        "django_off",
    ]
    (target,) = registry.kinds()["django_default"].targets
    assert repr(target) == "<Target django caches['default'] from direct test>"
    assert target.spot() is None


def test_direct_swap_count_and_restore(handler: Any, registry: Registry) -> None:
    bound = handler["default"]
    real = type(bound)
    bound.set("k", "real")
    with PatchCaches(registry=registry) as patched:
        assert type(bound) is not real
        assert isinstance(bound, real)
        assert repr(bound) == (
            "<django.core.cache.backends.locmem.LocMemCache of kind 'django_default', "
            "mocked by pytest-cachemock>"
        )
        assert bound.get("k") is None
        bound.set("k", ["mock"])
        assert handler["v2"].get("k", version=1) == ["mock"]  # one LOCATION: one store
        assert handler["off"].get_or_set("d", 4) == 4
        stats = patched.stats()
        assert stats["django_default"] == Stats(puts=1, hits=0, misses=1)
        assert stats["django_v2"] == Stats(puts=0, hits=1, misses=0)
        assert stats["django_off"] == Stats(puts=1, hits=0, misses=1)
        assert dict(patched.entries("django_default")) == {":1:k": ["mock"]}
        assert "':1:k': ['mock']" in patched.report()
    assert type(bound) is real
    assert bound.get("k") == "real"


def test_direct_objects_made_during_the_test_and_in_threads(
    handler: Any, registry: Registry
) -> None:
    made: list[Any] = []
    with PatchCaches(registry=registry) as patched:
        first = handler["default"]
        del handler["default"]
        second = handler["default"]
        thread = threading.Thread(target=lambda: made.append(handler["default"].add("t", 1)))
        thread.start()
        thread.join()
        assert second is not first
        assert type(second) is type(first)
        assert second.get("t") == 1
        assert patched.stats()["django_default"] == Stats(puts=1, hits=1, misses=0)
    assert made == [True]
    assert type(first) is type(second) is _real_class(handler)


def _real_class(handler: Any) -> type[Any]:
    from django.core.cache.backends.locmem import LocMemCache

    return LocMemCache


def test_direct_nested_installs_undo_in_any_order(handler: Any, registry: Registry) -> None:
    bound = handler["short"]
    real = type(bound)
    outer = PatchCaches(registry=registry).start()
    inner = PatchCaches(registry=registry).start()
    made_inside = handler["off"]
    outer.stop()  # out of order: the inner one keeps its mocks
    assert type(bound) is not real
    assert bound.add("x", 1) is True
    assert inner.stats()["django_short"] == Stats(puts=1, hits=0, misses=0)
    inner.stop()
    assert type(bound) is real
    assert type(made_inside).__module__ == "django.core.cache.backends.dummy"


def test_direct_timeouts(handler: Any, registry: Registry, now: list[float]) -> None:
    from django.core.cache.backends.base import DEFAULT_TIMEOUT

    with PatchCaches(registry=registry) as patched:
        short = handler["short"]  # TIMEOUT = 5
        short.set("default", 1)
        short.set("explicit", 1, DEFAULT_TIMEOUT)
        short.set("forever", 1, None)
        short.set("zero", 1, 0)
        short.set("negative", 1, -3)
        short.set("ten", 1, 10)
        assert sorted(patched.entries("django_short")) == [
            ":1:default",
            ":1:explicit",
            ":1:forever",
            ":1:ten",
        ]
        now[0] += 5
        assert short.get_many(["default", "explicit", "forever", "ten"]) == {
            "forever": 1,
            "ten": 1,
        }
        assert short.touch("ten", 100) is True
        now[0] += 50
        assert short.incr("ten") == 2  # the expiry stays
        now[0] += 50
        assert short.has_key("ten") is False
        assert len(patched.entries("django_short")) == 1
        assert short.delete("ten") is False


def test_direct_async_variants_count_in_the_calling_thread(
    handler: Any, registry: Registry
) -> None:
    import asyncio

    async def main(cache: Any) -> list[Any]:
        return [
            await cache.aset("a", 1),
            await cache.aadd("a", 2),
            await cache.aget("a"),
            await cache.aget_many(["a", "b"]),
            await cache.aset_many({"c": 1}),
            await cache.ahas_key("c"),
            await cache.aincr("c", 5),
            await cache.adecr("c"),
            await cache.aget_or_set("d", "made"),
            await cache.atouch("d"),
            await cache.aincr_version("d"),
            await cache.adecr_version("d", version=2),
            await cache.adelete("a"),
            await cache.adelete_many(["c"]),
            await cache.aclear(),
            await cache.aclose(),
        ]

    with PatchCaches(registry=registry) as patched:
        got = asyncio.run(main(handler["default"]))
        assert got[:12] == [None, False, 1, {"a": 1}, [], True, 6, 5, "made", True, 2, 1]
        assert got[12:] == [True, None, None, None]
        assert patched.stats()["django_default"] == Stats(puts=7, hits=8, misses=2)


def test_direct_faults(handler: Any, registry: Registry) -> None:
    with PatchCaches(registry=registry) as patched:
        cache = handler["default"]
        patched.fail("django_default", on="put", exc=OSError("disk gone"), times=1)
        with pytest.raises(OSError, match="disk gone"):
            cache.set_many({"a": 1})
        assert cache.set_many({"a": 1}) == []
        patched.fail("django_default", on="get")
        with pytest.raises(ConnectionError, match="key ':1:a'"):
            cache.get_many(["a"])
        cache.delete("a")  # never fails
        assert patched.stats()["django_default"] == Stats(puts=1, hits=0, misses=0, errors=2)


def test_direct_entries_mapping(now: list[float]) -> None:
    entries = django_profile.DjangoEntries(("x", "''"))
    entries.update({":1:a": [1], ":1:b": 2})
    entries.data[":1:old"] = (b"", now[0] - 1)
    assert sorted(entries) == [":1:a", ":1:b"]
    assert len(entries) == 2
    assert entries[":1:a"] == [1]
    assert repr(entries) == "{':1:a': [1], ':1:b': 2}"
    with pytest.raises(KeyError):
        entries[":1:old"]
    with pytest.raises(KeyError):
        del entries[":1:old"]
    del entries[":1:a"]
    with pytest.raises(TypeError, match="got 3; nothing was stored"):
        entries.update({":1:c": 1, 3: 1})
    assert list(entries) == [":1:b"]
    entries.clear()
    assert dict(entries) == {}


def test_direct_kind_names_and_a_clash(handler: Any) -> None:
    assert django_profile.kind_name("page-cache") == "django_page_cache"
    with pytest.raises(KindConfigError, match="aliases 'a-b' and 'a_b' both give"):
        django_profile._declare(
            Registry(), handler, {"a-b": {"BACKEND": DUMMY}, "a_b": {"BACKEND": DUMMY}}, "t"
        )


def test_direct_unconfigured_settings_and_no_django(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    if settings.configured:
        pytest.skip("Django's settings are configured in this process")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    with pytest.raises(KindConfigError, match="Django's settings are not configured"):
        Registry().load_profile("django", "here")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "no_such_settings_module")
    with pytest.raises(KindConfigError, match=r"cannot read settings\.CACHES"):
        Registry().load_profile("django", "here")
    monkeypatch.setitem(sys.modules, "django", None)
    with pytest.raises(KindConfigError, match="needs Django, which cannot be imported"):
        Registry().load_profile("django", "here")


def test_direct_another_handlers_objects_are_left_alone(handler: Any, registry: Registry) -> None:
    from django.core.cache import CacheHandler

    other = CacheHandler({"default": {"BACKEND": LOCMEM, "LOCATION": "direct-other"}})
    django_profile._declare(Registry(), other, other.settings, "another handler")
    theirs = other["default"]
    with PatchCaches(registry=registry):
        assert type(handler["default"]).__module__ == django_profile.__name__
        assert type(theirs) is _real_class(handler)
        assert type(other["default"]) is _real_class(handler)
