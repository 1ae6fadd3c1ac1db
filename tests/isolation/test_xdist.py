"""Issue 17: the plugin under pytest-xdist: ``--cachemock-report`` on the controller sums every
worker; ``-n 0`` and ``-p no:xdist`` work as without xdist."""

from __future__ import annotations

import pytest
from _plugin_app import make_app

pytest.importorskip("xdist")

SUITE = """
import pytest
import shopapp

@pytest.mark.parametrize("n", range(8))
def test_pages_twice(patch_caches, n):
    shopapp.render(f"page-{n}")
    shopapp.render(f"page-{n}")

@pytest.mark.cachemock(enable=["prices"])
@pytest.mark.parametrize("n", range(4))
def test_prices(n):
    shopapp.price(f"sku-{n}")

def test_no_plugin():
    pass
"""

TABLE = [
    "*= cachemock: cache stats per kind =*",
    "kind    tests  puts  hits  misses  errors",
    "pages       8     8     8       8       0",
    "prices      4     4     0       4       0",
]


@pytest.mark.parametrize("args", [["-n", "2"], ["-n", "0"], ["-p", "no:xdist"]], ids=" ".join)
def test_report_sums_every_worker(pytester: pytest.Pytester, args: list[str]) -> None:
    make_app(pytester, ini="[pytest]\npythonpath = .\n" + PRICES_LINE)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--cachemock-report", *args)
    result.assert_outcomes(passed=13)
    result.stdout.fnmatch_lines(TABLE)
    workers = "(summed over 2 pytest-xdist workers)"
    if args == ["-n", "2"]:
        result.stdout.fnmatch_lines([workers])
    else:
        assert workers not in result.stdout.str()
    assert "no test used the cachemock plugin" not in result.stdout.str()


def test_each_worker_test_starts_empty(pytester: pytest.Pytester) -> None:
    make_app(pytester, ini="[pytest]\npythonpath = .\n")
    pytester.makepyfile(
        test_many="""
        import pytest, shopapp
        from pytest_cachemock import Stats

        @pytest.mark.parametrize("n", range(20))
        def test_starts_empty(global_stats, n):
            shopapp.render("same")
            assert global_stats.pages == Stats(puts=1, misses=1)
        """
    )
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=20)


PRICES_LINE = (
    "cachemock_kinds =\n"
    "    prices target=shopapp:PriceClient.backend switch=shopapp:USE_REAL_PRICES\n"
)
