"""Snapshots of a test's cache traffic: keys normalised, lines rendered, golden files compared.

A test marked ``cachemock(snapshot=True)`` has its operation log (``_oplog``) rendered one line
per operation, ``kind op 'normalised key' -> outcome``, and compared with its golden file,
``<dir of the module>/__cachemock__/<module stem>/<test name>.txt``: one file per test, so
pytest-xdist workers never write the same file. :class:`Book` is what a session learns on the
way (which snapshot directories its collected modules have, which files its collected tests
map to, what it wrote), mergeable from xdist workers, for the list of unused files at the end.

It imports nothing of pytest (plugin.py hands it what it needs).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ._oplog import CacheLog

__all__ = [
    "DIRNAME",
    "MODES",
    "Book",
    "Normaliser",
    "Rule",
    "check",
    "cut",
    "choose_mode",
    "file_name",
    "parse_rules",
    "render",
    "snapshot_dir",
]

DIRNAME = "__cachemock__"
MODES = {
    "none": "compare, never write",
    "new": "write missing snapshots, compare the others",
    "all": "rewrite every snapshot, remove unused ones",
}
_TRUE = ("1", "true", "yes", "on")  # what CI=... counts as true, in any case
HEADER = "# cachemock snapshot of "
SORTED = "# sorted: the lines are compared in sorted order"

# The built-in rules, in the order they run (after the hook and the ini rules). The ones with
# a number count distinct values in order of first appearance: <hash1>, <hash2>, ...
_ALNUM_START = r"(?<![0-9A-Za-z])"
_ALNUM_END = r"(?![0-9A-Za-z])"
_UUID = re.compile(
    _ALNUM_START
    + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    + _ALNUM_END
)
_ID = re.compile(_ALNUM_START + r"0x[0-9a-fA-F]{6,}" + _ALNUM_END)
_RUN = re.compile(_ALNUM_START + r"[0-9A-Za-z]{16,}" + _ALNUM_END)
_DIGIT = re.compile(r"[0-9]")
# A temporary directory in a key: not inside a longer path (``/var/tmp`` is not ``/tmp``),
# then the name right under it, or the directory's own end. What ends a name: a separator,
# or what keys join paths with.
_NAME = r"[^/\\\s'\"`:;,|]"
_BEFORE = r"(?<![^\s'\"`:;,|=(\[{<])"
_AFTER = r"(?:[/\\]" + _NAME + r"+|(?!" + _NAME + r"))"


def _is_hash(run: str) -> bool:
    """A run of 32 letters and digits or more, or of 16 or more with a digit in it."""
    return len(run) >= 32 or _DIGIT.search(run) is not None


# -- configuration -----------------------------------------------------------------------------


def choose_mode(option: str | None, ini: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """The record mode and what chose it: the option, else the ini option, else ``none``
    when ``CI`` is true in ``environ`` (1, true, yes, on, in any case), else ``new``. A bad
    value is a ValueError."""
    if option is not None:
        return _mode(option, f"option --cachemock-snapshot={option}"), "given on the command line"
    ini = ini.strip()
    if ini:
        return _mode(ini, f"ini option cachemock_snapshot = {ini!r}"), "the ini option"
    ci = environ.get("CI", "")
    if ci.strip().lower() in _TRUE:
        return "none", f"the default when CI={ci}"
    return "new", "the default"


def _mode(value: str, where: str) -> str:
    mode = value.strip().lower()
    if mode not in MODES:
        modes = ", ".join(f"{name} ({what})" for name, what in MODES.items())
        raise ValueError(f"{where}: not a snapshot mode; choose one of {modes}")
    return mode


class Rule(NamedTuple):
    """An ini rule: every match of ``pattern`` in a key becomes ``replacement`` (``re.sub``'s
    template: ``\\1`` and ``\\g<name>`` work)."""

    pattern: re.Pattern[str]
    replacement: str


def parse_rules(lines: Iterable[str]) -> list[Rule]:
    """The rules of ``cachemock_snapshot_rules``, one a line, ``REGEX => REPLACEMENT`` (split
    at the last ``=>``; the spaces around it are not part of either). A line that cannot be a
    rule is a ValueError naming it."""
    rules = []
    for number, line in enumerate(lines, 1):
        where = f"ini option cachemock_snapshot_rules, rule {number} ({line!r})"
        regex, arrow, replacement = line.rpartition("=>")
        regex, replacement = regex.strip(), replacement.strip()
        if not arrow:
            raise ValueError(
                f"{where}: no '=>'; write one rule a line, REGEX => REPLACEMENT, such as "
                "'session-[0-9]+ => session-<n>'"
            )
        if not regex:
            raise ValueError(f"{where}: the regex before '=>' is empty")
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise ValueError(
                f"{where}: {regex!r} is not a valid regular expression ({exc})"
            ) from None
        try:
            pattern.sub(replacement, "")  # parses the template: a bad group reference raises
        except (re.error, IndexError) as exc:
            raise ValueError(
                f"{where}: the replacement {replacement!r} does not fit the regex ({exc})"
            ) from None
        rules.append(Rule(pattern, replacement))
    return rules


def tmp_roots(*extra: str | os.PathLike[str] | None) -> list[str]:
    """The temporary directories whose paths become ``<tmp>``: ``extra`` (pytest's base
    temporary directory) and ``tempfile.gettempdir()``, each also resolved, longest first."""
    roots: set[str] = set()
    for root in (*extra, tempfile.gettempdir()):
        if root is None:
            continue
        text = os.fspath(root).rstrip("/\\")
        if text:
            roots.add(text)
            roots.add(os.path.realpath(text))
    return sorted(roots, key=len, reverse=True)


# -- normalising and rendering -----------------------------------------------------------------


class Normaliser:
    """A test's keys made stable. Steps, in order, each on what the one before gave: the hook
    (``key_hook(kind, key)``: a str replaces the key, None leaves it), the ini rules top to
    bottom, then the built-in ones: a path in a temporary directory (the directory and the name
    right under it) -> ``<tmp>``, a UUID -> ``<uuidN>``, a ``0x`` address of 6 hex digits or
    more -> ``<idN>``, a run of letters and digits of 32 or more, or of 16 or more with a
    digit -> ``<hashN>``. ``N`` numbers the distinct values of the test by first appearance;
    ``numbered=False`` (sorted snapshots, whose order of appearance varies) leaves it out."""

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        roots: Sequence[str] = (),
        key_hook: Callable[[str, str], object] | None = None,
        numbered: bool = True,
    ) -> None:
        self.rules = list(rules)
        self.key_hook = key_hook
        self.numbered = numbered
        longest = sorted(roots, key=len, reverse=True)  # the first that matches wins
        self._tmp = (
            re.compile(_BEFORE + "(?:" + "|".join(map(re.escape, longest)) + ")" + _AFTER)
            if roots
            else None
        )
        self._seen: dict[str, dict[str, int]] = {}

    def _number(self, what: str, value: str) -> str:
        if not self.numbered:
            return f"<{what}>"
        seen = self._seen.setdefault(what, {})
        return f"<{what}{seen.setdefault(value, len(seen) + 1)}>"

    def key(self, kind: str, key: str) -> str:
        if self.key_hook is not None:
            given = self.key_hook(kind, key)
            if given is not None:
                if not isinstance(given, str):
                    raise TypeError(
                        f"pytest_cachemock_snapshot_key(kind={kind!r}, key={key!r}) returned "
                        f"{given!r}; return a str (the key to write) or None (leave the key to "
                        "the rules)"
                    )
                key = given
        for rule in self.rules:
            key = rule.pattern.sub(rule.replacement, key)
        if self._tmp is not None:
            key = self._tmp.sub("<tmp>", key)
        key = _UUID.sub(lambda m: self._number("uuid", m.group().lower()), key)
        key = _ID.sub(lambda m: self._number("id", m.group().lower()), key)
        return _RUN.sub(
            lambda m: self._number("hash", m.group()) if _is_hash(m.group()) else m.group(), key
        )


def render(log: CacheLog, normaliser: Normaliser, sort: bool = False) -> list[str]:
    """One line per operation: ``kind op 'key' -> outcome`` (the key normalised, then quoted
    as Python does, so a space or a newline in it stays on the line)."""
    lines = [
        f"{op.kind} {op.op} {normaliser.key(op.kind, str(op.key))!r} -> {op.outcome}" for op in log
    ]
    return sorted(lines) if sort else lines


def used(stats: Mapping[str, Any], kinds: Iterable[str]) -> list[str]:
    """The kinds of ``kinds`` that counted a put, hit or miss in ``stats``, sorted."""
    return sorted(
        kind
        for kind in kinds
        if (found := stats.get(kind)) is not None and (found.puts or found.hits or found.misses)
    )


def counted(stats: Mapping[str, Any], kinds: Iterable[str]) -> list[str]:
    """One line per kind of ``kinds`` (counted, never logged: an ``lru_cache`` function) that
    the test used: ``vat_rate counted puts=1 hits=1 misses=1``, after the operations."""
    return [
        f"{kind} counted puts={stats[kind].puts} hits={stats[kind].hits} "
        f"misses={stats[kind].misses}"
        for kind in used(stats, kinds)
    ]


def cut(log: CacheLog) -> str | None:
    """Why ``log`` cannot be a snapshot (its bound let operations go), or None."""
    if not log.dropped:
        return None
    return (
        f"cachemock: this test takes a snapshot of its cache traffic, but its operation log let "
        f"{log.dropped} early operations go (it keeps the last {log.size}); raise the ini "
        f"option cachemock_log_size above the test's {len(log) + log.dropped} operations"
    )


def file_text(nodeid: str, lines: Sequence[str], sort: bool) -> str:
    head = [HEADER + nodeid.replace("\n", " ")]
    if sort:
        head.append(SORTED)
    return "\n".join([*head, *lines]) + "\n"


def body(text: str) -> list[str]:
    """The operation lines of a snapshot file (comment lines and blank lines are not)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


