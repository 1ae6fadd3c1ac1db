"""Kinds whose target is an attribute holding a redis-py client (``redis.Redis``).

While mocks are installed, the attribute holds a client of a fresh fakeredis server made for
this start alone (never fakeredis's shared default server, whose data would leak from one
test into the next), with the real client's ``db``, ``decode_responses`` and ``encoding``.
The client counts into the kind's record in the current store (what ``stats``,
``global_stats.<kind>`` and the report read):

- ``GET`` and ``HGET``: a hit when the reply is not nil, else a miss; ``MGET``: one hit or
  miss per key;
- ``SET``, ``SETEX``: a put; a ``SET ... NX`` that finds the key taken is a hit (as an
  ``add``), a ``SET ... XX`` that finds no key a miss; ``MSET``: one put per key; ``HSET``: one
  put per field;
- ``DEL`` and ``UNLINK``: counted nowhere, logged (one ``delete`` per key);
- any other command (and commands in a pipeline or a transaction) runs on the fake server,
  counted nowhere.

Each counted put, hit and miss is also one entry of the test's operation log (``_oplog``),
``(kind, op, key, outcome)`` under the command's key (the hash's key for ``HGET``/``HSET``):
``GET``/``HGET``/``MGET`` are ``get`` -> hit/miss; ``SET``/``SETEX``/``MSET``/``HSET`` are
``put`` -> stored (a ``SET ... XX`` that stores nothing: miss); ``SET ... NX`` is ``add`` ->
stored or hit; ``DEL`` is ``delete`` -> hit or miss (noted: it bumps no counter). An injected
fault or a forbidden put is logged by the mock as an ``error`` (``MockBackend._raise``).

The kind's ``entries()`` read the fake server itself (key -> bytes for a string, key -> dict
of field -> bytes for a hash), ``seed()`` writes it without counting, and ``fail()`` makes the
counted commands raise (the default, ``ConnectionError``, is raised as an error that is both a
``redis.exceptions.ConnectionError`` and the built-in one, so the application's
``except redis.ConnectionError`` sees it).

Why the fake server holds the entries instead of the store's dict: fakeredis implements every
command (expiry, hashes, lists, Lua), so the counting client only wraps ``execute_command``
(one dict lookup for an uncounted command, a few attribute reads for a counted one) and
``entries()`` is a live view of the server: nothing is stored twice, and what the application
wrote with any command is what the test sees.

Neither redis-py nor fakeredis is imported before a kind with such a target is installed;
without fakeredis, declaring one fails at start-up naming the extra to install.
"""

from __future__ import annotations

import builtins
import importlib.util
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Callable

from ..errors import KindConfigError
from ..mock import KindRecord, MockBackend, current_store

__all__ = ["COUNTED", "ServerEntries", "redis_client_mocks"]

_GET, _MGET, _DEL, _SET, _SETEX, _MSET, _HSET = range(7)
COUNTED: dict[str, str] = {
    "GET": "get",
    "HGET": "get",
    "MGET": "get",
    "SET": "put",
    "SETEX": "put",
    "MSET": "put",
    "HSET": "put",
}
"""The commands the kind counts, and whether a fault armed with ``on="get"`` or ``on="put"``
fails them."""

_HOW: dict[str, int] = {
    "GET": _GET,
    "HGET": _GET,
    "MGET": _MGET,
    "SET": _SET,
    "SETEX": _SETEX,
    "MSET": _MSET,
    "HSET": _HSET,
    "DEL": _DEL,
    "UNLINK": _DEL,
}
_OPTIONS = ("db", "decode_responses", "encoding", "encoding_errors", "protocol")
_EXTRA = "pip install 'pytest-cachemock[redis]'"


def redis_client_mocks(real: Any, where: str) -> Callable[[str], Any]:
    """What makes the mock of ``real`` (a redis-py client held at ``where``) for a kind: a
    function of the kind's name returning a counting client of a fresh fake server.

    Raises KindConfigError naming the extra when fakeredis is not installed.
    """
    if importlib.util.find_spec("fakeredis") is None:
        raise KindConfigError(
            f"{where} holds a redis-py client ({type(real).__qualname__}); mocking it needs "
            f"fakeredis, which is not installed: {_EXTRA}"
        )
    pool = getattr(real, "connection_pool", None)
    given = getattr(pool, "connection_kwargs", None) or {}
    options = {name: given[name] for name in _OPTIONS if name in given}

    def make(kind: str) -> Any:
        return _client(kind, options)

    return make


