"""Every code block of README.md and docs/*.md runs the way it is meant to, once.

How a block runs is said by the words after the language on its opening fence
(```` ```python pytest with-previous ````):

- ``python`` alone: the page's script. A page's python blocks run in order, in one fresh
  namespace (``__name__ == "__main__"``), in a fresh interpreter (so no plugin state, patched
  class or counter of this session leaks in) whose working directory and ``TMPDIR`` are a new
  temporary directory. One test per page.
- ``pytest``: a test file. It is written into a fresh directory and run by pytest in a
  subprocess (pytester); every test it defines must pass. With ``with-previous``, the python
  block just before it comes first in the file (the application code the tests use). One test
  per block; it is not part of the page's script.
- ``torch``: needs PyTorch; its test is marked ``torch`` (``-m "not torch"`` deselects it). A
  line ``<!-- docs: torch -->`` in a page marks all of the page's tests. A torch block among
  the script's blocks marks the page's script, which is one test.
- ``no-run``, or the line ``<!-- no-run -->`` just before the block: not run; the page says why.
- The line ``<!-- docs: redis -->`` in a page: its blocks start a ``redis-server``; without one
  the page's tests skip (fail under ``CI=true``), as the Redis tests do.

Pages added to docs/ later are picked up automatically.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_RUN = "<!-- no-run -->"
PAGE_TORCH = "<!-- docs: torch -->"
PAGE_REDIS = "<!-- docs: redis -->"
PYTHON = ("python", "py", "python3")
WORDS = frozenset({"pytest", "with-previous", "torch", "no-run"})
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")

# Words the pages do not carry on their fences yet (those pages are being edited elsewhere):
# the block of that page holding that line is read as if its fence said the words, instead
# of its no-run line. Remove an entry once the page says it itself.


@dataclass
class Block:
    line: int  # 1-based line of the block's first code line in the Markdown file
    source: str
    run: bool
    words: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_test_file(self) -> bool:
        return self.run and "pytest" in self.words


@dataclass
class Page:
    path: Path
    blocks: list[Block]  # every python block, in order
    torch: bool  # the whole page needs torch
    redis: bool = False  # the page's blocks start a redis-server

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def script(self) -> list[Block]:
        return [b for b in self.blocks if b.run and not b.is_test_file]

    @property
    def test_files(self) -> list[Block]:
        return [b for b in self.blocks if b.is_test_file]

    def test_file_source(self, block: Block) -> str:
        """The test file a ``pytest`` block is: itself, after the block before it if it says
        ``with-previous``."""
        if "with-previous" not in block.words:
            return block.source
        before = self.blocks[self.blocks.index(block) - 1]
        return before.source + "\n\n" + block.source


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str, where: str = "<text>") -> list[Block]:
    """The python blocks of a Markdown text: where they start, their words, whether to run."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language, *words = opening["info"].lower().split() or [""]
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
        if language in PYTHON:
            unknown = set(words) - WORDS
            if unknown:
                raise ValueError(
                    f"{where}:{i + 1}: unknown word(s) {sorted(unknown)} on a python fence; "
                    f"known: {sorted(WORDS)}"
                )
            body = [
                line[len(indent) :] if line.startswith(indent) else line for line in lines[start:j]
            ]
            previous = next(
                (lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), ""
            )
            blocks.append(
                Block(
                    line=start + 1,
                    source="\n".join(body) + "\n",
                    run=previous != NO_RUN and "no-run" not in words,
                    words=frozenset(words),
                )
            )
        i = j + 1
    return blocks


