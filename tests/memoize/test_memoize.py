"""Memoizer: keys, decorators, single flight, failures, dumps and the plugin's seam."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import inspect
import json
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import pytest
from _formats import snap
from _procs import PATIENCE, Counter

from pytest_cachemock import (
    Backend,
    CacheError,
    FileBackend,
    JsonSerde,
    KeyEncodingError,
    LogBackend,
    Memoizer,
    MemoryBackend,
    PassthroughSerde,
    ReplayMissError,
    SignedPickleSerde,
    SqliteBackend,
    UserError,
    ValueDecodingError,
    ValueEncodingError,
    cache_stats,
)
from pytest_cachemock import _discovery as discovery

pytestmark = pytest.mark.usefixtures("fresh_stats")


class Recording(Backend[Any]):
    """What the plugin's MockBackend does, in short: store what it is handed, count."""

    def __init__(self) -> None:
        super().__init__(name="recording")
        self.data: dict[str, Any] = {}
        self.gets = self.puts = 0

    def _get(self, key: str) -> Any:
        self.gets += 1
        return self.data.get(key)

    def _put(self, key: str, value: Any) -> None:
        self.puts += 1
        self.data[key] = value

    def items(self) -> Any:
        return iter(list(self.data.items()))

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None


class Flaky(Backend[Any]):
    """A backend that fails while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__(name="flaky")
        self.down = True
        self.data: dict[str, Any] = {}

    def _get(self, key: str) -> Any:
        if self.down:
            raise ConnectionError("backend is down")
        return self.data.get(key)

    def _put(self, key: str, value: Any) -> None:
        if self.down:
            raise ConnectionError("backend is down")
        self.data[key] = value


# -- decorators and results --------------------------------------------------------------------


def test_three_decorator_forms_and_serde_result() -> None:
    memo = Memoizer(kind="forms")
    seen = Counter()

    @memo.memoize
    def bare(x: int) -> tuple[int, int]:
        seen("bare", x)
        return (x, x)

    @memo.memoize()
    def called(x: int) -> tuple[int, int]:
        seen("called", x)
        return (x, x)

    @memo.memoize(params_encoder=lambda x: x % 2)
    def encoded(x: int) -> tuple[int, int]:
        seen("encoded", x)
        return (x, x)

    for fn in (bare, called):
        # JSON has no tuples: the first call already returns what later calls will.
        assert fn(1) == [1, 1]
        assert fn(1) == [1, 1]
    assert encoded(1) == [1, 1]
    assert encoded(3) == [1, 1]  # same encoded params: the stored result of encoded(1)
    assert seen.calls == [("bare", 1), ("called", 1), ("encoded", 1)]


def test_binding_defaults_and_keyword_order_make_one_entry() -> None:
    backend = MemoryBackend()
    memo = Memoizer(backend=backend)
    seen = Counter()

    @memo.memoize
    def f(a: int, b: int = 0, *, c: str = "x") -> int:
        seen(a, b, c)
        return a + b

    assert f(1) == f(1, 0) == f(1, b=0) == f(a=1) == f(b=0, a=1) == f(1, c="x") == 1
    assert seen.calls == [(1, 0, "x")]
    assert len(backend) == 1


def test_arguments_equal_under_eq_are_told_apart() -> None:
    memo = Memoizer()
    seen = Counter()

    @memo.memoize
    def f(x: object) -> str:
        seen(x)
        return repr(x)

    values: list[object] = [1, 1.0, True, 0.0, -0.0, (1,), [1], (1.0,), "1", None, 0, False]
    for v in values:
        f(v)
    for v in values:
        f(v)  # each one again: hits, and never another's result
    assert len(seen.calls) == len(values)
    assert [f(v) for v in values] == [repr(v) for v in values]


def test_dict_and_set_order_do_not_matter() -> None:
    memo = Memoizer()
    seen = Counter()

    @memo.memoize
    def f(x: object) -> int:
        seen(x)
        return 1

    f({"a": 1, "b": 2})
    f({"b": 2, "a": 1})
    f(OrderedDict([("b", 2), ("a", 1)]))
    f({"x", "y", "z"})
    f(frozenset({"z", "y", "x"}))
    f({3: "a", "3": "b"})
    f({"3": "b", 3: "a"})
    assert len(seen.calls) == 3


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


def test_richer_arguments_encode() -> None:
    memo = Memoizer()

    @memo.memoize
    def f(*args: object, **kwargs: object) -> int:
        return len(args) + len(kwargs)

    assert f(Colour.RED, Point(1, 2), Path("a/b"), b"raw", float("nan"), int, k={"$x": 1}) == 7
    assert f(Colour.RED, Point(1, 2), Path("a/b"), b"raw", float("nan"), int, k={"$x": 1}) == 7
    key_a = memo.key_for(f, Point(1, 2))
    assert key_a != memo.key_for(f, Point(2, 1))
    assert key_a == memo.key_for(f, Point(1, 2))


def test_key_encoding_error_names_parameter_type_and_fix() -> None:
    memo = Memoizer()

    class Widget:
        pass

    @memo.memoize
    def price(sku: str, widget: object) -> int:
        return 1

    with pytest.raises(KeyEncodingError) as info:
        price("a", Widget())
    message = str(info.value)
    assert "argument 'widget'" in message
    assert "Widget" in message
    assert "params_encoder=" in message
    assert "price()" in message

    with pytest.raises(KeyEncodingError, match=r"at argument 'widget'\['parts'\]\[1\]"):
        price("a", {"parts": [1, Widget()]})

    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(KeyEncodingError, match="refers to itself"):
        price("a", loop)


def test_params_encoder_gets_the_arguments_as_called() -> None:
    memo = Memoizer()
    got: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def encoder(*args: Any, **kwargs: Any) -> object:
        got.append((args, kwargs))
        return [args[0]]

    @memo.memoize(params_encoder=encoder)
    def f(a: int, b: object = None) -> int:
        return a

    assert f(1, b=object()) == 1
    assert got[0][0] == (1,)
    assert set(got[0][1]) == {"b"}


def test_unencodable_result_raises_value_encoding_error() -> None:
    memo = Memoizer()

    @memo.memoize
    def f(x: int) -> object:
        return object()

    with pytest.raises(ValueEncodingError, match=r"f\(\) returned a object"):
        f(1)


def test_none_results_are_memoized() -> None:
    memo = Memoizer()
    seen = Counter()

    @memo.memoize
    def f(x: int) -> None:
        seen(x)

    assert f(1) is None
    assert f(1) is None
    assert seen.calls == [(1,)]


def test_generator_functions_are_refused() -> None:
    memo = Memoizer()

    def gen() -> Any:
        yield 1

    with pytest.raises(UserError, match="generator"):
        memo.memoize(gen)


def test_signature_name_doc_are_kept() -> None:
    memo = Memoizer()

    def quote(sku: str, qty: int = 1) -> dict[str, int]:
        """Price a quote."""
        return {"qty": qty}

    async def aquote(sku: str, *, qty: int = 1) -> int:
        """Async price."""
        return qty

    for decorate in (memo.memoize, memo.record, memo.replay):
        wrapped = decorate(quote)
        assert wrapped.__name__ == "quote"
        assert wrapped.__doc__ == "Price a quote."
        assert inspect.signature(wrapped) == inspect.signature(quote)
        awrapped = decorate(aquote)
        assert inspect.iscoroutinefunction(awrapped)
        assert inspect.signature(awrapped) == inspect.signature(aquote)
        assert awrapped.__doc__ == "Async price."


def test_methods_self_is_an_argument() -> None:
    memo = Memoizer()
    seen = Counter()

    class Shop:
        def __init__(self, ident: int) -> None:
            self.ident = ident

        @memo.memoize(params_encoder=lambda self, sku: (self.ident, sku))
        def price(self, sku: str) -> int:
            seen(self.ident, sku)
            return self.ident * 10

        @memo.memoize
        def plain(self, sku: str) -> int:
            return 1

    a, b = Shop(1), Shop(2)
    assert a.price("x") == 10
    assert Shop(1).price("x") == 10  # another object, same encoded self
    assert b.price("x") == 20
    assert seen.calls == [(1, "x"), (2, "x")]
    with pytest.raises(KeyEncodingError, match="argument 'self'"):
        a.plain("x")


def test_dataclass_method_without_encoder() -> None:
    memo = Memoizer()

    @dataclasses.dataclass
    class Box:
        size: int

        @memo.memoize
        def volume(self) -> int:
            return self.size**3

    assert Box(2).volume() == 8
    assert Box(3).volume() == 27


# -- counting ----------------------------------------------------------------------------------


def test_cache_stats_counts_every_call_under_the_kind() -> None:
    memo = Memoizer(kind="counted")
    anonymous = Memoizer()

    @memo.memoize
    def f(x: int) -> int:
        return x

    @anonymous.memoize
    def g(x: int) -> int:
        return x

    f(1)
    f(1)
    f(1.5)  # type: ignore[arg-type]
    f(1.5)  # type: ignore[arg-type]
    g(1)
    assert snap("counted") == {"hit": 2, "miss": 2, "put": 2, "exception": 0}
    assert snap("memoize") == {"hit": 0, "miss": 1, "put": 1, "exception": 0}


def test_kind_is_registered_and_validated() -> None:
    memo = Memoizer(kind="registered_kind")
    anonymous = Memoizer()
    found = discovery.discovered()
    assert ("registered_kind", memo) in found
    assert ("memoize", anonymous) in found
    with pytest.raises(ValueError, match="not a valid cache kind name"):
        Memoizer(kind="not a name")
    with pytest.raises(UserError, match="version"):
        Memoizer(version=-1)
    with pytest.raises(UserError, match="context"):
        Memoizer(context=42)  # type: ignore[arg-type]


# -- replay and record -------------------------------------------------------------------------


def test_replay_raises_a_key_error_naming_the_call() -> None:
    memo = Memoizer(kind="replayed")

    def price(sku: str, qty: int) -> int:
        return qty * 2

    replay = memo.replay(price)
    record = memo.record(price)
    with pytest.raises(ReplayMissError) as info:
        replay("A1", qty=3)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, CacheError)
    assert "price('A1', qty=3)" in str(info.value)
    assert "'replayed'" in str(info.value)
    assert record("A1", 3) == 6
    assert replay("A1", qty=3) == 6


def test_record_always_computes_and_overwrites() -> None:
    memo = Memoizer()
    results = iter([1, 2, 3])

    def f(x: int) -> int:
        return next(results)

    record = memo.record(f)
    replay = memo.replay(f)
    assert record(0) == 1
    assert record(0) == 2
    assert replay(0) == 2


def test_deterministic_first_writer_wins_for_record_and_memoize() -> None:
    backend = MemoryBackend()
    results = iter([1, 2, 3])

    def f(x: int) -> int:
        return next(results)

    memo = Memoizer(backend=backend, deterministic=True)
    record = memo.record(f)
    assert record(0) == 1
    assert record(0) == 1  # computed 2, returned the stored 1
    other = Memoizer(backend=backend, deterministic=True).memoize(f)
    assert other(0) == 1


# -- single flight -----------------------------------------------------------------------------


# Where single flight between threads is checked: in memory, and on each on-disk backend
# (their own per-key lock between processes must not get in the way of the threads').
STORES: dict[str, Callable[[Path], Any]] = {
    "memory": lambda tmp: None,
    "file": lambda tmp: FileBackend(tmp / "store"),
    "log": lambda tmp: LogBackend(tmp / "memo.log"),
    "sqlite": lambda tmp: SqliteBackend(tmp / "memo.sqlite3"),
}


@pytest.mark.parametrize("where", STORES)
def test_single_flight_eight_threads(tmp_path: Path, where: str) -> None:
    kind = f"flight_{where}"
    memo = Memoizer(kind=kind, backend=STORES[where](tmp_path))
    seen = Counter()
    barrier = threading.Barrier(8)

    @memo.memoize
    def slow(x: int) -> dict[str, int]:
        seen(x)
        time.sleep(0.2)
        return {"x": x}

    results: list[object] = []

    def worker() -> None:
        barrier.wait(PATIENCE)
        results.append(slow(4))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert results == [{"x": 4}] * 8
    assert seen.calls == [(4,)]
    assert memo.flush()
    assert snap(kind) == {"hit": 7, "miss": 1, "put": 1, "exception": 0}
    items = memo.real_backend.items()  # type: ignore[attr-defined]
    assert [key for key, _ in items if key.startswith(f"{kind}/")] == [memo.key_for(slow, 4)]
    if where != "memory":  # a later memoizer on the same store reads it, computing nothing
        fresh = Memoizer(kind=kind, backend=STORES[where](tmp_path))
        assert fresh.memoize(slow.__wrapped__)(4) == {"x": 4}  # type: ignore[attr-defined]
        assert seen.calls == [(4,)]


def test_single_flight_error_reaches_every_waiter_and_nothing_is_stored() -> None:
    backend = MemoryBackend()
    memo = Memoizer(backend=backend)
    seen = Counter()
    barrier = threading.Barrier(4)

    @memo.memoize
    def boom(x: int) -> int:
        seen(x)
        time.sleep(0.2)
        raise ValueError("no")

    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            boom(1)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4
    assert seen.calls == [(1,)]
    assert len(backend) == 0


def test_single_flight_five_concurrent_awaits() -> None:
    memo = Memoizer(kind="aflight")
    seen = Counter()

    @memo.memoize
    async def fetch(x: int) -> dict[str, int]:
        seen(x)
        await asyncio.sleep(0.05)
        return {"x": x}

    async def main() -> list[dict[str, int]]:
        return await asyncio.gather(*(fetch(7) for _ in range(5)))

    assert asyncio.run(main()) == [{"x": 7}] * 5
    assert seen.calls == [(7,)]
    assert snap("aflight") == {"hit": 4, "miss": 1, "put": 1, "exception": 0}
    assert asyncio.run(fetch(7)) == {"x": 7}  # a front hit, another event loop
    assert seen.calls == [(7,)]


def test_async_error_reaches_every_await_and_cancel_does_not_spread() -> None:
    memo = Memoizer()
    seen = Counter()

    @memo.memoize
    async def boom(x: int) -> int:
        seen(x)
        await asyncio.sleep(0.05)
        raise ValueError("no")

    @memo.memoize
    async def slow(x: int) -> int:
        seen("slow", x)
        await asyncio.sleep(0.1)
        return x

    async def main() -> None:
        results = await asyncio.gather(*(boom(1) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results)
        leader = asyncio.ensure_future(slow(2))
        await asyncio.sleep(0.01)
        waiter = asyncio.ensure_future(slow(2))
        await asyncio.sleep(0.01)
        leader.cancel()
        assert await waiter == 2  # the waiter took over rather than being cancelled

    asyncio.run(main())
    assert seen.calls.count((1,)) == 1
    assert seen.calls.count(("slow", 2)) == 2


def test_async_replay_and_record() -> None:
    memo = Memoizer()

    async def f(x: int) -> int:
        return x + 1

    replay, record = memo.replay(f), memo.record(f)

    async def main() -> None:
        with pytest.raises(ReplayMissError):
            await replay(1)
        assert await record(1) == 2
        assert await replay(1) == 2

    asyncio.run(main())


# -- backend failures --------------------------------------------------------------------------


def test_backend_failures_never_lose_the_result_one_warning_per_outage() -> None:
    backend = Flaky()
    memo = Memoizer(kind="outage", backend=backend)
    seen = Counter()

    @memo.memoize
    def f(x: int) -> int:
        seen(x)
        return x * 3

    with pytest.warns(RuntimeWarning, match="failed to read") as caught:
        results = [f(1), f(2), f(3)]
    assert results == [3, 6, 9]
    assert len(caught) == 1
    assert snap("outage")["exception"] == 6  # a failed read and a failed write per call
    backend.down = False
    assert f(4) == 12
    backend.down = True
    with pytest.warns(RuntimeWarning, match="failed to") as caught:
        assert f(5) == 15
    assert len(caught) == 1  # a new outage, a new warning
    assert seen.calls == [(1,), (2,), (3,), (4,), (5,)]


def test_undecodable_stored_entry_is_a_counted_miss() -> None:
    backend = MemoryBackend()
    memo = Memoizer(kind="garbled", backend=backend)

    @memo.memoize
    def f(x: int) -> int:
        return x

    backend.put(memo.key_for(f, 1), b"not json")
    with pytest.warns(RuntimeWarning, match="cannot decode"):
        assert f(1) == 1
    assert snap("garbled")["exception"] == 1
    assert f(1) == 1


# -- context and version -----------------------------------------------------------------------


def test_context_and_version_are_folded_into_keys() -> None:
    def f(x: int) -> int:
        return x

    base = Memoizer()
    assert Memoizer.default_context() == base.default_context()
    assert set(Memoizer.default_context()) == {"python"}
    key = base.key_for(f, 1)
    assert Memoizer().key_for(f, 1) == key
    assert Memoizer(version=2).key_for(f, 1) != key
    assert Memoizer(context={"model": "v1"}).key_for(f, 1) != key
    assert Memoizer(context={"model": "v1"}).key_for(f, 1) == Memoizer(
        context=lambda: {"model": "v1"}
    ).key_for(f, 1)


def test_callable_context_is_read_on_every_call() -> None:
    state = {"model": "v1"}
    memo = Memoizer(context=lambda: dict(state))
    seen = Counter()

    @memo.memoize
    def f(x: int) -> str:
        seen(state["model"], x)
        return state["model"]

    assert f(1) == "v1"
    assert f(1) == "v1"
    state["model"] = "v2"
    assert f(1) == "v2"
    state["model"] = "v1"
    assert f(1) == "v1"
    assert seen.calls == [("v1", 1), ("v2", 1)]


def test_bounded_memory_backend_keeps_its_limits() -> None:
    now = [0.0]
    memo = Memoizer(backend=MemoryBackend(ttl=10, clock=lambda: now[0]))
    seen = Counter()

    @memo.memoize
    def f(x: int) -> int:
        seen(x)
        return x

    f(1)
    f(1)
    now[0] = 11.0
    f(1)
    assert seen.calls == [(1,), (1,)]


# -- persistence in one process ----------------------------------------------------------------


def test_file_backend_entries_are_found_by_a_new_memoizer(tmp_path: Path) -> None:
    seen = Counter()

    def f(x: int, tags: frozenset[str]) -> list[str]:
        seen(x)
        return sorted(tags)

    first = Memoizer(backend=FileBackend(tmp_path))
    assert first.memoize(f)(1, frozenset({"b", "a"})) == ["a", "b"]
    assert first.flush()
    second = Memoizer(backend=FileBackend(tmp_path))
    assert second.memoize(f)(1, frozenset({"a", "b"})) == ["a", "b"]
    assert seen.calls == [(1,)]


def test_cache_clear_forgets_fronts_and_own_entries(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    backend.put("someone-else", b"keep")
    memo = Memoizer(backend=backend)
    seen = Counter()

    @memo.memoize
    def f(x: int) -> int:
        seen(x)
        return x

    f(1)
    memo.cache_clear()
    f(1)
    assert seen.calls == [(1,), (1,)]
    assert backend.get("someone-else") == b"keep"


# -- dumps -------------------------------------------------------------------------------------


QUOTE_CALLS: list[tuple[str, int]] = []


def quote(sku: str, qty: int) -> dict[str, object]:
    QUOTE_CALLS.append((sku, qty))
    return {"sku": sku, "total": qty * 3}


def test_dump_then_strict_load_replays(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    recorder = Memoizer(kind="quotes_dump")
    recorded = recorder.memoize(quote)
    recorded("A1", 2)
    recorded("B2", (1, 2))  # type: ignore[arg-type]
    assert recorder.dump(path) == 2
    text = path.read_text()
    data = json.loads(text)
    (block,) = data["scopes"].values()
    entry = next(iter(block["entries"].values()))
    assert entry["fn"].endswith("quote")
    assert "args" in entry
    assert "result" in entry  # readable: the record itself, not bytes

    # A later run: a new memoizer, the same function, nothing in memory.
    replayer = Memoizer(kind="quotes_dump")
    quote_again = replayer.memoize(quote)
    QUOTE_CALLS.clear()
    assert replayer.load(path, strict=True) == 2
    assert replayer.strict
    assert quote_again("A1", 2) == {"sku": "A1", "total": 6}
    assert quote_again("B2", (1, 2)) == {"sku": "B2", "total": [1, 2] * 3}  # type: ignore[arg-type]
    with pytest.raises(ReplayMissError, match="strict"):
        quote_again("C3", 1)
    assert QUOTE_CALLS == []
    assert replayer.record(quote)("C3", 1) == {"sku": "C3", "total": 3}  # record computes
    assert QUOTE_CALLS == [("C3", 1)]
    assert quote_again("C3", 1) == {"sku": "C3", "total": 3}


def test_dump_merges_and_keeps_other_scopes(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    a = Memoizer(kind="merge_a")
    b = Memoizer(kind="merge_a", version=2)
    a.memoize(quote)("A", 1)
    b.memoize(quote)("B", 1)
    assert a.dump(path) == 1
    assert b.dump(path) == 1
    a.memoize(quote)("C", 1)
    assert a.dump(path) == 2
    data = json.loads(path.read_text())
    assert sorted(block["version"] for block in data["scopes"].values()) == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["memo.json"]  # no temporary left


def test_load_names_what_the_dump_holds(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    Memoizer(kind="held", version=1).memoize(quote)("A", 1)
    recorder = Memoizer(kind="held", version=1)
    recorder.memoize(quote)("A", 1)
    recorder.dump(path)
    other = Memoizer(kind="held", version=3)
    with pytest.raises(UserError, match=r"holds no entries .* it holds 'held' version 1"):
        other.load(path, strict=True)
    with pytest.warns(RuntimeWarning, match="holds no entries"):
        assert other.load(path) == 0
    assert not other.strict


def test_missing_dump_is_empty_unless_strict(tmp_path: Path) -> None:
    memo = Memoizer()
    assert memo.load(tmp_path / "absent.json") == 0
    with pytest.raises(FileNotFoundError):
        memo.load(tmp_path / "absent.json", strict=True)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"collections": {"null": {}}, "cache_size": 0}', "written by something else"),
        (b"[1, 2]", "written by something else"),
        (b'{"format": "pytest-cachemock/memoize", "format_version": 99}', "format version 99"),
        (b'{"format": "pytest-cachemock/memoize", "format_version": 1, "scopes": 3}', "damaged"),
    ],
)
def test_corrupt_and_foreign_dumps_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "memo.json"
    path.write_bytes(content)
    memo = Memoizer()
    memo.memoize(quote)("A", 1)
    with pytest.raises(ValueDecodingError, match=match):
        memo.load(path)
    with pytest.raises(ValueDecodingError, match=match):
        memo.dump(path)  # never overwrites what it cannot read
    assert path.read_bytes() == content


def test_tampered_entries_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    recorder = Memoizer(kind="tampered")
    f = recorder.memoize(quote)
    f("A", 1)
    f("B", 1)
    recorder.dump(path)
    data = json.loads(path.read_text())
    (block,) = data["scopes"].values()
    first, second = sorted(block["entries"])
    block["entries"][first]["args"]["qty"] = 99  # no longer the call its key is for
    block["entries"][second]["result"] = {"sku": "B", "total": 1000}  # hand-edited result
    path.write_text(json.dumps(data))
    loader = Memoizer(kind="tampered")
    with pytest.warns(RuntimeWarning, match="skipped 1 entry"):
        assert loader.load(path) == 1
    assert snap("tampered")["exception"] == 1


def test_dump_with_pickle_and_passthrough_serdes(tmp_path: Path) -> None:
    # A plain PickleSerde dumps, but will not load (tests/memoize/test_memoize_security.py).
    for serde in (SignedPickleSerde(b"secret"), PassthroughSerde()):
        path = tmp_path / f"{type(serde).__name__}.json"
        recorder = Memoizer(kind="other_serdes", serde=serde)
        recorder.memoize(quote)("A", 1)
        assert recorder.dump(path) == 1
        loader = Memoizer(kind="other_serdes", serde=serde)
        assert loader.load(path, strict=True) == 1
        assert loader.replay(quote)("A", 1) == {"sku": "A", "total": 3}


# -- the plugin's seam -------------------------------------------------------------------------


def test_override_bypasses_front_and_backend() -> None:
    backend = MemoryBackend()
    memo = Memoizer(kind="mocked", backend=backend)
    seen = Counter()

    @memo.memoize
    def f(x: int) -> tuple[int, int]:
        seen(x)
        return (x, x)

    assert f(1) == [1, 1]  # computed for real, in the front now
    made: list[Recording] = []

    def factory() -> Recording:
        made.append(Recording())
        return made[-1]

    memo.backend_override_cls = factory
    try:
        assert f(1) == [1, 1]  # the real front is bypassed: computed again
        assert f(1) == [1, 1]
        assert f(2) == [2, 2]
        assert memo.backend is made[0]
    finally:
        del memo.backend_override_cls
    assert len(made) == 1
    mock = made[0]
    assert (mock.gets, mock.puts) == (3, 2)  # miss+put, hit, miss+put
    key, stored = next(iter(mock.data.items()))
    assert key == memo.key_for(f, 1)
    assert json.loads(stored) == {
        "args": {"x": 1},
        "fn": memo._spec_of(f).qualname,
        "result": [1, 1],
    }
    assert seen.calls == [(1,), (1,), (2,)]
    # Back to the real front: nothing computed while mocked is in it.
    assert f(2) == [2, 2]
    assert seen.calls == [(1,), (1,), (2,), (2,)]
    assert len(backend) == 2


def test_override_seeding_with_entry_for_and_replay() -> None:
    memo = Memoizer(kind="seeded")
    seen = Counter()

    @memo.memoize
    def price(sku: str, qty: int = 1) -> dict[str, int]:
        seen(sku)
        return {"total": 1}

    mock = Recording()
    key, stored = memo.entry_for(price, {"total": 99}, "A1", qty=2)
    mock.data[key] = stored
    memo.backend_override_cls = lambda: mock
    try:
        assert price("A1", 2) == {"total": 99}
        assert memo.replay(price)("A1", 2) == {"total": 99}
        with pytest.raises(ReplayMissError):
            memo.replay(price)("B2")
    finally:
        del memo.backend_override_cls
    assert seen.calls == []


def test_override_new_factory_gets_a_new_backend_and_strict_does_not_apply() -> None:
    memo = Memoizer(kind="factories")
    memo._strict = True

    @memo.memoize
    def f(x: int) -> int:
        return x

    first, second = Recording(), Recording()
    memo.backend_override_cls = lambda: first
    assert f(1) == 1
    memo.backend_override_cls = lambda: second
    assert f(1) == 1
    del memo.backend_override_cls
    assert (first.puts, second.puts) == (1, 1)
    with pytest.raises(ReplayMissError):
        f(1)  # strict again, outside the mock


def test_override_async_and_record() -> None:
    memo = Memoizer(kind="amocked", deterministic=True)
    mock = Recording()
    memo.backend_override_cls = lambda: mock
    results = iter([1, 2])

    @memo.record
    def f(x: int) -> int:
        return next(results)

    @memo.memoize
    async def g(x: int) -> int:
        return x

    try:
        assert f(0) == 1
        assert f(0) == 1  # deterministic: the stored 1 wins over the new 2
        assert asyncio.run(g(3)) == 3
        assert asyncio.run(g(3)) == 3
    finally:
        del memo.backend_override_cls
    assert mock.puts == 2


def test_override_backend_failure_is_a_counted_miss() -> None:
    memo = Memoizer(kind="mockfail")
    flaky = Flaky()
    memo.backend_override_cls = lambda: flaky

    @memo.memoize
    def f(x: int) -> int:
        return x

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert f(1) == 1
    finally:
        del memo.backend_override_cls
    assert snap("mockfail")["exception"] == 2


def test_no_toolkit_module_imports_pytest_or_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_cachemock.memoize; "
        "print('pytest' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    assert out.split() == ["False", "False"]


# -- fast paths agree with the general ones ----------------------------------------------------

PLAIN_VALUES: list[object] = [
    "",
    "SKU-00001",
    "naïve café",
    "日本語",
    "emoji 🎉",
    'quote " backslash \\ slash /',
    "control \x00\x01\x1f\x7f tab\t newline\n",
    "\ud800 lone surrogate",
    "$dollar",
    "{not: json}",
    0,
    1,
    -1,
    2**63,
    -(2**100),
    10**200,
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    1e300,
    -1e-300,
    5e-324,
    1.7976931348623157e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    None,
]


def canonical_reference(value: object) -> str:
    """What the general path writes: json.dumps with the canonical options."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def test_fast_argument_text_is_the_general_encoding_byte_for_byte() -> None:
    from pytest_cachemock import _keys as m

    def f(b: object, a: object, c: object = None, naïve: object = 7) -> None:
        return None

    spec = m._Fn(f, "memoize", None)
    values = [*PLAIN_VALUES, [1], (1,), {"a": 1}, b"x", Colour.RED, Path("p")]
    checked = 0
    for x in values:
        for y in PLAIN_VALUES[::3]:
            for args, kwargs in (
                ((x, y), {}),
                ((x, y, y, x), {}),
                ((x,), {"a": y}),
                ((), {"a": x, "b": y, "naïve": None}),
            ):
                fast = spec.args_text(args, kwargs)
                general = spec.encode_args(spec.label, args, kwargs)
                plain = all(
                    (type(v) is str and not m._has_surrogates(v))
                    or type(v) in (int, bool, type(None))
                    or (type(v) is float and v == v and v not in (float("inf"), float("-inf")))
                    for v in (*args, *kwargs.values())
                )
                if not plain:
                    assert fast is None, (args, kwargs)
                    continue
                assert fast is not None, (args, kwargs)
                assert fast == canonical_reference(general), (args, kwargs)
                assert spec.plain_args(args, kwargs) == general
                checked += 1
    assert checked > 300


