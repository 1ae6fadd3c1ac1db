"""A memoizer's way to one backend: the read, lock and store steps of every call.

Every call of a memoized function that misses the in-process front goes through a
:class:`_Route`: the real backend's, or, while ``backend_override_cls`` is set (the pytest
plugin's mock, or any backend a test installs), the override's. Both run the same steps; what
the real route adds is what only the real store needs: the front, single flight, the per-key
lock between processes and (``writes_behind``) the writer thread. On an override strict mode
does not apply either: the mock store is the test's own.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

from ._keys import _MISSING, _Fn
from ._writer import _writer
from .backends.base import Backend
from .errors import LockTimeoutError, MemoizerWarning, ValueDecodingError
from .errors import SystemError as CacheSystemError
from .locks import range_lock

if TYPE_CHECKING:
    from .memoize import Memoizer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the backend's own lock is used
    fcntl = None  # type: ignore[assignment]

_LOCK_FILE = ".memoize.lock"


def _noop() -> None:
    pass


class _Held:
    """A held lock; ``release`` may be handed to whoever finishes the work."""

    __slots__ = ("release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self.release = release


def _warn(memo: Memoizer, text: str, stacklevel: int) -> None:
    """Count an exception of ``memo`` and warn of it; ``stacklevel`` as seen by the caller."""
    next(memo._counters.exception)
    warnings.warn(f"Memoizer {memo.name!r}: {text}", MemoizerWarning, stacklevel=stacklevel + 1)


def _range_lock_path(backend: Backend[Any]) -> str:
    """The file whose byte ranges lock keys of ``backend`` between processes, or "".

    On-disk backends name a path next to their store through ``sidecar_path(name)``; a
    backend without one (memory, a server) has no such file, nor has any on Windows.
    """
    if fcntl is None:  # pragma: no cover
        return ""
    return backend.sidecar_path(_LOCK_FILE) or ""


class _Route:
    """The steps of a memoized call over ``backend``; ``real`` for the memoizer's own."""

    __slots__ = ("backend", "front", "lock_path", "locks_keys", "memo", "shared", "write_behind")

    def __init__(self, memo: Memoizer, backend: Backend[Any], *, real: bool) -> None:
        self.memo = memo
        self.backend = backend
        # The front, single flight and strict mode; off on an override, whose calls all
        # reach its store (the plugin's mock keeps entries per test, or per thread).
        self.front = self.shared = real
        # On a backend with a sidecar_path (file, log, sqlite; POSIX) the per-key lock between
        # processes is a byte-range lock in one file next to the store (a few microseconds,
        # where a filelock takes about 80); else the backend's own lock(key), where it has one.
        self.lock_path = _range_lock_path(backend) if real else ""
        self.locks_keys = real and not self.lock_path and backend.locks_keys
        # Plain stores of a writes_behind backend (FileBackend) go to the writer thread,
        # which releases the key's lock once the entry is on disk: so only with that lock.
        self.write_behind = real and backend.writes_behind and bool(self.lock_path)

    # -- reading -------------------------------------------------------------------------------

    def read(self, spec: _Fn, key: str, *, counted: bool = True) -> Any:
        """The stored result of ``key``, or _MISSING; backend and decoding errors are misses.

        ``counted=False`` reads with ``peek``: a check again, under the key's lock, of what
        this call already counted as a miss (one call counts once in the backend too).
        """
        memo = self.memo
        backend = self.backend
        try:
            stored = None
            if self.write_behind and _writer._pending:
                stored = _writer.pending(backend, key)
            if stored is None:
                stored = backend.get(key) if counted else backend.peek(key)
        except Exception as exc:
            memo._failed(exc, "read", backend)
            return _MISSING
        if memo._outage:
            memo._recovered("read")
        if stored is None:
            return _MISSING
        try:
            record = memo._decode_record(key, stored)
        except Exception as exc:
            why = f"cannot decode the stored entry {key!r} of {spec.label} ({exc})"
            _warn(memo, f"{why}; treated as a miss", 5)
            return _MISSING
        if record is None or record["fn"] != spec.qualname:
            next(memo._counters.exception)
            return _MISSING
        return record["result"]

    def find(self, spec: _Fn, key: str, fk: object) -> Any:
        """The result in the front or the backend (a hit, counted; fills the front), or _MISSING."""
        value = spec.front.get(fk, _MISSING) if self.front and spec.use_front else _MISSING
        if value is _MISSING:
            value = self.read(spec, key)
            if value is _MISSING:
                return value
            self.front_put(spec, fk, value)
        next(self.memo._counters.hit)
        return value

    def front_put(self, spec: _Fn, fk: object, value: Any) -> None:
        if self.front and spec.use_front:
            spec.front[fk] = value

    def stored_meanwhile(self, spec: _Fn, key: str, fk: object, held: _Held | None) -> Any:
        """The result stored since this call's lookup missed (a hit, counted), or _MISSING.

        Another thread of this process may have stored it between that lookup and this
        flight (it fills the front before its flight ends), and another process while this
        one waited for the key's lock; the backend is read again (uncounted: this call's miss
        is counted already) only where that can be.
        """
        front = self.front and spec.use_front
        value = spec.front.get(fk, _MISSING) if front else _MISSING
        if value is _MISSING and (held is not None or not front):
            value = self.read(spec, key, counted=False)
        if value is not _MISSING:
            self.front_put(spec, fk, value)
            next(self.memo._counters.hit)
        return value

    # -- the key's lock between processes ------------------------------------------------------

    def lock(self, spec: _Fn, key: str) -> _Held | None:
        """The per-key lock between processes, held; None when there is none or it failed."""
        memo = self.memo
        backend = self.backend
        try:
            if self.lock_path:
                held = _Held(range_lock(self.lock_path, backend.lock_timeout, key))
            elif self.locks_keys:
                cm = backend.lock(key)
                cm.__enter__()

                def release() -> None:
                    cm.__exit__(None, None, None)

                held = _Held(release)
            else:
                return None
            if memo._outage:
                memo._recovered("lock")
            return held
        except LockTimeoutError as exc:
            why = f"{exc}; computing {spec.label} without it"
            _warn(memo, f"{why} (counted as an exception in cache_stats[{memo.name!r}])", 6)
            return None
        except Exception as exc:
            memo._failed(exc, "lock")
            return None

    # -- storing -------------------------------------------------------------------------------

    def store(
        self, spec: _Fn, key: str, encoded: object, result: object, held: _Held | None
    ) -> Any:
        """Store ``result``; return what callers get (the stored result that won).

        On a ``writes_behind`` backend a plain store is written behind, by a background thread
        that then releases the key's lock (``held``, handed over): a first call always creates
        a file, which costs 20 to 800 us on the ext4 of docs/performance.md (more than the rest
        of the call), and the front and the writer's pending table serve this process
        meanwhile. Writing in the caller was measured at about torch's first call; see there.
        """
        memo = self.memo
        backend = self.backend
        stored = memo._encode_record(spec, key, encoded, result)
        record = memo._decode_record(key, stored)
        if record is None:
            raise ValueDecodingError(
                f"the memoizer's serde ({memo.serde!r}) does not give back the record it "
                f"encoded for {spec.label}"
            )
        value = record["result"]
        deterministic = memo.deterministic
        if self.write_behind and not deterministic:
            release = None
            if held is not None:
                release, held.release = held.release, _noop
            _writer.submit(memo, backend, key, stored, release)
            next(memo._counters.put)
            return value
        try:
            if deterministic:
                added = backend.add(key, stored)
            else:
                backend.put(key, stored)
                added = True
        except Exception as exc:
            memo._failed(exc, "write", backend)
            if not deterministic:
                return value
            # First writer wins: a result that was not stored is not the stored one, and
            # another process may hold another. Return the stored result, or raise.
            winner = self.read(spec, key, counted=False)
            if winner is not _MISSING:
                return winner
            raise CacheSystemError(
                f"Memoizer {memo.name!r} is deterministic, but it could not store the result "
                f"of {spec.label} under {key!r} ({type(exc).__name__}: {exc}), and no stored "
                "result is there: returning its own could differ from what other callers "
                "return. Fix the backend (a full disk, a lock held too long) and call again"
            ) from exc
        if memo._outage:
            memo._recovered("write")
        if added:
            next(memo._counters.put)
            return value
        # add() counted the entry already there (a hit in the backend): read it uncounted.
        winner = self.read(spec, key, counted=False)
        if winner is _MISSING:
            # An entry is there (add refused ours) but cannot be read: every process that
            # returned its own result here would return a different one.
            raise CacheSystemError(
                f"Memoizer {memo.name!r} is deterministic, but the entry stored under {key!r} "
                f"for {spec.label} cannot be read (damaged, or not a record of this function; "
                "see the warning), and this call's result could not be stored in its place: "
                "returning it could differ from what other callers return. Remove the entry "
                "(cache_clear(), or the backend's delete(key)) and call again"
            )
        return winner
