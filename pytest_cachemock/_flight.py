"""A memoized call past the front: lookup, single flight, and the one compute path.

The steps, for a call that missed the in-process front::

    key (memoize._prepare) -> find (front, backend) -> replay check -> single flight
        -> _begin (key's lock, look again uncounted, count the miss) -> the function
        -> _finish (store, fill the front) -> release the lock

Threads share a computation through :class:`_Flight` (a lock the leader holds), coroutines of
one event loop through a future; both leaders run ``_begin`` and ``_finish``, and the sync and
async paths differ only in calling the function or awaiting it. What these steps pass along
(the route, the key, the front key, the arguments, the held lock) is one :class:`_Call`, built
once a call. An override route (the plugin's mock) has no single flight: its calls go straight
to ``_begin``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

from . import _verify
from ._keys import _FAST_TYPES, _MEMOIZE, _MISSING, _RECORD, _REPLAY, _call_repr, _fast_key, _Fn
from ._route import _Held, _Route
from .errors import ReplayMissError

if TYPE_CHECKING:
    from .memoize import Memoizer

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
# True while verify mode runs in any test (_verify.follow keeps it so): the hit paths test it.
_verifying = False
_verify.follow(globals())


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


class _Call:
    """One call past the front: what its steps pass along, built once per call.

    ``held`` is the key's lock between processes while the leader of a flight holds it
    (``_begin`` takes it; the leader's ``finally`` releases it, unless ``store`` handed its
    release to the writer thread).
    """

    __slots__ = ("args", "encoded", "fk", "held", "key", "kwargs", "memo", "route", "spec")

    def __init__(self, route: _Route, spec: _Fn, args: Args, kwargs: Kwargs, fk: object) -> None:
        self.route = route
        self.memo = memo = route.memo
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        self.key, self.encoded, self.fk = memo._prepare(spec, args, kwargs, fk, route.shared)
        self.held: _Held | None = None

    def release(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            held.release()


def _begin(call: _Call, lock: bool) -> Any:
    """Before the function runs: a result stored meanwhile, or _MISSING (the miss counted).

    The leader of a flight (``lock``) takes the key's lock between processes (in the event
    loop's thread, for a coroutine; bounded by the backend's ``lock_timeout``) into
    ``call.held`` and looks again; then the miss is counted, once.
    """
    spec = call.spec
    if lock:
        route = call.route
        held = call.held = route.lock(spec, call.key)
        value = route.stored_meanwhile(spec, call.key, call.fk, held)
        if value is not _MISSING:
            call.release()
            return value
    if spec.mode != _RECORD:
        next(call.memo._counters.miss)
    return _MISSING


def _finish(call: _Call, result: object) -> Any:
    """After the function returned ``result``: store it, fill the front; what callers get."""
    route, spec = call.route, call.spec
    encoded = call.encoded
    if encoded is _MISSING:
        encoded = spec.plain_args(call.args, call.kwargs)
    value = route.store(spec, call.key, encoded, result, call.held)
    route.front_put(spec, call.fk, value)
    return value


def _compute_sync(call: _Call, lock: bool = False) -> Any:
    """The result of ``call``: stored meanwhile, or computed and stored.

    Without ``lock`` no lock is taken; with it (a flight's leader) the leader releases
    ``call.held`` in its ``finally``, so an error of the function needs no handling here.
    """
    value = _begin(call, lock)
    if value is _MISSING:
        value = _finish(call, call.spec.fn(*call.args, **call.kwargs))
    return value


async def _compute_async(call: _Call, lock: bool = False) -> Any:
    """``_compute_sync`` for a coroutine function: the one difference is the ``await``."""
    value = _begin(call, lock)
    if value is _MISSING:
        value = _finish(call, await call.spec.fn(*call.args, **call.kwargs))
    return value


# -- replay --------------------------------------------------------------------------------------


def _refuse_if_replaying(call: _Call) -> None:
    memo, spec = call.memo, call.spec
    if spec.mode == _REPLAY or (call.route.shared and memo._strict and spec.mode == _MEMOIZE):
        next(memo._counters.miss)
        _replay_miss(memo, spec, call.args, call.kwargs)


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
    if _verifying and _verify.bypassing():  # inside a verify mode recompute: no cache
        return spec.fn(*args, **kwargs)
    call = _Call(route, spec, args, kwargs, fk)
    memo = call.memo
    if spec.mode == _RECORD:
        next(memo._counters.miss)
        return _compute_sync(call)
    key, fk = call.key, call.fk
    ticket = next(memo._seq)
    # route.find, inlined: a hit in a fresh process (nothing in the front) takes this path.
    value = spec.front.get(fk, _MISSING) if route.front and spec.use_front else _MISSING
    if value is _MISSING:
        value = route.read(spec, key)
        if value is not _MISSING:
            route.front_put(spec, fk, value)
    if value is not _MISSING:
        next(memo._counters.hit)
        if _verifying and not route.shared:  # verify mode, over the plugin's mock
            _verify.memo_hit(route, spec, key, args, kwargs, value)
        return value
    _refuse_if_replaying(call)
    if not route.shared:
        return _compute_sync(call)
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
        return _shared(memo, flight.error, flight.value)
    try:
        flight.value = _compute_sync(call, True)
    except BaseException as exc:
        flight.error = exc
        raise
    finally:
        call.release()
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


def _shared(memo: Memoizer, error: BaseException | None, value: object) -> Any:
    """What a call that waited for another's computation gets: its error (a miss) or result."""
    if error is not None:
        next(memo._counters.miss)
        raise error
    next(memo._counters.hit)
    return value


# -- coroutines ----------------------------------------------------------------------------------


async def slow_async(route: _Route, spec: _Fn, args: Args, kwargs: Kwargs, fk: object) -> Any:
    """``slow_sync`` for a coroutine function: awaits of one key share one computation."""
    if _verifying and _verify.bypassing():
        return await spec.fn(*args, **kwargs)
    call = _Call(route, spec, args, kwargs, fk)
    memo = call.memo
    if spec.mode == _RECORD:
        next(memo._counters.miss)
        return await _compute_async(call)
    key = call.key
    while True:
        value = route.find(spec, key, call.fk)
        if value is not _MISSING:
            if _verifying and not route.shared:
                await _verify.memo_hit_async(route, spec, key, call.args, call.kwargs, value)
            return value
        _refuse_if_replaying(call)
        if not route.shared:
            return await _compute_async(call)
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
            return await _lead_async(call, future)
        # asyncio.wait neither raises the computation's error nor cancels it when
        # this awaiter is cancelled.
        await asyncio.wait((future,))
        if future.cancelled():
            continue  # the leading call was cancelled: try again, perhaps as the leader
        error = future.exception()
        return _shared(memo, error, None if error is not None else future.result())


async def _lead_async(call: _Call, future: asyncio.Future[Any]) -> Any:
    memo = call.memo
    try:
        value = await _compute_async(call, True)
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
        call.release()
        with memo._lock:
            if memo._aflights.get(call.key, (None, None))[1] is future:
                del memo._aflights[call.key]
