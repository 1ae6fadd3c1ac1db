"""The operation log of a redis-py client kind: each counted command is one ``CacheOp`` per
counted put, hit or miss (``MGET`` one per key, ``HSET`` one per field), ``DEL``/``UNLINK`` a
``delete`` per key, an injected fault or a forbidden put an ``error``; the log's bound and its
dropped count hold; ``expect()``/``assert_stats()`` messages, strict seeds and the report
section see the kind's operations.

The pytester suites run on fakeredis (the real client points at a port nothing listens on).
The last tests run the same commands on the real ``redis-server`` the tests start: its replies
and what it stored must agree with what the fake replied and logged, and a real client that
is mocked sends nothing to it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from pytest_cachemock import CacheOp, Expect, PatchCaches, Registry, Stats
from pytest_cachemock.integrations.redis_server import RedisServer

redis = pytest.importorskip("redis")
pytest.importorskip("fakeredis")

pytest_plugins = ["pytest_cachemock.integrations.redis_server"]
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")

APP = """
import redis

# Port 9 (discard): nothing answers there, so only the fake client can serve a test.
client = redis.Redis.from_url("redis://127.0.0.1:9/0", decode_responses=True)


def profile(uid):
    key = f"profile:{uid}"
    found = client.get(key)
    if found is None:
        found = f"profile of {uid}"
        client.setex(key, 3600, found)
    return found
"""


def make_app(pytester: pytest.Pytester, ini_extra: str = "") -> None:
    pytester.makepyfile(redisapp=APP)
    pytester.syspathinsert()
    pytester.makeini(
        "[pytest]\ncachemock_kinds =\n    sessions target=redisapp:client\n" + ini_extra
    )


# The commands of both the fakeredis suite and the real-server comparison, with what each
# logs. A step is (what it does to a client, the log entries it makes).
Step = tuple[Callable[[Any], Any], list[tuple[str, str, str]]]
STEPS: list[Step] = [
    (lambda c: c.set("a", "1"), [("put", "a", "stored")]),
    (lambda c: c.get("a"), [("get", "a", "hit")]),
    (lambda c: c.get("zz"), [("get", "zz", "miss")]),
    (
        lambda c: c.mget("a", "zz", "a"),
        [("get", "a", "hit"), ("get", "zz", "miss"), ("get", "a", "hit")],
    ),
    (lambda c: c.set("a", "2", nx=True), [("add", "a", "hit")]),
    (lambda c: c.set("n", "3", nx=True), [("add", "n", "stored")]),
    (lambda c: c.set("x", "4", xx=True), [("put", "x", "miss")]),
    (lambda c: c.set("a", "5", xx=True), [("put", "a", "stored")]),
    (lambda c: c.set("a", "6", ex=60), [("put", "a", "stored")]),
    (lambda c: c.set("a", "7", get=True), [("put", "a", "stored")]),
    (lambda c: c.set("a", "8", nx=True, get=True), [("add", "a", "hit")]),
    (lambda c: c.set("m", "9", nx=True, get=True), [("add", "m", "stored")]),
    (lambda c: c.set("y", "10", xx=True, get=True), [("put", "y", "miss")]),
    (lambda c: c.setex("t", 60, "11"), [("put", "t", "stored")]),
    (lambda c: c.mset({"b": "12", "c": "13"}), [("put", "b", "stored"), ("put", "c", "stored")]),
    (
        lambda c: c.hset("h", mapping={"f": "14", "g": "15"}),
        [("put", "h", "stored"), ("put", "h", "stored")],
    ),
    (lambda c: c.hget("h", "f"), [("get", "h", "hit")]),
    (lambda c: c.hget("h", "nope"), [("get", "h", "miss")]),
    (lambda c: c.get(b"raw:\xff"), [("get", "raw:\udcff", "miss")]),
    (lambda c: c.get(7), [("get", "7", "miss")]),
    (lambda c: c.delete("a", "gone"), [("delete", "a", "hit"), ("delete", "gone", "miss")]),
    (lambda c: c.unlink("b"), [("delete", "b", "hit")]),
    (lambda c: c.incr("counter"), []),  # not counted, not logged
    (lambda c: c.pipeline().get("c").set("p", "16").execute(), []),  # a pipeline: neither
]


def test_each_counted_command_logs_as_documented(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import CacheOp, Stats
        import redisapp
        from redis_steps import STEPS

        def test_log(patch_caches, global_stats):
            c = redisapp.client
            want = []
            for step, entries in STEPS:
                step(c)
                want += [CacheOp("sessions", *entry) for entry in entries]
            assert list(patch_caches.log("sessions")) == want
            assert list(patch_caches.log()) == want
            assert patch_caches.log().dropped == 0
            counted = [op for op in want if op.op != "delete"]
            assert global_stats.sessions == Stats(
                puts=sum(op.outcome == "stored" for op in counted),
                hits=sum(op.outcome == "hit" for op in counted),
                misses=sum(op.outcome == "miss" for op in counted),
            )
            assert global_stats.sessions == Stats(puts=11, hits=6, misses=7)
        """
    )
    pytester.makepyfile(redis_steps=_steps_module())
    pytester.runpytest("test_each_counted_command_logs_as_documented.py").assert_outcomes(passed=1)


