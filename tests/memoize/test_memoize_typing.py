"""Decorated functions keep their types for a user's ``mypy --strict``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_cachemock

SNIPPET = textwrap.dedent(
    """
    from pytest_cachemock import Memoizer

    memo = Memoizer(kind="typed")

    @memo.memoize
    def bare(sku: str, qty: int = 1) -> dict[str, int]:
        return {sku: qty}

    @memo.memoize(params_encoder=lambda sku, qty=1: sku)
    def encoded(sku: str, qty: int = 1) -> list[str]:
        return [sku] * qty

    @memo.replay()
    async def fetch(n: int) -> float:
        return n / 2

    class Shop:
        @memo.record()
        def price(self, sku: str) -> int:
            return 1

    reveal_type(bare)
    reveal_type(encoded("a", qty=2))
    reveal_type(fetch)
    reveal_type(Shop().price("x"))
    bare(1)
    """
)


@pytest.mark.slow
def test_mypy_strict_sees_the_decorated_signatures(tmp_path: Path) -> None:
    source = tmp_path / "user_code.py"
    source.write_text(SNIPPET)
    # An editable install is an import hook mypy does not follow; point it at the package.
    package_root = str(Path(pytest_cachemock.__file__).resolve().parent.parent)
    env = dict(os.environ, MYPYPATH=package_root)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    out = done.stdout.replace("builtins.", "")  # older mypy spells types in full
    assert 'Revealed type is "def (sku: str, qty: int =) -> dict[str, int]"' in out, out
    assert 'Revealed type is "list[str]"' in out, out
    assert 'Revealed type is "def (n: int) -> typing.Coroutine[Any, Any, float]"' in out, out
    assert 'Revealed type is "int"' in out, out
    # The one deliberate mistake, and nothing else.
    assert 'Argument 1 to "bare" has incompatible type "int"; expected "str"' in out, out
    assert "Found 1 error" in out, out
