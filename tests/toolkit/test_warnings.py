"""The plugin's warnings: one base class, so one filter covers them all."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import pytest_cachemock
from pytest_cachemock import Backend, CachemockWarning, Memoizer, MemoizerWarning
from pytest_cachemock.integrations.torch import TorchProfileWarning


class Down(Backend[Any]):
    def _get(self, key: str) -> Any:
        raise ConnectionError("no route to cache")

    def _put(self, key: str, value: Any) -> None:
        raise ConnectionError("no route to cache")


def test_every_warning_class_is_a_cachemock_warning() -> None:
    assert issubclass(MemoizerWarning, CachemockWarning)
    assert issubclass(MemoizerWarning, RuntimeWarning)  # what it was before: filters still hold
    assert issubclass(TorchProfileWarning, CachemockWarning)
    assert issubclass(CachemockWarning, UserWarning)
    assert {"CachemockWarning", "MemoizerWarning"} <= set(pytest_cachemock.__all__)


def test_a_failing_store_warns_with_a_memoizer_warning() -> None:
    memo = Memoizer(kind="warned_quotes", backend=Down())

    @memo.memoize
    def total(qty: int) -> int:
        return qty * 3

    with pytest.warns(MemoizerWarning, match="no route to cache"):
        assert total(2) == 6


def test_one_filter_turns_every_plugin_warning_into_an_error() -> None:
    memo = Memoizer(kind="filtered_quotes", backend=Down())

    @memo.memoize
    def total(qty: int) -> int:
        return qty * 3

    with warnings.catch_warnings():
        warnings.simplefilter("error", CachemockWarning)
        with pytest.raises(MemoizerWarning):
            total(2)


def test_the_filter_works_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_cachemock import Backend, Memoizer

        class Down(Backend):
            def _get(self, key):
                raise ConnectionError("no route to cache")

            def _put(self, key, value):
                raise ConnectionError("no route to cache")

        memo = Memoizer(kind="cli_quotes", backend=Down())

        @memo.memoize
        def total(qty):
            return qty * 3

        def test_total():
            assert total(2) == 6
        """
    )
    result = pytester.runpytest("-W", "error::pytest_cachemock.CachemockWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*MemoizerWarning*no route to cache*"])
    pytester.runpytest("-W", "ignore::pytest_cachemock.CachemockWarning").assert_outcomes(passed=1)