def _client(kind: str, options: Mapping[str, Any]) -> Any:
    """A counting client for ``kind``; its fake server is the one of the kind's entries when
    another target of the kind made one since the store was reset, else a new one."""
    import fakeredis

    record = current_store().record(kind)
    entries: Any = record.entries
    if isinstance(entries, ServerEntries) and entries.db == options.get("db", 0):
        server = entries.server
    else:
        server = fakeredis.FakeServer()
        entries = ServerEntries(server, int(options.get("db", 0)))
        record.use_entries(entries, logs=True)
    client = _client_class()(server=server, **options)
    client._cachemock_init(kind, entries)
    return client


_classes: dict[str, type[Any]] = {}


def _client_class() -> type[Any]:
    found = _classes.get("client")
    if found is not None:
        return found
    import fakeredis
    import redis

    class InjectedConnectionError(redis.ConnectionError, builtins.ConnectionError):
        """An injected ConnectionError: both redis-py's and the built-in one."""

    run = redis.Redis.execute_command  # fakeredis does not override it

    class CountingFakeRedis(fakeredis.FakeRedis):
        """A fakeredis client that counts GET/MGET/HGET and SET/SETEX/MSET/HSET for a kind
        and logs them, with DEL/UNLINK, in the test's operation log."""

        _cachemock_kind = ""

        def _cachemock_init(self, kind: str, entries: ServerEntries) -> None:
            self._cachemock_kind = kind
            self._cachemock_entries = entries
            self._cachemock_mock = MockBackend(kind)  # its faults, its record lookup
            self._cachemock_local = current_store().local

        def _cachemock_live(self, op: str, args: tuple[Any, ...]) -> KindRecord:
            try:
                return self._cachemock_mock._live(op, _text(args[1]) if len(args) > 1 else "")
            except builtins.ConnectionError as exc:
                if type(exc) is not builtins.ConnectionError:
                    raise
                raise InjectedConnectionError(str(exc)) from None

        def execute_command(self, *args: Any, **options: Any) -> Any:
            name = args[0] if args else None
            how = _HOW.get(name)  # type: ignore[arg-type]
            if how is None:
                if isinstance(name, bytes):
                    name = name.decode("ascii", "replace")
                how = _HOW.get(name.upper()) if isinstance(name, str) else None
                if how is None:
                    return run(self, *args, **options)  # type: ignore[no-untyped-call]
            if how == _DEL:
                return self._cachemock_delete(args, options)
            try:
                record = self._cachemock_local.ready[self._cachemock_kind]
            except (KeyError, AttributeError):
                record = self._cachemock_live("put" if how >= _SET else "get", args)
            if record.entries is not self._cachemock_entries:  # after reset(), another thread
                record.entries = self._cachemock_entries
            reply = run(self, *args, **options)  # type: ignore[no-untyped-call]
            # One counter and one log entry per operation (the log's dropped count is worked
            # out from the counters: _store._Box.logged).
            kind = self._cachemock_kind
            log = record.log
            if how == _GET:
                key = args[1]
                if type(key) is not str:
                    key = _text(key)
                if reply is None:
                    record.misses += 1
                    log.append((kind, "get", key, "miss"))
                else:
                    record.hits += 1
                    log.append((kind, "get", key, "hit"))
            elif how == _MGET:
                for key, value in zip(args[1:], reply):
                    key = key if type(key) is str else _text(key)
                    if value is None:
                        record.misses += 1
                        log.append((kind, "get", key, "miss"))
                    else:
                        record.hits += 1
                        log.append((kind, "get", key, "hit"))
            elif how == _SET:
                key = args[1]
                if type(key) is not str:
                    key = _text(key)
                if len(args) == 3:  # no option: always stored
                    record.puts += 1
                    log.append((kind, "put", key, "stored"))
                else:
                    op, outcome = _set_outcome(args, reply)
                    if outcome == "stored":
                        record.puts += 1
                    elif outcome == "hit":
                        record.hits += 1
                    else:
                        record.misses += 1
                    log.append((kind, op, key, outcome))
            elif how == _SETEX:
                record.puts += 1
                log.append((kind, "put", _text(args[1]), "stored"))
            elif how == _MSET:
                for key in args[1::2]:
                    record.puts += 1
                    log.append((kind, "put", _text(key), "stored"))
            else:  # HSET: one put per field, under the hash's key
                key = _text(args[1])
                for _ in range((len(args) - 2) // 2):
                    record.puts += 1
                    log.append((kind, "put", key, "stored"))
            return reply

        def _cachemock_delete(self, args: tuple[Any, ...], options: Any) -> Any:
            """``DEL``/``UNLINK``: run for each key alone (its reply tells whether it was
            there), each logged as a delete, hit or miss; counted nowhere, no fault applies."""
            record = self._cachemock_mock._record()
            box = record._box
            if box is None or len(args) < 2:
                return run(self, *args, **options)  # type: ignore[no-untyped-call]
            total = 0
            for key in args[1:]:
                found = run(self, args[0], key, **options)  # type: ignore[no-untyped-call]
                total += found
                box.oplog.note(
                    self._cachemock_kind, "delete", _text(key), "hit" if found else "miss"
                )
            return total

        def __repr__(self) -> str:
            return f"<fake redis client of kind {self._cachemock_kind!r} (pytest-cachemock)>"

    CountingFakeRedis.__qualname__ = CountingFakeRedis.__name__ = "FakeRedis"
    InjectedConnectionError.__qualname__ = "InjectedConnectionError"
    _classes["client"] = CountingFakeRedis
    return CountingFakeRedis


def _text(key: Any) -> str:
    """A key of a command as the log and ``entries()`` show it: a str as it is, bytes decoded
    (UTF-8, other bytes as surrogates, as ``ServerEntries`` lists keys), a number as redis-py
    sends it."""
    if type(key) is str:
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key).decode("utf-8", "surrogateescape")
    return str(key)


