"""Install and restore: after failures and teardown errors, between tests, for singletons."""

from __future__ import annotations

import os
import textwrap
import threading
from typing import Any

import pytest
from _plugin_app import PRICES_INI, RESTORED_CHECK, make_app

from pytest_cachemock import MemoryBackend, MockBackend, PatchCaches, RemoteCache, Stats
from pytest_cachemock.kinds import AttributeSwitch, CacheKind, EnvSwitch, Registry, Target


def test_restored_after_a_failing_test_and_a_failing_teardown(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini=PRICES_INI)
    pytester.makepyfile(
        RESTORED_CHECK
        + textwrap.dedent("""
        @pytest.fixture
        def boom_after(patch_caches):           # torn down before patch_caches
            yield
            raise RuntimeError("teardown of boom_after")

        @pytest.fixture
        def boom_before():                      # torn down after patch_caches
            yield
            raise RuntimeError("teardown of boom_before")

        def test_1_fails(patch_caches):
            patch_caches.enable("prices")
            assert isinstance(shopapp.PriceClient.backend, MockBackend)
            assert os.environ["SHOP_PRICES"] == "1"
            raise ValueError("the test failed")

        def test_2_restored():
            check_restored()

        def test_3_teardown_error_after(boom_after):
            assert shopapp.USE_REAL_PRICES is False

        def test_4_restored():
            check_restored()

        def test_5_teardown_error_before(boom_before, patch_caches):
            assert "SHOP_PRICES" not in os.environ

        def test_6_restored():
            check_restored()

        def test_7_error_in_setup_of_a_later_fixture(patch_caches, request):
            pass

        @pytest.fixture
        def broken_setup(patch_caches):
            raise RuntimeError("setup broke")

        def test_8_broken_setup(broken_setup):
            pass

        def test_9_restored():
            check_restored()
        """)
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=7, failed=1, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_3_teardown_error_after*",
            "*ERROR at teardown of test_5_teardown_error_before*",
            "*ERROR at setup of test_8_broken_setup*",
        ]
    )


STATEFUL_TESTS = {
    "a": """
def test_a(patch_caches, global_stats):
    assert global_stats.pages == Stats() and global_stats.prices == Stats()
    assert dict(patch_caches.entries("pages")) == {}
    shopapp.render("home")
    assert global_stats.pages == Stats(puts=1, misses=1)
    patch_caches.enable("prices")
    shopapp.price("x")
    patch_caches.fail("pages", times=None)
    patch_caches.seed("prices", {"y": 3})
""",
    "b": """
def test_b(patch_caches, global_stats):
    assert global_stats.pages == Stats() and global_stats.prices == Stats()
    assert dict(patch_caches.entries("pages")) == {}
    assert dict(patch_caches.entries("prices")) == {}
    assert shopapp.USE_REAL_PRICES is False
    shopapp.render("home")                     # no fault left armed
    assert global_stats.pages == Stats(puts=1, misses=1)
    patch_caches.enable("prices")
    shopapp.price("x")
    patch_caches.fail("pages", times=None)
    patch_caches.seed("prices", {"y": 3})
""",
}


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_no_state_shared_between_tests(pytester: pytest.Pytester, order: str) -> None:
    make_app(pytester, ini=PRICES_INI)
    body = "import shopapp\nfrom pytest_cachemock import Stats\n"
    # The same file twice with the tests defined in the other order: pytest runs them in
    # definition order, so each test runs once first and once after the other.
    body += "\n".join(STATEFUL_TESTS[name] for name in order)
    pytester.makepyfile(test_state=body)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    first, second = (f"test_state.py::test_{name} PASSED*" for name in order)
    result.stdout.fnmatch_lines([first, second])


