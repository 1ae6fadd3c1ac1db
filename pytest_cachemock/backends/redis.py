"""A backend on a Redis server, through redis-py (the ``pytest-cachemock[redis]`` extra).

A cache must never make the code in front of it slower or broken when its server is not
there. So this backend connects lazily, with short explicit timeouts and its own small retry
count (redis-py's default retries for seconds), and when the server is down, slow, or
refuses a command: a ``get`` is a miss and a ``put`` (or ``add``) is dropped, each counted as
an ``exception`` in ``cache_stats``, with one :class:`RedisUnavailableWarning` per outage.
Every call returns within :attr:`RedisBackend.call_bound` seconds (0.4 s with the defaults),
and while the server stays down a call costs no network round trip at all: after a failure
the backend waits ``backoff`` seconds (doubled at each failed try, up to ``max_backoff``)
before it tries the server again, so a dead server costs a clock read per call and the same
backend object uses the server again soon after it comes back.

redis-py is imported when the first backend is made, never when the plugin loads.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from ..errors import CachemockWarning, SystemError, UserError
from .base import Backend, bytes_value, refusal

__all__ = ["DEFAULT_URL", "URL_ENV", "RedisBackend", "RedisUnavailableWarning"]

URL_ENV = "CACHEMOCK_REDIS_URL"
"""The environment variable read for the URL when none is passed."""

DEFAULT_URL = "redis://localhost:6379/0"
_SCHEMES = ("redis", "rediss", "unix")
_SCAN_BATCH = 1000


class RedisUnavailableWarning(CachemockWarning):
    """A RedisBackend's server did not answer (down, slow) or refused a command: gets are
    misses and puts are dropped until it answers again. Given once per outage."""


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _seconds(name: str, value: object, *, positive: bool = True) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 if positive else value >= 0)
    ):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number of seconds {need}, got {value!r}")
    return float(value)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise UserError(
            f"RedisBackend needs redis-py ({exc}); install it with "
            "pip install 'pytest-cachemock[redis]'"
        ) from exc
    return redis


class RedisBackend(Backend[bytes]):
    """Stores bytes on a Redis server, under ``prefix`` + the key.

    ``url``: ``redis://``, ``rediss://`` (TLS) or ``unix://`` (a socket path); None reads the
    environment variable ``CACHEMOCK_REDIS_URL``, then uses ``redis://localhost:6379/0``.
    ``socket_timeout`` bounds each connect and each reply, ``retries`` is how many times a
    failed command is tried again at once; ``ttl`` (seconds) makes entries expire on the
    server; ``backoff``/``max_backoff`` space the tries of a server that is down.
    """

    lists_entries = True
    stores_bytes = True

    def __init__(
        self,
        url: str | None = None,
        *,
        socket_timeout: float = 0.1,
        retries: int = 1,
        ttl: float | None = None,
        prefix: str = "cachemock:",
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        name: str | None = None,
    ) -> None:
        if url is None:
            url = os.environ.get(URL_ENV) or DEFAULT_URL
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES:
            raise ValueError(
                f"RedisBackend: {url!r} is not a Redis URL; write redis://host:port/db, "
                "rediss://host:port/db (TLS) or unix:///path/to/redis.sock"
            )
        self.socket_timeout = _seconds("socket_timeout", socket_timeout)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 5:
            raise ValueError(f"retries must be an int from 0 to 5, got {retries!r}")
        self.retries = retries
        self.ttl = None if ttl is None else _seconds("ttl", ttl)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got a {type(prefix).__qualname__}")
        self.prefix = prefix
        self.backoff = _seconds("backoff", backoff)
        self.max_backoff = max(self.backoff, _seconds("max_backoff", max_backoff))
        super().__init__(name=name)
        self.url = url
        self._where = _redacted(url)
        self._prefix = prefix.encode("utf-8", "surrogatepass")
        self._px = None if self.ttl is None else max(1, round(self.ttl * 1000))
        redis = _import_redis()
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._outage_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        )
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            pool = redis.ConnectionPool.from_url(
                url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=Retry(NoBackoff(), 0),  # ours: see _call
                health_check_interval=0,
            )
        except ValueError as exc:
            raise ValueError(f"RedisBackend: cannot use the URL {self._where!r}: {exc}") from exc
        # No connection yet: the first command connects.
        self._client = redis.Redis(connection_pool=pool)
        self._state = threading.Lock()
        self._down_until = 0.0  # time.monotonic() before which the server is not tried
        self._delay = 0.0  # the current backoff, 0 while the server answers
        self._warned = False

    @property
    def call_bound(self) -> float:
        """The longest a get, put or add takes, in seconds, whatever the server does: each of
        ``retries + 1`` tries waits at most ``socket_timeout`` to connect and as long for the
        reply."""
        return (self.retries + 1) * 2 * self.socket_timeout

    @property
    def available(self) -> bool:
        """False while the backend is backing off a server that failed."""
        return self._delay == 0.0

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode("utf-8", "surrogatepass")

    # -- calling the server ------------------------------------------------------------------

    def _call(self, command: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """(True, the reply) or (False, None) when the server is backed off, did not answer
        within the bound, or refused (a failure then starts or lengthens the backoff)."""
        if self._delay and time.monotonic() < self._down_until:
            return False, None
        tries = self.retries + 1
        while True:
            try:
                reply = command(*args)
            except self._errors as exc:
                outage = isinstance(exc, self._outage_errors)
                tries -= 1
                if tries and outage:
                    continue
                self._failed(exc, outage)
                return False, None
            if self._warned:
                self._recovered()
            return True, reply

    def _failed(self, exc: BaseException, outage: bool) -> None:
        """Count nothing (the caller does); back off a server that did not answer; warn once
        until a command succeeds again. A command the server refused (out of memory, a read
        only replica) is not tried again, and the server is not backed off."""
        with self._state:
            if outage:
                delay = self._delay = min(self.max_backoff, self._delay * 2 or self.backoff)
                self._down_until = time.monotonic() + delay
            warn = not self._warned
            self._warned = True
        if not warn:
            return
        where = f"RedisBackend {self.name!r}: the Redis server at {self._where}"
        why = f"{type(exc).__name__}: {exc}"
        if outage:
            text = (
                f"{where} did not answer ({why}); gets are misses and puts are dropped, each "
                "counted as an exception in cache_stats, and the server is tried again at most "
                f"every {self.max_backoff:g} s until it answers. Start it, or pass another url= "
                f"(or set {URL_ENV})"
            )
        else:
            text = (
                f"{where} refused a command ({why}); what it refuses is a miss or a dropped put, "
                "counted as an exception in cache_stats. Fix the server's configuration "
                "(maxmemory, the user's permissions, a read-only replica) or pass another url="
            )
        warnings.warn(RedisUnavailableWarning(text), stacklevel=4)

    def _recovered(self) -> None:
        with self._state:
            self._delay = 0.0
            self._down_until = 0.0
            self._warned = False

    def _must(self, what: str, command: Callable[..., Any], *args: Any) -> Any:
        """The reply of a call off the hot path (items, delete, clear, len): raised as a
        SystemError naming the server when it fails."""
        try:
            return command(*args)
        except self._errors as exc:
            raise SystemError(
                f"RedisBackend {self.name!r}: cannot {what} on the Redis server at "
                f"{self._where} ({type(exc).__name__}: {exc}); check that it runs"
            ) from exc

    # -- get, put, add: never raise for the server; count as Backend does --------------------

    def get(self, key: str) -> bytes | None:
        """The stored value, or None: a miss, also when the server fails (then counted as an
        exception too)."""
        counters = self._counters or self._live_counters()
        if type(key) is not str:
            next(counters.exception)
            raise self._refused(refusal(self, "get", key))
        ok, value = self._call(
            self._client.get, self._prefix + key.encode("utf-8", "surrogatepass")
        )
        if not ok:
            next(counters.exception)
        next(counters.miss if value is None else counters.hit)
        return value  # type: ignore[no-any-return]

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``; dropped (counted as an exception, not a put) when the server fails."""
        counters = self._counters or self._live_counters()
        if type(key) is not str or value is None:
            next(counters.exception)
            raise self._refused(refusal(self, "put", key))
        if type(value) is not bytes:
            value = self._bytes(key, value)
        ok, _ = self._call(self._client.set, self._key(key), value, None, self._px)
        next(counters.put if ok else counters.exception)

    def add(self, key: str, value: bytes) -> bool:
        """Store ``value`` where ``key`` has nothing (one ``SET NX``, atomic on the server);
        True when stored. False, counted as an exception, when the server fails."""
        counters = self._counters or self._live_counters()
        if type(key) is not str or value is None:
            next(counters.exception)
            raise self._refused(refusal(self, "add", key))
        if type(value) is not bytes:
            value = self._bytes(key, value)
        ok, reply = self._call(self._set_nx, self._key(key), value)
        if not ok:
            next(counters.exception)
            return False
        next(counters.put if reply else counters.hit)
        return bool(reply)

    def _bytes(self, key: str, value: object) -> bytes:
        try:
            return bytes_value("RedisBackend", key, value)
        except Exception:
            next((self._counters or self._live_counters()).exception)
            raise

    def _set_nx(self, key: bytes, value: bytes) -> Any:
        return self._client.set(key, value, px=self._px, nx=True)

    def _get(self, key: str) -> bytes | None:
        return self._call(self._client.get, self._key(key))[1]  # type: ignore[no-any-return]

    def _put(self, key: str, value: bytes) -> None:  # pragma: no cover - put is overridden
        self.put(key, value)

    # -- listing, deleting, clearing: this backend's prefix only -----------------------------

    def _keys(self) -> list[bytes]:
        pattern = _glob_escape(self._prefix) + b"*"
        return list(
            self._must(
                "list its keys",
                lambda: list(self._client.scan_iter(match=pattern, count=_SCAN_BATCH)),
            )
        )

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every entry under this backend's prefix, as (key, value), as of the call."""
        keys = self._keys()
        found: list[tuple[str, bytes]] = []
        n = len(self._prefix)
        for start in range(0, len(keys), _SCAN_BATCH):
            batch = keys[start : start + _SCAN_BATCH]
            values = self._must("read entries", self._client.mget, batch)
            found += [
                (k[n:].decode("utf-8", "surrogatepass"), v)
                for k, v in zip(batch, values)
                if v is not None
            ]
        return iter(found)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        return bool(self._must("delete a key", self._client.delete, self._key(key)) == 1)

    def clear(self) -> None:
        """Remove every entry under this backend's prefix (other keys stay)."""
        keys = self._keys()
        for start in range(0, len(keys), _SCAN_BATCH):
            self._must("delete keys", self._client.delete, *keys[start : start + _SCAN_BATCH])

    def __len__(self) -> int:
        return len(self._keys())

    def close(self) -> None:
        """Close the connections; the next call connects again."""
        self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"<RedisBackend {self._where} prefix={self.prefix!r}>"


def _glob_escape(text: bytes) -> bytes:
    """``text`` as a SCAN MATCH pattern that matches only itself."""
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out.append(0x5C)
        out.append(byte)
    return bytes(out)
