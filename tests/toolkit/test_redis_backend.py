"""RedisBackend on a real redis-server: what only it does (URLs, prefixes, TTL on the server,
SET NX between clients, faults: a server stopped, paused, refusing). The contract every
backend keeps runs in test_backend_contract.py.

The servers are real ``redis-server`` processes started by the tests
(pytest_cachemock.integrations.redis_server); without one the tests skip (fail under CI=true).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cachemock import RemoteCache, cache_stats
from pytest_cachemock.backends.redis import DEFAULT_URL, RedisBackend, RedisUnavailableWarning
from pytest_cachemock.errors import CachemockWarning, SystemError
from pytest_cachemock.integrations.redis_server import RedisServer, start_or_skip

pytest_plugins = ["pytest_cachemock.integrations.redis_server"]
pytestmark = pytest.mark.usefixtures("fresh_stats")

redis = pytest.importorskip("redis")


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test alone, which it may stop, pause and start again."""
    server = start_or_skip()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def shared(redis_server: RedisServer) -> RedisServer:
    redis_server.flush()
    return redis_server


def raw(server: RedisServer) -> Any:
    return redis.Redis.from_url(server.url)


def counted(backend: RedisBackend) -> dict[str, int]:
    got = cache_stats.snapshot().get(backend.name, {})
    return {k: got.get(k, 0) for k in ("hit", "miss", "put", "exception")}


# -- the URL -------------------------------------------------------------------------------


def test_the_url_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CACHEMOCK_REDIS_URL", raising=False)
    assert RedisBackend().url == DEFAULT_URL == "redis://localhost:6379/0"
    monkeypatch.setenv("CACHEMOCK_REDIS_URL", "redis://cache.internal:6380/3")
    assert RedisBackend().url == "redis://cache.internal:6380/3"
    assert RedisBackend("redis://other:1/2").url == "redis://other:1/2"
    assert RedisBackend("rediss://tls.example:6380/0").url.startswith("rediss://")


@pytest.mark.parametrize("url", ["http://localhost:6379", "localhost:6379", ""])
def test_a_url_that_is_not_redis_is_refused_by_name(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CACHEMOCK_REDIS_URL", raising=False)
    with pytest.raises(ValueError, match=r"is not a Redis URL; write redis://host:port/db"):
        RedisBackend(url or "mysql://x")


def test_making_a_backend_connects_to_nothing() -> None:
    # A port nothing listens on: making the backend neither fails nor warns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = RedisBackend("redis://127.0.0.1:9/0")
    assert backend.available
    assert counted(backend) == {"hit": 0, "miss": 0, "put": 0, "exception": 0}


def test_the_password_is_kept_out_of_messages() -> None:
    backend = RedisBackend("redis://user:s3cret@127.0.0.1:9/0")
    assert "s3cret" not in repr(backend)
    with pytest.warns(RedisUnavailableWarning) as caught:
        assert backend.get("k") is None
    assert "s3cret" not in str(caught[0].message)
    assert "user:***@127.0.0.1:9" in str(caught[0].message)


def test_a_unix_socket_url_works(shared: RedisServer) -> None:
    backend = RedisBackend(shared.unix_url)
    backend.put("k", b"over the socket")
    assert RedisBackend(shared.url).get("k") == b"over the socket"


def test_a_server_in_a_deep_directory_keeps_its_socket_short(tmp_path: Any) -> None:
    # A pytest-xdist worker's tmp_path as TMPDIR made a socket path past the kernel's 107
    # bytes, and redis-server would not start ("unix socket path too long").
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed")  # pragma: no cover - CI has one
    server = RedisServer(directory=str(deep)).start()
    try:
        assert len(server.socket_path) <= 100
        assert RedisBackend(server.unix_url).add("k", b"v")
        assert RedisBackend(server.url).get("k") == b"v"
        socket_dir = server.socket_path.rsplit("/", 1)[0]
    finally:
        server.close()
    assert not os.path.exists(socket_dir)  # its short directory goes with it


# -- keys, prefixes, TTL, add ---------------------------------------------------------------


def test_keys_are_prefixed_and_prefixes_keep_caches_apart(shared: RedisServer) -> None:
    pages = RedisBackend(shared.url, prefix="pages:")
    users = RedisBackend(shared.url, prefix="users:")
    pages.put("1", b"home")
    users.put("1", b"alice")
    raw(shared).set(b"unrelated", b"x")
    assert (pages.get("1"), users.get("1")) == (b"home", b"alice")
    assert sorted(raw(shared).keys()) == [b"pages:1", b"unrelated", b"users:1"]
    assert dict(pages.items()) == {"1": b"home"}
    pages.clear()
    assert sorted(raw(shared).keys()) == [b"unrelated", b"users:1"]
    assert len(users) == 1


def test_a_prefix_with_glob_characters_lists_only_its_keys(shared: RedisServer) -> None:
    starred = RedisBackend(shared.url, prefix="a*[")
    other = RedisBackend(shared.url, prefix="ab[")
    starred.put("k", b"1")
    other.put("k", b"2")
    assert dict(starred.items()) == {"k": b"1"}
    starred.clear()
    assert other.get("k") == b"2"


def test_entries_expire_on_the_server_after_their_ttl(shared: RedisServer) -> None:
    backend = RedisBackend(shared.url, ttl=0.3)
    backend.put("k", b"v")
    assert backend.add("a", b"added") is True
    pttl = raw(shared).pttl(b"cachemock:k")
    assert 0 < pttl <= 300
    assert 0 < raw(shared).pttl(b"cachemock:a") <= 300
    assert backend.get("k") == b"v"
    time.sleep(0.45)
    assert backend.get("k") is None
    assert backend.add("a", b"again") is True  # an expired entry is no entry
    assert raw(shared).pttl(b"cachemock:k") == -2  # gone from the server


def test_without_ttl_entries_do_not_expire(shared: RedisServer) -> None:
    RedisBackend(shared.url).put("k", b"v")
    assert raw(shared).pttl(b"cachemock:k") == -1


@pytest.mark.parametrize("bad", [0, -1, "10", True])
def test_a_ttl_that_is_not_a_positive_number_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=rf"ttl must be a number of seconds > 0, got {bad!r}"):
        RedisBackend("redis://127.0.0.1:9/0", ttl=bad)


