"""Source of the small application the plugin's pytester suites test against.

``shopapp`` has one auto-discovered kind (``Pages``, a ``RemoteCache`` subclass with
``kind = "pages"``, with a module-level singleton built at import) and the pieces an ini line
can declare: a client class whose backend is held in an attribute and a module-level flag
that turns its real cache on.
"""

from __future__ import annotations

import gc

import pytest

SHOPAPP = """
from pytest_cachemock import MemoryBackend, RemoteCache

class Pages(RemoteCache[str]):
    kind = "pages"

pages = Pages(MemoryBackend())          # built at import: a module-level singleton

def render(name):
    html = pages.get(name)
    if html is None:
        html = "<h1>" + name + "</h1>"
        pages.put(name, html)
    return html

class PriceClient:
    backend = MemoryBackend()           # an attribute holding a backend instance

USE_REAL_PRICES = True                   # a switch: the real price cache is on

def price(sku):
    if not USE_REAL_PRICES:
        return 100
    found = PriceClient.backend.get(sku)
    if found is None:
        found = 100
        PriceClient.backend.put(sku, found)
    return found
"""

# The head of a test module for a pytester run on ``shopapp`` with PRICES_INI:
# ``check_restored()`` asserts every target and switch holds its pre-plugin value, and the
# environment variable switch starts at "real" for the module.
RESTORED_CHECK = """
import os
import pytest
import shopapp
from pytest_cachemock import MemoryBackend, MockBackend

REAL_PRICES = shopapp.PriceClient.backend


def check_restored():
    assert shopapp.Pages.backend_override_cls is None
    assert shopapp.pages.backend is shopapp.pages.real_backend
    assert shopapp.PriceClient.backend is REAL_PRICES
    assert shopapp.USE_REAL_PRICES is True
    assert os.environ.get("SHOP_PRICES") == "real"


@pytest.fixture(autouse=True, scope="module")
def real_env():
    os.environ["SHOP_PRICES"] = "real"
    yield
    del os.environ["SHOP_PRICES"]
"""

PRICES_INI = """
[pytest]
cachemock_kinds =
    prices target=shopapp:PriceClient.backend switch=shopapp:USE_REAL_PRICES switch=env:SHOP_PRICES
"""


def make_app(pytester: pytest.Pytester, *, ini: str | None = None) -> pytest.Pytester:
    """Write ``shopapp.py`` (and an ini file) into the pytester directory, importable."""
    # Auto-discovery is process-wide with weak references: the classes of earlier inline runs
    # (whose modules pytester dropped) linger until a collection. Collect them now, so a kind
    # declared here does not meet an old class of the same name.
    gc.collect()
    pytester.makepyfile(shopapp=SHOPAPP)
    pytester.syspathinsert()
    if ini is not None:
        pytester.makeini(ini)
    return pytester