def _steps_module() -> str:
    """STEPS as a module a pytester run imports (this file's source, cut at the steps)."""
    import inspect

    source = inspect.getsource(sys.modules[__name__])
    start = source.index("Step = tuple[")
    end = source.index("\n]\n", start) + 3
    return "from typing import Any, Callable\n\n" + source[start:end]


def test_faults_forbidden_puts_and_reset(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        import redis
        from pytest_cachemock import CacheOp, ForbiddenPutError
        import redisapp

        def ops(patch_caches):
            return [tuple(op)[1:] for op in patch_caches.log("sessions")]

        def test_an_injected_fault_is_an_error_entry(patch_caches):
            patch_caches.fail("sessions", on="get", times=1)
            with pytest.raises(redis.ConnectionError):
                redisapp.client.mget("k1", "k2")     # one failed command: one error entry
            redisapp.client.get("k1")
            assert ops(patch_caches) == [("get", "k1", "error"), ("get", "k1", "miss")]
            patch_caches.fail("sessions", on="put", exc=TimeoutError("slow"), times=1)
            with pytest.raises(TimeoutError):
                redisapp.client.hset("h", "f", "v")
            assert ops(patch_caches)[-1] == ("put", "h", "error")
            assert patch_caches.log().dropped == 0

        def test_a_forbidden_put_is_an_error_entry(patch_caches):
            patch_caches.forbid_puts("sessions")
            with pytest.raises(ForbiddenPutError, match="put of key 'p' to kind 'sessions'"):
                redisapp.client.set("p", "1")
            assert redisapp.client.get("p") is None
            assert ops(patch_caches) == [("put", "p", "error"), ("get", "p", "miss")]

        def test_reset_empties_the_log(patch_caches):
            redisapp.profile(1)
            redisapp.client.delete("profile:1")
            assert len(patch_caches.log()) == 3
            patch_caches.reset()
            assert list(patch_caches.log()) == []
            redisapp.client.get("profile:1")
            assert list(patch_caches.log()) == [
                CacheOp("sessions", "get", "profile:1", "miss")
            ]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, errors=1)  # the forbidden put fails at teardown too
    result.stdout.fnmatch_lines(
        [
            "cachemock: the test forbids puts to these kinds, and the code put:",
            "  - sessions: 'p'",
        ]
    )


