"""ForbiddenPutError lives in pytest_cachemock.errors with the other errors; the package and
pytest_cachemock.mock (its old home) still name the same class."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_cachemock
import pytest_cachemock.mock
from pytest_cachemock import MockBackend, PatchCaches, Registry, errors


def test_one_class_under_every_name() -> None:
    assert errors.ForbiddenPutError.__module__ == "pytest_cachemock.errors"
    assert pytest_cachemock.ForbiddenPutError is errors.ForbiddenPutError
    assert pytest_cachemock.mock.ForbiddenPutError is errors.ForbiddenPutError
    assert issubclass(errors.ForbiddenPutError, AssertionError)
    assert "ForbiddenPutError" in errors.__all__


def test_the_package_name_loads_it_from_errors_without_the_mock_module() -> None:
    # The lazy table points at errors: asking the package for the name loads no mock module.
    code = (
        "import sys, pytest_cachemock\n"
        "cls = pytest_cachemock.ForbiddenPutError\n"
        "print(cls.__module__, 'pytest_cachemock.mock' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["pytest_cachemock.errors", "False"]


def test_a_forbidden_put_raises_the_errors_class() -> None:
    registry = Registry()
    registry.add("quotes")
    with PatchCaches(registry=registry) as patch:
        patch.forbid_puts("quotes")
        mock = MockBackend("quotes")
        with pytest.raises(errors.ForbiddenPutError, match="put of key 'q-1' to kind 'quotes'"):
            mock.put("q-1", b"v")
        assert patch.log("quotes")[-1] == ("quotes", "put", "q-1", "error")
