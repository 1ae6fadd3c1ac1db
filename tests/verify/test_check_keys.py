"""The key check: ``patch_caches.check_keys(fn, examples)`` and its Hypothesis-driven form.

Real memoizers with keys broken on purpose (an encoder that drops an argument, a key that
holds a timestamp), and a correct one that gives neither a failure nor a note.
"""

from __future__ import annotations

import pytest

APP = """
import time

from pytest_cachemock import Memoizer

memo = Memoizer(kind="keyed")
CALLS = []


@memo.memoize(params_encoder=lambda sku, qty: sku)   # broken: qty left out
def quote(sku: str, qty: int) -> int:
    return 3 * qty


@memo.memoize(params_encoder=lambda sku, qty: (sku, qty, time.time()))   # a timestamp
def stamped(sku: str, qty: int) -> int:
    return 3 * qty


@memo.memoize(params_encoder=lambda sku, request_id: (sku, request_id))  # holds too much
def label(sku: str, request_id: int) -> str:
    return sku.upper()


@memo.memoize
def area(w: int, h: int) -> int:          # right
    CALLS.append((w, h))
    return w * h


@memo.memoize
def nested(w: int) -> int:                # calls another memoized function
    return area(w, w) + 1
"""


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(keyapp=APP)
    pytester.syspathinsert()
    return pytester


def test_a_collision_names_both_argument_sets(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from keyapp import quote

        def test_keys(patch_caches):
            patch_caches.check_keys(quote, [("A1", 1), ("B2", 1), ("A1", 5)])
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*KeyCollisionError: cachemock check_keys: keyapp.quote('A1', 1) and "
            "keyapp.quote('A1', 5) get one key, 'keyed/*', but the function gives them "
            "different results: the key leaves out an input that changes the result",
            "*  keyapp.quote('A1', 1) -> 3",
            "*  keyapp.quote('A1', 5) -> 15",
            "*Put the missing input in the key*",
        ]
    )


def test_a_correct_key_gives_no_failure_and_no_note(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from pytest_cachemock import Stats
        from keyapp import CALLS, area, nested

        def test_keys(patch_caches, global_stats):
            CALLS.clear()
            found = patch_caches.check_keys(area, [(2, 3), (3, 2), (2, 3), {"w": 4, "h": 5}])
            assert found.notes == []
            assert (found.calls, found.keys) == (4, 3)
            # Nothing cached, nothing counted: the real function ran once an example.
            assert CALLS == [(2, 3), (3, 2), (2, 3), (4, 5)]
            assert patch_caches.check_keys(nested, [1, 2, 3]).notes == []
            assert global_stats.keyed == Stats(0, 0, 0)
            assert dict(patch_caches.entries("keyed")) == {}
        """
    )
    app.runpytest("-W", "error").assert_outcomes(passed=1)


def test_a_key_that_changes_by_itself_is_a_note(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from pytest_cachemock import KeyNoteWarning
        from keyapp import stamped

        def test_keys(patch_caches):
            with pytest.warns(KeyNoteWarning, match="changes by itself") as caught:
                found = patch_caches.check_keys(stamped, [("A1", 1), ("A1", 2)])
            assert len(found.notes) == 1 and len(caught) == 1
            assert "a timestamp, a counter, a random value, an object's id" in found.notes[0]
        """
    )
    app.runpytest().assert_outcomes(passed=1)


def test_equal_results_under_many_keys_is_a_note(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        from keyapp import label

        def test_keys(patch_caches):
            found = patch_caches.check_keys(label, [("a1", n) for n in range(6)])
            assert found.keys == 6
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*KeyNoteWarning: cachemock check_keys: 6 different keys hold one equal result, "
            "'A1': keyapp.label('a1', 0), keyapp.label('a1', 1), keyapp.label('a1', 2), "
            "keyapp.label('a1', 3) and 2 more. If these calls should share an entry*",
        ]
    )


def test_hypothesis_finds_and_shrinks_a_collision(app: pytest.Pytester) -> None:
    pytest.importorskip("hypothesis")
    app.makepyfile(
        """
        from hypothesis import strategies as st
        from keyapp import area, quote

        ARGS = st.tuples(st.sampled_from(["A1", "B2", "C3"]), st.integers(0, 1000))

        def test_broken(patch_caches):
            patch_caches.check_keys(quote, strategy=ARGS)

        def test_right(patch_caches):
            found = patch_caches.check_keys(area, strategy=st.tuples(st.integers(), st.integers()))
            assert found.notes == [] and found.calls > 100
        """
    )
    result = app.runpytest("-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    # Shrunk: the smallest two argument sets that share a key.
    result.stdout.fnmatch_lines(["*keyapp.quote('A1', 0) and keyapp.quote('A1', 1) get one key*"])


def test_bad_calls_say_what_to_pass(app: pytest.Pytester) -> None:
    app.makepyfile(
        """
        import pytest
        from keyapp import area

        def plain(x):
            return x

        def test_errors(patch_caches):
            with pytest.raises(TypeError, match="fn is a function a Memoizer decorated"):
                patch_caches.check_keys(plain, [1])
            with pytest.raises(TypeError, match="give one of them"):
                patch_caches.check_keys(area)
            with pytest.raises(ValueError, match="many=1"):
                patch_caches.check_keys(area, [(1, 2)], many=1)
        """
    )
    app.runpytest().assert_outcomes(passed=1)