def test_keys_from_the_fast_path_are_those_of_key_for(tmp_path: Path) -> None:
    from pytest_cachemock import _keys as m

    backend = MemoryBackend()
    memo = Memoizer(kind="fastkeys", backend=backend)

    @memo.memoize
    def f(x: object, y: object = "d") -> object:
        return None

    finite = [
        x for x in PLAIN_VALUES if not (isinstance(x, float) and (x != x or abs(x) == float("inf")))
    ]
    for x in finite:
        f(x)
        f(x, y=x)
    for x in finite:
        assert backend.get(memo.key_for(f, x)) is not None
        assert backend.get(memo.key_for(f, x, x)) is not None
    assert len(backend) == 2 * len(finite)  # 0, 0.0, -0.0 and False are all different
    f("d")
    f("d", "d")
    f(y="d", x="d")
    assert len(backend) == 2 * len(finite) + 1  # the default applied: one entry
    # The general key text is json.dumps' text of [scope, qualname, encoded args].
    spec = m._Fn(f, "memoize", None)
    scope = memo._scope_id
    text = canonical_reference([scope, spec.qualname, {"x": "é", "y": 1.5}])
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    assert memo.key_for(f, "é", 1.5) == f"fastkeys/{scope}/{digest}"


def test_record_json_and_decoding_fast_paths_match_json() -> None:
    from pytest_cachemock import _keys as m

    memo = Memoizer()
    records: list[object] = [
        {"args": {"x": v}, "fn": "mod.f", "result": [v, {"k": v, "a": [None, True]}]}
        for v in PLAIN_VALUES
        if not (isinstance(v, float) and (v != v or abs(v) == float("inf")))
    ]
    for record in records:
        stored = JsonSerde().encode(record)
        assert stored == canonical_reference(record).encode("utf-8")
        assert memo._decode_record("k", stored) == json.loads(stored)
    # What the fast decoder does not take goes to JsonSerde, with json.loads' answer.
    for stored in (
        b'\xef\xbb\xbf{"fn":"f","result":1}',
        b' {"fn":"f","result":1} ',
        '{"fn":"f","result":1}',
        '{"fn":"f","result":1}'.encode("utf-16"),
    ):
        assert memo._decode_record("k", stored) == {"fn": "f", "result": 1}
    with pytest.raises(ValueDecodingError):
        memo._decode_record("k", b'{"fn":"f","result":1} trailing')
    # Values JSON refuses, or that refer to themselves, get the serde's error.
    loop: list[object] = []
    loop.append(loop)
    for result in (float("nan"), loop, {1j: 1}, object()):
        with pytest.raises(ValueEncodingError):
            memo._encode_record(m._Fn(len, "memoize", None), "k", {}, result)


