"""Verify mode: every hit of a verified kind is recomputed and compared, the way users meet it.

Pytester suites of small test files over real memoizers and a real ``RemoteCache``, each with a
key deliberately broken (or not): a ``params_encoder`` that drops an argument, a result that
reads a global setting left out of ``context``, a page cache keyed on the user id while the page
depends on the locale.
"""

from __future__ import annotations

import pytest

APP = """
import threading

from pytest_cachemock import Memoizer, RemoteCache

quotes = Memoizer(kind="quotes")
rates = Memoizer(kind="rates")
good = Memoizer(kind="good")
SETTINGS = {"currency": "EUR", "locale": "en"}
CALLS = []


# Broken: the encoder drops qty, so quote("A1", 1) and quote("A1", 5) share one entry.
@quotes.memoize(params_encoder=lambda sku, qty: sku)
def quote(sku: str, qty: int) -> dict:
    CALLS.append((sku, qty))
    return {"sku": sku, "qty": qty, "total": 3 * qty}


# Broken: the result reads SETTINGS["currency"], which is not in the memoizer's context.
@rates.memoize
def price(sku: str) -> str:
    return f"10 {SETTINGS['currency']}"


# Right: every input of the result is an argument.
@good.memoize
def area(w: int, h: int) -> int:
    CALLS.append((w, h))
    return w * h


@good.memoize
async def slow_area(w: int, h: int) -> int:
    return w * h


class Pages(RemoteCache[str]):
    kind = "pages"


pages = Pages()


def page_body(user: str) -> str:
    return f"<h1>{'Hello' if SETTINGS['locale'] == 'en' else 'Bonjour'} {user}</h1>"


# Broken: keyed on the user id only, while the page depends on the locale.
def render(user: str) -> str:
    page = pages.get(user)
    if page is None:
        page = page_body(user)
        pages.put(user, page)
    return page


def in_thread(fn, *args):
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]
"""

CONFTEST = """
import memoapp


def pytest_cachemock_register_kinds(registry):
    registry.add("pages", verify=memoapp.render)
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(memoapp=APP)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    return pytester


def test_a_params_encoder_that_drops_an_argument_is_found(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import Stats
        from memoapp import quote

        @pytest.mark.cachemock(verify=True)
        def test_quotes(global_stats):
            quote("A1", 1)
            quote("A1", 5)   # a hit: the stale total of qty=1
            assert global_stats.quotes == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cachemock verify: 1 stale cache hit",
            "*- kind 'quotes', key 'quotes/*",
            "*  call: memoapp.quote('A1', 5)",
            # Both as the memoizer gives them back: through its JSON serde (keys sorted).
            "*  cached: {'qty': 1, 'sku': 'A1', 'total': 3}",
            "*  fresh:  {'qty': 5, 'sku': 'A1', 'total': 15}",
            "*  first difference: at ?'qty'?: 1 (cached) != 5 (fresh)",
            "*A stale hit is a key that leaves out an input of the result*",
        ]
    )


def test_the_same_test_passes_without_verify(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import Stats
        from memoapp import quote

        def test_quotes(global_stats):
            quote("A1", 1)
            quote("A1", 5)
            assert global_stats.quotes == Stats(puts=1, hits=1, misses=1)
        """
    )
    app.runpytest().assert_outcomes(passed=1)


def test_a_global_setting_left_out_of_context_is_found(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from memoapp import SETTINGS, price

        @pytest.mark.cachemock(verify="rates")
        def test_prices(monkeypatch):
            assert price("A1") == "10 EUR"
            monkeypatch.setitem(SETTINGS, "currency", "USD")
            price("A1")   # a hit: still in euros
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kind 'rates', key 'rates/*",
            "*  call: memoapp.price('A1')",
            "*  cached: '10 EUR'",
            "*  fresh:  '10 USD'",
        ]
    )
    # Two leaves: no "first difference" line.
    assert "first difference" not in result.stdout.str()


def test_a_remote_cache_keyed_without_the_locale_is_found(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import Stats
        from memoapp import SETTINGS, render

        @pytest.mark.cachemock(verify=["pages"])
        def test_pages(monkeypatch, global_stats):
            assert render("u1") == "<h1>Hello u1</h1>"
            monkeypatch.setitem(SETTINGS, "locale", "fr")
            render("u1")   # a hit: the English page
            # The recompute (render itself, inside) neither read nor stored: counts as without.
            assert global_stats.pages == Stats(puts=1, hits=1, misses=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kind 'pages', key 'u1'",
            "*  call: memoapp:render('u1')",
            "*  cached: '<h1>Hello u1</h1>'",
            "*  fresh:  '<h1>Bonjour u1</h1>'",
        ]
    )