def test_the_bound_and_the_dropped_count(pytester: pytest.Pytester) -> None:
    make_app(pytester, "cachemock_log_size = 3\n")
    pytester.makepyfile(
        """
        from pytest_cachemock import CacheOp, Stats
        import redisapp

        def test_bounded(patch_caches):
            c = redisapp.client
            c.mget("a", "b", "c")        # 3 misses
            c.set("a", "1")              # a put
            c.delete("a", "b")           # 2 deletes (noted: no counter)
            c.get("a")                   # a miss
            log = patch_caches.log()
            assert log.size == 3
            assert list(log) == [
                CacheOp("sessions", "delete", "a", "hit"),
                CacheOp("sessions", "delete", "b", "miss"),
                CacheOp("sessions", "get", "a", "miss"),
            ]
            assert log.dropped == 4
            assert patch_caches.stats()["sessions"] == Stats(puts=1, misses=4)

        def test_the_message_says_what_the_bound_let_go(patch_caches):
            for key in "abcde":
                redisapp.client.get(key)
            patch_caches.assert_stats(sessions=Stats(misses=4))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: sessions: expected 4 misses, got 5",
            "E         sessions operations so far in the test (5):",
            "E           (2 earlier operations are no longer in the log, which keeps the last 3:"
            " raise the ini option cachemock_log_size to see them)",
            "E           get 'c' -> miss",
            "E           get 'd' -> miss",
            "E           get 'e' -> miss",
        ]
    )


def test_expect_and_assert_stats_list_the_redis_operations(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import Expect, Stats, at_least
        import redisapp

        def test_expect(patch_caches):
            redisapp.profile(0)
            redisapp.profile(0)
            with patch_caches.expect(sessions=Expect(hits=at_least(1))):
                redisapp.profile(1)              # a miss and a put: no hit
                redisapp.client.delete("profile:0")

        def test_assert_stats(patch_caches):
            redisapp.profile(2)
            redisapp.profile(2)
            redisapp.client.mget("profile:2", "profile:3")
            patch_caches.assert_stats(sessions=Stats(puts=1, hits=1, misses=1))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: sessions: expected at least 1 hit, got 0",
            "E         sessions operations in the block (3):",
            "E           get 'profile:1' -> miss",
            "E           put 'profile:1' -> stored",
            "E           delete 'profile:0' -> hit",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: sessions: expected 1 hit, got 2",
            "E       sessions: expected 1 miss, got 2",
            "E         sessions operations so far in the test (5):",
            "E           get 'profile:2' -> miss",
            "E           put 'profile:2' -> stored",
            "E           get 'profile:2' -> hit",
            "E           get 'profile:2' -> hit",
            "E           get 'profile:3' -> miss",
        ]
    )
    # The failing test's report section ends with the same operations.
    result.stdout.fnmatch_lines(
        [
            "Cache operations (5):",
            "  sessions  get 'profile:2' -> miss",
            "  sessions  put 'profile:2' -> stored",
            "  sessions  get 'profile:2' -> hit",
        ],
        consecutive=True,
    )


def test_strict_seeds_of_a_redis_kind_are_read_through_the_log(
    pytester: pytest.Pytester,
) -> None:
    make_app(pytester)
    pytester.makepyfile(
        """
        import redisapp

        def test_all_read(patch_caches):
            patch_caches.seed("sessions", {"profile:1": b"one", "h": {"f": "x"}}, strict=True)
            assert redisapp.profile(1) == "one"
            assert redisapp.client.hget("h", "f") == "x"

        def test_one_left(patch_caches):
            patch_caches.seed("sessions", {"profile:1": b"one", "profile:2": b"two"}, strict=True)
            assert redisapp.profile(1) == "one"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: these entries were seeded with strict=True and never read:",
            "  - sessions: 'profile:2'",
        ]
    )
    assert "- sessions: 'profile:1'" not in result.stdout.str()


# -- the real redis-server ---------------------------------------------------------------------


def _run_mocked(real: Any) -> tuple[list[Any], list[CacheOp]]:
    """The replies of STEPS on the mock of ``real`` (held by an app's ``client``), and the log."""
    app = types.SimpleNamespace(client=real)
    registry = Registry()
    registry.add("sessions", targets=[(app, "client")])
    with PatchCaches(registry=registry) as patch:
        assert app.client is not real
        replies = [step(app.client) for step, _ in STEPS]
        log = list(patch.log("sessions"))
    assert app.client is real
    return replies, log


