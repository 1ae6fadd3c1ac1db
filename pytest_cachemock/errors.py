"""The typed errors of the cache toolkit.

Two families hang under :class:`CacheError`: :class:`SystemError` for what went wrong around
the cache (a lock that could not be taken in time), and :class:`UserError` for what the
caller handed it (a key or value that cannot be encoded, a stored value that cannot be
decoded). Each message names the key or the value type involved and how to fix it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CacheError",
    "CachemockWarning",
    "FileLockTimeoutError",
    "ForbiddenPutError",
    "ForeignTrafficWarning",
    "KeyCollisionError",
    "KeyEncodingError",
    "KeyNoteWarning",
    "KeyPicklingError",
    "KindConfigError",
    "LockTimeoutError",
    "MemoizerWarning",
    "NotMockedWarning",
    "ReplayMissError",
    "StaleHitError",
    "SystemError",
    "UnknownKindError",
    "UnknownKindUsageError",
    "UserError",
    "ValueDecodingError",
    "ValueEncodingError",
    "ValuePicklingError",
    "ValueUnPicklingError",
]


class CacheError(Exception):
    """Root of every error the toolkit raises on purpose."""


class SystemError(CacheError, builtins.RuntimeError):
    """Something around the cache failed (locks, storage); also a ``RuntimeError``."""


class LockTimeoutError(SystemError):
    """A lock was not acquired within its timeout (or at once, when non-blocking)."""

    def __init__(self, lock: Any, timeout: float | None, detail: str = "") -> None:
        self.lock = lock
        self.timeout = timeout
        if timeout is None or timeout < 0:
            waited = "without waiting (non-blocking)"
        else:
            waited = f"within {timeout:g} s"
        msg = f"could not acquire {_describe_lock(lock)} {waited}"
        if detail:
            msg += f"; {detail}"
        super().__init__(msg)


class FileLockTimeoutError(LockTimeoutError):
    """A file lock was not acquired in time.

    It is a :class:`LockTimeoutError` too, so one ``except`` catches both kinds of lock.
    """


class UserError(CacheError, builtins.TypeError):
    """The caller handed the cache something it cannot take; also a ``TypeError``."""


class KeyEncodingError(UserError):
    """A key (or a memoized function's argument) cannot be encoded."""


class KeyPicklingError(KeyEncodingError):
    """A key cannot be pickled."""


class ValueEncodingError(UserError):
    """A value cannot be encoded by the cache's serde."""


class ValuePicklingError(ValueEncodingError):
    """A value cannot be pickled."""


class ValueDecodingError(UserError):
    """A stored value cannot be decoded by the cache's serde."""


class ValueUnPicklingError(ValueDecodingError):
    """A stored value cannot be unpickled, or its signature does not match."""


class ReplayMissError(CacheError, KeyError):
    """A memoized call found no stored result where computing was not allowed.

    Raised by ``Memoizer.replay`` and, after ``Memoizer.load(path, strict=True)``, by
    ``Memoizer.memoize``. It is a ``KeyError`` too, as the seed's replay raises ``KeyError``.
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; this message is prose, so show it as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


def _describe_lock(lock: Any) -> str:
    path = getattr(lock, "lock_file", None)
    if path is not None:
        return f"file lock {str(path)!r}"
    return f"lock {lock!r}"


class KindConfigError(builtins.ValueError):
    """A cache kind declared in a way the plugin cannot use (a target or switch that does not
    resolve, a bad ini line); the message names where it was declared. A ``ValueError``."""


class ForbiddenPutError(builtins.AssertionError):
    """A put to a kind the test forbids puts to (``forbid_puts``, the marker's
    ``forbid_puts=``). An AssertionError: the test is wrong, or the code is."""


# Built-in profile -> the kinds it declares, in order (integrations/torch.py declares its kinds
# from this list), so that naming one of them while the profile is not loaded says how to load it.
# A name ending in "*" stands for every kind with that prefix: django declares one kind per alias
# of settings.CACHES, which are the project's.
_PROFILE_KINDS: dict[str, tuple[str, ...]] = {
    "torch": (
        "autotune_local",
        "autotune_remote",
        "bundled_autotune",
        "fx_graph",
        "triton",
        "aot_autograd",
        "dynamo_pgo",
    ),
    "django": ("django_*",),
}


def _of_profile(name: str, kinds: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``kinds`` (a name, or a prefix followed by ``*``)."""
    return any(name.startswith(kind[:-1]) if kind.endswith("*") else name == kind for kind in kinds)


def _profile_hint(name: str, profile: str) -> str:
    if profile == "django":
        return (
            f" {name!r} looks like a kind of the built-in 'django' profile, which is not "
            f"loaded (it makes a kind django_<alias> for each alias of settings.CACHES): add "
            f"it to the pytest configuration, cachemock_profiles = django (or pass "
            f"--cachemock-profile=django; outside pytest, call registry.load_profile('django'))."
        )
    return (
        f" {name!r} is a kind of the built-in {profile!r} profile, which is not "
        f"loaded: import {profile} before the PatchCaches starts, or set "
        f"cachemock_profiles = {profile} in the pytest configuration (or pass "
        f"--cachemock-profile={profile})."
    )


def _unknown_kind(name: str, known: Iterable[str]) -> str:
    """The message for an unknown kind: the closest known name, then every known one; for a
    kind of a built-in profile, how to load that profile."""
    import difflib  # only on this error path: not at plugin load

    names = sorted(known)
    text = f"unknown cache kind {name!r}."
    hint = difflib.get_close_matches(name, names, n=1)
    if hint:
        text += f" Did you mean {hint[0]!r}?"
    text += f" Known kinds: {', '.join(names) if names else '(none registered)'}."
    for profile, kinds in _PROFILE_KINDS.items():
        # A kind of a profile none of whose kinds is known: the profile is not loaded.
        if _of_profile(name, kinds) and not any(_of_profile(n, kinds) for n in names):
            text += _profile_hint(name, profile)
    return text


class UnknownKindError(builtins.KeyError, builtins.AttributeError):
    """``global_stats.name`` or ``global_stats["name"]`` for a kind that is not known; the
    message names the closest known kind. Also a ``KeyError`` and an ``AttributeError``."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this message is prose, so show it as written.
        return str(self.args[0]) if self.args else ""


class UnknownKindUsageError(builtins.ValueError):
    """An unknown kind was named in ``enable()``, ``entries()``, ``seed()`` or ``fail()`` of a
    ``PatchCaches`` (or in the marker's ``enable``); the message names the closest known kind.
    A ``ValueError``."""


class CachemockWarning(UserWarning):
    """Base of every warning pytest-cachemock gives, so one filter covers them all
    (``-W error::pytest_cachemock.CachemockWarning``, or ``ignore``)."""


class MemoizerWarning(CachemockWarning, builtins.RuntimeWarning):
    """What a memoizer could not do: its store failed (a read, a write, a lock, an entry that
    cannot be decoded; results are computed and returned without it), or a dump held nothing
    for it. Also a ``RuntimeWarning``."""


class NotMockedWarning(CachemockWarning):
    """``global_stats`` was read where no ``PatchCaches`` had run (under pytest: in this test,
    on this thread): nothing was mocked, so the counts are not the code's, and its real caches
    were used. Request the ``patch_caches`` (or ``global_stats``) fixture."""


class ForeignTrafficWarning(CachemockWarning):
    """While a test ran in isolation mode ``thread``, threads that belong to no running test
    (started before it: a long-lived thread or pool) used its mocks; their traffic was kept
    apart, not counted, and thrown away. ``isolation="process"`` counts every thread."""


# -- verify mode and the key check (docs/verify.md) --------------------------------------------


class StaleHitError(builtins.AssertionError):
    """Verify mode found cache hits that differ from a fresh computation: a key that leaves
    out an input of the result. An ``AssertionError``: a test failure, not a cache error."""


class KeyCollisionError(builtins.AssertionError):
    """``check_keys`` found two calls that get one key but different results: the key
    forgot an input. An ``AssertionError``."""


class KeyNoteWarning(CachemockWarning):
    """What ``check_keys`` noticed that is not an error: a key that changes by itself, or
    many keys that hold one equal result (the key holds something it need not)."""
