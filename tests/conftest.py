from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cachemock import cache_stats


@pytest.fixture
def fresh_stats() -> Iterator[None]:
    """cache_stats counted from zero for the test."""
    cache_stats.reset()
    yield
    cache_stats.reset()


@pytest.fixture
def umask0() -> Iterator[None]:
    """A permissive umask, so permission bits come from the backend and not the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB tmpfs mounted at a fresh directory: a disk that fills up for real.

    Needs root (mount); skipped where mounting is not allowed.
    """
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
