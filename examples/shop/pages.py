"""Product pages, rendered from the catalog and cached as HTML.

``PageCache`` declares ``kind = "pages"``: the pytest plugin finds it with no configuration.
The cache is a module-level object built at import, as applications usually have it.
"""

from __future__ import annotations

import html
import logging

from pytest_cachemock import CacheError, MemoryBackend, RemoteCache

from . import catalog

log = logging.getLogger(__name__)

# What "the cache is down" looks like to this application; anything else is a bug.
CACHE_DOWN = (CacheError, ConnectionError, TimeoutError)


class PageCache(RemoteCache[str]):
    kind = "pages"


page_cache = PageCache(MemoryBackend(max_entries=10_000), version=2)


def _render(sku: str) -> str:
    item = catalog.product(sku)
    return f"<h1>{html.escape(item.name)}</h1><p>{item.cents / 100:.2f} EUR</p>"


def product_page(sku: str) -> str:
    """The HTML of a product page; from the cache when it is there.

    The cache is an optimisation: when it fails, the page is rendered anyway.
    """
    key = f"product/{sku}"
    try:
        found = page_cache.get(key)
    except CACHE_DOWN as exc:
        log.warning("page cache unavailable for %s: %s", key, exc)
        return _render(sku)
    if found is not None:
        return found
    page = _render(sku)
    try:
        page_cache.put(key, page)
    except CACHE_DOWN as exc:
        log.warning("could not cache %s: %s", key, exc)
    return page