# -- where the files are -----------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+@\[\]-]")
_LONGEST = 120


def snapshot_dir(module: Path) -> Path:
    """``<dir of the module>/__cachemock__/<module stem>``."""
    return module.parent / DIRNAME / module.stem


def file_name(names: Sequence[str]) -> str:
    """The file of a test named ``names`` below its module (``["TestA", "test_b[1-x]"]``):
    joined with ``.``; a character a file name cannot safely hold becomes ``_``, and then (or
    when the name is long) a short hash of the whole name keeps two tests apart."""
    name = ".".join(names)
    safe = _UNSAFE.sub("_", name)
    if safe != name or len(safe) > _LONGEST:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        safe = f"{safe[:_LONGEST]}-{digest}"
    return safe + ".txt"


# -- comparing ---------------------------------------------------------------------------------


class Result(NamedTuple):
    """What :func:`check` did: ``action`` is ``passed``, ``written``, ``rewritten`` or
    ``failed``; ``message`` says why it failed."""

    action: str
    message: str | None = None


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def check(
    path: Path,
    nodeid: str,
    lines: Sequence[str],
    mode: str,
    where: str,
    sort: bool = False,
    root: Path | None = None,
) -> Result:
    """Compare ``lines`` with the snapshot at ``path``, writing it as ``mode`` says (``where``
    names what chose the mode, for the messages)."""
    shown = _shown(path, root)
    text = file_text(nodeid, lines, sort)
    try:
        old: str | None = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):  # no file (a file where a directory goes)
        old = None
    except OSError as exc:  # a directory at its name, no permission
        return Result("failed", f"cachemock: cannot read the snapshot {shown}: {exc}")
    if old is None:
        if mode == "none":
            return Result(
                "failed",
                f"cachemock: this test takes a snapshot of its cache traffic, and there is none "
                f"at {shown} (--cachemock-snapshot=none: {where}). Record it by running the "
                "test with --cachemock-snapshot=new, and commit the file.",
            )
        return _write(path, text, shown) or Result("written")
    before = body(old)
    if before == list(lines):
        if mode == "all" and old != text:  # the same operations; the header changed
            return _write(path, text, shown) or Result("passed")
        return Result("passed")
    if mode == "all":
        return _write(path, text, shown) or Result("rewritten")
    diff = difflib.unified_diff(
        before, list(lines), f"{shown} (the snapshot)", "this run", lineterm="", n=3
    )
    order = " sorted" if sort else ""
    return Result(
        "failed",
        f"cachemock: the cache traffic of this test differs from its snapshot{order} "
        f"({shown}):\n" + "\n".join(diff) + "\nIf the change is expected, rewrite the snapshot "
        "by running the test with --cachemock-snapshot=all.",
    )


