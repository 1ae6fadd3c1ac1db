"""The package's shape: no import circle between its modules, and the public names.

The graph is read from the source with ``ast``, imports inside functions included (a lazy
import closes a circle as surely as one at the top); imports under ``if TYPE_CHECKING:`` are
left out, as they never run.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_cachemock

PACKAGE = Path(pytest_cachemock.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at run time, anywhere in its body)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                # "from . import counters" imports a module; "from .kinds import X" one name.
                targets = [module]
                targets += [f"{module}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert "pytest_cachemock.patching" in graph["pytest_cachemock.plugin"]  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_a_lazy_import_closes_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import B\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .c import C\n"
        "class B:\n    def f(self):\n        from . import a\n"
    )
    (pkg / "c.py").write_text("from .b import B\n")
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.a", "pkg"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


# -- the public names --------------------------------------------------------------------------

# The names the docs present as public, kept here by hand: each must be exported, and each
# must be shown in docs/*.md (in a code span or a code block), so neither list drifts.
PUBLIC = {
    "Backend", "CacheError", "CacheLog", "CacheOp", "CachemockWarning", "Expect",
    "FileBackend", "FileLockTimeoutError", "ForbiddenPutError", "ForeignTrafficWarning",
    "GlobalStats", "JsonSerde", "KeyCollisionError", "KeyEncodingError", "KeyNoteWarning",
    "KeyPicklingError", "KindConfigError",
    "LockTimeoutError", "LogBackend", "Memoizer", "MemoizerWarning", "MemoryBackend",
    "MockBackend", "NotMockedWarning", "PassthroughSerde", "PatchCaches", "PickleSerde",
    "RedisBackend", "RedisUnavailableWarning", "Registry", "RemoteCache",
    "ReplayMissError", "Serde", "SignedPickleSerde", "SqliteBackend", "StaleHitError", "Stats",
    "SystemError",
    "UnknownKindError", "UnknownKindUsageError", "UserError", "ValueDecodingError",
    "ValueEncodingError", "ValuePicklingError", "ValueUnPicklingError", "at_least", "at_most",
    "cache_stats", "global_stats",
}  # fmt: skip
DOCS = PACKAGE.parent / "docs"


def _code_in_docs() -> str:
    parts: list[str] = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        parts += re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
        parts += re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return "\n".join(parts)


def test_all_is_the_documented_public_names() -> None:
    assert set(pytest_cachemock.__all__) == PUBLIC
    code = _code_in_docs()
    missing = sorted(n for n in PUBLIC if not re.search(rf"(?<![\w.]){n}\b", code))
    assert not missing, f"exported but not shown in docs/*.md: {missing}"


def test_the_public_names_load_lazily() -> None:
    script = (
        "import sys, pytest_cachemock as p\n"
        "assert not [m for m in sys.modules if m.startswith('pytest_cachemock.')], sys.modules\n"
        "from pytest_cachemock import kinds, stats, errors\n"
        "assert p.Registry is kinds.Registry and p.GlobalStats is stats.GlobalStats\n"
        "assert isinstance(p.global_stats, p.GlobalStats)\n"
        "assert issubclass(p.UnknownKindError, (KeyError, AttributeError))\n"
        "assert issubclass(p.UnknownKindUsageError, ValueError)\n"
        "from pytest_cachemock.patching import UnknownKindUsageError, KindConfigError\n"
        "from pytest_cachemock.stats import UnknownKindError\n"
        "assert UnknownKindUsageError is errors.UnknownKindUsageError\n"
        "assert UnknownKindError is errors.UnknownKindError\n"
        "assert KindConfigError is errors.KindConfigError\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_no_bare_runtime_warning_in_the_package() -> None:
    # Every warning the package gives is a CachemockWarning (MemoizerWarning is also a
    # RuntimeWarning, by inheritance): no warnings.warn(..., RuntimeWarning) and no
    # RuntimeWarning(...) raised or made anywhere.
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                args = [*node.args, *(k.value for k in node.keywords)]
                names = {a.id for a in args if isinstance(a, ast.Name)}
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                bare = "RuntimeWarning" in names or called == "RuntimeWarning"
                assert not bare, f"{path}:{node.lineno}: a bare RuntimeWarning"


def _top_level_names(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


@pytest.mark.parametrize("module", ["errors", "kinds", "patching", "plugin", "stats"])
def test_internals_are_private_by_name(module: str) -> None:
    # What a module defines is in its __all__, a pytest hook or fixture, or starts with "_".
    mod = importlib.import_module(f"pytest_cachemock.{module}")
    public = set(getattr(mod, "__all__", ())) | {"patch_caches"}
    loose = [
        name
        for name in _top_level_names(Path(str(mod.__file__)))
        if not name.startswith(("_", "pytest_")) and name not in public
    ]
    assert not loose, f"pytest_cachemock.{module}: make these private (a leading _): {loose}"
