"""Where kinds come from (discovery, ini lines, the hook, profiles) and configuration errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _plugin_app import PRICES_INI, make_app

# -- discovery ---------------------------------------------------------------------------------


def test_remote_cache_subclass_with_kind_needs_no_configuration(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import MockBackend, RemoteCache, Stats
        import shopapp

        class Carts(RemoteCache[list]):       # defined after pytest started: still a kind
            kind = "kinds_carts"

        def test_both_kinds_are_mocked(global_stats):
            assert isinstance(shopapp.pages.backend, MockBackend)
            assert shopapp.pages.backend.kind == "pages"
            carts = Carts()
            carts.put("u1", [1])
            assert carts.get("u1") == [1]
            assert global_stats.kinds_carts == Stats(1, 1, 0)
            assert "kinds_carts" in list(global_stats) and "pages" in list(global_stats)

        def test_real_backends_outside_the_plugin():
            assert shopapp.pages.backend is shopapp.pages.real_backend
            assert Carts().backend is Carts().real_backend or True
            assert Carts.backend_override_cls is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


# -- ini lines ---------------------------------------------------------------------------------


def test_ini_kind_with_attribute_target_and_switches(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_cachemock import MemoryBackend, MockBackend, Stats
        import shopapp

        REAL = shopapp.PriceClient.backend

        @pytest.fixture(autouse=True)
        def env_on(monkeypatch):
            monkeypatch.setenv("SHOP_PRICES", "yes")

        def test_mocked_and_switched_off(patch_caches, global_stats):
            assert isinstance(shopapp.PriceClient.backend, MockBackend)
            assert shopapp.USE_REAL_PRICES is False
            assert "SHOP_PRICES" not in os.environ
            assert shopapp.price("a") == 100
            assert global_stats.prices == Stats()     # the real cache is off: no traffic

        def test_enable_turns_switches_on(patch_caches, global_stats):
            patch_caches.enable("prices")
            assert shopapp.USE_REAL_PRICES is True
            assert os.environ["SHOP_PRICES"] == "1"
            shopapp.price("a"); shopapp.price("a")
            assert global_stats.prices == Stats(puts=1, hits=1, misses=1)
            assert dict(patch_caches.entries("prices")) == {"a": 100}

        def test_restored_afterwards():
            assert shopapp.PriceClient.backend is REAL
            assert isinstance(REAL, MemoryBackend)
            assert shopapp.USE_REAL_PRICES is True
            assert os.environ["SHOP_PRICES"] == "yes"
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_ini_targets_of_every_shape(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        kindsmod="""
        from pytest_cachemock import MemoryBackend

        class LegacyCache:                       # the seed's convention, not a RemoteCache
            backend_override_cls = None
            def backend(self):
                factory = type(self).backend_override_cls
                return factory() if factory is not None else MemoryBackend()

        class Holder:
            factory = MemoryBackend               # an attribute holding a backend factory
        """
    )
    pytester.syspathinsert()
    pytester.makeini(
        """
        [pytest]
        cachemock_kinds =
            # comments and blank lines are skipped

            legacy target=kindsmod:LegacyCache
            made: target=kindsmod:Holder.factory
            flag_only switch=env:KINDS_FLAG
        """
    )
    pytester.makepyfile(
        """
        import os
        from pytest_cachemock import MemoryBackend, MockBackend, Stats
        import kindsmod

        def test_shapes(patch_caches, global_stats):
            legacy = kindsmod.LegacyCache().backend()
            assert isinstance(legacy, MockBackend) and legacy.kind == "legacy"
            made = kindsmod.Holder.factory()
            assert isinstance(made, MockBackend) and made.kind == "made"
            made.put("k", 1)
            assert global_stats.made == Stats(puts=1)
            assert global_stats.flag_only == Stats()
            patch_caches.enable("flag_only")
            assert os.environ["KINDS_FLAG"] == "1"

        def test_after():
            assert kindsmod.LegacyCache.backend_override_cls is None
            assert kindsmod.Holder.factory is MemoryBackend
            assert "KINDS_FLAG" not in os.environ
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "prices target=nosuchmodule:Client",
            "cannot import module 'nosuchmodule'",
        ),
        ("prices target=shopapp:Nope", "'shopapp:Nope' does not exist"),
        ("prices target=shopapp:Nope.backend", "shopapp has no attribute 'Nope'"),
        ("prices target=shopapp:render.nope", "'shopapp:render.nope' does not exist"),
        ("prices switch=shopapp:NO_FLAG", "switch 'shopapp:NO_FLAG' does not exist"),
        ("prices target=shopapp:USE_REAL_PRICES", "holds a bool, not a backend"),
        ("prices target=shopapp.PriceClient", "is not a reference"),
        ("prices targets=shopapp:PriceClient.backend", "cannot read 'targets=shopapp:"),
        ("prices", "kind 'prices' has neither a target nor a switch"),
        ("9prices switch=env:X", "kind = '9prices' is not a valid cache kind name"),
    ],
)
def test_ini_line_that_does_not_resolve_fails_at_configure(
    pytester: pytest.Pytester, line: str, message: str
) -> None:
    make_app(pytester)
    pytester.makeini(f"[pytest]\ncachemock_kinds =\n    pages2 switch=env:OK\n    {line}\n")
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: cachemock: ini option cachemock_kinds, line 2 ({line!r}):*{message}*"]
    )
    assert "test_never_runs" not in result.stdout.str()


