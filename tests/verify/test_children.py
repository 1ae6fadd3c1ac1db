"""Verify mode in child processes (isolation ``shared``): a stale hit a child finds fails the
test that started it, with the message a hit in the test's own process gives.

Real children: a ``fork`` child, a ``spawn`` child, a plain ``subprocess`` Python, each run by
a pytester test suite in a pytest process of its own.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

APP = """
from pytest_cachemock import Memoizer, RemoteCache

quotes = Memoizer(kind="quotes")
good = Memoizer(kind="good")
SETTINGS = {"locale": "en"}


# Broken: the encoder drops qty.
@quotes.memoize(params_encoder=lambda sku, qty: sku)
def quote(sku, qty):
    return {"sku": sku, "qty": qty}


@good.memoize
def area(w, h):
    return w * h


class Pages(RemoteCache[str]):
    kind = "pages"


pages = Pages()


# Broken: keyed on the user only, while the page depends on the locale.
def render(user):
    page = pages.get(user)
    if page is None:
        page = f"{'Hello' if SETTINGS['locale'] == 'en' else 'Bonjour'} {user}"
        pages.put(user, page)
    return page


def never(cached, fresh):               # a comparator a child can import
    return False


def in_child(method, fn, *args):
    import multiprocessing

    child = multiprocessing.get_context(method).Process(target=fn, args=args)
    child.start()
    child.join(60)
    assert child.exitcode == 0, child.exitcode
"""

CONFTEST = """
import childapp


def pytest_cachemock_register_kinds(registry):
    registry.add("pages", verify=childapp.render)
"""

TESTS = """
import subprocess
import sys

import pytest
from pytest_cachemock import Stats
from childapp import area, in_child, quote

CHILD = '''
import sys
import childapp
childapp.SETTINGS["locale"] = sys.argv[1]
print(childapp.quote("A1", 3), childapp.area(2, 3), childapp.render("u1"))
'''


def python(*args):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.cachemock(isolation="shared", verify=True)
def test_fork_child(global_stats):
    quote("A1", 1)
    in_child("fork", quote, "A1", 2)       # a hit in the child: the entry of qty=1
    assert global_stats.quotes == Stats(puts=1, hits=1, misses=1)


@pytest.mark.cachemock(isolation="shared", verify=True)
def test_spawn_child(global_stats):
    quote("A1", 1)
    in_child("spawn", quote, "A1", 4)
    assert global_stats.quotes == Stats(puts=1, hits=1, misses=1)


@pytest.mark.cachemock(isolation="shared", verify=True)
def test_subprocess_child(global_stats):
    quote("A1", 1)
    area(2, 3)
    python("en")                           # quote and area hit; the page is put
    python("fr")                           # the page hits: the English one
    assert global_stats.quotes == Stats(puts=1, hits=2, misses=1)
    assert global_stats.good == Stats(puts=1, hits=2, misses=1)
    assert global_stats.pages == Stats(puts=1, hits=1, misses=1)


@pytest.mark.cachemock(isolation="shared", verify="good")
def test_correct_keys_in_children(global_stats):
    area(2, 3)
    in_child("fork", area, 2, 3)
    python("en")
    assert global_stats.good == Stats(puts=1, hits=2, misses=1)


@pytest.mark.cachemock(isolation="shared")
def test_a_comparator_by_reference_reaches_children(patch_caches):
    import childapp

    patch_caches.verify("good", compare=childapp.never)
    area(2, 3)
    python("en")                           # area hits in the child: "never" equal


@pytest.mark.cachemock(isolation="shared")
def test_a_kind_whose_comparator_has_no_reference_is_left_to_the_parent(patch_caches):
    patch_caches.verify("quotes", compare=lambda cached, fresh: True)
    quote("A1", 1)
    python("en")                           # the child does not verify quotes
    quote("A1", 9)                         # the parent does, with the lambda: equal


@pytest.mark.cachemock(isolation="shared")
def test_a_kind_verified_later_reaches_children(patch_caches):
    patch_caches.verify("good")
    patch_caches.verify("quotes")          # added to the running verifier
    quote("A1", 1)
    python("en")


@pytest.mark.cachemock(isolation="shared")
def test_children_without_verify(global_stats):
    quote("A1", 1)
    in_child("fork", quote, "A1", 2)
    python("en")
    assert global_stats.quotes == Stats(puts=1, hits=2, misses=1)
"""


def test_stale_hits_in_children_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(childapp=APP, test_children=TESTS)
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=5)
    text = result.stdout.str()

    def failure(test: str) -> str:  # the test's failure text, without its report section
        return text.split(f"_ {test} _", 1)[1].split(" cachemock (call) ", 1)[0]

    for test, qty in (("test_fork_child", 2), ("test_spawn_child", 4)):
        section = failure(test)
        assert "cachemock verify: 1 stale cache hit\n" in section, section
        assert f"  call: childapp.quote('A1', {qty})\n" in section, section
        assert "  cached: {'qty': 1, 'sku': 'A1'}\n" in section, section
        assert f"  fresh:  {{'qty': {qty}, 'sku': 'A1'}}\n" in section, section
        assert f"  first difference: at ['qty']: 1 (cached) != {qty} (fresh)\n" in section
    section = failure("test_subprocess_child")
    assert "cachemock verify: 2 stale cache hits\n" in section, section
    assert "  call: childapp.quote('A1', 3)\n" in section, section
    # A RemoteCache kind's recompute (given in the hook) reaches the child by reference.
    assert "- kind 'pages', key 'u1'\n  call: childapp:render('u1')\n" in section, section
    assert "  cached: 'Hello u1'\n  fresh:  'Bonjour u1'\n" in section, section
    assert "kind 'good'" not in section  # a correct key
    section = failure("test_a_comparator_by_reference_reaches_children")
    assert "- kind 'good', key 'good/" in section
    assert "  call: childapp.area(2, 3)\n" in section
    section = failure("test_a_kind_verified_later_reaches_children")
    assert "  call: childapp.quote('A1', 3)\n" in section
