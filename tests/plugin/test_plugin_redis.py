"""A kind whose target is an attribute holding a redis-py client: a small app with
``client = redis.Redis(...)`` at module level, declared ``sessions target=redisapp:client``.

While a test runs the attribute holds a client of a fresh fakeredis server for that test alone;
the kind counts GET/MGET/HGET hits and misses and SET/SETEX/MSET/HSET puts, and entries(),
seed() and fail() work on it. No Redis server is needed: the real client points at a port
nothing listens on, so a command that reached it would fail.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fakeredis")

APP = '''
import redis

# Port 9 (discard): nothing answers there, so only the fake client can serve a test.
client = redis.Redis.from_url("redis://127.0.0.1:9/0", decode_responses=True)


def profile(uid):
    """Read-through: the cached profile, or a new one stored for an hour."""
    key = f"profile:{uid}"
    found = client.get(key)
    if found is None:
        found = f"profile of {uid}"
        client.setex(key, 3600, found)
    return found


def profile_or_none(uid):
    """The same, when Redis may be down: no cache then."""
    try:
        return client.get(f"profile:{uid}")
    except redis.ConnectionError:
        return None
'''

INI = "[pytest]\ncachemock_kinds =\n    sessions target=redisapp:client\n"


def make_redis_app(pytester: pytest.Pytester, ini: str = INI) -> None:
    pytester.makepyfile(redisapp=APP)
    pytester.syspathinsert()
    pytester.makeini(ini)


def test_the_client_is_a_fresh_fake_per_test_and_counted(pytester: pytest.Pytester) -> None:
    make_redis_app(pytester)
    pytester.makepyfile(
        """
        import redis
        from pytest_cachemock import Stats
        import redisapp

        REAL = redisapp.client

        def test_first(global_stats, patch_caches):
            assert redisapp.client is not REAL
            assert isinstance(redisapp.client, redis.Redis)
            assert redisapp.profile(1) == "profile of 1"    # a miss, then a put (SETEX)
            assert redisapp.profile(1) == "profile of 1"    # a hit
            assert global_stats.sessions == Stats(puts=1, hits=1, misses=1)
            assert dict(patch_caches.entries("sessions")) == {"profile:1": b"profile of 1"}
            assert 0 < redisapp.client.ttl("profile:1") <= 3600   # fakeredis keeps the TTL

        def test_second_sees_a_new_server(global_stats, patch_caches):
            assert redisapp.client.get("profile:1") is None   # nothing leaked from test_first
            assert dict(patch_caches.entries("sessions")) == {}
            assert global_stats.sessions == Stats(misses=1)

        def test_without_the_plugin_the_real_client_is_back():
            assert redisapp.client is REAL
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_each_counted_command_counts_as_documented(pytester: pytest.Pytester) -> None:
    make_redis_app(pytester)
    pytester.makepyfile(
        """
        from pytest_cachemock import Stats
        import redisapp

        def test_counts(global_stats):
            c = redisapp.client
            c.set("a", "1")                        # put
            c.mset({"b": "2", "c": "3"})           # 2 puts
            c.hset("h", mapping={"f": "x", "g": "y"})   # 2 puts
            c.setex("t", 60, "v")                  # put
            assert global_stats.sessions == Stats(puts=6)
            assert c.get("a") == "1"               # hit (decode_responses kept: a str)
            assert c.mget("a", "b", "zz") == ["1", "2", None]   # 2 hits, 1 miss
            assert c.hget("h", "f") == "x"         # hit
            assert c.hget("h", "nope") is None     # miss
            assert c.set("a", "other", nx=True) is None   # taken: a hit, as an add
            assert c.set("new", "v", xx=True) is None     # absent: a miss
            assert global_stats.sessions == Stats(puts=6, hits=5, misses=3)
            c.incr("n")                            # not counted
            c.lpush("l", "x")                      # not counted
            pipe = c.pipeline()
            pipe.get("a")
            pipe.set("p", "1")
            assert pipe.execute() == ["1", True]   # a pipeline: not counted
            assert global_stats.sessions == Stats(puts=6, hits=5, misses=3)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_entries_seed_and_fail(pytester: pytest.Pytester) -> None:
    make_redis_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from pytest_cachemock import Stats
        import redisapp

        def test_seed_is_read_by_the_app(patch_caches, global_stats):
            patch_caches.seed("sessions", {"profile:7": b"seeded", "h": {"f": "1"}})
            assert redisapp.profile(7) == "seeded"
            assert redisapp.client.hget("h", "f") == "1"
            assert global_stats.sessions == Stats(hits=2)   # seeding counted nothing
            assert patch_caches.entries("sessions")["h"] == {"f": b"1"}

        def test_a_seed_refused_stores_nothing(patch_caches):
            with pytest.raises(TypeError, match=r"got 'bad': a list; nothing was stored"):
                patch_caches.seed("sessions", {"good": b"1", "bad": [1, 2]})
            assert dict(patch_caches.entries("sessions")) == {}

        def test_fail_raises_a_redis_connection_error(patch_caches, global_stats):
            patch_caches.fail("sessions", on="get", times=1)
            assert redisapp.profile_or_none(1) is None      # the app's except caught it
            assert redisapp.profile(1) == "profile of 1"    # armed once: works again
            assert global_stats.sessions == Stats(puts=1, misses=1, errors=1)

        def test_fail_on_put_and_a_custom_error(patch_caches, global_stats):
            patch_caches.fail("sessions", on="put", exc=TimeoutError("slow"))
            with pytest.raises(TimeoutError, match="slow"):
                redisapp.profile(2)                          # the GET runs, the SETEX fails
            assert redisapp.client.get("profile:2") is None
            assert global_stats.sessions == Stats(misses=2, errors=1)
            assert dict(patch_caches.entries("sessions")) == {}

        def test_reset_zeroes_the_counts_and_empties_the_server(patch_caches, global_stats):
            redisapp.profile(3)
            patch_caches.reset()
            assert global_stats.sessions == Stats()
            assert dict(patch_caches.entries("sessions")) == {}
            assert redisapp.client.get("profile:3") is None  # dropped, as every kind's entries
            assert redisapp.profile(3) == "profile of 3"
            assert global_stats.sessions == Stats(puts=1, misses=2)
            assert "profile:3" in patch_caches.entries("sessions")
        """
    )
    pytester.runpytest().assert_outcomes(passed=5)


def test_a_kind_declared_in_the_hook_and_a_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(redisapp=APP)
    pytester.syspathinsert()
    pytester.makeconftest(
        """
        import redisapp

        def pytest_cachemock_register_kinds(registry):
            registry.add("sessions", targets=[(redisapp, "client")])
        """
    )
    pytester.makepyfile(
        """
        import redisapp

        def test_report(patch_caches):
            redisapp.profile("alice")
            text = patch_caches.report()
            assert "sessions  puts=1, hits=0, misses=1" in text
            assert "'profile:alice': b'profile of alice'" in text
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_without_fakeredis_the_kind_fails_at_start_up_naming_the_extra(
    pytester: pytest.Pytester,
) -> None:
    make_redis_app(pytester)
    pytester.makeconftest(
        """
        import sys
        sys.modules["fakeredis"] = None   # as if it were not installed
        """
    )
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: ini option cachemock_kinds, line 1 ('sessions target=redisapp:client')"
        ": redisapp.client holds a redis-py client (Redis); mocking it needs fakeredis, which is "
        "not installed: pip install 'pytest-cachemock[redis]'\n"
    ) in result.stderr.str()
    assert "test_never_runs" not in result.stdout.str()
