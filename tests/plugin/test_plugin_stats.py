"""``Stats``, the ``global_stats`` view, and how failed comparisons read in pytest's output."""

from __future__ import annotations

import dataclasses
import re

import pytest
from _plugin_app import make_app

from pytest_cachemock import PatchCaches, RemoteCache, Stats, _state, global_stats
from pytest_cachemock.errors import UnknownKindUsageError
from pytest_cachemock.kinds import Registry

# -- Stats as a value (no pytest run needed) ---------------------------------------------------


def test_positional_order_is_the_seeds() -> None:
    stats = Stats(1, 3, 2)
    assert (stats.puts, stats.hits, stats.misses, stats.errors) == (1, 3, 2, 0)
    assert (stats.num_put, stats.num_get_hit, stats.num_get_miss) == (1, 3, 2)
    assert stats == Stats(puts=1, hits=3, misses=2)
    assert stats != Stats(puts=1, hits=2, misses=3)


def test_str_lists_fields_in_positional_order() -> None:
    assert str(Stats(1, 3, 2)) == "puts=1, hits=3, misses=2"
    assert str(Stats(1, errors=4)) == "puts=1, hits=0, misses=0, errors=4"
    assert repr(Stats(0, 1, 0)) == "Stats(puts=0, hits=1, misses=0)"


def test_errors_is_keyword_only_and_counts_in_equality() -> None:
    with pytest.raises(TypeError):
        Stats(1, 2, 3, 4)  # type: ignore[misc]
    assert Stats(1, 2, 3, errors=1) != Stats(1, 2, 3)
    assert Stats(1, 2, 3, errors=0) == Stats(1, 2, 3)


