"""The pytest configuration file, read outside pytest: the kinds of a plain ``python -m unittest``
run (or a script).

Under pytest each session declares ``cachemock_kinds`` and ``cachemock_profiles`` from its own
configuration (plugin.py). Outside pytest the process scope (``_state.PROCESS``) has none: the
first time it is used, :func:`read_once` finds the file pytest would (the same names in the
same order, from the current directory upward: the first directory with a file that has a
pytest section wins, and in it the first such file) and declares those two options (and the
entries of the profiles that name their caches, ``cachemock_functools``, ...) in the process
registry, once. ``CACHEMOCK_CONFIGFILE`` names another file, or ``off`` reads none.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

from .errors import KindConfigError

if TYPE_CHECKING:
    from .kinds import Registry

ENV_VAR = "CACHEMOCK_CONFIGFILE"
OFF = "off"

Options = dict[str, Union[str, list[Any]]]
# (the section as the file spells it, its options) or None when the file has no pytest section
Found = Union[tuple[str, Options], None]


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib  # novermin
    else:  # pytest depends on tomli below 3.11
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise KindConfigError(_unreadable(path, exc)) from None


def _read_ini(path: Path, section: str) -> Options | None:
    import iniconfig  # pytest's own ini parser (a dependency of pytest)

    try:
        config = iniconfig.IniConfig(str(path))
    except (OSError, iniconfig.ParseError) as exc:
        raise KindConfigError(_unreadable(path, exc)) from None
    if section not in config.sections:
        return None
    return dict(config.sections[section])


def _unreadable(path: Path, exc: Exception) -> str:
    return (
        f"cannot read {path} for cachemock_kinds outside pytest: {exc}; fix the file, or set "
        f"{ENV_VAR}={OFF} to read no configuration file"
    )


def _pytest_ini(path: Path) -> Found:  # a match even without a [pytest] section
    return "[pytest]", _read_ini(path, "pytest") or {}


def _section_ini(section: str) -> Callable[[Path], Found]:
    def load(path: Path) -> Found:
        options = _read_ini(path, section)
        return None if options is None else (f"[{section}]", options)

    return load


def _pytest_toml(path: Path) -> Found:  # a match even without a [pytest] table
    table = _read_toml(path).get("pytest")
    return "[pytest]", dict(table) if isinstance(table, dict) else {}


def _pyproject(path: Path) -> Found:
    tool = _read_toml(path).get("tool", {}).get("pytest")
    if not isinstance(tool, dict):
        return None
    ini_options = tool.get("ini_options")
    if isinstance(ini_options, dict):
        return "[tool.pytest.ini_options]", dict(ini_options)
    native = {k: v for k, v in tool.items() if k != "ini_options"}
    return ("[tool.pytest]", native) if native else None


# The names pytest looks for in each directory, in its order (pytest 9; the TOML names are
# pytest 9's own file, which earlier pytest ignore).
LOADERS: dict[str, Callable[[Path], Found]] = {
    "pytest.toml": _pytest_toml,
    ".pytest.toml": _pytest_toml,
    "pytest.ini": _pytest_ini,
    ".pytest.ini": _pytest_ini,
    "pyproject.toml": _pyproject,
    "tox.ini": _section_ini("pytest"),
    "setup.cfg": _section_ini("tool:pytest"),
}
# A file named by CACHEMOCK_CONFIGFILE that has none of the names above, by its suffix.
_BY_SUFFIX: dict[str, Callable[[Path], Found]] = {
    ".ini": _section_ini("pytest"),
    ".cfg": _section_ini("tool:pytest"),
    ".toml": lambda path: _pyproject(path) or _pytest_toml(path),
}


def find(start: Path) -> tuple[Path, str, Options] | None:
    """The configuration file pytest started in ``start`` would read, its section, options."""
    for base in (start, *start.parents):
        for name, load in LOADERS.items():
            path = base / name
            if path.is_file():
                found = load(path)
                if found is not None:
                    return path, *found
    return None


def _named(value: str) -> tuple[Path, str, Options] | None:
    path = Path(value)
    if not path.is_file():
        raise KindConfigError(
            f"{ENV_VAR}={value!r}: no such file; give the path of the pytest configuration "
            f"file to read cachemock_kinds from outside pytest (pytest.ini, pyproject.toml, "
            f"tox.ini, setup.cfg), or {OFF} to read none"
        )
    load = LOADERS.get(path.name) or _BY_SUFFIX.get(path.suffix, _section_ini("pytest"))
    found = load(path)
    return None if found is None else (path, *found)


def _lines(value: str | list[Any], where: str) -> list[str]:
    """A ``linelist`` option as pytest reads it: the lines of a string, or a list's items."""
    if isinstance(value, str):
        return [stripped for line in value.split("\n") if (stripped := line.strip())]
    for item in value:
        if not isinstance(item, str):
            raise KindConfigError(f"{where}: expected a list of strings, got {item!r} in it")
    return list(value)


def declare(registry: Registry, cwd: Path | None = None) -> Path | None:
    """Declare the kinds and profiles of the configuration file in ``registry``; its path."""
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() == OFF:
        return None
    found = _named(setting) if setting else find(cwd or Path.cwd())
    if found is None:
        return None
    path, section, options = found
    where = f"{path} {section}"
    kinds = options.get("cachemock_kinds", [])
    for number, line in enumerate(_lines(kinds, f"{where} cachemock_kinds"), start=1):
        registry.add_line(line, f"{where} cachemock_kinds, line {number} ({line!r})")
    profiles = options.get("cachemock_profiles", [])
    names = shlex.split(profiles) if isinstance(profiles, str) else profiles
    from .kinds import _ENTRY_PROFILES, _entry_lines  # the profiles that name their caches

    entries = {
        name: _entry_lines(
            _lines(options.get(f"cachemock_{name}", []), f"{where} cachemock_{name}")
        )
        for name in _ENTRY_PROFILES
    }
    loaded = list(dict.fromkeys(_lines(names, f"{where} cachemock_profiles")))
    for name, given in entries.items():
        if given and name not in loaded:
            raise KindConfigError(
                f"{where} cachemock_{name} lists caches, but the {name!r} profile is not "
                f"loaded; add it: cachemock_profiles = {name}"
            )
    for name in loaded:
        given = entries.get(name, [])
        origin = f"{where} cachemock_{name}" if given else f"{where} cachemock_profiles ({name!r})"
        registry.load_profile(name, origin, entries=given)
    return path


_lock = threading.RLock()
_started = False
_done = False
_error: Exception | None = None


def read_once(registry: Registry) -> None:
    """:func:`declare` in ``registry`` the first time; later calls raise its error again, if any.

    Another thread waits for the reading to end; a call from inside the reading (a profile
    that makes a ``PatchCaches``) returns at once.
    """
    global _started, _done, _error
    if _done and _error is None:
        return
    with _lock:
        if not _started:
            _started = True
            try:
                declare(registry)
            except Exception as exc:
                _error = exc
                raise
            finally:
                _done = True
    if _error is not None:
        raise _error.with_traceback(None)