def test_two_ini_kinds_with_one_name(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeini(
        """
        [pytest]
        cachemock_kinds =
            prices target=shopapp:PriceClient.backend
            prices switch=env:PRICES
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_kinds, line 2 ('prices switch=env:PRICES'):"
            " cache kind 'prices' is already declared by ini option cachemock_kinds, line 1*"
        ]
    )


def test_ini_line_adds_switches_to_a_discovered_kind(pytester: pytest.Pytester) -> None:
    # Issue 15, item 1: a RemoteCache subclass with kind = "pages" gets a switch (and one more
    # target) from an ini line of the same name; it was a "declared twice" error in each test.
    make_app(pytester)
    pytester.makeini(
        "[pytest]\ncachemock_kinds = pages target=shopapp:PriceClient.backend switch=env:PAGES\n"
    )
    pytester.makepyfile(
        """
        import os
        import shopapp
        from pytest_cachemock import MockBackend, Stats

        os.environ["PAGES"] = "real"

        def test_one_kind(patch_caches, global_stats):
            assert "PAGES" not in os.environ
            assert isinstance(shopapp.pages.backend, MockBackend)
            assert isinstance(shopapp.PriceClient.backend, MockBackend)
            shopapp.render("home")
            shopapp.render("home")
            shopapp.PriceClient.backend.put("x", 1)
            assert global_stats.pages == Stats(puts=2, hits=1, misses=1)
            patch_caches.enable("pages")
            assert os.environ["PAGES"] == "1"

        def test_restored_after():
            assert os.environ["PAGES"] == "real"
            assert shopapp.Pages.backend_override_cls is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_merged_kind_names_both_origins(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeini("[pytest]\ncachemock_kinds = pages switch=env:PAGES\n")
    pytester.makepyfile(
        """
        import shopapp

        def test_origin(patch_caches):
            kind = patch_caches.registry.kinds()["pages"]
            assert kind.origin == (
                "ini option cachemock_kinds, line 1 ('pages switch=env:PAGES'), "
                "and shopapp.Pages (kind = 'pages')"
            )
            # (a Pages class of an earlier in-process run may linger until collected: >= 1)
            assert any(t.spot() == (shopapp.Pages, "backend_override_cls") for t in kind.targets)
            # The declaration itself is unchanged: merging copies it.
            assert patch_caches.registry.declared()["pages"].targets == []
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


# -- the hook ----------------------------------------------------------------------------------


def test_register_kinds_hook_in_conftest(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeconftest(
        """
        import shopapp

        def pytest_cachemock_register_kinds(registry):
            registry.add(
                "prices",
                targets=[(shopapp.PriceClient, "backend")],
                switches=[(shopapp, "USE_REAL_PRICES"), "env:SHOP_PRICES"],
            )
        """
    )
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import Stats

        def test_declared_in_code(patch_caches, global_stats):
            assert shopapp.USE_REAL_PRICES is False
            patch_caches.enable("prices")
            shopapp.price("a")
            assert global_stats.prices == Stats(puts=1, misses=1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_register_kinds_hook_takes_one_reference_as_a_string(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makeconftest(
        """
        def pytest_cachemock_register_kinds(registry):
            registry.add(
                "prices",
                targets="shopapp:PriceClient.backend",
                switches="shopapp:USE_REAL_PRICES",
            )
        """
    )
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import MockBackend, Stats

        def test_one_string_each(patch_caches, global_stats):
            assert isinstance(shopapp.PriceClient.backend, MockBackend)
            assert shopapp.USE_REAL_PRICES is False
            patch_caches.enable("prices")
            assert shopapp.USE_REAL_PRICES is True
            shopapp.price("a")
            assert global_stats.prices == Stats(puts=1, misses=1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('registry.add("prices", targets=["shopapp:Nope"])', "'shopapp:Nope' does not exist"),
        ('registry.add("prices", switches=[(object(), "nope")])', "switch * does not exist"),
        ('registry.add("prices", targets=[42])', "cannot use 42 as a target"),
        (
            'registry.add("pages2", switches=["env:A"]); registry.add("pages2")',
            "cache kind 'pages2' is already declared by hook*",
        ),
    ],
)
def test_register_kinds_hook_errors_name_the_hook(
    pytester: pytest.Pytester, call: str, message: str
) -> None:
    make_app(pytester)
    pytester.makeconftest(f"def pytest_cachemock_register_kinds(registry):\n    {call}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: cachemock: hook pytest_cachemock_register_kinds in *conftest.py:1: {message}*"]
    )


# -- profiles ----------------------------------------------------------------------------------


def test_profiles_load_kinds(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cachemock import kinds

    make_app(pytester)
    pytester.makepyfile(
        demoprofile="""
        import shopapp

        def register(registry, *, origin):
            registry.add("prices", targets=[(shopapp.PriceClient, "backend")], origin=origin)

        def register_flags(registry, *, origin):
            registry.add("flags", switches=["env:DEMO_FLAGS"], origin=origin)
        """
    )
    monkeypatch.setitem(kinds._PROFILES, "demo", "demoprofile:register")
    monkeypatch.setitem(kinds._PROFILES, "flags", "demoprofile:register_flags")
    pytester.makeini("[pytest]\ncachemock_profiles = demo\n")
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import MockBackend

        def test_kinds(global_stats):
            assert isinstance(shopapp.PriceClient.backend, MockBackend)
            assert "prices" in list(global_stats)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    # The option adds to the ini list; a profile named twice is loaded once.
    pytester.runpytest("--cachemock-profile=flags").assert_outcomes(passed=1)
    pytester.runpytest(
        "--cachemock-profile=demo", "--cachemock-profile=flags", "--cachemock-profile=flags"
    ).assert_outcomes(passed=1)


def test_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncachemock_profiles = nosuch\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_profiles ('nosuch'): unknown profile 'nosuch';"
            " known profiles: *torch*"
        ]
    )
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest("--cachemock-profile=other")
    result.stderr.fnmatch_lines(["*option --cachemock-profile=other: unknown profile 'other'*"])


# -- switched off ------------------------------------------------------------------------------


def test_no_cachemock_disables_everything(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI + "cachemock_autouse = true\n")
    pytester.makepyfile(
        """
        import shopapp

        def test_untouched():
            assert shopapp.pages.backend is shopapp.pages.real_backend
            assert shopapp.USE_REAL_PRICES is True

        def test_fixture(patch_caches):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cachemock")
    result.assert_outcomes(passed=1, errors=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*fixture 'patch_caches' not found*",
            "*PytestConfigWarning: Unknown config option: cachemock_autouse*",
            "*PytestConfigWarning: Unknown config option: cachemock_kinds*",
        ]
    )
    assert "cachemock (call)" not in result.stdout.str()
    # Its options are gone too, and its ini keys fail under --strict-config.
    result = pytester.runpytest_subprocess("-p", "no:cachemock", "--cachemock-report")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --cachemock-report*"])
    result = pytester.runpytest_subprocess("-p", "no:cachemock", "--strict-config")
    assert result.ret != pytest.ExitCode.OK
    assert "Unknown config option: cachemock_" in result.stderr.str() + result.stdout.str()
    # With the plugin the same help lists them.
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["*--cachemock-report*", "*cachemock_kinds*", "*cachemock_autouse*"]
    )


def test_plugin_imports_nothing_heavy() -> None:
    # Loading the plugin is paid by every suite that installs it, used or not (the 3% budget):
    # the stores, their locks, sqlite3 and typing_extensions come when first used.
    code = (
        "import sys, pytest_cachemock.plugin; "
        "heavy = {'torch', 'redis', 'numpy', 'sqlite3', 'typing_extensions', 'filelock', "
        "'pytest_cachemock.backends.file', 'pytest_cachemock.memoize'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
