"""Isolation ``shared``: Python children started with this process's ``sys.path`` as their
``PYTHONPATH`` (not the environment's: torch's compile worker pool, ``SubprocPool``, does so)
count too, and the start-up hook does nothing in the test's own process. Real processes."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest
from _shared_work import SHELF

from pytest_cachemock import PatchCaches, Stats, global_stats

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent(
    """
    from pytest_cachemock import MemoryBackend, RemoteCache

    class Shelf(RemoteCache[int]):
        kind = "shelf"

    shelf = Shelf(MemoryBackend(), namespace="shelf")
    print(shelf.get("seeded"))
    shelf.put("from-child", 3)
    """
)


def test_a_child_given_sys_path_as_its_pythonpath_counts() -> None:
    with PatchCaches(isolation="shared") as patch:
        patch.seed("shelf", {"seeded": 41}, cache=SHELF)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["41"]
        assert global_stats.shelf == Stats(puts=1, hits=1)
        site = os.path.join(os.environ["CACHEMOCK_SHARED"], "site")
        assert sys.path[0] == site
    assert site not in sys.path  # put back when the test ends


def test_the_hook_imported_in_the_tests_own_process_does_nothing() -> None:
    with PatchCaches(isolation="shared") as patch:
        saved = sys.modules.pop("sitecustomize", None)
        try:
            hook = importlib.import_module("sitecustomize")  # ours: first on sys.path
            assert os.path.dirname(str(hook.__file__)) == sys.path[0]
        finally:
            sys.modules.pop("sitecustomize", None)
            if saved is not None:
                sys.modules["sitecustomize"] = saved
        from pytest_cachemock import _shared_child

        assert _shared_child._started == []  # no second PatchCaches in this process
        SHELF.put("parent", 1)
        assert patch.stats()["shelf"] == Stats(puts=1)