def test_a_correct_key_passes_and_counts_as_without_verify(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import asyncio
        import pytest
        from pytest_cachemock import Stats, cache_stats
        from memoapp import CALLS, area, good, slow_area

        @pytest.mark.cachemock(verify=True)
        def test_area(patch_caches, global_stats):
            CALLS.clear()
            assert [area(2, 3), area(2, 3), area(3, 2), area(2, 3)] == [6, 6, 6, 6]
            assert asyncio.run(slow_area(2, 5)) == asyncio.run(slow_area(2, 5)) == 10
            assert global_stats.good == Stats(puts=3, hits=3, misses=3)
            # The memoizer's own counters, and the mock's library-wide ones, too.
            assert patch_caches.library_stats()["good"]["hit"] == 3
            assert patch_caches.library_stats()["good"]["miss"] == 3
            # The recomputes ran the real function: once a call, hits included.
            assert CALLS == [(2, 3), (2, 3), (3, 2), (2, 3)]
        """
    )
    result = app.runpytest("-W", "error")
    result.assert_outcomes(passed=1)


def test_verify_mode_checks_hits_in_threads_the_test_starts(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from memoapp import in_thread, quote

        @pytest.mark.cachemock(verify=True)
        def test_in_a_thread():
            quote("A1", 1)
            in_thread(quote, "A1", 2)

        @pytest.mark.cachemock(verify=True, isolation="process")
        def test_in_a_thread_process_mode():
            quote("A1", 1)
            in_thread(quote, "A1", 3)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*call: memoapp.quote('A1', 2)", "*call: memoapp.quote('A1', 3)"])


def test_a_hit_in_a_thread_of_no_test_is_not_verified(app: pytest.Pytester) -> None:
    # A pool started before the test is foreign in isolation mode "thread": its traffic is
    # not the test's (not counted), so it is not verified either.
    app.makepyfile(
        """
        import warnings
        from concurrent.futures import ThreadPoolExecutor
        import pytest
        from memoapp import quote

        POOL = ThreadPoolExecutor(1)
        POOL.submit(lambda: None).result()   # its thread starts before any test

        @pytest.mark.cachemock(verify=True)
        def test_pool():
            warnings.simplefilter("ignore")
            POOL.submit(quote, "A1", 1).result()
            POOL.submit(quote, "A1", 2).result()
        """
    )
    app.runpytest().assert_outcomes(passed=1)


def test_a_stale_hit_found_in_a_failing_test_is_reported_at_teardown(
    app: pytest.Pytester,
) -> None:
    app.makepyfile(
        """
        import pytest
        from memoapp import quote

        @pytest.mark.cachemock(verify=True)
        def test_quotes():
            quote("A1", 1)
            assert quote("A1", 5)["total"] == 15
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_quotes*", "cachemock verify: 1 stale*"]
    )
    result.stdout.fnmatch_lines(["*assert 3 == 15"])


