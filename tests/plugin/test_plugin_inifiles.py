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
        "'nope'; known profiles: torch"
    )


def test_off_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ncachemock_kinds = bad line\n")
    monkeypatch.setenv("CACHEMOCK_CONFIGFILE", "OFF")
    registry = Registry()
    assert declare(registry, tmp_path) is None
    assert registry.declared() == {}
