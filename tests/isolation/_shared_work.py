"""What the child processes of tests/isolation/test_shared.py run (importable by spawn and
forkserver children: tests/ is on the parent's sys.path, which multiprocessing hands over)."""

from __future__ import annotations

import os
import time

from pytest_cachemock import MemoryBackend, RemoteCache


class Shelf(RemoteCache[int]):
    kind = "shelf"


SHELF = Shelf(MemoryBackend(), namespace="shelf")

PUTS = 10
MISSES = 5


def work(tag: str) -> int:
    """PUTS puts of keys of its own, PUTS hits on them, MISSES misses, and one get of the key
    the parent put ("parent": a hit when the child sees the parent's store). Returns what the
    get of "parent" found (0 when it missed)."""
    for i in range(PUTS):
        SHELF.put(f"{tag}-{i}", i)
    for i in range(PUTS):
        assert SHELF.get(f"{tag}-{i}") == i, (tag, i)
    for i in range(MISSES):
        assert SHELF.get(f"absent-{tag}-{i}") is None
    return SHELF.get("parent") or 0


def failing(tag: str) -> int:
    """Five gets; how many raised ConnectionError (an injected fault)."""
    failed = 0
    for i in range(5):
        try:
            SHELF.get(f"{tag}-{i}")
        except ConnectionError:
            failed += 1
    return failed


def forever(tag: str, ready_path: str) -> None:
    """Puts without end (until killed); writes ready_path after the first 100."""
    i = 0
    while True:
        SHELF.put(f"{tag}-{i}", i)
        i += 1
        if i == 100:
            with open(ready_path, "w") as f:
                f.write(str(os.getpid()))
        if i % 1000 == 0:
            time.sleep(0)