def test_add_is_atomic_between_clients(shared: RedisServer) -> None:
    """16 threads, each with its own backend (its own connections), add one key: one wins."""
    backends = [RedisBackend(shared.url) for _ in range(16)]
    start = threading.Barrier(16)
    won: list[bytes] = []

    def adder(n: int) -> None:
        start.wait()
        if backends[n].add("once", str(n).encode()):
            won.append(str(n).encode())

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    assert backends[0].get("once") == won[0]


def test_a_remote_cache_over_redis_counts_in_both_layers(shared: RedisServer) -> None:
    backend = RedisBackend(shared.url, name="redis-pages")
    pages = RemoteCache(backend, namespace="pages")
    assert pages.get("home") is None
    pages.put("home", {"title": "Home"})
    assert pages.get("home") == {"title": "Home"}
    assert raw(shared).get(b"cachemock:pages::home:v1") == b'{"title":"Home"}'
    snap = cache_stats.snapshot()
    assert (
        snap["redis-pages"]
        == snap["RemoteCache"]
        == {
            "hit": 1,
            "miss": 1,
            "put": 1,
            "exception": 0,
        }
    )


# -- faults --------------------------------------------------------------------------------


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


def test_a_stopped_server_gives_misses_and_drops_puts_within_the_bound(
    own_server: RedisServer,
) -> None:
    backend = RedisBackend(own_server.url)
    backend.put("k", b"before")
    assert backend.get("k") == b"before"
    own_server.stop()
    slowest = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(50):
            got, took = timed(backend.get, "k")
            assert got is None
            slowest = max(slowest, took)
            _, took = timed(backend.put, "k", b"during")
            slowest = max(slowest, took)
            added, took = timed(backend.add, "new", b"during")
            assert added is False
            slowest = max(slowest, took)
    assert slowest < backend.call_bound + 0.05
    assert backend.call_bound == pytest.approx(0.4)
    ours = [w for w in caught if issubclass(w.category, RedisUnavailableWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]  # one per outage
    assert issubclass(RedisUnavailableWarning, CachemockWarning)
    message = str(ours[0].message)
    assert own_server.url.split("/0")[0].removeprefix("redis://") in message
    assert "did not answer (ConnectionError: " in message
    assert "gets are misses and puts are dropped" in message
    assert ours[0].filename == __file__  # pointed at the calling line
    assert not backend.available
    assert counted(backend) == {"hit": 1, "miss": 50, "put": 1, "exception": 150}


def test_one_warning_per_outage_even_when_every_call_tries_the_server(
    own_server: RedisServer,
) -> None:
    backend = RedisBackend(own_server.url, backoff=0.001, max_backoff=0.001)
    own_server.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            time.sleep(0.002)  # past the backoff: each get tries the server
            assert backend.get("k") is None
    assert [w.category for w in caught] == [RedisUnavailableWarning]
    assert counted(backend) == {"hit": 0, "miss": 20, "put": 0, "exception": 20}


def test_a_dead_server_costs_almost_nothing_per_call(own_server: RedisServer) -> None:
    backend = RedisBackend(own_server.url, max_backoff=5.0)
    own_server.stop()
    with pytest.warns(RedisUnavailableWarning):
        backend.get("k")
    start = time.perf_counter()
    for _ in range(10_000):
        backend.get("k")
    per_call = (time.perf_counter() - start) / 10_000
    assert per_call < 20e-6  # no connection attempt while backing off
    assert counted(backend)["exception"] == 10_001


def test_the_same_backend_uses_the_server_again_when_it_is_back(own_server: RedisServer) -> None:
    backend = RedisBackend(own_server.url)
    own_server.stop()
    with pytest.warns(RedisUnavailableWarning):
        assert backend.get("k") is None
    backend.put("k", b"dropped")
    own_server.start()  # same port, empty (persistence is off)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        backend.put("k", b"after")
        if backend.get("k") == b"after":
            break
        time.sleep(0.02)
    else:
        pytest.fail("the backend never used the restarted server")
    assert backend.available
    assert raw(own_server).get(b"cachemock:k") == b"after"
    # A second outage warns again.
    own_server.stop()
    with pytest.warns(RedisUnavailableWarning):
        assert backend.get("k") is None


def test_a_paused_server_times_out_within_the_bound(own_server: RedisServer) -> None:
    backend = RedisBackend(own_server.url)
    backend.put("k", b"v")
    own_server.pause()
    try:
        with pytest.warns(RedisUnavailableWarning, match="Timeout"):
            got, took = timed(backend.get, "k")
        assert got is None
        assert 0.1 <= took < backend.call_bound + 0.05
        _, took = timed(backend.put, "k", b"w")
        assert took < backend.call_bound + 0.05
    finally:
        own_server.resume()
    assert counted(backend)["exception"] == 2
    deadline = time.monotonic() + 5
    while backend.get("k") != b"v" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.get("k") == b"v"


def test_a_server_that_refuses_writes_drops_puts_and_still_serves_gets(
    own_server: RedisServer,
) -> None:
    backend = RedisBackend(own_server.url)
    backend.put("k", b"v")
    admin = raw(own_server)
    admin.config_set("maxmemory", 1)
    admin.config_set("maxmemory-policy", "noeviction")
    with pytest.warns(RedisUnavailableWarning, match=r"refused a command \(OutOfMemoryError: "):
        backend.put("big", b"x" * 1000)
    assert backend.add("other", b"y") is False
    assert backend.get("k") == b"v"  # reads still work: a refusal does not back off
    assert backend.available
    admin.config_set("maxmemory", 0)
    backend.put("big", b"x" * 1000)
    assert backend.get("big") == b"x" * 1000
    assert counted(backend) == {"hit": 2, "miss": 0, "put": 2, "exception": 2}


def test_listing_a_stopped_server_raises_naming_it(own_server: RedisServer) -> None:
    backend = RedisBackend(own_server.url)
    own_server.stop()
    with pytest.raises(SystemError, match=r"cannot list its keys on the Redis server at redis://"):
        list(backend.items())
    assert counted(backend)["exception"] == 0  # items() counts nothing


def test_a_server_that_was_never_there_is_a_counted_miss_at_once() -> None:
    backend = RedisBackend("redis://127.0.0.1:9/0")
    with pytest.warns(RedisUnavailableWarning, match="Connection"):
        got, took = timed(backend.get, "k")
    assert got is None
    assert took < backend.call_bound
    assert counted(backend) == {"hit": 0, "miss": 1, "put": 0, "exception": 1}


# -- the fixture without a server ------------------------------------------------------------

SUITE = """
pytest_plugins = ["pytest_cachemock.integrations.redis_server"]

def test_uses_the_server(redis_server):
    pass
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_without_redis_server_the_fixture_skips_or_fails_under_ci(
    ci: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHEMOCK_REDIS_SERVER", str(pytester.path / "no-such-redis-server"))
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("-rs")
    if ci:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*CI=true, and no redis-server could be started: *"])
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(
            [
                "SKIPPED *no redis-server could be started (*); install Redis to run them: "
                "apt-get install redis-server (Debian, Ubuntu), brew install redis (macOS)*"
            ]
        )
