"""Sessions on disk: the toolkit on its own, then the same code with the cache mocked."""

from __future__ import annotations

from shop.sessions import add_to_cart, session_store

from pytest_cachemock import Stats, cache_stats


def test_file_backed_sessions(tmp_path):
    # No plugin fixture: the real FileBackend writes files, and cache_stats counts.
    cache_stats.reset()
    store = session_store(tmp_path / "sessions")
    add_to_cart(store, "alice", "mug")
    assert add_to_cart(store, "alice", "tee") == {"cart": ["mug", "tee"]}
    assert len(list((tmp_path / "sessions").iterdir())) == 1
    assert cache_stats.snapshot()["SessionCache"] == {
        "hit": 1,
        "miss": 1,
        "put": 2,
        "exception": 0,
    }


def test_sessions_mocked(tmp_path, global_stats):
    # Built inside the test, mocked all the same: nothing reaches the disk.
    store = session_store(tmp_path / "sessions")
    add_to_cart(store, "bob", "cap")
    add_to_cart(store, "bob", "cap")
    assert global_stats.sessions == Stats(puts=2, hits=1, misses=1)
    assert list((tmp_path / "sessions").iterdir()) == []
