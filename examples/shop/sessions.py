"""Shopping sessions, kept on disk between requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_cachemock import FileBackend, RemoteCache


class SessionCache(RemoteCache[dict[str, Any]]):
    kind = "sessions"


def session_store(directory: str | Path) -> SessionCache:
    return SessionCache(FileBackend(directory))


def add_to_cart(store: SessionCache, user: str, sku: str) -> dict[str, Any]:
    session = store.get(user) or {"cart": []}
    session["cart"].append(sku)
    store.put(user, session)
    return session