def test_flush_with_nothing_pending_returns_at_once(tmp_path: Path) -> None:
    memo = Memoizer(backend=FileBackend(tmp_path))
    started = time.monotonic()
    assert memo.flush() is True
    assert memo.flush(timeout=0) is True
    assert time.monotonic() - started < 1.0

    @memo.memoize
    def f(x: int) -> int:
        return x

    assert [f(i) for i in range(20)] == list(range(20))
    assert memo.flush(timeout=30) is True
    again = Memoizer(backend=FileBackend(tmp_path))
    assert sum(1 for _ in again.real_backend.items()) == 20  # type: ignore[attr-defined]


def test_forked_child_writes_its_own_entries(tmp_path: Path) -> None:
    import multiprocessing

    memo = Memoizer(kind="forked", backend=FileBackend(tmp_path))
    seen = Counter()

    @memo.memoize
    def f(x: int) -> int:
        seen(x)
        return x * 2

    assert f(1) == 2  # the parent's writer thread exists before the fork
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=f, args=(2,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert memo.flush()
    fresh = Memoizer(kind="forked", backend=FileBackend(tmp_path))
    g = fresh.memoize(f.__wrapped__)  # type: ignore[attr-defined]
    assert (g(1), g(2)) == (2, 4)
    assert seen.calls == [(1,)]  # the child's call ran in the child; nothing here computed again


def test_a_backend_without_get_is_refused_naming_the_choices() -> None:
    with pytest.raises(UserError) as info:
        Memoizer(backend="memo.log")  # type: ignore[arg-type]
    text = str(info.value)
    assert "got a str" in text
    for choice in ("None (in memory)", "LogBackend(path)", "SqliteBackend(path)", "FileBackend"):
        assert choice in text


def test_a_backend_with_a_sidecar_path_gets_the_key_lock_between_processes(
    tmp_path: Path,
) -> None:
    class Shared(MemoryBackend):
        def sidecar_path(self, name: str) -> str:
            return str(tmp_path / f"store{name}")

    memo = Memoizer(kind="sidecar", backend=Shared())
    assert memo.memoize(lambda n: n + 1)(1) == 2
    assert (tmp_path / "store.memoize.lock").exists()  # the lock file it took a byte of
    assert Memoizer(backend=MemoryBackend())._route.lock_path == ""  # nothing next to memory


def test_strings_that_json_escapes_alike_get_different_keys() -> None:
    memo = Memoizer(kind="surrogate_keys")
    seen: list[str] = []

    @memo.memoize
    def length(text: str) -> int:
        seen.append(text)
        return len(text)

    pair, emoji = "\ud83d\ude00", "\U0001f600"
    assert pair != emoji
    assert memo.key_for(length, pair) != memo.key_for(length, emoji)
    assert [length(pair), length(emoji)] == [2, 1]
    assert seen == [pair, emoji]
    # Nested too, and as dict keys and paths.
    assert memo.key_for(length, [pair]) != memo.key_for(length, [emoji])
    assert memo.key_for(length, {pair: 1}) != memo.key_for(length, {emoji: 1})
    assert memo.key_for(length, Path(pair)) != memo.key_for(length, Path(emoji))
    # Ordinary strings keep the keys they had: the digest of the plain canonical text.
    from pytest_cachemock import _keys as m

    for text in ("A1", emoji, "ключ", ""):
        scope = memo._scope_id
        full = json.dumps(
            [scope, memo._spec_of(length).qualname, {"text": text}],
            sort_keys=True,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:32]
        assert memo.key_for(length, text) == f"surrogate_keys/{scope}/{digest}"
        assert m._Fn(length.__wrapped__, "memoize", None).args_text((text,), {}) is not None


def _scaler(k: int) -> Callable[[int], int]:
    def scale(n: int) -> int:
        return n * k

    return scale


def test_functions_sharing_a_qualified_name_do_not_share_entries(tmp_path: Path) -> None:
    for backend in (None, FileBackend(tmp_path / "same-names")):
        memo = Memoizer(kind="same_names", backend=backend)
        double, triple = memo.memoize(lambda n: n * 2), memo.memoize(lambda n: n * 3)
        assert (double(5), triple(5)) == (10, 15)
        by2, by10 = memo.memoize(_scaler(2)), memo.memoize(_scaler(10))
        assert (by2(3), by10(3)) == (6, 30)
        looped = [memo.memoize(lambda n, k=k: n + k) for k in range(3)]
        assert [f(1) for f in looped] == [1, 2, 3]
        made = [memo.memoize(_scaler(k)) for k in range(3)]
        assert [f(4) for f in made] == [0, 4, 8]
        memo.flush()
    # Keys hold across memoizers (and runs): the same closure made again finds its entry.
    again = Memoizer(kind="same_names", backend=FileBackend(tmp_path / "same-names"))
    assert again.key_for(_scaler(10), 3) == memo.key_for(by10, 3)
    assert again.key_for(_scaler(10), 3) != again.key_for(_scaler(2), 3)
    # name= gives a function its identity in keys; two functions given one name share.
    one = memo.memoize(lambda n: n + 100, name="pricing.offset")
    other = memo.memoize(lambda n: -1, name="pricing.offset")
    assert (one(1), other(1)) == (101, 101)
    with pytest.raises(UserError, match="name must be"):
        memo.memoize(name="")


@pytest.mark.parametrize("store", ["memory", "bounded-memory", "file", "log", "sqlite"])
def test_a_miss_counts_once_in_each_layer(tmp_path: Path, store: str) -> None:
    # One call that misses and computes: the memoizer counts 1 miss and 1 put, and so does
    # its backend; the look again under the key's lock (another process may have stored
    # it meanwhile) reads with peek, which counts nowhere. Then a hit: front or backend.
    name = f"layers-{store}"
    backend: Backend[Any]
    if store == "memory":
        backend = MemoryBackend(name=name)
    elif store == "bounded-memory":
        backend = MemoryBackend(max_entries=10, name=name)  # no front: every hit reads it
    elif store == "file":
        backend = FileBackend(tmp_path / "files", name=name)
    elif store == "log":
        backend = LogBackend(tmp_path / "memo.log", name=name)
    else:
        backend = SqliteBackend(tmp_path / "memo.db", name=name)
    memo = Memoizer(kind=f"layers_{store.replace('-', '_')}", backend=backend)
    calls = Counter()

    @memo.memoize
    def double(n: int) -> int:
        calls(n)
        return 2 * n

    assert double(3) == 6
    memo.flush()
    zero = {"hit": 0, "miss": 0, "put": 0, "exception": 0}
    assert cache_stats.snapshot()[memo.name] == {**zero, "miss": 1, "put": 1}
    assert cache_stats.snapshot()[name] == {**zero, "miss": 1, "put": 1}
    assert double(3) == 6
    assert calls.calls == [(3,)]
    assert cache_stats.snapshot()[memo.name] == {**zero, "hit": 1, "miss": 1, "put": 1}
    front_hit = store != "bounded-memory"
    assert cache_stats.snapshot()[name] == {
        **zero,
        "hit": 0 if front_hit else 1,
        "miss": 1,
        "put": 1,
    }


def test_an_override_runs_the_steps_of_the_real_backend() -> None:
    # The calls that reach a backend run the same code whether it is the memoizer's own or
    # an override's (the plugin's mock): the same entries, and the same counts in each layer,
    # first writer wins included. (The real one here keeps limits, so it has no front.)
    def run(use_override: bool) -> tuple[dict[str, Any], dict[str, int], dict[str, int]]:
        cache_stats.reset()
        real = MemoryBackend(max_entries=100, name="steps-real")
        other = MemoryBackend(name="steps-other")
        memo = Memoizer(kind="steps", backend=real, deterministic=True)
        if use_override:
            memo.backend_override_cls = lambda: other  # type: ignore[misc]
        results = iter(range(100))
        memoized = memo.memoize(name="steps.f")(lambda n: [n, next(results)])
        recorded = memo.record(name="steps.f")(lambda n: [n, next(results)])
        out = [memoized(1), memoized(1), recorded(1), recorded(2), memoized(2), memoized(3)]
        assert out == [[1, 0], [1, 0], [1, 0], [2, 2], [2, 2], [3, 3]]
        backend = other if use_override else real
        counts = cache_stats.snapshot()
        return dict(backend.items()), counts["steps"], counts[backend.name]

    real_entries, real_memo, real_backend = run(False)
    mock_entries, mock_memo, mock_backend = run(True)
    assert mock_entries == real_entries
    assert len(real_entries) == 3
    assert mock_memo == real_memo == {"hit": 2, "miss": 4, "put": 3, "exception": 0}
    # Misses: memoized(1) and memoized(3); hits: memoized(1) and (2), and the add that
    # recorded(1) lost to the first writer (whose entry it then read uncounted, with peek).
    assert mock_backend == real_backend == {"hit": 3, "miss": 2, "put": 3, "exception": 0}


def test_a_backend_must_be_a_backend_subclass() -> None:
    # What a memoizer asks of its backend (peek, lists_entries, sidecar_path...) is the
    # Backend interface: an object that only has get/put is refused up front, by name.
    class DuckStore:
        def get(self, key: str) -> object:
            return None

        def put(self, key: str, value: object) -> None:
            pass

    with pytest.raises(UserError, match=r"got a .*DuckStore; .*subclass Backend with _get/_put"):
        Memoizer(backend=DuckStore())  # type: ignore[arg-type]
