"""The toolkit on its own: a cache kind over a file store, with library-wide counters."""

from __future__ import annotations

from pathlib import Path

from pytest_cachemock import FileBackend, RemoteCache, cache_stats


class SessionCache(RemoteCache[dict]):  # type: ignore[type-arg]
    kind = "sessions_example"


def test_file_backed_cache_counts(tmp_path: Path) -> None:
    cache_stats.reset()
    cache = SessionCache(FileBackend(tmp_path / "sessions"))
    assert cache.get("alice") is None
    cache.put("alice", {"cart": [1, 2]})
    assert cache.get("alice") == {"cart": [1, 2]}
    assert cache_stats.snapshot()["SessionCache"] == {"hit": 1, "miss": 1, "put": 1, "exception": 0}
