"""Start-up of a Python child of a test in isolation mode ``shared`` (see _shared.py).

The ``sitecustomize`` that the test puts first on ``PYTHONPATH`` calls :func:`start` when
``CACHEMOCK_SHARED`` names the test's store. It declares the test's kinds from the manifest
(discovered ``RemoteCache`` subclasses and memoizers declare themselves as the child defines
them) and starts a ``PatchCaches`` bound to the store, which stays on for the life of the
process, and when the test verifies, a verifier that sends what it finds to the test (see
``_verify.start_child``). No pytest is needed.
"""

from __future__ import annotations

import json
import os
import sys

from . import _shared, _verify
from .kinds import Registry
from .patching import PatchCaches

__all__ = ["start"]

_started: list[PatchCaches] = []


def start(path: str) -> None:
    """Mock this process's caches into the shared store at ``path`` (once)."""
    if _started:
        return
    manifest_path = os.path.join(path, "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except OSError:
        # The test that started the parent ended (its store is gone): nothing to count into.
        return
    _shared.attach(path)
    registry = Registry()
    for number, line in enumerate(manifest["lines"], start=1):
        try:
            registry.add_line(line, f"{_shared.ENV_VAR} kind {number} ({line!r})")
        except Exception as exc:  # the child cannot import it: say so, mock the others
            sys.stderr.write(f"pytest-cachemock: this child does not mock a kind: {exc}\n")
    known = registry.kinds()
    patch = PatchCaches(
        isolation="shared",
        switches=manifest["switches"],
        enable=[name for name in manifest["enable"] if name in known],
        registry=registry,
    )
    patch.start()
    _started.append(patch)
    verify = manifest.get("verify")
    if verify:
        _verify.start_child(verify, patch._box)
