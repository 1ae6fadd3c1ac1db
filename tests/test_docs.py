"""Every ```python block of README.md and docs/*.md runs.

The blocks of one Markdown file run in order, in one fresh namespace, in a fresh interpreter
(so no plugin state, patched class or counter of this test session leaks in) whose working
directory is a new temporary directory. A block preceded by the line ``<!-- no-run -->`` is
skipped; the page must say why. Pages added to docs/ later are picked up automatically.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "<!-- no-run -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


@dataclass
class Block:
    line: int  # 1-based line of the block's first code line in the Markdown file
    source: str
    run: bool


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, with where they start and whether to run."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].lower()
        start = i + 1
        j = start
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            j += 1
        if info in ("python", "py", "python3"):
            body = [
                line[len(indent) :] if line.startswith(indent) else line for line in lines[start:j]
            ]
            previous = next(
                (lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), ""
            )
            blocks.append(
                Block(line=start + 1, source="\n".join(body) + "\n", run=previous != NO_RUN)
            )
        i = j + 1
    return blocks


# Runs in the child interpreter: reads [path, [[line, source], ...]] from stdin.
_RUNNER = r"""
import json, sys, traceback
path, blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for line, source in blocks:
    # Pad so that tracebacks give the line numbers of the Markdown file itself.
    code = "\n" * (line - 1) + source
    try:
        exec(compile(code, path, "exec"), namespace)
    except BaseException:
        print(f"{path}:{line}: the python block starting on line {line} failed", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
print(f"ran {len(blocks)} block(s)")
"""


def run_blocks(path: Path, blocks: list[Block], cwd: Path) -> subprocess.CompletedProcess[str]:
    payload = json.dumps([str(path), [[b.line, b.source] for b in blocks if b.run]])
    return subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=payload,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        # tempfile in the examples writes under the test's directory too, not the real /tmp.
        env={**os.environ, "TMPDIR": str(cwd)},
    )


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path, tmp_path: Path) -> None:
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not any(b.run for b in blocks):
        pytest.skip(f"{path.relative_to(ROOT)} has no python block to run")
    result = run_blocks(path, blocks, tmp_path)
    if result.returncode != 0:
        pytest.fail(result.stderr + result.stdout, pytrace=False)


# -- the collector and runner themselves -----------------------------------------------------

SAMPLE = """\
# Title

```python
x = 1
```

Some text.

<!-- no-run -->

```python
import something_absent
```

```bash
echo not python
```

- a list item

  ```python
  x += 1
  ```

````python
assert x == 2
````
"""


def test_blocks_are_found_with_lines_and_no_run() -> None:
    blocks = python_blocks(SAMPLE)
    assert [(b.line, b.source, b.run) for b in blocks] == [
        (4, "x = 1\n", True),
        (12, "import something_absent\n", False),
        (22, "x += 1\n", True),
        (26, "assert x == 2\n", True),
    ]


def test_blocks_share_a_namespace_and_run_in_the_given_directory(tmp_path: Path) -> None:
    made_here = Block(line=30, source="open('made-here', 'w').close()\n", run=True)
    blocks = [*python_blocks(SAMPLE), made_here]
    result = run_blocks(tmp_path / "doc.md", blocks, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ran 4 block(s)" in result.stdout
    assert (tmp_path / "made-here").exists()


def test_a_failing_block_names_the_file_and_line(tmp_path: Path) -> None:
    text = "intro\n\n```python\nok = True\n```\n\n```python\nvalue = 1\nassert value == 2\n```\n"
    result = run_blocks(tmp_path / "page.md", python_blocks(text), tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'page.md'}:8: the python block starting on line 8 failed" in result.stderr
    assert f'File "{tmp_path / "page.md"}", line 9' in result.stderr  # the failing line itself
    assert "AssertionError" in result.stderr


def test_docs_pages_are_collected() -> None:
    names = [p.relative_to(ROOT).as_posix() for p in markdown_files()]
    assert names[0] == "README.md"
    assert "docs/toolkit.md" in names
    assert "docs/errors.md" in names