def test_the_mapping_agrees_with_a_real_redis_server(redis_server: RedisServer) -> None:
    """Each logged outcome is what the real server did with the same command (a get or a
    delete hit where the key was there, an add hit where it was taken, a put miss where
    nothing was stored), and the fake replies what the real server replies."""
    redis_server.flush()
    real = redis.Redis.from_url(redis_server.url, decode_responses=True)
    raw = redis.Redis.from_url(redis_server.url)  # bytes: keys of any encoding
    real_replies = []
    for step, entries in STEPS:
        keys = {key: key.encode("utf-8", "surrogateescape") for _, key, _ in entries}
        there = {key: bool(raw.exists(k)) for key, k in keys.items()}
        hashes = {key for key, k in keys.items() if raw.type(k) == b"hash"}
        real_replies.append(step(real))
        for op, key, outcome in entries:
            if key in hashes:  # HGET: the field decides, not the key
                continue
            if op in ("get", "delete", "add"):
                assert there[key] == (outcome == "hit"), (op, key, outcome)
            elif outcome == "miss":  # a put that stored nothing
                assert not raw.exists(keys[key]), (op, key)
            else:
                assert raw.exists(keys[key]), (op, key)
    assert raw.dbsize() > 0
    redis_server.flush()
    mocked_replies, log = _run_mocked(real)
    assert mocked_replies == real_replies
    assert log == [CacheOp("sessions", *entry) for _, entries in STEPS for entry in entries]
    assert raw.dbsize() == 0  # the mock sent nothing to the real server
    real.close()
    raw.close()


def test_a_mocked_client_of_a_real_server_counts_and_logs_it_untouched(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    real = redis.Redis.from_url(redis_server.url)
    real.set("profile:1", b"real")
    app = types.SimpleNamespace(client=real)
    registry = Registry()
    registry.add("sessions", targets=[(app, "client")])
    with PatchCaches(registry=registry) as patch:
        assert app.client.get("profile:1") is None  # a fresh fake server, not the real one
        app.client.set("profile:1", b"fake")
        with patch.expect(sessions=Expect(puts=1, misses=1)):
            app.client.get("profile:2")
            app.client.set("profile:2", b"two")
        with pytest.raises(AssertionError) as failed:
            patch.assert_stats(sessions=Stats(puts=2, hits=1, misses=2))
    assert str(failed.value) == (
        "sessions: expected 1 hit, got 0\n"
        "  sessions operations so far in the test (4):\n"
        "    get 'profile:1' -> miss\n"
        "    put 'profile:1' -> stored\n"
        "    get 'profile:2' -> miss\n"
        "    put 'profile:2' -> stored"
    )
    assert real.get("profile:1") == b"real"
    assert real.dbsize() == 1
    real.close()


@pytest.mark.parametrize("log_size", [10_000, 50])
def test_threads_of_the_test_log_every_operation_or_count_it_dropped(log_size: int) -> None:
    import threading

    app = types.SimpleNamespace(client=redis.Redis.from_url("redis://127.0.0.1:9/0"))
    registry = Registry()
    registry.add("sessions", targets=[(app, "client")])
    with PatchCaches(registry=registry, log_size=log_size) as patch:

        def work(n: int) -> None:
            for i in range(100):
                key = f"t{n}:{i % 10}"
                if app.client.get(key) is None:
                    app.client.set(key, b"v")
                app.client.mget(key, "nowhere")
            app.client.delete(f"t{n}:0", f"t{n}:1")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = patch.stats()["sessions"]
        log = patch.log("sessions")
    assert stats == Stats(puts=40, hits=4 * (90 + 100), misses=4 * (10 + 100))
    total = stats.puts + stats.hits + stats.misses + 8  # and 8 deletes
    assert len(log) + log.dropped == total
    assert len(log) == min(total, log_size)
    if log_size > total:
        assert sum(op.op == "delete" for op in log) == 8
    else:  # the last thread's deletes are its last operations: still in the log
        assert [op.op for op in log][-2:] == ["delete", "delete"]


@pytest.mark.parametrize("isolation", ["thread", "process", "shared"])
def test_every_isolation_mode_logs_the_kind(isolation: str) -> None:
    app = types.SimpleNamespace(client=redis.Redis.from_url("redis://127.0.0.1:9/0"))
    registry = Registry()
    registry.add("sessions", targets=[(app, "client")])
    with PatchCaches(registry=registry, isolation=isolation, log_size=2) as patch:
        app.client.get("a")
        app.client.set("a", b"1")
        app.client.delete("a")
        log = patch.log("sessions")
    assert list(log) == [
        CacheOp("sessions", "put", "a", "stored"),
        CacheOp("sessions", "delete", "a", "hit"),
    ]
    assert log.dropped == 1
