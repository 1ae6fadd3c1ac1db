"""MockBackend is as strict as every other backend about what it is handed directly.

A key that is not a str is a KeyEncodingError and storing None a UserError, with the other
backends' messages, counted as errors in the kind's stats and in the library's cache_stats.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable

import pytest
from _formats import snap
from _plugin_app import make_app

from pytest_cachemock import MemoryBackend, MockBackend, PatchCaches, Stats
from pytest_cachemock.backends import Backend
from pytest_cachemock.errors import KeyEncodingError, UserError
from pytest_cachemock.kinds import Registry


class StrKey(str):
    pass


def pages(kind: str = "pages") -> PatchCaches:
    """A PatchCaches that knows the kind ``kind`` (declared without targets).

    Tests after the pytester run use another name: its shopapp, once imported, declares a
    ``pages`` kind of its own.
    """
    registry = Registry()
    registry.add(kind, origin="test")
    return PatchCaches(registry=registry)


def _message(error: type[Exception], call: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(error) as caught:
        call(*args)
    return str(caught.value)


@pytest.mark.parametrize("bad", [b"bytes-key", 3, None, ("a", "b"), StrKey("k")], ids=repr)
def test_a_key_that_is_not_a_str_is_refused_as_by_every_backend(
    bad: Any, fresh_stats: None
) -> None:
    with pages() as patch:
        mock = MockBackend("pages")
        memory = MemoryBackend()
        for op, call in (
            ("get", lambda b: b.get(bad)),
            ("put", lambda b: b.put(bad, b"v")),
            ("add", lambda b: b.add(bad, b"v")),
        ):
            theirs = _message(KeyEncodingError, call, memory)
            ours = _message(KeyEncodingError, call, mock)
            assert ours == theirs.replace("MemoryBackend", "MockBackend")
            assert ours.startswith(f"MockBackend.{op}: keys are str, got a ")
        assert dict(patch.entries("pages")) == {}
        assert patch.stats()["pages"] == Stats(errors=3)
    assert snap(mock.name) == {"hit": 0, "miss": 0, "put": 0, "exception": 3}


def test_storing_none_is_refused_as_by_every_backend(fresh_stats: None) -> None:
    with pages() as patch:
        mock = MockBackend("pages")
        memory = MemoryBackend()
        for store in ("put", "add"):
            theirs = _message(UserError, getattr(memory, store), "k", None)
            ours = _message(UserError, getattr(mock, store), "k", None)
            assert ours == theirs.replace("MemoryBackend", "MockBackend")
        assert "k" not in patch.entries("pages")
        assert mock.get("k") is None
        mock.put("k", b"v")
        with pytest.raises(UserError, match="cannot store None for key 'k'"):
            mock.put("k", None)  # the stored value stays
        assert mock.get("k") == b"v"
        assert mock.add("k", b"w") is False
        assert patch.stats()["pages"] == Stats(puts=1, hits=2, misses=1, errors=3)
    assert snap(mock.name) == {"hit": 2, "miss": 1, "put": 1, "exception": 3}


def test_a_refusal_comes_before_an_armed_fault(fresh_stats: None) -> None:
    with pages() as patch:
        patch.fail("pages", exc=ConnectionError)
        mock = MockBackend("pages")
        with pytest.raises(KeyEncodingError):
            mock.get(3)  # type: ignore[arg-type]
        with pytest.raises(UserError):
            mock.put("k", None)
        with pytest.raises(ConnectionError):
            mock.put("k", b"v")
        assert patch.stats()["pages"] == Stats(errors=3)


STRICT = """
import pytest
import shopapp
from pytest_cachemock import Stats
from pytest_cachemock.errors import KeyEncodingError, UserError


def test_strict(patch_caches, global_stats):
    backend = shopapp.Pages.backend_override_cls()  # the mock a Pages would get
    with pytest.raises(UserError, match=r"MockBackend: cannot store None for key 'home'"):
        backend.put("home", None)
    with pytest.raises(UserError, match=r"MockBackend: cannot store None for key 'home'"):
        backend.add("home", None)
    with pytest.raises(KeyEncodingError, match=r"MockBackend.get: keys are str, got a int \\(3\\)"):
        backend.get(3)
    assert backend.get("home") is None
    assert global_stats.pages == Stats(misses=1, errors=3)
    assert dict(patch_caches.entries("pages")) == {}
    assert patch_caches.library_stats()["mock:pages"]["exception"] == 3
