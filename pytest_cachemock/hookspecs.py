"""The plugin's own hooks, added with ``pytest_addhooks``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .kinds import Registry


@pytest.hookspec
def pytest_cachemock_register_kinds(registry: Registry) -> None:
    """Declare cache kinds in code, from a ``conftest.py`` or a plugin.

    Called once at configure time, after the ``cachemock_kinds`` ini lines and profiles are
    loaded. Declare kinds with ``registry.add(name, targets=[...], switches=[...])``; targets
    and switches are objects or ``"package.module:Name.attr"`` strings, and ``"env:NAME"`` for
    an environment-variable switch. Put it in the rootdir ``conftest.py`` (or one next to the
    tests you name on the command line), which pytest has loaded by then.
    """


@pytest.hookspec(firstresult=True)
def pytest_cachemock_snapshot_key(kind: str, key: str) -> str | None:
    """The key to write in a snapshot for ``key`` of ``kind``, or None to leave it as it is.

    Called for every operation of a test marked ``cachemock(snapshot=...)`` when its snapshot
    is compared, before the ini rules (``cachemock_snapshot_rules``) and the built-in ones,
    which then work on what it returned. The first implementation that returns a str wins; a
    ``conftest.py``'s applies to the tests under its directory.
    """