def read_page(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix()
    blocks = python_blocks(text, name)
    torch = PAGE_TORCH in text.splitlines()
    return Page(path, blocks, torch, redis=PAGE_REDIS in text.splitlines())


PAGES = [read_page(path) for path in markdown_files()]


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


def count_tests(source: str) -> int:
    """How many tests pytest collects from a test file: its top-level ``test*`` functions
    and the ``test*`` methods of its ``Test*`` classes."""
    count = 0
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += node.name.startswith("test")
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            count += sum(
                isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                and item.name.startswith("test")
                for item in node.body
            )
    return count


def _marks(torch: bool) -> list[Any]:
    return [pytest.mark.torch] if torch else []


def _script_params() -> list[Any]:
    return [
        pytest.param(
            page,
            id=page.name,
            marks=_marks(page.torch or any("torch" in b.words for b in page.script)),
        )
        for page in PAGES
    ]


def _test_file_params() -> list[Any]:
    return [
        pytest.param(
            page,
            block,
            id=f"{page.name}:{block.line}",
            marks=_marks(page.torch or "torch" in block.words),
        )
        for page in PAGES
        for block in page.test_files
    ]


def _needs_redis(page: Page) -> None:
    """Skip (under CI=true: fail) the test of a page marked redis where redis-server is missing."""
    if not page.redis:
        return
    from pytest_cachemock.integrations.redis_server import INSTALL_HINT

    if shutil.which("redis-server") or os.environ.get("CACHEMOCK_REDIS_SERVER"):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, and {page.name} needs redis-server, which is not installed")
    pytest.skip(f"{page.name} starts a redis-server, which is not installed; {INSTALL_HINT}")


@pytest.mark.parametrize("page", _script_params())
def test_python_blocks_run(page: Page, tmp_path: Path) -> None:
    _needs_redis(page)
    if not page.script:
        pytest.skip(f"{page.name} has no python block to run as a script")
    result = run_blocks(page.path, page.script, tmp_path)
    if result.returncode != 0:
        pytest.fail(result.stderr + result.stdout, pytrace=False)
    assert f"ran {len(page.script)} block(s)" in result.stdout


@pytest.mark.parametrize(("page", "block"), _test_file_params())
def test_test_file_blocks_pass_under_pytest(
    page: Page, block: Block, pytester: pytest.Pytester
) -> None:
    _needs_redis(page)
    source = page.test_file_source(block)
    expected = count_tests(source)
    assert expected > 0, f"{page.name}:{block.line}: a pytest block that defines no test"
    pytester.makepyfile(**{f"test_block_{block.line}": source})
    # In a subprocess: pages define kinds (one named "pages" in several), which must not
    # meet the classes of this process or of another page.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=expected)


# -- what the pages hold ---------------------------------------------------------------------

_ANY_PYTHON_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(python3?|py)\b", re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_python_fence_is_seen(page: Page) -> None:
    text = page.path.read_text(encoding="utf-8")
    assert len(page.blocks) == len(_ANY_PYTHON_FENCE.findall(text))


def test_plugin_page_runs_its_blocks() -> None:
    page = next(p for p in PAGES if p.name == "docs/plugin.md")
    assert len(page.script) >= 10
    assert sum(not b.run for b in page.blocks) <= 5  # no-run is for test files only
    assert len(page.test_files) >= 1


def test_docs_pages_are_collected() -> None:
    names = [page.name for page in PAGES]
    assert names[0] == "README.md"
    assert "docs/toolkit.md" in names
    assert "docs/errors.md" in names
    assert "docs/plugin.md" in names


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

```python pytest with-previous
def test_x():
    assert x == 2
```

```python torch no-run
import torch
```
"""


def test_blocks_are_found_with_lines_words_and_no_run() -> None:
    blocks = python_blocks(SAMPLE)
    assert [(b.line, b.source, b.run, sorted(b.words)) for b in blocks] == [
        (4, "x = 1\n", True, []),
        (12, "import something_absent\n", False, []),
        (22, "x += 1\n", True, []),
        (26, "assert x == 2\n", True, []),
        (30, "def test_x():\n    assert x == 2\n", True, ["pytest", "with-previous"]),
        (35, "import torch\n", False, ["no-run", "torch"]),
    ]


def test_an_unknown_word_is_an_error_naming_the_line() -> None:
    with pytest.raises(ValueError, match=r"page\.md:3: unknown word\(s\) \['pytset'\]"):
        python_blocks("text\n\n```python pytset\npass\n```\n", "page.md")


def test_a_page_splits_into_script_and_test_files(tmp_path: Path) -> None:
    page = Page(tmp_path / "page.md", python_blocks(SAMPLE), torch=False)
    assert [b.line for b in page.script] == [4, 22, 26]
    (test_file,) = page.test_files
    expected = "assert x == 2\n\n\ndef test_x():\n    assert x == 2\n"
    assert page.test_file_source(test_file) == expected


def test_tests_of_a_test_file_are_counted() -> None:
    source = (
        "def test_a(): pass\nasync def test_b(): pass\ndef helper(): pass\n"
        "class TestC:\n    def test_d(self): pass\n    def setup_method(self): pass\n"
        "class Other:\n    def test_e(self): pass\n"
    )
    assert count_tests(source) == 3


def test_blocks_share_a_namespace_and_run_in_the_given_directory(tmp_path: Path) -> None:
    made_here = Block(line=40, source="open('made-here', 'w').close()\n", run=True)
    page = Page(tmp_path / "doc.md", python_blocks(SAMPLE), torch=False)
    result = run_blocks(page.path, [*page.script, made_here], tmp_path)
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


def test_a_test_file_block_must_pass_every_test_it_defines(pytester: pytest.Pytester) -> None:
    text = "```python pytest\ndef test_ok():\n    pass\n\ndef test_bad():\n    assert False\n```\n"
    page = Page(pytester.path / "page.md", python_blocks(text), torch=False)
    (block,) = page.test_files
    with pytest.raises(AssertionError):
        test_test_file_blocks_pass_under_pytest(page, block, pytester)
