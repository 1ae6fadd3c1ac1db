"""A job for torch's compile worker processes (``AsyncCompile.process_pool()``): it uses
Inductor's remote FX graph cache there, as a Triton compile's worker would use a remote cache.
It lives in a module of its own so that the workers can import it by name."""

from __future__ import annotations

import os


def fx_graph_round_trip(key: str) -> tuple[int, str, object]:
    """In the worker: a get (a miss), a put and a get of ``key`` in Inductor's remote FX graph
    cache; returns the worker's pid, the backend the cache got, and what the last get read."""
    import torch._inductor.remote_cache as rc

    try:
        cache = rc.RemoteFxGraphCache("fx-graph-v1")
    except Exception as exc:  # the real backend, which needs a server (or the redis package)
        return os.getpid(), f"no backend: {type(exc).__name__}: {exc}", None
    backend = type(cache.backend).__name__
    cache.get(key)
    cache.put(key, {"from": "worker"})
    return os.getpid(), backend, cache.get(key)