def test_frozen_hashable_addable() -> None:
    stats = Stats(1, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.puts = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        stats.num_put = 2  # type: ignore[misc]
    assert {Stats(1, 1, 1), Stats(1, 1, 1)} == {stats}
    assert Stats(1, 2, 3, errors=1) + Stats(1, 1, 1) == Stats(2, 3, 4, errors=1)


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_counts_are_ints_at_least_zero(bad: object) -> None:
    with pytest.raises(TypeError, match=r"Stats\.hits must be an int >= 0"):
        Stats(hits=bad)  # type: ignore[arg-type]


def test_not_equal_to_other_types() -> None:
    assert Stats(1, 0, 0) != (1, 0, 0)
    assert Stats() != 0


# -- global_stats outside pytest fixtures (as the seed's tests use it) -------------------------


class _Quotes(RemoteCache[int]):
    """Declared below rather than with ``kind = ...``: a discovered class would be a kind in
    every later test of this process (the torch profile's tests list kinds exactly)."""

    def __init__(self) -> None:
        super().__init__(namespace="stats_quotes")


@pytest.fixture(autouse=True)
def quotes_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    registry.add("stats_quotes", targets=[_Quotes], origin="test_plugin_stats")
    monkeypatch.setattr(_state.current(), "registry", registry)


def test_global_stats_view_after_patchcaches_exits() -> None:
    with PatchCaches() as patch:
        quotes = _Quotes()
        assert quotes.get("a") is None
        quotes.put("a", 5)
        assert quotes.get("a") == 5
        assert "stats_quotes" in patch.stats()
    # Readable after exit until the next entry, as in the seed.
    kind = global_stats.stats_quotes
    assert kind == Stats(1, 1, 1)
    assert global_stats["stats_quotes"] == Stats(puts=1, hits=1, misses=1)
    assert global_stats.get_stat("stats_quotes") is not kind
    assert (kind.num_put, kind.num_get_hit, kind.num_get_miss) == (1, 1, 1)
    assert dict(kind.cache) == {"stats_quotes::a:v1": b"5"}
    assert "stats_quotes" in global_stats
    assert "stats_quotes" in list(global_stats)
    assert repr(kind) == "global_stats.stats_quotes: Stats(puts=1, hits=1, misses=1)"
    text = global_stats.report(file=None)
    assert re.search(r"\n  stats_quotes +puts=1, hits=1, misses=1\n", text)
    assert "'stats_quotes::a:v1': b'5'" in text
    global_stats.reset()
    assert global_stats.stats_quotes == Stats()
    # Entering again resets the store.
    with PatchCaches():
        _Quotes().put("b", 1)
    with PatchCaches():
        assert global_stats.stats_quotes == Stats()


def test_unknown_kind_errors_list_known_kinds_and_the_closest() -> None:
    with PatchCaches() as patch:
        with pytest.raises(AttributeError, match=r"Did you mean 'stats_quotes'\?.*stats_quotes"):
            global_stats.stats_quote  # noqa: B018
        with pytest.raises(KeyError, match=r"unknown cache kind 'stats_quote'.*Known kinds"):
            global_stats["stats_quote"]
        with pytest.raises(UnknownKindUsageError, match="Did you mean 'stats_quotes'"):
            patch.enable("stats_quote")
        with pytest.raises(UnknownKindUsageError, match="unknown cache kind 'zzz'"):
            patch.entries("zzz")
    with pytest.raises(UnknownKindUsageError, match=r"Known kinds:.*stats_quotes"):
        PatchCaches(enable=["nope"]).start()


# -- in a pytest run ----------------------------------------------------------------------------


def test_counts_from_the_fixtures(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import Stats
        from shopapp import render

        def test_render_twice(global_stats):
            render("home"); render("home"); render("about")
            assert global_stats.pages == Stats(puts=2, hits=1, misses=2)
            assert global_stats["pages"] == Stats(2, 1, 2)
            assert dict(global_stats.pages.cache) == {
                "pages::home:v1": b'"<h1>home</h1>"', "pages::about:v1": b'"<h1>about</h1>"'
            }

        def test_patch_caches_alone_counts_too(patch_caches):
            from pytest_cachemock import global_stats
            render("x")
            assert patch_caches.stats()["pages"] == Stats(1, 0, 1)
            assert global_stats.pages == Stats(1, 0, 1)
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


FAILING = """
from pytest_cachemock import Stats
from shopapp import render

def test_wrong(global_stats):
    render("a"); render("b")
    assert global_stats.pages == Stats(puts=2, hits=1, misses=1)

def test_wrong_reversed(global_stats):
    render("a")
    assert Stats(puts=1, hits=0, misses=0, errors=2) == global_stats.pages
"""


@pytest.mark.parametrize("assert_mode", ["rewrite", "plain"])
def test_failed_comparison_says_which_counter_differs(
    pytester: pytest.Pytester, assert_mode: str
) -> None:
    make_app(pytester)
    pytester.makepyfile(FAILING)
    result = pytester.runpytest(f"--assert={assert_mode}")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_wrong _*",
            "*global_stats.pages == Stats(puts=2, hits=1, misses=1) failed;"
            " actual Stats(puts=2, hits=0, misses=2)*",
            "*hits: expected 1, got 0*",
            "*misses: expected 1, got 2*",
            "*_ test_wrong_reversed _*",
            "*misses: expected 0, got 1*",
            "*errors: expected 2, got 0*",
        ]
    )
    # Counters that agree are not listed.
    assert "puts: expected" not in result.stdout.str()


def test_plain_stats_comparison_explained_by_assertrepr(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_cachemock import Stats

        def test_values():
            assert Stats(1, 2, 3) == Stats(1, 2, 4)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*left == Stats(puts=1, hits=2, misses=4) failed*", "*misses:*"])


def test_unknown_kind_in_a_test(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        import shopapp

        def test_attr(global_stats):
            global_stats.page

        def test_item(global_stats):
            global_stats["page"]

        def test_attribute_error_is_catchable(global_stats):
            assert getattr(global_stats, "nothing_like_it", None) is None
            assert not hasattr(global_stats, "page")
            with pytest.raises(KeyError):
                global_stats["page"]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_attr _*",
            "E*UnknownKindError: unknown cache kind 'page'. Did you mean 'pages'?"
            " Known kinds: *pages*",
            "*_ test_item _*",
            "E*UnknownKindError: unknown cache kind 'page'. Did you mean 'pages'?*",
        ]
    )
