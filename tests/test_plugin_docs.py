"""The Python blocks of docs/plugin.md run, in order, as one script in a temporary directory.

A block right after a ``<!-- no-run -->`` line is skipped: those are test files that need pytest
running, and the plugin's pytester suites cover what they show. The script runs in its own
process, so the cache kinds the docs define do not show up in other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin.md"

RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__docs__"}
for line, source in blocks:
    try:
        exec(compile(source, "docs/plugin.md", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print(f"the block at docs/plugin.md line {line} failed", file=sys.stderr)
        sys.exit(1)
print(f"ran {len(blocks)} blocks")
"""


def python_blocks(text: str) -> tuple[list[tuple[int, str]], int]:
    """(line of the fence, source) of each runnable block, and how many were skipped."""
    blocks: list[tuple[int, str]] = []
    skipped = 0
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        line = lines[i]
        if line.strip() == "```python":
            start = i + 1
            end = lines.index("```", start)
            # Line numbers in tracebacks match the file: pad with blank lines.
            source = "\n" * start + "\n".join(lines[start:end])
            if previous == "<!-- no-run -->":
                skipped += 1
            else:
                blocks.append((start, source))
            i = end
        if line.strip():
            previous = line.strip()
        i += 1
    return blocks, skipped


def test_plugin_docs_blocks_run(tmp_path: Path) -> None:
    blocks, skipped = python_blocks(DOC.read_text())
    assert len(blocks) >= 10
    assert skipped <= 5  # no-run is for test files only
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "blocks.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"ran {len(blocks)} blocks" in proc.stdout


def test_every_python_fence_is_seen() -> None:
    text = DOC.read_text()
    blocks, skipped = python_blocks(text)
    assert len(blocks) + skipped == text.count("```python")


def _fenced_after(text: str, heading: str) -> str:
    """The first ```python block after ``heading``."""
    rest = text.split(heading, 1)[1]
    return rest.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_readme_and_first_test_examples_pass_under_pytest(pytester: pytest.Pytester) -> None:
    readme = (DOC.parent.parent / "README.md").read_text()
    pytester.makepyfile(test_readme=_fenced_after(readme, "## The plugin in ten lines"))
    # docs/plugin.md "A first test": the application block, then the test-file block.
    text = DOC.read_text()
    app = _fenced_after(text, "## A first test")
    tests = _fenced_after(text, "A test requests `global_stats`")
    pytester.makepyfile(test_first=app + "\n\n" + tests)
    # In a subprocess: both files define a kind named "pages", which must not meet the
    # classes of other tests of this process.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_readme.py")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_first.py")
    result.assert_outcomes(passed=2)
