"""A user's own model under the plugin, as docs/pytorch.md "Testing your own model" writes it:
real ``torch.compile`` on the CPU, no ``fresh_cache()``, no profile configured, a module that
imports only ``torch``. The page's test file runs twice in a row against one
``TORCHINDUCTOR_CACHE_DIR``: every test passes both times (their counts are exact), and that
directory is left as it was."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
]

PAGE = Path(__file__).parents[2] / "docs" / "pytorch.md"


def own_model_file() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Testing your own model") :]
    found = re.search(r"```python pytest\n(.*?)```", section, re.S)
    assert found is not None, "no test file in the section"
    return found.group(1)


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")} | {
        ".": root.stat().st_mtime_ns
    }


def test_own_model_twice_in_a_row_leaves_the_real_cache_dir_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = own_model_file()
    assert "import torch._inductor" not in source
    assert "fresh_cache" not in source
    tests = len(re.findall(r"^def test_", source, re.M))
    real = tmp_path / "users-inductor-cache"
    (real / "fxgraph").mkdir(parents=True)
    (real / "fxgraph" / "an-entry-of-mine").write_text("kept")
    before = listing(real)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(real))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    pytester.makepyfile(test_own_model=source)
    pytester.makeini("[pytest]\n")  # no profile configured
    # The runs' temporary directory of their own: other processes (this one too) keep their
    # cachemock-inductor-* directory in the shared one until they exit.
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    for _ in range(2):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=tests)
    assert listing(real) == before
    # The directories the tests compiled in are gone, with the runs' one above them.
    assert [name for name in os.listdir(temp) if name.startswith("cachemock-inductor-")] == []