def _set_outcome(args: tuple[Any, ...], reply: Any) -> tuple[str, str]:
    """The log's ``(op, outcome)`` for a ``SET`` with options: ``add`` for ``NX``, stored or
    (the key was there) hit; ``put`` otherwise, stored or (``XX`` on a key that was not there)
    miss. With ``GET`` the reply is the old value (nil: the key was not there)."""
    words = {_word(a) for a in args[3:]}
    if "GET" in words:
        there = reply is not None
        if "NX" in words:
            return ("add", "hit") if there else ("add", "stored")
        if "XX" in words:
            return ("put", "stored") if there else ("put", "miss")
        return "put", "stored"
    stored = reply is not None and reply is not False
    if "NX" in words:
        return ("add", "stored") if stored else ("add", "hit")
    return ("put", "stored") if stored else ("put", "miss")


def _word(arg: Any) -> str:
    if isinstance(arg, bytes):
        return arg.decode("ascii", "replace").upper()
    return arg.upper() if isinstance(arg, str) else ""


def _key(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


class ServerEntries(MutableMapping[str, Any]):
    """A kind's entries as the keys of its fake server's database ``db``: a string key reads
    as its bytes, a hash as a dict of field -> bytes, a list as a list of bytes, a set as a
    set of bytes. Setting a key writes it (bytes, str, int or float as a string; a mapping as
    a hash), deleting one deletes it; nothing is counted."""

    def __init__(self, server: Any, db: int = 0) -> None:
        import fakeredis

        self.server = server
        self.db = db
        self._raw: Any = fakeredis.FakeRedis(server=server, db=db)  # uncounted, bytes

    def __getitem__(self, key: str) -> Any:
        raw = self._raw
        k = _key(key)
        kind = raw.type(k)
        if kind == b"string":
            return raw.get(k)
        if kind == b"hash":
            return {f.decode("utf-8", "surrogateescape"): v for f, v in raw.hgetall(k).items()}
        if kind == b"list":
            return raw.lrange(k, 0, -1)
        if kind == b"set":
            return raw.smembers(k)
        if kind == b"none":
            raise KeyError(key)
        return f"<a redis {kind.decode()}>"

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Write every entry, or none when one is refused (``seed()`` goes through here)."""
        entries = dict(other, **kwargs)
        for key, value in entries.items():
            if not isinstance(key, str) or not isinstance(
                value, (Mapping, bytes, bytearray, memoryview, str, int, float)
            ):
                raise TypeError(
                    f"seed: an entry of a redis kind is a str key with a bytes, str, int or "
                    f"float value (stored as a string) or a mapping (stored as a hash); got "
                    f"{key!r}: a {type(value).__qualname__}; nothing was stored"
                )
        pipe = self._raw.pipeline()
        for key, value in entries.items():
            k = _key(key)
            if isinstance(value, Mapping):
                pipe.delete(k)
                if value:
                    pipe.hset(k, mapping=dict(value))
            else:
                pipe.set(k, bytes(value) if isinstance(value, (bytearray, memoryview)) else value)
        pipe.execute()

    def __delitem__(self, key: str) -> None:
        if not self._raw.delete(_key(key)):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(
            sorted(k.decode("utf-8", "surrogateescape") for k in self._raw.scan_iter(count=1000))
        )

    def __len__(self) -> int:
        return int(self._raw.dbsize())

    def __repr__(self) -> str:
        return repr(dict(self.items()))
