"""A real ``redis-server`` for tests: :class:`RedisServer`, and the session fixture
``redis_server``.

The server listens on 127.0.0.1 on a free port and on a unix socket in its own temporary
directory, with persistence off (no RDB snapshot, no append-only file), and is stopped at the
end. Use the fixture in a test suite with, in a ``conftest.py`` (or a test module)::

    pytest_plugins = ["pytest_cachemock.integrations.redis_server"]

    def test_cache(redis_server):
        backend = RedisBackend(redis_server.url)

When ``redis-server`` cannot be started, the fixture skips the tests that use it, with a reason
saying how to install Redis; under ``CI=true`` it fails them instead, so a CI run never passes
by skipping them. Set ``CACHEMOCK_REDIS_SERVER`` to the path of the program to use another one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from types import TracebackType

import pytest

__all__ = ["INSTALL_HINT", "RedisServer", "redis_server", "start_or_skip"]

INSTALL_HINT = (
    "install Redis to run them: apt-get install redis-server (Debian, Ubuntu), "
    "brew install redis (macOS), or set CACHEMOCK_REDIS_SERVER to a redis-server program"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SOCKET_PATH_MAX = 100  # bytes; the kernel's limit is 107 (sun_path of 108, with the NUL)


def _short_tmp() -> str:
    """A writable directory with a short path for a socket: /tmp, else the temp dir."""
    return "/tmp" if os.access("/tmp", os.W_OK) else tempfile.gettempdir()


class RedisServer:
    """One ``redis-server`` process of a test run: ``start()``, ``stop()``, ``restart()``
    (same port and socket), ``pause()``/``resume()`` (SIGSTOP/SIGCONT: a server that accepts
    connections and never answers). ``url`` (TCP) and ``unix_url`` name it for redis-py and
    :class:`~pytest_cachemock.backends.redis.RedisBackend`."""

    def __init__(self, program: str | None = None, *, directory: str | None = None) -> None:
        found = program or os.environ.get("CACHEMOCK_REDIS_SERVER") or shutil.which("redis-server")
        if not found:
            raise FileNotFoundError("redis-server is not on PATH")
        self.program = found
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="cachemock-redis-")
        self.socket_path = os.path.join(self.directory, "redis.sock")
        # A Unix socket's path holds at most 107 bytes: in a deep temporary directory (a
        # pytest-xdist worker's tmp_path as TMPDIR) the socket goes to a short one of its own.
        self._socket_dir: str | None = None
        if len(os.fsencode(self.socket_path)) > _SOCKET_PATH_MAX:
            self._socket_dir = tempfile.mkdtemp(prefix="cmr-", dir=_short_tmp())
            self.socket_path = os.path.join(self._socket_dir, "redis.sock")
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (on a new free port when the one it had is taken); return when it
        answers PING, or raise RuntimeError with the end of its log."""
        if self.process is not None:
            return self
        last = ""
        for _ in range(5):
            log_path = os.path.join(self.directory, "redis.log")
            args = [
                self.program,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--unixsocket", self.socket_path,
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.directory,
                "--daemonize", "no",
                "--logfile", log_path,
                "--protected-mode", "yes",
            ]  # fmt: skip
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if self._wait_ready(timeout):
                return self
            last = self._log_tail(log_path)
            self._kill()
            self.port = _free_port()  # taken meanwhile, most likely
        raise RuntimeError(f"redis-server ({self.program}) did not start: {last}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def _log_tail(self, log_path: str) -> str:
        text = ""
        with contextlib.suppress(OSError), open(log_path, errors="replace") as f:
            text = f.read()[-800:]
        if self.process is not None and self.process.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                if self.process.poll() is not None:
                    text += self.process.stderr.read().decode(errors="replace")[-800:]
        return text.strip() or "no output"

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a paused server cannot quit
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stderr is not None:
            process.stderr.close()

    def stop(self) -> None:
        """Stop the server (nothing is saved); a stopped server can be started again."""
        self._kill()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def restart(self) -> None:
        """Stop and start again, on the same port and socket."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the process: connections are accepted, nothing is answered."""
        assert self.process is not None, "the server is not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, "the server is not running"
        os.kill(self.process.pid, signal.SIGCONT)

    def flush(self) -> None:
        """Drop every key of every database (FLUSHALL), through a raw socket."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            reply = sock.recv(64)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL answered {reply!r}")

    def close(self) -> None:
        """Stop the server and remove its directory (when it made it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"<RedisServer {self.url} {state}>"


def start_or_skip() -> RedisServer:
    """A started :class:`RedisServer`; skips the calling test when none can start (fails it
    under ``CI=true``)."""
    __tracebackhide__ = True
    try:
        return RedisServer().start()
    except (OSError, RuntimeError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, and no redis-server could be started: {exc}", pytrace=False)
        pytest.skip(f"no redis-server could be started ({exc}); {INSTALL_HINT}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` for the whole test session (see the module's docstring). Tests
    that share it should use their own keys (a RedisBackend ``prefix``) or call
    ``redis_server.flush()``."""
    server = start_or_skip()
    try:
        yield server
    finally:
        server.close()
