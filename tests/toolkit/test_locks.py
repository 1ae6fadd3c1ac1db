"""The lock helpers: {thread lock, file lock} x {blocking, non-blocking, timeout} x
{free, held, released before the timeout, held past it}, with real threads and, for the file
lock, a holder in another real process. Also FileBackend's own locks (add/clear).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import filelock
import pytest

from pytest_cachemock import (
    CacheError,
    FileBackend,
    FileLockTimeoutError,
    LockTimeoutError,
    SystemError,
    cache_stats,
)
from pytest_cachemock.locks import file_lock, make_file_lock, thread_lock

# Generous bound for "this must happen": only reached when something is broken.
PATIENCE = 30.0
# How long a waiter is watched to show it is still waiting while the lock is held. Not a
# timing assertion: while the holder holds, the waiter cannot have the lock, however slow
# the machine; this only decides how long we look.
LOOK = 0.3
SHORT_TIMEOUT = 0.2

MODES = ("blocking", "non_blocking", "timeout")


# -- holders -------------------------------------------------------------------------------


class Holder:
    """Something that holds a lock until told to release it."""

    def __init__(self, release: Callable[[], None]) -> None:
        self.release = release


@contextmanager
def thread_holder(lock: Any) -> Iterator[Holder]:
    """Another thread takes ``lock`` and holds it until ``release()``."""
    taken, go = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            go.wait(PATIENCE)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert taken.wait(PATIENCE), "holder thread never got the lock"
    released = False

    def release() -> None:
        nonlocal released
        go.set()
        t.join(PATIENCE)
        assert not t.is_alive()
        released = True

    try:
        yield Holder(release)
    finally:
        if not released:
            release()


_HOLD_FILE_LOCK = """
import sys
from pytest_cachemock.locks import file_lock
with file_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

_HOLD_BACKEND_LOCK = """
import sys
from pytest_cachemock import FileBackend
backend = FileBackend(sys.argv[1])
with backend.lock(sys.argv[2] if len(sys.argv) > 2 else None):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@contextmanager
def process_holder(code: str, *args: str) -> Iterator[Holder]:
    """Another process takes a file lock and holds it until ``release()``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        stdin.write("go\n")
        stdin.flush()
        assert stdout.readline().strip() == "released"
        assert proc.wait(PATIENCE) == 0

    try:
        line = stdout.readline().strip()
        assert line == "locked", f"holder process did not get the lock: {line!r}"
        yield Holder(release)
    finally:
        try:
            release()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# -- the locks under test ------------------------------------------------------------------


