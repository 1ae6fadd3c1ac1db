"""Seeding as a user meets it (issue 15, items 8 and 9).

A weather service caches forecasts in a ``RemoteCache`` kind on a ``FileBackend`` (JsonSerde,
version 2) and prices in a class attribute holding a ``LogBackend``, declared in the ini file.
Under the plugin, a value the real backend refuses fails in the test as it fails in
production; ``seed()`` refuses what no cache of the kind could read back, at the seed line,
and ``seed(kind, mapping, cache=...)`` seeds by the cache's own keys and values.
"""

from __future__ import annotations

import gc

import pytest

WEATHERAPP = """
import os
import tempfile
from pytest_cachemock import FileBackend, LogBackend, MemoryBackend, RemoteCache

_HERE = tempfile.mkdtemp(prefix="weatherapp-")

class WeatherCache(RemoteCache[dict]):
    kind = "weather"

weather = WeatherCache(FileBackend(os.path.join(_HERE, "weather")), namespace="weather", version=2)

def forecast(city):
    found = weather.get(city)
    if found is None:
        found = {"city": city, "t": 12}
        weather.put(city, found)
    return found

class PriceClient:
    backend = LogBackend(os.path.join(_HERE, "prices.log"))   # bytes only

def remember_price(sku, price):
    PriceClient.backend.put(sku, price)                         # a float: production crashes

class NotesCache(RemoteCache[dict]):
    kind = "notes"

notes = NotesCache(MemoryBackend())                              # JsonSerde over memory
"""

INI = """
[pytest]
cachemock_kinds =
    prices target=weatherapp:PriceClient.backend
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    gc.collect()  # classes of earlier inline runs, declaring the same kinds, are gone
    pytester.makepyfile(weatherapp=WEATHERAPP)
    pytester.syspathinsert()
    pytester.makeini(INI)
    return pytester


def test_a_float_put_into_a_log_backend_stand_in_fails_as_in_production(
    app: pytest.Pytester,
) -> None:
    app.makepyfile(
        """
        import weatherapp
        from pytest_cachemock import Stats

        def test_price(patch_caches, global_stats):
            try:
                weatherapp.remember_price("sku-1", 9.5)
            finally:
                assert global_stats.prices == Stats(errors=1)
                assert patch_caches.library_stats()["mock:prices"]["exception"] == 1

        def test_bytes_are_fine(patch_caches, global_stats):
            weatherapp.remember_price("sku-1", b"9.5")
            assert global_stats.prices == Stats(puts=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ValueEncodingError: LogBackend stores bytes, got a float for key 'sku-1'; put it "
            "through a serde (JsonSerde, PickleSerde) first (the mock of kind 'prices' stands "
            "in for a LogBackend and refuses what it refuses)",
        ]
    )


def test_a_dict_seeded_raw_is_refused_at_the_seed_line(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import weatherapp

        def test_weather(patch_caches):
            patch_caches.seed("weather", {"weather::oslo:v2": {"city": "oslo", "t": 3}})

        def test_prices(patch_caches):
            patch_caches.seed("prices", {"sku-1": 9.5})

        def test_notes(patch_caches):
            patch_caches.seed("notes", {"notes::a:v1": {"text": "hi"}})

        def test_nothing_stored(patch_caches):
            try:
                patch_caches.seed("weather", {"weather::a:v2": b"{}", "weather::b:v2": 1.0})
            except TypeError:
                pass
            assert dict(patch_caches.entries("weather")) == {}
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            '>       patch_caches.seed("weather", {"weather::oslo:v2": {"city": "oslo", "t": 3}})',
            "E       *ValueEncodingError: seed('weather', ...): FileBackend stores bytes, got a "
            "dict for key 'weather::oslo:v2'; put it through a serde (JsonSerde, PickleSerde) "
            "first (the mock of kind 'weather' stands in for a FileBackend and refuses what it "
            "refuses); seed the bytes it stores, or seed the cache's own key and value: "
            "seed('weather', {'oslo': value}, cache=<the cache>)",
            '>       patch_caches.seed("prices", {"sku-1": 9.5})',
            "E       *ValueEncodingError: seed('prices', ...): LogBackend stores bytes, got a "
            "float for key 'sku-1'; * (the mock of kind 'prices' stands in for a LogBackend and "
            "refuses what it refuses); seed the bytes it would store (the value encoded by the "
            "application's serde)",
            '>       patch_caches.seed("notes", {"notes::a:v1": {"text": "hi"}})',
            "E       *ValueDecodingError: seed('notes', ...): NotesCache (namespace 'notes', serde "
            "JsonSerde()) cannot decode the value seeded for 'notes::a:v1', a dict (*), so its "
            "get('a') would miss; seed the value as its serde stores it, or seed its own key "
            "and value: seed('notes', {'a': value}, cache=<the cache>)",
        ]
    )


def test_seed_by_the_caches_own_key_and_value(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import weatherapp
        from pytest_cachemock import Stats

        def test_seeded(patch_caches, global_stats):
            oslo = {"city": "oslo", "t": 3}
            patch_caches.seed("weather", {"oslo": oslo}, cache=weatherapp.weather)
            assert global_stats.weather == Stats()
            assert weatherapp.forecast("oslo") == oslo
            assert global_stats.weather == Stats(0, 1, 0)
            assert dict(patch_caches.entries("weather")) == {
                "weather::oslo:v2": b'{"city":"oslo","t":3}'
            }

        def test_raw_bytes_still_work(patch_caches, global_stats):
            patch_caches.seed("weather", {"weather::oslo:v2": bytearray(b'{"t":4}')})
            assert weatherapp.forecast("oslo") == {"t": 4}
            assert global_stats.weather == Stats(hits=1)
            assert type(patch_caches.entries("weather")["weather::oslo:v2"]) is bytes

        def test_a_cache_of_another_kind(patch_caches):
            patch_caches.seed("weather", {"a": {}}, cache=weatherapp.notes)

        def test_not_a_cache(patch_caches):
            patch_caches.seed("weather", {"a": {}}, cache=weatherapp.PriceClient.backend)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       *UserError: seed('weather', ..., cache=...): NotesCache is not a cache of "
            "kind 'weather' (it uses the mock of kind 'notes'); pass a cache of kind "
            "'weather', or seed the kind this cache belongs to",
            "E       TypeError: seed('weather', ..., cache=...): cache is a RemoteCache (an "
            "object with key_for(key) and serde), got a MockBackend; pass the cache whose "
            "keys and values mapping holds",
        ]
    )