def test_verify_from_the_command_line_and_the_ini(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from memoapp import quote, price, SETTINGS

        def test_quotes():
            quote("A1", 1)
            quote("A1", 5)

        def test_prices(monkeypatch):
            price("A1")
            monkeypatch.setitem(SETTINGS, "currency", "USD")
            price("A1")

        @pytest.mark.cachemock(verify=False)
        def test_opted_out():
            quote("A1", 1)
            quote("A1", 5)
        """
    )
    # Nothing verified: the plugin is not even used (no marker, no fixture) but in the last.
    app.runpytest().assert_outcomes(passed=3)
    app.makeini("[pytest]\ncachemock_autouse = true\n")
    app.runpytest().assert_outcomes(passed=3)
    result = app.runpytest("--cachemock-verify")
    result.assert_outcomes(passed=1, failed=2)
    app.makeini("[pytest]\ncachemock_autouse = true\ncachemock_verify = rates\n")
    result = app.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_prices*"])
    app.makeini("[pytest]\ncachemock_autouse = true\ncachemock_verify = all\n")
    app.runpytest().assert_outcomes(passed=1, failed=2)


def test_verify_in_code_with_a_comparator_and_a_recompute(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import math
        from pytest_cachemock import Memoizer, RemoteCache

        floats = Memoizer(kind="floats")
        NOISE = [0.0]

        @floats.memoize
        def mean(n: int) -> float:
            return sum(range(n)) / n + NOISE[0]

        class Scores(RemoteCache[dict]):
            kind = "scores"

        scores = Scores()

        def test_close_enough_is_equal(patch_caches):
            patch_caches.verify("floats", compare=lambda a, b: math.isclose(a, b, rel_tol=1e-6))
            mean(10)
            NOISE[0] = 1e-9
            mean(10)

        def test_too_far_is_stale(patch_caches):
            patch_caches.verify("floats", compare=lambda a, b: math.isclose(a, b, rel_tol=1e-6))
            NOISE[0] = 0.0
            mean(10)
            NOISE[0] = 1.0
            mean(10)

        def test_remote_cache_with_recompute(patch_caches):
            patch_caches.verify("scores", recompute=lambda key: {"user": key, "score": 2})
            scores.put("u1", {"user": "u1", "score": 1})
            assert scores.get("u1") == {"user": "u1", "score": 1}

        def test_remote_cache_without_recompute(patch_caches):
            patch_caches.verify("scores")
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_too_far_is_stale*",
            "*cached: 4.5*",
            "*fresh:  5.5*",
            "*test_remote_cache_with_recompute*",
            "*first difference: at ?'score'?: 1 (cached) != 2 (fresh)",
            "*test_remote_cache_without_recompute*",
            "*verify: cache kind 'scores' has no recompute function, so its hits cannot be "
            "checked; give one: patch_caches.verify('scores', recompute=fn)*",
        ]
    )


def test_a_recompute_that_raises_fails_the_test(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import RemoteCache

        class Scores(RemoteCache[int]):
            kind = "scores"

        scores = Scores()

        def broken(key):
            raise LookupError(f"no user {key}")

        def test_broken(patch_caches):
            patch_caches.verify("scores", recompute=broken)
            scores.put("u1", 1)
            assert scores.get("u1") == 1
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kind 'scores', key 'u1'",
            "*the fresh computation raised LookupError: no user u1; the hit could not be "
            "checked (fix the recompute function, or stop verifying this kind)",
        ]
    )


def test_ini_kind_line_declares_the_recompute(app: pytest.Pytester) -> None:
    app.makeconftest("")
    app.makepyfile(
        webapp="""
        from pytest_cachemock import RemoteCache

        class Pages(RemoteCache[str]):
            pass

        pages = Pages()
        LOCALE = ["en"]

        def render(user):
            return f"{LOCALE[0]}:{user}"
        """
    )
    app.makeini("[pytest]\ncachemock_kinds =\n    pages target=webapp:Pages verify=webapp:render\n")
    app.makepyfile(
        """
        import pytest
        from webapp import LOCALE, pages, render

        @pytest.mark.cachemock(verify="pages")
        def test_pages():
            pages.put("u1", render("u1"))
            LOCALE[0] = "fr"
            pages.get("u1")
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cached: 'en:u1'", "*fresh:  'fr:u1'"])


def test_bad_verify_arguments_are_usage_errors(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest

        @pytest.mark.cachemock(verify=3)
        def test_three():
            pass

        @pytest.mark.cachemock(verify="quote")
        def test_typo():
            pass
        """
    )
    result = app.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*cachemock: @pytest.mark.cachemock: verify=3: give True (every kind that can be "
            "verified), a kind name, or a list of kind names, such as verify=True or "
            "verify=?'quotes'?*",
            "*cachemock: @pytest.mark.cachemock(verify=...): unknown cache kind 'quote'*",
        ]
    )


def test_a_bad_verify_reference_in_the_ini_is_a_usage_error(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_kinds =\n    pages switch=env:X verify=memoapp:nothing\n")
    app.makepyfile("def test_one(): pass")
    result = app.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*verify='memoapp:nothing' does not exist*"])


def test_an_unknown_kind_in_cachemock_verify_is_a_usage_error(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_verify = quotes rate\n")
    app.makepyfile("def test_one(patch_caches): pass")
    result = app.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: ini option cachemock_verify: unknown cache kind 'rate'. Did you "
            "mean 'rates'?*"
        ]
    )


def test_patch_caches_outside_pytest_raises_the_stale_hits(app: pytest.Pytester) -> None:
    app.makeconftest("")  # the plugin is off: no hook
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import PatchCaches
        from pytest_cachemock import StaleHitError
        from memoapp import quote

        def test_context_manager():
            with pytest.raises(StaleHitError, match="kind 'quotes'"):
                with PatchCaches(verify=["quotes"]):
                    quote("A1", 1)
                    quote("A1", 2)
            # A block that raised keeps its own error; the stale hits stay unreported.
            patch = PatchCaches(verify=True)
            with pytest.raises(KeyError):
                with patch:
                    quote("A1", 1)
                    quote("A1", 2)
                    raise KeyError("own")
            assert "stale cache hit" in patch.stale_hits()
            assert patch.stale_hits() == ""
        """
    )
    app.runpytest("-p", "no:cachemock").assert_outcomes(passed=1)


def test_a_stale_async_hit_is_found(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import asyncio
        import pytest
        from pytest_cachemock import Memoizer

        memo = Memoizer(kind="aquotes")

        @memo.memoize(params_encoder=lambda sku, qty: sku)
        async def quote(sku, qty):
            await asyncio.sleep(0)
            return 3 * qty

        @pytest.mark.cachemock(verify=True)
        def test_async():
            assert asyncio.run(quote("A1", 1)) == 3
            assert asyncio.run(quote("A1", 2)) == 3
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*call: *quote('A1', 2)", "*cached: 3", "*fresh:  6"])