class Kind:
    """One of the two kinds of lock: how to make it, hold it elsewhere, and take it."""

    name: str
    error: type[LockTimeoutError]

    def make(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def holder(self, lock: Any) -> AbstractContextManager[Holder]:
        raise NotImplementedError

    def take(self, lock: Any, mode: str, timeout: float) -> AbstractContextManager[object]:
        if mode == "blocking":
            return self._helper(lock)
        if mode == "non_blocking":
            return self._helper(lock, blocking=False)
        return self._helper(lock, timeout)

    def _helper(self, lock: Any, *args: Any, **kwargs: Any) -> AbstractContextManager[object]:
        raise NotImplementedError

    def describes(self, lock: Any) -> str:
        raise NotImplementedError


class ThreadKind(Kind):
    name = "thread"
    error = LockTimeoutError

    def make(self, tmp_path: Path) -> Any:
        return threading.Lock()

    def holder(self, lock: Any) -> AbstractContextManager[Holder]:
        return thread_holder(lock)

    def _helper(self, lock: Any, *args: Any, **kwargs: Any) -> AbstractContextManager[object]:
        return thread_lock(lock, *args, **kwargs)

    def describes(self, lock: Any) -> str:
        return f"{id(lock):#x}"  # the lock's repr, whose state part changes, names its address


class FileKind(Kind):
    name = "file"
    error = FileLockTimeoutError

    def make(self, tmp_path: Path) -> Any:
        return str(tmp_path / "matrix.lock")

    def holder(self, lock: Any) -> AbstractContextManager[Holder]:
        return process_holder(_HOLD_FILE_LOCK, lock)

    def _helper(self, lock: Any, *args: Any, **kwargs: Any) -> AbstractContextManager[object]:
        return file_lock(lock, *args, **kwargs)

    def describes(self, lock: Any) -> str:
        return repr(str(lock))


KINDS = [ThreadKind(), FileKind()]


def check_error(kind: Kind, lock: Any, error: LockTimeoutError, timeout: float | None) -> None:
    assert type(error) is kind.error
    assert isinstance(error, LockTimeoutError)
    assert isinstance(error, SystemError)
    assert isinstance(error, CacheError)
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert kind.describes(lock) in message
    if timeout is None:
        assert "non-blocking" in message
        assert error.timeout is None
    else:
        assert f"within {timeout:g} s" in message
        assert error.timeout == timeout
    assert error.lock is not None


def attempt(kind: Kind, lock: Any, mode: str, timeout: float) -> tuple[bool, BaseException | None]:
    """Try to take the lock; (got it, the error if not)."""
    try:
        with kind.take(lock, mode, timeout):
            return True, None
    except LockTimeoutError as exc:
        return False, exc


class Waiter:
    """A thread that tries to take the lock and reports what happened."""

    def __init__(self, kind: Kind, lock: Any, mode: str, timeout: float) -> None:
        self.started = threading.Event()
        self.done = threading.Event()
        self.got = False
        self.error: BaseException | None = None

        def run() -> None:
            self.started.set()
            try:
                self.got, self.error = attempt(kind, lock, mode, timeout)
            except BaseException as exc:  # pragma: no cover - reported by the test
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.started.wait(PATIENCE)

    def finish(self) -> None:
        assert self.done.wait(PATIENCE), "waiter never returned"
        self.thread.join(PATIENCE)


# -- the matrix ------------------------------------------------------------------------------


@pytest.fixture(params=KINDS, ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", MODES)
def test_free_lock_is_taken_at_once(kind: Kind, mode: str, tmp_path: Path) -> None:
    lock = kind.make(tmp_path)
    got, error = attempt(kind, lock, mode, SHORT_TIMEOUT)
    assert got
    assert error is None
    # And released afterwards: a second, non-blocking attempt gets it too.
    assert attempt(kind, lock, "non_blocking", 0)[0]


def test_held_blocking_waits_until_released(kind: Kind, tmp_path: Path) -> None:
    lock = kind.make(tmp_path)
    with kind.holder(lock) as holder:
        waiter = Waiter(kind, lock, "blocking", 0)
        assert not waiter.done.wait(LOOK), "a blocking acquire returned while the lock was held"
        holder.release()
        waiter.finish()
    assert waiter.got
    assert waiter.error is None


def test_held_non_blocking_fails_at_once(kind: Kind, tmp_path: Path) -> None:
    lock = kind.make(tmp_path)
    with kind.holder(lock):
        got, error = attempt(kind, lock, "non_blocking", 0)
    assert not got
    assert isinstance(error, LockTimeoutError)
    check_error(kind, lock, error, None)


def test_held_with_timeout_fails_with_the_timeout(kind: Kind, tmp_path: Path) -> None:
    lock = kind.make(tmp_path)
    with kind.holder(lock):
        got, error = attempt(kind, lock, "timeout", SHORT_TIMEOUT)
    assert not got
    assert isinstance(error, LockTimeoutError)
    check_error(kind, lock, error, SHORT_TIMEOUT)


@pytest.mark.parametrize("mode", MODES)
def test_released_before_the_timeout(kind: Kind, mode: str, tmp_path: Path) -> None:
    """The holder lets go while the waiter waits (or, non-blocking, before it tries)."""
    lock = kind.make(tmp_path)
    with kind.holder(lock) as holder:
        if mode == "non_blocking":
            holder.release()
            got, error = attempt(kind, lock, mode, 0)
        else:
            waiter = Waiter(kind, lock, mode, PATIENCE)
            assert not waiter.done.wait(LOOK)
            holder.release()
            waiter.finish()
            got, error = waiter.got, waiter.error
    assert error is None
    assert got


@pytest.mark.parametrize("mode", MODES)
def test_held_past_the_timeout(kind: Kind, mode: str, tmp_path: Path) -> None:
    """The holder keeps the lock past the waiter's timeout.

    With a timeout the waiter gives up with a typed error; non-blocking gives up at once;
    blocking has no timeout, so it keeps waiting and gets the lock once it is released.
    """
    lock = kind.make(tmp_path)
    with kind.holder(lock) as holder:
        waiter = Waiter(kind, lock, mode, SHORT_TIMEOUT)
        if mode == "blocking":
            assert not waiter.done.wait(max(LOOK, 2 * SHORT_TIMEOUT))
            holder.release()
        waiter.finish()
    if mode == "blocking":
        assert waiter.got
        assert waiter.error is None
    else:
        assert not waiter.got
        assert isinstance(waiter.error, LockTimeoutError)
        check_error(kind, lock, waiter.error, None if mode == "non_blocking" else SHORT_TIMEOUT)


# -- the helpers' own rules ----------------------------------------------------------------


@pytest.mark.parametrize("helper", [thread_lock, file_lock])
@pytest.mark.parametrize("timeout", [-1, -0.5, float("nan"), True])
def test_bad_timeouts_are_refused(helper: Any, timeout: Any, tmp_path: Path) -> None:
    lock = threading.Lock() if helper is thread_lock else tmp_path / "x.lock"
    with pytest.raises(ValueError, match="timeout must be None"), helper(lock, timeout):
        pass  # pragma: no cover


@pytest.mark.parametrize("helper", [thread_lock, file_lock])
def test_non_blocking_takes_no_timeout(helper: Any, tmp_path: Path) -> None:
    lock = threading.Lock() if helper is thread_lock else tmp_path / "x.lock"
    with (
        pytest.raises(ValueError, match="non-blocking acquire takes no timeout"),
        helper(lock, 1.0, blocking=False),
    ):
        pass  # pragma: no cover


def test_thread_lock_releases_on_error_and_takes_rlock_and_semaphore() -> None:
    lock = threading.Lock()
    with pytest.raises(KeyError), thread_lock(lock, 1.0):
        raise KeyError("boom")
    assert not lock.locked()

    rlock = threading.RLock()
    with thread_lock(rlock), thread_lock(rlock, blocking=False):
        pass  # re-entrant in the owning thread

    sem = threading.Semaphore(1)
    with (
        thread_lock(sem),
        pytest.raises(LockTimeoutError, match="within 0 s"),
        thread_lock(sem, 0),
    ):
        pass  # pragma: no cover
    with thread_lock(sem, blocking=False):
        pass


def test_file_lock_takes_a_path_a_pathlike_or_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with file_lock(path) as held:
        assert isinstance(held, filelock.BaseFileLock)
        assert held.is_locked
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not held.is_locked
    with file_lock(str(path), 1.0) as held_again:
        assert held_again.is_locked
    lock = make_file_lock(path)
    with file_lock(lock, blocking=False) as same:
        assert same is lock
        assert lock.is_locked
    assert not lock.is_locked


def test_file_lock_releases_on_error(tmp_path: Path) -> None:
    lock = make_file_lock(tmp_path / "b.lock")
    with pytest.raises(KeyError), file_lock(lock):
        raise KeyError("boom")
    assert not lock.is_locked


def test_file_lock_excludes_another_thread(tmp_path: Path) -> None:
    """Threads of one process exclude each other on one file lock as processes do."""
    path = str(tmp_path / "c.lock")
    with (
        thread_holder(make_file_lock(path)),
        pytest.raises(FileLockTimeoutError, match=r"c\.lock") as info,
        file_lock(path, 0.05),
    ):
        pass  # pragma: no cover
    assert info.value.timeout == 0.05
    with file_lock(path, 0):
        pass


def test_lock_error_without_a_file_names_the_lock() -> None:
    class Custom:
        def __repr__(self) -> str:
            return "<my lock>"

    error = LockTimeoutError(Custom(), 2.5, "the cache is busy")
    assert str(error) == "could not acquire lock <my lock> within 2.5 s; the cache is busy"
    assert "non-blocking" in str(LockTimeoutError(Custom(), -1))


# -- FileBackend's locks, held by another process ------------------------------------------


def test_backend_clear_times_out_while_another_process_holds_the_directory(
    tmp_path: Path, fresh_stats: None
) -> None:
    backend = FileBackend(tmp_path, lock_timeout=SHORT_TIMEOUT)
    backend.put("k", b"v")
    with process_holder(_HOLD_BACKEND_LOCK, str(tmp_path)):
        with pytest.raises(FileLockTimeoutError) as info:
            backend.clear()
        assert backend.get("k") == b"v"  # nothing was cleared
    check_error(FILE, os.path.join(str(tmp_path), ".lock"), info.value, SHORT_TIMEOUT)
    backend.clear()
    assert backend.get("k") is None


def test_backend_add_times_out_while_another_process_holds_the_key(
    tmp_path: Path, fresh_stats: None
) -> None:
    backend = FileBackend(tmp_path, lock_timeout=SHORT_TIMEOUT)
    with process_holder(_HOLD_BACKEND_LOCK, str(tmp_path), "k"):
        with pytest.raises(FileLockTimeoutError, match=f"within {SHORT_TIMEOUT:g} s") as info:
            backend.add("k", b"v")
        assert backend.get("k") is None  # nothing was added
    assert isinstance(info.value, RuntimeError)
    assert ".lock." in str(info.value)
    assert cache_stats.snapshot()["backend:FileBackend"]["exception"] == 1
    assert backend.add("k", b"v") is True


def test_backend_lock_excludes_threads_too(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path, lock_timeout=0)
    with (
        thread_holder(FileBackend(tmp_path).lock("k")),
        pytest.raises(FileLockTimeoutError, match="within 0 s"),
    ):
        backend.add("k", b"v")
    assert backend.add("k", b"v")


@pytest.mark.parametrize("value", [-1, float("nan"), "1", True, None])
def test_backend_lock_timeout_must_be_a_number(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ValueError, match="lock_timeout must be a number"):
        FileBackend(tmp_path, lock_timeout=value)


FILE = FileKind()


# -- range_lock: one byte of a file per key, between processes --------------------------------

_HOLD_RANGE_LOCK = """
import sys
from pytest_cachemock.locks import range_lock
release = range_lock(sys.argv[1], 5.0, sys.argv[2])
print("locked", flush=True)
sys.stdin.readline()
release()
print("released", flush=True)
"""

KEY_A = "memo/0123456789abcdef/" + "0" * 22 + "aaaaaaaaaa"
KEY_B = "memo/0123456789abcdef/" + "0" * 22 + "bbbbbbbbbb"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX record locks")
def test_range_lock_excludes_another_process_per_key(tmp_path: Path) -> None:
    from pytest_cachemock.locks import range_lock

    path = str(tmp_path / ".memoize.lock")
    holder = process_holder(_HOLD_RANGE_LOCK, path, KEY_A)
    with holder as held:
        # The same key's byte: a bounded wait, then the typed error naming file and offset.
        with pytest.raises(FileLockTimeoutError, match=f"within {SHORT_TIMEOUT:g} s") as info:
            range_lock(path, SHORT_TIMEOUT, KEY_A)
        assert f"{path}@{int(KEY_A[-10:], 16)}" in str(info.value)
        # Another key's byte is free.
        range_lock(path, SHORT_TIMEOUT, KEY_B)()
        held.release()
        # Released by its holder: taken at once.
        range_lock(path, SHORT_TIMEOUT, KEY_A)()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX record locks")
def test_range_lock_refuses_a_symlink(tmp_path: Path) -> None:
    from pytest_cachemock.locks import range_lock

    path = tmp_path / "planted.lock"
    os.symlink(tmp_path / "target", path)
    with pytest.raises(SystemError, match="is a symlink; refusing to follow it"):
        range_lock(str(path), SHORT_TIMEOUT, KEY_A)
    assert not (tmp_path / "target").exists()