"""


def test_the_mock_under_the_fixture_is_strict(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(test_strict=STRICT)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_mock_stores_through_the_backend_methods_every_backend_has() -> None:
    # add/peek are Backend's own; get/put take a fast path for a ready kind and a str key and
    # leave everything else to Backend's (tests/expect/test_oplog.py holds the two paths to
    # the same counts), so the mock counts and refuses as every backend does.
    assert MockBackend.add is Backend.add
    for method in ("get", "put"):
        assert f"Backend.{method}(self" in inspect.getsource(getattr(MockBackend, method))
    for method in ("_get", "_put", "_add", "_refused"):
        assert method in vars(MockBackend), method


def test_an_injected_fault_counts_once_in_the_kind_and_once_in_cache_stats(
    fresh_stats: None,
) -> None:
    with pages("notes") as patch:
        mock = MockBackend("notes")
        patch.fail("notes", on="both", exc=ConnectionError, times=3)
        with pytest.raises(ConnectionError, match="injected failure on get of kind 'notes'"):
            mock.get("k")
        with pytest.raises(ConnectionError, match="injected failure on put of kind 'notes'"):
            mock.put("k", b"v")
        with pytest.raises(ConnectionError, match="injected failure on put of kind 'notes'"):
            mock.add("k", b"v")  # an add is a put to a fault
        assert mock.add("k", b"v") is True  # the fault is used up
        assert mock.get("k") == b"v"
        assert patch.stats()["notes"] == Stats(puts=1, hits=1, errors=3)
    assert snap(mock.name) == {"hit": 1, "miss": 0, "put": 1, "exception": 3}


class Stop(BaseException):
    pass


def test_a_fault_that_is_not_an_exception_is_counted_once_too(fresh_stats: None) -> None:
    with pages("notes") as patch:
        mock = MockBackend("notes")
        patch.fail("notes", on="get", exc=Stop, times=1)
        with pytest.raises(Stop):
            mock.get("k")
        assert patch.stats()["notes"] == Stats(errors=1)
    assert snap(mock.name) == {"hit": 0, "miss": 0, "put": 0, "exception": 1}


def test_entries_are_listed_deleted_and_cleared_in_this_tests_store(fresh_stats: None) -> None:
    foreign: list[object] = []
    go = threading.Event()
    done = threading.Event()

    def long_lived() -> None:  # started before the block: not the test's thread
        go.wait()
        foreign.append((list(mock.items()), mock.peek("a")))
        done.set()

    before = threading.Thread(target=long_lived)
    before.start()
    with pages("notes") as patch:
        mock = MockBackend("notes")
        other = MockBackend("other")
        mock.put("a", b"1")
        mock.put("b", b"2")
        other.put("a", b"theirs")
        go.set()
        done.wait(10)
        assert foreign == [([], None)]  # a thread from before the block sees nothing of it
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append((list(mock.items()), mock.peek("b"))))
        thread.start()  # started in the block: it shares the test's store
        thread.join()
        assert seen == [([("a", b"1"), ("b", b"2")], b"2")]
        assert sorted(mock.items()) == [("a", b"1"), ("b", b"2")]
        assert mock.peek("a") == b"1"
        assert mock.delete("a") is True
        assert mock.delete("a") is False
        mock.clear()
        assert list(mock.items()) == []
        assert dict(other.items()) == {"a": b"theirs"}
        assert dict(patch.entries("notes")) == {}
        assert patch.stats()["notes"] == Stats(puts=2)  # listing, peeking, deleting: no counts
    assert snap(mock.name) == {"hit": 0, "miss": 0, "put": 2, "exception": 0}


def test_a_fault_armed_after_the_kind_was_used_applies_at_once() -> None:
    # The mock's get/put find a used kind's record in a table of records with no fault armed:
    # arming a fault later must take it out of that table, and its end must put it back.
    registry = Registry()
    registry.add("late", origin="test")
    with PatchCaches(registry=registry) as patch:
        mock = MockBackend("late")
        mock.put("k", b"1")
        assert mock.get("k") == b"1"
        patch.fail("late", on="get", times=1)
        with pytest.raises(ConnectionError, match="injected failure on get of kind 'late'"):
            mock.get("k")
        assert mock.get("k") == b"1"  # the one failure is spent
        patch.fail("late", on="put")
        with pytest.raises(ConnectionError, match="on put"):
            mock.put("k", b"2")
        with pytest.raises(ConnectionError, match="on put"):
            mock.add("new", b"2")
        assert mock.get("k") == b"1"  # a put fault leaves gets alone
        patch.fail("late", on="put", times=0)  # disarmed
        mock.put("k", b"3")
        assert mock.get("k") == b"3"
        stats = patch.stats()["late"]
        assert (stats.puts, stats.hits, stats.errors) == (2, 4, 3)
