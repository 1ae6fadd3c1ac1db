"""Redis, side by side in one run:

- ``RedisBackend`` get/put against raw redis-py ``GET``/``SET`` on the same local
  ``redis-server`` (started for the run on 127.0.0.1, persistence off; or ``--url``): the
  backend on database 0 with no prefix, the raw client on database 1, so both send the same
  keys and values over TCP. Budget: median ratio <= 1.10 for get and for put.
- The fakeredis-backed kind (a kind whose target is an attribute holding a ``redis.Redis``:
  while mocked, a counting client of a fresh fakeredis server) against plain
  ``fakeredis.FakeRedis`` ``get``/``set`` on a server of its own. Budget: median ratio <= 1.10.

The workload is bench_backends.py's: 100 keys, values of 100-500 bytes, 90% gets and 10% puts,
timed op by op after a warm-up, in alternating rounds. Run it with::

    python benchmarks/bench_redis.py               # 100,000 timed operations per store
    python benchmarks/bench_redis.py --ops 20000   # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import types

import fakeredis
import redis

from pytest_cachemock import PatchCaches, Registry
from pytest_cachemock.backends.redis import RedisBackend
from pytest_cachemock.integrations.redis_server import RedisServer

try:
    from .bench_backends import GET_SHARE, KEYS, compare, make_values
except ImportError:  # run as a script: python benchmarks/bench_redis.py
    from bench_backends import (  # type: ignore[import-not-found,no-redef]
        GET_SHARE,
        KEYS,
        compare,
        make_values,
    )

BUDGET = 1.10


def _verdict(results: dict[str, dict[str, dict[str, float]]], label: str) -> bool:
    ours, theirs = list(results)
    ratios = {
        op: results[ours][op]["median"] / results[theirs][op]["median"] for op in ("get", "put")
    }
    ok = all(r <= BUDGET for r in ratios.values())
    shown = ", ".join(f"{op} {r:.3f}" for op, r in ratios.items())
    print(f"budget ({label} median ratio <= {BUDGET}): {shown}: {'met' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100_000, help="timed ops per store")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--seed", type=int, default=1234, help="workload seed (default 1234)")
    parser.add_argument("--url", help="a Redis server to use (its databases 0 and 1 are FLUSHED)")
    parser.add_argument("--only", choices=("backend", "kind"), help="run one comparison only")
    args = parser.parse_args(argv)
    if args.ops < 1 or args.rounds < 1:
        parser.error("--ops and --rounds must be >= 1")
    print(
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; redis-py {redis.__version__}, fakeredis "
        f"{fakeredis.__version__ if hasattr(fakeredis, '__version__') else '?'}"
    )
    print(
        f"{args.ops} timed ops per store after a warm-up, {int(GET_SHARE * 100)}% get over "
        f"{KEYS} keys, values 100-500 bytes; times in microseconds per operation"
    )
    values = make_values(random.Random(args.seed))
    verdicts: list[bool] = []

    if args.only in (None, "backend"):
        server = None
        url = args.url
        if url is None:
            server = RedisServer().start()
            url = server.url
            print(f"redis-server {server.program} on {url}")
        try:
            ours = RedisBackend(url, prefix="")
            raw = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/1")
            ours._client.flushdb()
            raw.flushdb()
            results = compare(
                "RedisBackend vs redis.Redis GET/SET",
                {"RedisBackend": (ours.get, ours.put), "redis.Redis": (raw.get, raw.set)},
                args.ops,
                args.rounds,
                args.seed,
                values,
            )
            verdicts.append(_verdict(results, "RedisBackend / redis.Redis"))
            ours.close()
            raw.close()
        finally:
            if server is not None:
                server.close()

    if args.only in (None, "kind"):
        app = types.SimpleNamespace(client=redis.Redis.from_url("redis://127.0.0.1:9/0"))
        registry = Registry()
        registry.add("bench_redis", targets=[(app, "client")])
        plain = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        with PatchCaches(registry=registry):
            kind = app.client
            results = compare(
                "the fakeredis-backed kind vs fakeredis.FakeRedis",
                {"kind (counting)": (kind.get, kind.set), "fakeredis": (plain.get, plain.set)},
                args.ops,
                args.rounds,
                args.seed,
                values,
            )
        verdicts.append(_verdict(results, "kind / fakeredis"))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
