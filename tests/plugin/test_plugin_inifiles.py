"""The configuration file reader of the process registry (plain unittest), in-process on a
fresh Registry: what it declares and how it refuses a file it cannot read. The subprocess
runs of ``python -m unittest`` are in test_plugin_unittest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cachemock import KindConfigError, Registry
from pytest_cachemock._inifiles import declare


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHEMOCK_CONFIGFILE", raising=False)


def test_a_toml_file_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    with pytest.raises(KindConfigError) as info:
        declare(Registry(), tmp_path)
    assert str(info.value).startswith(f"cannot read {tmp_path / 'pyproject.toml'} for ")
    assert str(info.value).endswith("set CACHEMOCK_CONFIGFILE=off to read no configuration file")


def test_an_ini_file_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "tox.ini").write_text("[pytest]\n  indented first line\n")
    with pytest.raises(KindConfigError, match=r"cannot read .*tox\.ini for cachemock_kinds"):
        declare(Registry(), tmp_path)


def test_a_list_item_that_is_not_a_string(tmp_path: Path) -> None:
    (tmp_path / "pytest.toml").write_text("[pytest]\ncachemock_kinds = [3]\n")
    with pytest.raises(KindConfigError) as info:
        declare(Registry(), tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'pytest.toml'} [pytest] cachemock_kinds: expected a list of strings, "
        "got 3 in it"
    )


def test_profiles_are_read_and_an_unknown_one_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ncachemock_profiles = nope\n")
    with pytest.raises(KindConfigError) as info:
        declare(Registry(), tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'pytest.ini'} [pytest] cachemock_profiles ('nope'): unknown profile "
        "'nope'; known profiles: cachetools, functools, torch"
    )


def test_off_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ncachemock_kinds = bad line\n")
    monkeypatch.setenv("CACHEMOCK_CONFIGFILE", "OFF")
    registry = Registry()
    assert declare(registry, tmp_path) is None
    assert registry.declared() == {}


LINE = "flags switch=env:CACHEMOCK_TEST_FLAG"

FILES = {
    "pytest.toml": ("[pytest]", f'[pytest]\ncachemock_kinds = ["{LINE}"]\n'),
    ".pytest.toml": ("[pytest]", f'[pytest]\ncachemock_kinds = ["{LINE}"]\n'),
    "pytest.ini": ("[pytest]", f"[pytest]\ncachemock_kinds =\n    {LINE}\n"),
    ".pytest.ini": ("[pytest]", f"[pytest]\ncachemock_kinds = {LINE}\n"),
    "pyproject.toml": (
        "[tool.pytest.ini_options]",
        f'[tool.pytest.ini_options]\ncachemock_kinds = ["{LINE}"]\n',
    ),
    "tox.ini": ("[pytest]", f"[pytest]\ncachemock_kinds = {LINE}\n"),
    "setup.cfg": ("[tool:pytest]", f"[tool:pytest]\ncachemock_kinds = {LINE}\n"),
}


@pytest.mark.parametrize("name", list(FILES))
def test_each_file_pytest_reads(tmp_path: Path, name: str) -> None:
    section, text = FILES[name]
    (tmp_path / name).write_text(text)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    registry = Registry()
    assert declare(registry, sub) == tmp_path / name  # found upward
    origin = registry.declared()["flags"].origin
    assert origin == f"{tmp_path / name} {section} cachemock_kinds, line 1 ({LINE!r})"


def test_files_without_a_pytest_section_are_passed(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(FILES["pytest.ini"][1])
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.ruff]\nline-length = 1\n')
    (sub / "tox.ini").write_text("[tox]\n")
    (sub / "setup.cfg").write_text("[metadata]\n")
    (sub / ".pytest.toml").write_text("")  # a match even empty: it declares nothing
    registry = Registry()
    assert declare(registry, sub) == sub / ".pytest.toml"
    assert registry.declared() == {}
    (sub / ".pytest.toml").unlink()
    assert declare(registry, sub) == tmp_path / "pytest.ini"


def test_profiles_as_a_list_and_a_string_each_name_once(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest]\ncachemock_profiles = ["nope", "nope"]\n'
    )
    with pytest.raises(KindConfigError, match=r"\[tool\.pytest\] cachemock_profiles \('nope'\)"):
        declare(Registry(), tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "section"),
    [
        ("kinds.toml", f'[tool.pytest.ini_options]\ncachemock_kinds = ["{LINE}"]\n', "[tool."),
        ("kinds.toml", f'[pytest]\ncachemock_kinds = ["{LINE}"]\n', "[pytest]"),
        ("kinds.cfg", f"[tool:pytest]\ncachemock_kinds = {LINE}\n", "[tool:pytest]"),
        ("kinds.ini", f"[pytest]\ncachemock_kinds = {LINE}\n", "[pytest]"),
        ("kinds.conf", f"[pytest]\ncachemock_kinds = {LINE}\n", "[pytest]"),
    ],
)
def test_the_file_the_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, section: str
) -> None:
    path = tmp_path / "conf" / name
    path.parent.mkdir()
    path.write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\ncachemock_kinds = bad line\n")  # not read
    monkeypatch.setenv("CACHEMOCK_CONFIGFILE", str(path))
    registry = Registry()
    assert declare(registry, tmp_path) == path
    assert registry.declared()["flags"].origin.startswith(f"{path} {section}")


def test_the_variable_names_a_file_without_a_pytest_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\n")
    monkeypatch.setenv("CACHEMOCK_CONFIGFILE", str(tmp_path / "setup.cfg"))
    assert declare(Registry(), tmp_path) is None


def test_the_variable_names_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEMOCK_CONFIGFILE", str(tmp_path / "nope.ini"))
    with pytest.raises(KindConfigError) as info:
        declare(Registry(), tmp_path)
    assert str(info.value) == (
        f"CACHEMOCK_CONFIGFILE={str(tmp_path / 'nope.ini')!r}: no such file; give the path of "
        "the pytest configuration file to read cachemock_kinds from outside pytest "
        "(pytest.ini, pyproject.toml, tox.ini, setup.cfg), or off to read none"
    )


def test_read_once_reads_once_and_repeats_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_cachemock import _inifiles

    for name in ("_started", "_done"):
        monkeypatch.setattr(_inifiles, name, False)
    monkeypatch.setattr(_inifiles, "_error", None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ncachemock_kinds = {LINE}\n")
    registry = Registry()
    _inifiles.read_once(registry)
    _inifiles.read_once(registry)  # not again: no "declared twice"
    assert list(registry.declared()) == ["flags"]

    monkeypatch.setattr(_inifiles, "_started", False)
    monkeypatch.setattr(_inifiles, "_done", False)
    (tmp_path / "pytest.ini").write_text("[pytest]\ncachemock_kinds = bad\n")
    for _ in range(2):  # every later use reports it too
        with pytest.raises(KindConfigError, match=r"pytest\.ini \[pytest\] cachemock_kinds"):
            _inifiles.read_once(Registry())
