"""Spots: where the plugin writes (an attribute, a named value kept elsewhere), and how each
write is read back and undone.

A write returns an :data:`Undo`: a saved spot ``(object, name, old, new)`` (the common and
cheapest case, which can be read again after a test) or a callable for anything else.
``_MISSING`` stands for "not set".
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from typing import Any, Callable, Union

__all__ = ["Spots", "Undo"]

_MISSING = object()


def _own(obj: Any, attr: str) -> Any:
    """The value ``obj`` holds itself (not inherited) for ``attr``, or _MISSING."""
    try:
        return vars(obj).get(attr, _MISSING)
    except TypeError:  # no __dict__ (slots): treat what getattr sees as its own
        return getattr(obj, attr, _MISSING)


# How to put one thing back: a saved spot (object, name, old value or _MISSING, the value
# written), which is the common and cheapest case, or a callable for anything else. The object
# of a spot is an attribute's owner, or a Spots for values kept elsewhere (_ENVIRON for the
# environment). Saved spots can be read again afterwards, which is how the plugin finds a mock
# that a test's monkeypatch put back after the plugin left.
Undo = Union[Callable[[], None], tuple[Any, str, Any, Any]]


class Spots(ABC):
    """Named values kept somewhere other than a plain attribute, read and written by name.

    A switch whose flag lives in one (the environment, a torch config module) returns
    ``(spots, name, old, new)`` from ``set()`` and ``(spots, name)`` from ``spot()``: then
    the plugin restores it, and checks it again after a test, as it does an attribute.
    """

    __slots__ = ()

    @abstractmethod
    def read(self, name: str) -> Any:
        """The state of ``name``: anything ``write`` takes back, or _MISSING."""

    @abstractmethod
    def write(self, name: str, state: Any) -> None:
        """Give ``name`` a state ``read`` returned (_MISSING: unset it)."""

    def same(self, now: Any, state: Any) -> bool:
        """Whether ``now`` (read just now) is the state ``state``."""
        return now is state

    def ours(self, now: Any, written: list[Any]) -> bool:
        """Whether ``now`` is what a PatchCaches left: one of the states it ``written``."""
        return any(self.same(now, state) for state in written)


class _Environ(Spots):
    __slots__ = ()

    def read(self, name: str) -> Any:
        return os.environ.get(name, _MISSING)

    def write(self, name: str, state: Any) -> None:
        if state is _MISSING:
            os.environ.pop(name, None)
        else:
            os.environ[name] = state

    def same(self, now: Any, state: Any) -> bool:
        return bool(now is state or now == state)  # strings, by value

    def __repr__(self) -> str:
        return "os.environ"


_ENVIRON: Any = _Environ()


def _set(obj: Any, attr: str, value: Any) -> Undo:
    old = _own(obj, attr)
    setattr(obj, attr, value)
    return (obj, attr, old, value)


def _read(obj: Any, attr: str) -> Any:
    """What the spot ``obj.attr`` (or ``attr`` of a Spots) holds, or _MISSING."""
    if isinstance(obj, Spots):
        return obj.read(attr)
    return _own(obj, attr)


def _write(obj: Any, attr: str, value: Any) -> None:
    """Put ``value`` at the spot; _MISSING deletes the attribute (or unsets the name)."""
    if isinstance(obj, Spots):
        obj.write(attr, value)
        return
    if value is not _MISSING:
        setattr(obj, attr, value)
        return
    with contextlib.suppress(AttributeError):
        delattr(obj, attr)


def _same(obj: Any, now: Any, value: Any) -> bool:
    """Whether a spot of ``obj`` holding ``now`` holds ``value``."""
    if isinstance(obj, Spots):
        return obj.same(now, value)
    return now is value


def _ours(obj: Any, now: Any, written: list[Any]) -> bool:
    """Whether a spot of ``obj`` holding ``now`` holds what a PatchCaches wrote there."""
    if isinstance(obj, Spots):
        return obj.ours(now, written)
    return any(now is value for value in written)


def _restore(undo: Undo) -> None:
    """Put back what ``undo`` describes."""
    if callable(undo):
        undo()
        return
    obj, attr, old, _ = undo
    if old is not _MISSING and not isinstance(obj, Spots):  # the common case, inline
        setattr(obj, attr, old)
        return
    _write(obj, attr, old)