def _write(path: Path, text: str, shown: str) -> Result | None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed into place);
    a failed Result saying why when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        return Result("failed", f"cachemock: cannot write the snapshot {shown}: {exc}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            return Result("failed", f"cachemock: cannot write the snapshot {shown}: {exc}")
        raise
    return None


# -- the session's bookkeeping ------------------------------------------------------------


class Book:
    """What a session knows about snapshot files, for the summary at its end.

    ``dirs``: the snapshot directories of the modules it collected (only those are looked at
    for unused files, so a module left out of the run never makes its files look unused);
    ``claimed``: the files its collected tests map to (selected or deselected: ``-k`` does not
    make a file unused); ``classes``: classes seen inside a module, as (directory, name
    prefix), and ``expanded`` the ones whose tests were collected too, so a class that was
    not (``pytest test_a.py::test_one`` collects no class of the module) claims every file
    under its prefix. ``written`` and ``rewritten``: what the tests wrote.
    """

    def __init__(self) -> None:
        self.dirs: set[str] = set()
        self.claimed: set[str] = set()
        self.classes: dict[str, tuple[str, str]] = {}
        self.expanded: set[str] = set()
        self.written: list[str] = []
        self.rewritten: list[str] = []
        self.removed: list[str] = []
        self._exists: dict[Path, bool] = {}

    def has_dir(self, module: Path) -> Path | None:
        """The module's snapshot directory when it exists (looked up once per module)."""
        directory = snapshot_dir(module)
        found = self._exists.get(directory)
        if found is None:
            found = self._exists[directory] = directory.is_dir()
        return directory if found else None

    def collected(
        self,
        directory: Path,
        items: Iterable[Sequence[str]],
        classes: Iterable[tuple[str, Sequence[str]]],
        expanded: str | None = None,
    ) -> None:
        """A module or class of ``directory`` was collected: the names of its tests, its
        classes (node id, names), and (for a class) its own node id."""
        where = str(directory)
        self.dirs.add(where)
        self.claimed.update(str(directory / file_name(names)) for names in items)
        for nodeid, names in classes:
            self.classes.setdefault(nodeid, (where, ".".join(names) + "."))
        if expanded is not None:
            self.expanded.add(expanded)

    def note(self, result: Result, path: Path) -> None:
        self.claimed.add(str(path))
        if result.action == "written":
            self.written.append(str(path))
        elif result.action == "rewritten":
            self.rewritten.append(str(path))

    def data(self) -> dict[str, Any]:
        """What an xdist worker sends the controller (plain lists: execnet carries them)."""
        return {
            "dirs": sorted(self.dirs),
            "claimed": sorted(self.claimed),
            "classes": [[nodeid, *where] for nodeid, where in self.classes.items()],
            "expanded": sorted(self.expanded),
            "written": self.written,
            "rewritten": self.rewritten,
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        self.dirs.update(data["dirs"])
        self.claimed.update(data["claimed"])
        for nodeid, where, prefix in data["classes"]:
            self.classes.setdefault(nodeid, (where, prefix))
        self.expanded.update(data["expanded"])
        self.written += data["written"]
        self.rewritten += data["rewritten"]

    def unused(self) -> list[Path]:
        """The ``.txt`` files of the collected modules' snapshot directories that no
        collected test maps to, sorted."""
        prefixes: dict[str, list[str]] = {}
        for nodeid, (where, prefix) in self.classes.items():
            if nodeid not in self.expanded:
                prefixes.setdefault(where, []).append(prefix)
        found = []
        for where in sorted(self.dirs):
            try:
                names = os.listdir(where)
            except OSError:
                continue
            for name in names:
                path = os.path.join(where, name)
                if not name.endswith(".txt") or path in self.claimed:
                    continue
                if any(name.startswith(prefix) for prefix in prefixes.get(where, ())):
                    continue
                if os.path.isfile(path):
                    found.append(Path(path))
        return sorted(found)

    def summary(self, mode: str, where: str, root: Path | None = None) -> list[str]:
        """The lines of the terminal summary: what was written, rewritten, removed, and the
        unused files (listed unless ``mode`` is ``all``, which removed them)."""
        unused = [] if mode == "all" else [str(path) for path in self.unused()]
        chose = f"--cachemock-snapshot={mode}, {where}"
        groups = [
            (self.written, f"wrote {{n}} new snapshot{{s}} ({chose}):"),
            (self.rewritten, f"rewrote {{n}} snapshot{{s}} whose cache traffic changed ({chose}):"),
            (
                unused,
                "{n} snapshot file{s} that no collected test maps to (remove {it}, or run with "
                "--cachemock-snapshot=all):",
            ),
            (self.removed, f"removed {{n}} unused snapshot file{{s}} ({chose}):"),
        ]
        lines = []
        for paths, head in groups:
            if not paths:
                continue
            many = len(paths) != 1
            lines.append(
                head.format(n=len(paths), s="s" if many else "", it="them" if many else "it")
            )
            lines += [f"  {_shown(Path(path), root)}" for path in sorted(paths)]
        return lines

    def remove(self, paths: Iterable[Path]) -> None:
        """Remove unused files, then their directory (and ``__cachemock__``) if left empty."""
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            self.removed.append(str(path))
            for directory in (path.parent, path.parent.parent):
                try:
                    directory.rmdir()
                except OSError:  # not empty, or gone
                    break
