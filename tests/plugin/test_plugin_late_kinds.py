"""Issue 15, item 10: a cache class (or memoizer) first imported while a test runs is mocked in
that test, from the moment it declares its kind, and restored afterwards."""

from __future__ import annotations

import threading

import pytest
from _plugin_app import make_app

from pytest_cachemock import (
    MemoryBackend,
    MockBackend,
    PatchCaches,
    RemoteCache,
    Stats,
    global_stats,
)

LATEAPP = """
from pytest_cachemock import FileBackend, Memoizer, RemoteCache

class Weather(RemoteCache[dict]):
    kind = "weather"

REAL_DIR = None
weather = None

def build(directory):
    global weather, REAL_DIR
    REAL_DIR = directory
    weather = Weather(FileBackend(directory))
    return weather

memo = Memoizer(kind="forecast")

@memo.memoize
def forecast(city: str) -> str:
    return "sun in " + city
"""


def test_class_first_imported_in_a_test_is_mocked(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(lateapp=LATEAPP)
    pytester.makepyfile(
        test_late="""
        import os
        from pytest_cachemock import MockBackend, Stats

        def test_imports_late(patch_caches, global_stats, tmp_path):
            import lateapp  # first imported here, after the mocks were installed

            weather = lateapp.build(str(tmp_path / "real"))
            assert isinstance(weather.backend, MockBackend)
            weather.put("oslo", {"sky": "rain"})
            assert weather.get("oslo") == {"sky": "rain"}
            assert global_stats.weather == Stats(puts=1, hits=1)
            assert list(patch_caches.entries("weather")) == ["weather::oslo:v1"]
            assert list(weather.real_backend.items()) == []   # the real store is not written
            assert lateapp.forecast("oslo") == "sun in oslo"
            assert lateapp.forecast("oslo") == "sun in oslo"
            assert global_stats.forecast == Stats(puts=1, hits=1, misses=1)
            assert "weather" in patch_caches.report() and "forecast" in patch_caches.report()

        def test_restored_and_mocked_again(patch_caches, global_stats):
            import lateapp

            assert isinstance(lateapp.weather.backend, MockBackend)
            assert lateapp.weather.get("oslo") is None           # every test starts empty
            assert global_stats.weather == Stats(misses=1)

        def test_real_afterwards():
            import lateapp

            assert lateapp.Weather.backend_override_cls is None
            assert lateapp.weather.backend is lateapp.weather.real_backend
            assert lateapp.memo.backend is lateapp.memo.real_backend
        """
    )
    pytester.runpytest("test_late.py").assert_outcomes(passed=3)


def test_class_defined_in_the_block_is_mocked_and_restored() -> None:
    real = MemoryBackend()
    with PatchCaches() as patch:

        class Quotes(RemoteCache[str]):
            kind = "late_quotes"

        quotes = Quotes(real)
        assert isinstance(quotes.backend, MockBackend)
        quotes.put("a", "x")
        assert global_stats.late_quotes == Stats(puts=1)
        assert "late_quotes" in patch.stats()
    assert Quotes.backend_override_cls is None
    assert quotes.backend is real
    assert list(real.items()) == []


def test_nested_blocks_both_adopt_and_unwind_in_any_order() -> None:
    outer = PatchCaches().start()
    inner = PatchCaches().start()

    class Late(RemoteCache[str]):
        kind = "late_nested"

    assert isinstance(Late(MemoryBackend()).backend, MockBackend)
    outer.stop()  # the older one first: the newer one keeps its mock
    assert Late.backend_override_cls is not None
    inner.stop()
    assert Late.backend_override_cls is None


def test_class_defined_in_another_thread_while_a_block_stops() -> None:
    # Registration and stop race; whatever the order, no mock is left behind.
    for _ in range(50):
        patch = PatchCaches().start()
        made: list[type] = []

        def define(made: list[type] = made) -> None:
            class Raced(RemoteCache[str]):
                kind = "late_raced"

            made.append(Raced)

        worker = threading.Thread(target=define)
        worker.start()
        patch.stop()
        worker.join()
        assert made[0].backend_override_cls is None


def test_class_defined_after_the_block_is_left_alone() -> None:
    with PatchCaches():
        pass

    class After(RemoteCache[str]):
        kind = "late_after"

    assert After.backend_override_cls is None