def test_module_level_singleton_mocked_and_restored(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import shopapp
        from pytest_cachemock import MockBackend, Stats

        def test_0_real_cache_filled_at_first():
            shopapp.render("home")
            assert len(shopapp.pages.real_backend) == 1

        def test_1_mocked(global_stats):
            backend = shopapp.pages.backend
            assert isinstance(backend, MockBackend) and backend.kind == "pages"
            shopapp.render("home")          # a miss: the real entry is not visible
            assert global_stats.pages == Stats(puts=1, misses=1)

        def test_2_real_again_and_untouched():
            assert shopapp.pages.backend is shopapp.pages.real_backend
            assert len(shopapp.pages.real_backend) == 1
            assert shopapp.pages.get("home") == "<h1>home</h1>"
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


# -- PatchCaches directly (own registries: nothing shared with other tests) -------------------


class _Holder:
    backend: Any = MemoryBackend()
    flag = True


class _Broken:
    """Installing here fails: a target whose assignment raises."""

    def __setattr__(self, name: str, value: object) -> None:
        raise RuntimeError("cannot patch me")

    backend_override_cls = None


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.add(
        "patch_holder",
        targets=[(_Holder, "backend")],
        switches=[(_Holder, "flag"), "env:CACHEMOCK_TEST_FLAG"],
        origin="test",
    )
    return registry


def test_context_manager_start_stop(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEMOCK_TEST_FLAG", "orig")
    real = _Holder.backend
    patch = PatchCaches(registry=registry, switches="off")
    assert not patch.active
    with patch as entered:
        assert entered is patch
        assert patch.active
        assert isinstance(_Holder.backend, MockBackend)
        assert _Holder.flag is False
        assert "CACHEMOCK_TEST_FLAG" not in os.environ
        with pytest.raises(RuntimeError, match="already started"):
            patch.start()
        _Holder.backend.put("k", 1)
        patch.enable("patch_holder")
        assert _Holder.flag is True
        assert os.environ["CACHEMOCK_TEST_FLAG"] == "1"
    assert not patch.active
    assert _Holder.backend is real
    assert _Holder.flag is True
    assert os.environ["CACHEMOCK_TEST_FLAG"] == "orig"
    assert patch.stats()["patch_holder"] == Stats(puts=1)  # readable after exit
    patch.stop()  # stopping twice is harmless
    # start()/stop() and enable() before start.
    patch = PatchCaches(registry=registry, switches="off")
    patch.enable("patch_holder")
    patch.start()
    try:
        assert _Holder.flag is True
        assert patch.stats()["patch_holder"] == Stats()  # entering reset the store
    finally:
        patch.stop()
    assert _Holder.backend is real


def test_nested_patchcaches_restore_in_order(registry: Registry) -> None:
    real = _Holder.backend
    with PatchCaches(registry=registry, enable=["patch_holder"], switches="off"):
        outer = _Holder.backend
        with PatchCaches(registry=registry, switches="off"):
            assert _Holder.backend is not outer
            assert _Holder.flag is False
        assert _Holder.backend is outer
        assert _Holder.flag is True
    assert _Holder.backend is real
    assert _Holder.flag is True


def test_failure_while_installing_undoes_what_was_installed(registry: Registry) -> None:
    real = _Holder.backend
    broken = _Broken()
    registry.add("patch_broken", targets=[Target.override(broken, "test")], origin="test")
    with pytest.raises(RuntimeError, match="cannot patch me"):
        PatchCaches(registry=registry, switches="off").start()
    assert _Holder.backend is real
    assert _Holder.flag is True


def test_failing_restore_still_restores_the_rest() -> None:
    class Sw(AttributeSwitch):
        def set(self, on: bool) -> Any:
            super().set(on)

            def undo() -> None:
                raise OSError("restore failed")

            return undo

    holder = type("H", (), {"a": 1, "b": 2})
    registry = Registry()
    registry._declared["k1"] = CacheKind("k1", switches=[AttributeSwitch(holder, "a", "t")])
    registry._declared["k2"] = CacheKind("k2", switches=[Sw(holder, "x", "t")])
    registry._declared["k3"] = CacheKind("k3", switches=[AttributeSwitch(holder, "b", "t")])
    patch = PatchCaches(registry=registry, switches="off").start()
    assert (holder.a, holder.b) == (False, False)
    with pytest.raises(OSError, match="restore failed"):
        patch.stop()
    assert (holder.a, holder.b) == (1, 2)


def test_setup_teardown_classmethods_nest(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_cachemock import _state

    monkeypatch.setattr(_state.current(), "registry", registry)
    monkeypatch.delenv("CACHEMOCK_TEST_FLAG", raising=False)
    PatchCaches.setUp()
    assert _Holder.flag is False
    _Holder.flag = "set by the test"
    PatchCaches.setUp()
    assert _Holder.flag is False
    PatchCaches.tearDown()
    assert _Holder.flag == "set by the test"
    PatchCaches.tearDown()
    assert _Holder.flag is True
    assert "CACHEMOCK_TEST_FLAG" not in os.environ
    PatchCaches.tearDown()  # one too many: harmless
    assert _Holder.flag is True
    # The environment switch's own value comes back too.
    monkeypatch.setenv("CACHEMOCK_TEST_FLAG", "x")
    PatchCaches.setUp()
    assert "CACHEMOCK_TEST_FLAG" not in os.environ
    PatchCaches.tearDown()
    assert os.environ["CACHEMOCK_TEST_FLAG"] == "x"


def test_threads_started_in_the_block_share_its_store() -> None:
    class Threaded(RemoteCache[int]):  # no ``kind``: declared in a registry of its own
        pass

    registry = Registry()
    registry.add("patch_threaded", targets=[Threaded], origin="test")
    cache = Threaded(namespace="patch_threaded")
    seen: list[Stats] = []
    with PatchCaches(registry=registry, switches="off") as patch:
        cache.put("main", 1)

        def work() -> None:
            cache.put("other", 2)
            assert cache.get("main") == 1  # the test's entry: a hit
            seen.append(patch.stats()["patch_threaded"])

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert seen == [Stats(puts=2, hits=1)]
        assert patch.stats()["patch_threaded"] == Stats(puts=2, hits=1)
        assert sorted(patch.entries("patch_threaded")) == [
            "patch_threaded::main:v1",
            "patch_threaded::other:v1",
        ]


def test_env_switch_name_is_checked() -> None:
    from pytest_cachemock import KindConfigError

    with pytest.raises(KindConfigError, match="here: 'A=B' is not an environment variable"):
        EnvSwitch("A=B", "here")


def test_kind_config_error_is_exported_with_the_other_errors() -> None:
    import pytest_cachemock
    from pytest_cachemock import errors, kinds

    assert pytest_cachemock.KindConfigError is errors.KindConfigError is kinds.KindConfigError
    assert issubclass(pytest_cachemock.KindConfigError, ValueError)
    assert "KindConfigError" in pytest_cachemock.__all__


def test_bare_patchcaches_keeps_switches_as_the_seed_does(registry: Registry) -> None:
    real = _Holder.backend
    with PatchCaches(registry=registry):
        assert _Holder.backend is not real  # mocked
        assert _Holder.flag is True  # the switch left as it was
    with PatchCaches(registry=registry, switches="off"):
        assert _Holder.flag is False
    with pytest.raises(ValueError, match="switches='on'"):
        PatchCaches(switches="on")
    assert _Holder.backend is real
    assert _Holder.flag is True
