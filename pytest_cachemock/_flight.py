"""A memoized call past the front: lookup, single flight, and the one compute path.

The steps, for a call that missed the in-process front::

    key (memoize._prepare) -> find (front, backend) -> replay check -> single flight
        -> _begin (key's lock, look again uncounted, count the miss) -> the function
        -> _finish (store, fill the front) -> release the lock

Threads share a computation through :class:`_Flight` (a lock the leader holds), coroutines of
one event loop through a future; both leaders run ``_begin`` and ``_finish``, and the sync and
async paths differ only in calling the function or awaiting it. An override route (the
plugin's mock) has no single flight: its calls go straight to ``_begin``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

from ._keys import _FAST_TYPES, _MEMOIZE, _MISSING, _RECORD, _REPLAY, _call_repr, _fast_key, _Fn
from ._route import _Held, _Route
from .errors import ReplayMissError

if TYPE_CHECKING:
    from .memoize import Memoizer

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


class _Flight:
    """One computation in progress that other threads wait for.

    ``running`` is held by the leading thread until the result (or error) is set: waiters
    acquire and release it (a plain lock costs a tenth of a ``threading.Event``).
    """

    __slots__ = ("error", "running", "value")

    def __init__(self) -> None:
        self.running = threading.Lock()
        self.running.acquire()
        self.value: Any = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        with self.running:
            pass


# -- the one compute path ----------------------------------------------------------------------


def _begin(route: _Route, spec: _Fn, key: str, fk: object, lock: bool) -> tuple[Any, _Held | None]:
    """Before the function runs: (a result stored meanwhile, None) or (_MISSING, held lock).

    The leader of a flight (``lock``) takes the key's lock between processes (in the event
    loop's thread, for a coroutine; bounded by the backend's ``lock_timeout``) and looks
    again; then the miss is counted, once.
    """
    held = route.lock(spec, key) if lock else None
    if lock:
        value = route.stored_meanwhile(spec, key, fk, held)
        if value is not _MISSING:
            if held is not None:
                held.release()
            return value, None
    if spec.mode != _RECORD:
        next(route.memo._counters.miss)
    return _MISSING, held


def _finish(
    route: _Route,
    spec: _Fn,
    key: str,
    encoded: object,
    fk: object,
    args: Args,
    kwargs: Kwargs,
    result: object,
    held: _Held | None,
) -> Any:
    """After the function returned ``result``: store it, fill the front; what callers get."""
    if encoded is _MISSING:
        encoded = spec.plain_args(args, kwargs)
    value = route.store(spec, key, encoded, result, held)
    route.front_put(spec, fk, value)
    return value


def _compute_sync(
    route: _Route,
    spec: _Fn,
    key: str,
    encoded: object,
    fk: object,
    args: Args,
    kwargs: Kwargs,
    lock: bool,
) -> Any:
    value, held = _begin(route, spec, key, fk, lock)
    if value is not _MISSING:
        return value
    try:
        result = spec.fn(*args, **kwargs)
        return _finish(route, spec, key, encoded, fk, args, kwargs, result, held)
    finally:
        if held is not None:
            held.release()


async def _compute_async(
    route: _Route,
    spec: _Fn,
    key: str,
    encoded: object,
    fk: object,
    args: Args,
    kwargs: Kwargs,
    lock: bool,
) -> Any:
    value, held = _begin(route, spec, key, fk, lock)
    if value is not _MISSING:
        return value
    try:
        result = await spec.fn(*args, **kwargs)
        return _finish(route, spec, key, encoded, fk, args, kwargs, result, held)
    finally:
        if held is not None:
            held.release()


# -- replay --------------------------------------------------------------------------------------


def _refuse_if_replaying(route: _Route, spec: _Fn, args: Args, kwargs: Kwargs) -> None:
    memo = route.memo
    if spec.mode == _REPLAY or (route.shared and memo._strict and spec.mode == _MEMOIZE):
        next(memo._counters.miss)
        _replay_miss(memo, spec, args, kwargs)


def _replay_miss(memo: Memoizer, spec: _Fn, args: Args, kwargs: Kwargs) -> None:
    context_text, _ = memo._current_scope()
    why = (
        "replay() never computes"
        if spec.mode == _REPLAY
        else "this memoizer is strict since load(..., strict=True)"
    )
    raise ReplayMissError(
        f"no stored result for {_call_repr(spec.shown, args, kwargs)} in memoizer "
        f"{memo.name!r} (version {memo.version}, context {context_text}); {why}. Record it "
        "first (memo.record, or memoize without strict) and dump it, or load a dump "
        "that holds it"
    )


# -- the wrappers ------------------------------------------------------------------------------


def make_sync(memo: Memoizer, spec: _Fn) -> Callable[..., Any]:
    """The wrapper of a sync function: the warm-hit path (the front), else ``slow_sync``."""
    front = spec.front
    hit = memo._counters.hit
    route = memo._route
    override = memo._override_route
    # With a callable context every call needs the context, so the front is keyed on it.
    fast_front = spec.use_front and memo._context_fn is None
    fast_types = _FAST_TYPES
    missing = _MISSING
    factory_of: Any = memo  # see Memoizer._factory()

    def call(*args: Any, **kwargs: Any) -> Any:
        factory = factory_of.backend_override_cls
        if factory is None:
            # _fast_key, inlined: this is the warm-hit path.
            if kwargs:
                fk = _fast_key(args, kwargs)
            else:
                fk = args
                for a in args:
                    if type(a) not in fast_types:
                        fk = None
                        break
            if fast_front and fk is not None:
                value = front.get(fk, missing)
                if value is not missing:
                    next(hit)
                    return value
            return slow_sync(route, spec, args, kwargs, fk)
        return slow_sync(override(factory), spec, args, kwargs, None)

    return call


def make_async(memo: Memoizer, spec: _Fn) -> Callable[..., Awaitable[Any]]:
    """The wrapper of a coroutine function: the front, else ``slow_async``."""
    front = spec.front
    hit = memo._counters.hit
    route = memo._route
    override = memo._override_route
    fast_front = spec.use_front and memo._context_fn is None
    factory_of: Any = memo  # see Memoizer._factory()

    async def call(*args: Any, **kwargs: Any) -> Any:
        factory = factory_of.backend_override_cls
        if factory is None:
            fk = _fast_key(args, kwargs)
            if fast_front and fk is not None:
                value = front.get(fk, _MISSING)
                if value is not _MISSING:
                    next(hit)
                    return value
            return await slow_async(route, spec, args, kwargs, fk)
        return await slow_async(override(factory), spec, args, kwargs, None)

    return call


# -- threads -------------------------------------------------------------------------------------


def slow_sync(route: _Route, spec: _Fn, args: Args, kwargs: Kwargs, fk: object) -> Any:
    """A call that missed the fast front (or has no front: an override, ``record``)."""
    memo = route.memo
    key, encoded, fk = memo._prepare(spec, args, kwargs, fk, route.shared)
    if spec.mode == _RECORD:
        next(memo._counters.miss)
        return _compute_sync(route, spec, key, encoded, fk, args, kwargs, False)
    ticket = next(memo._seq)
    # route.find, inlined: a hit in a fresh process (nothing in the front) takes this path.
    value = spec.front.get(fk, _MISSING) if route.front and spec.use_front else _MISSING
    if value is _MISSING:
        value = route.read(spec, key)
        if value is not _MISSING:
            route.front_put(spec, fk, value)
    if value is not _MISSING:
        next(memo._counters.hit)
        return value
    _refuse_if_replaying(route, spec, args, kwargs)
    if not route.shared:
        return _compute_sync(route, spec, key, encoded, fk, args, kwargs, False)
    error: BaseException | None = None
    with memo._lock:
        flight = memo._flights.get(key)
        leader = flight is None
        if flight is None:
            raised = memo._raised.get(key)
            if raised is not None and raised[0] > ticket:
                # A computation of this key raised after this call began: this call
                # overlapped it, so it shares its error rather than running again.
                error = raised[1]
            else:
                flight = memo._flights[key] = _Flight()
    if error is not None:
        next(memo._counters.miss)
        raise error
    assert flight is not None
    if not leader:
        flight.wait()
        if flight.error is not None:
            next(memo._counters.miss)
            raise flight.error
        next(memo._counters.hit)
        return flight.value
    try:
        flight.value = _compute_sync(route, spec, key, encoded, fk, args, kwargs, True)
    except BaseException as exc:
        flight.error = exc
        raise
    finally:
        with memo._lock:
            del memo._flights[key]
            if flight.error is not None:
                if len(memo._raised) >= 256:
                    # Oldest first: a caller that began that long ago has long since
                    # joined a flight or found its own.
                    del memo._raised[next(iter(memo._raised))]
                memo._raised[key] = (next(memo._seq), flight.error)
            elif memo._raised:
                memo._raised.pop(key, None)
        flight.running.release()
    return flight.value


# -- coroutines ----------------------------------------------------------------------------------


async def slow_async(route: _Route, spec: _Fn, args: Args, kwargs: Kwargs, fk: object) -> Any:
    """``slow_sync`` for a coroutine function: awaits of one key share one computation."""
    memo = route.memo
    key, encoded, fk = memo._prepare(spec, args, kwargs, fk, route.shared)
    if spec.mode == _RECORD:
        next(memo._counters.miss)
        return await _compute_async(route, spec, key, encoded, fk, args, kwargs, False)
    while True:
        value = route.find(spec, key, fk)
        if value is not _MISSING:
            return value
        _refuse_if_replaying(route, spec, args, kwargs)
        if not route.shared:
            return await _compute_async(route, spec, key, encoded, fk, args, kwargs, False)
        loop = asyncio.get_running_loop()
        with memo._lock:
            found = memo._aflights.get(key)
            leader = found is None or found[0] is not loop
            if leader:
                future: asyncio.Future[Any] = loop.create_future()
                if found is None:
                    memo._aflights[key] = (loop, future)
            else:
                assert found is not None
                future = found[1]
        if leader:
            return await _lead_async(route, spec, key, encoded, fk, args, kwargs, future)
        # asyncio.wait neither raises the computation's error nor cancels it when
        # this awaiter is cancelled.
        await asyncio.wait((future,))
        if future.cancelled():
            continue  # the leading call was cancelled: try again, perhaps as the leader
        error = future.exception()
        if error is not None:
            next(memo._counters.miss)
            raise error
        next(memo._counters.hit)
        return future.result()


async def _lead_async(
    route: _Route,
    spec: _Fn,
    key: str,
    encoded: object,
    fk: object,
    args: Args,
    kwargs: Kwargs,
    future: asyncio.Future[Any],
) -> Any:
    memo = route.memo
    try:
        value = await _compute_async(route, spec, key, encoded, fk, args, kwargs, True)
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # mark it retrieved: having no waiter is not an error
        raise
    except BaseException:
        # Cancelled (or interrupted): waiters try again rather than share the cancellation.
        future.cancel()
        raise
    else:
        future.set_result(value)
        return value
    finally:
        with memo._lock:
            if memo._aflights.get(key, (None, None))[1] is future:
                del memo._aflights[key]
