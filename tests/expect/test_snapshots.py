"""Snapshots of cache traffic (issue 20): golden files per test, record modes, the diff, unused
files, normalised keys, sorted snapshots, xdist, configuration errors.

Everything runs the way users meet it: pytester runs of small test files (a real second run,
real files on disk, a real ``-n 2``), matching the output's text. The examples of
docs/expectations.md's "Snapshots" section are taken from the page itself and run as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _expect_app import make_priceapp

from pytest_cachemock import CacheLog, CacheOp
from pytest_cachemock._snapshot import Normaliser, file_name, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "expectations.md"
SNAPS = Path("__cachemock__") / "test_prices"

QUOTE_TWICE = """
import pytest
from priceapp import quote

@pytest.mark.cachemock(snapshot=True)
def test_quote_twice():
    quote("A-1")
    quote("A-1")
"""
QUOTE_TWICE_FILE = """\
# cachemock snapshot of test_prices.py::test_quote_twice
prices get 'prices::A-1:v1' -> miss
prices put 'prices::A-1:v1' -> stored
prices get 'prices::A-1:v1' -> hit
"""


@pytest.fixture(autouse=True)
def not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs below choose their mode; a CI=true around this suite must not choose it."""
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    make_priceapp(pytester)
    return pytester


def _run(pytester: pytest.Pytester, *args: str, **files: str) -> pytest.RunResult:
    if files:
        pytester.makepyfile(**files)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def _esc(text: str) -> str:
    """``text`` as an fnmatch pattern that matches it literally."""
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def _snap(pytester: pytest.Pytester, name: str, module: str = "test_prices") -> Path:
    return pytester.path / "__cachemock__" / module / name


# -- record, compare, fail ------------------------------------------------------------------------


def test_the_first_run_writes_the_file_and_the_next_one_passes(app: pytest.Pytester) -> None:
    result = _run(app, test_prices=QUOTE_TWICE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= cachemock: snapshots =*",
            "wrote 1 new snapshot (--cachemock-snapshot=new, the default):",
            "  __cachemock__/test_prices/test_quote_twice.txt",
        ]
    )
    path = _snap(app, "test_quote_twice.txt")
    assert path.read_bytes() == QUOTE_TWICE_FILE.encode()
    stamp = path.stat().st_mtime_ns

    again = _run(app)
    again.assert_outcomes(passed=1)
    assert "cachemock: snapshots" not in again.stdout.str()
    assert path.read_bytes() == QUOTE_TWICE_FILE.encode()
    assert path.stat().st_mtime_ns == stamp  # compared, not written


def test_a_change_fails_with_a_unified_diff_and_keeps_the_file(app: pytest.Pytester) -> None:
    _run(app, test_prices=QUOTE_TWICE).assert_outcomes(passed=1)
    result = _run(app, test_prices=QUOTE_TWICE.replace('quote("A-1")\n', 'quote("B-2")\n', 1))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: the cache traffic of this test differs from its snapshot "
            "(__cachemock__/test_prices/test_quote_twice.txt):",
            "--- __cachemock__/test_prices/test_quote_twice.txt (the snapshot)",
            "+++ this run",
            "@@ -1,3 +1,4 @@",
            "+prices get 'prices::B-2:v1' -> miss",
            "+prices put 'prices::B-2:v1' -> stored",
            " prices get 'prices::A-1:v1' -> miss",
            " prices put 'prices::A-1:v1' -> stored",
            "-prices get 'prices::A-1:v1' -> hit",
            "If the change is expected, rewrite the snapshot by running the test with "
            "--cachemock-snapshot=all.",
            "*- cachemock (call) -*",  # the usual report section comes with it
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_prices.py::test_quote_twice - Failed: cachemock*"])
    assert _snap(app, "test_quote_twice.txt").read_text() == QUOTE_TWICE_FILE
    assert "wrote" not in result.stdout.str()


def test_none_fails_on_a_missing_snapshot_and_says_how_to_record_it(
    app: pytest.Pytester,
) -> None:
    result = _run(app, "--cachemock-snapshot=none", test_prices=QUOTE_TWICE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: this test takes a snapshot of its cache traffic, and there is none at "
            "__cachemock__/test_prices/test_quote_twice.txt (--cachemock-snapshot=none: given "
            "on the command line). Record it by running the test with "
            "--cachemock-snapshot=new, and commit the file."
        ]
    )
    assert not (app.path / "__cachemock__").exists()
    # With the file there, none compares and passes.
    _run(app, "--cachemock-snapshot=new").assert_outcomes(passed=1)
    _run(app, "--cachemock-snapshot=none").assert_outcomes(passed=1)


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_ci_true_makes_none_the_default(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    result = _run(app, test_prices=QUOTE_TWICE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*there is none at *(--cachemock-snapshot=none: the default when CI={value}).*"]
    )
    assert not (app.path / "__cachemock__").exists()


def test_ci_false_the_option_and_the_ini_option_choose_too(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "false")
    _run(app, test_prices=QUOTE_TWICE).stdout.fnmatch_lines(["wrote 1 new snapshot (*default)*"])
    monkeypatch.setenv("CI", "true")
    app.makeini("[pytest]\ncachemock_snapshot = all\n")
    _snap(app, "test_quote_twice.txt").write_text("# old\nprices get 'x' -> hit\n")
    result = _run(app)  # the ini option wins over CI
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "rewrote 1 snapshot whose cache traffic changed (--cachemock-snapshot=all, the "
            "ini option):"
        ]
    )
    _snap(app, "test_quote_twice.txt").unlink()
    result = _run(app, "--cachemock-snapshot=none")  # and the option over the ini option
    result.stdout.fnmatch_lines(["*(--cachemock-snapshot=none: given on the command line)*"])


def test_new_fails_on_a_different_snapshot_and_all_rewrites_it(app: pytest.Pytester) -> None:
    app.makepyfile(test_prices=QUOTE_TWICE)
    path = _snap(app, "test_quote_twice.txt")
    path.parent.mkdir(parents=True)
    path.write_text("# cachemock snapshot of an older name\nprices get 'prices::A-1:v1' -> hit\n")
    _run(app, "--cachemock-snapshot=new").assert_outcomes(failed=1)
    result = _run(app, "--cachemock-snapshot=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "rewrote 1 snapshot whose cache traffic changed (--cachemock-snapshot=all, given on "
            "the command line):",
            "  __cachemock__/test_prices/test_quote_twice.txt",
        ]
    )
    assert path.read_text() == QUOTE_TWICE_FILE


def test_the_header_is_not_compared_and_all_refreshes_it(app: pytest.Pytester) -> None:
    app.makepyfile(test_prices=QUOTE_TWICE)
    path = _snap(app, "test_quote_twice.txt")
    path.parent.mkdir(parents=True)
    moved = QUOTE_TWICE_FILE.replace("test_prices.py::", "tests/test_prices.py::") + "\n\n"
    path.write_text(moved)
    result = _run(app, "--cachemock-snapshot=none")
    result.assert_outcomes(passed=1)
    assert path.read_text() == moved
    result = _run(app, "--cachemock-snapshot=all")
    result.assert_outcomes(passed=1)
    assert "rewrote" not in result.stdout.str()  # the same operations
    assert path.read_text() == QUOTE_TWICE_FILE


def test_a_test_that_fails_on_its_own_neither_writes_nor_compares(app: pytest.Pytester) -> None:
    source = """
import pytest
from priceapp import quote

@pytest.mark.cachemock(snapshot=True)
def test_fails():
    quote("A-1")
    assert False, "its own failure"

@pytest.mark.cachemock(snapshot=True)
def test_skips():
    quote("A-1")
    pytest.skip("not today")
"""
    result = _run(app, "--cachemock-snapshot=all", test_prices=source)
    result.assert_outcomes(failed=1, skipped=1)
    assert not (app.path / "__cachemock__").exists()
    # A different snapshot there: still only the test's own failure, and the file is kept.
    path = _snap(app, "test_fails.txt")
    path.parent.mkdir(parents=True)
    path.write_text("prices get 'other' -> hit\n")
    result = _run(app, "--cachemock-snapshot=none")
    result.assert_outcomes(failed=1, skipped=1)
    assert "AssertionError: its own failure" in result.stdout.str()
    assert "differs from its snapshot" not in result.stdout.str()
    assert path.read_text() == "prices get 'other' -> hit\n"
    assert "snapshot file" not in result.stdout.str()  # both files are their tests'


def test_a_log_that_let_operations_go_fails_rather_than_compare(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_log_size = 2\n")
    result = _run(app, test_prices=QUOTE_TWICE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: this test takes a snapshot of its cache traffic, but its operation log "
            "let 1 early operations go (it keeps the last 2); raise the ini option "
            "cachemock_log_size above the test's 3 operations"
        ]
    )
    assert not (app.path / "__cachemock__").exists()


def test_classes_and_parametrize_ids_name_the_files(app: pytest.Pytester) -> None:
    source = """
import pytest
from priceapp import quote

@pytest.mark.cachemock(snapshot=True)
class TestQuotes:
    @pytest.mark.parametrize("sku", ["A-1", "a/b", "a_b"])
    def test_sku(self, sku):
        quote(sku)

    def test_nothing(self):
        pass
"""
    _run(app, test_prices=source).assert_outcomes(passed=4)
    names = sorted(p.name for p in (app.path / SNAPS).iterdir())
    assert names == sorted(
        [
            "TestQuotes.test_nothing.txt",
            "TestQuotes.test_sku[A-1].txt",
            "TestQuotes.test_sku[a_b].txt",
            file_name(["TestQuotes", "test_sku[a/b]"]),
        ]
    )
    assert re.fullmatch(
        r"TestQuotes\.test_sku\[a_b\]-[0-9a-f]{10}\.txt", file_name(["TestQuotes", "test_sku[a/b]"])
    )
    assert (app.path / SNAPS / "TestQuotes.test_nothing.txt").read_text() == (
        "# cachemock snapshot of test_prices.py::TestQuotes::test_nothing\n"
    )
    assert (
        "'prices::a/b:v1'"
        in (app.path / SNAPS / file_name(["TestQuotes", "test_sku[a/b]"])).read_text()
    )


def test_file_names_stay_apart_and_short() -> None:
    assert file_name(["test_a"]) == "test_a.txt"
    assert file_name(["test_a[x/y]"]) != file_name(["test_a[x_y]"])
    assert file_name(["test_a[x:y]"]) != file_name(["test_a[x?y]"])
    long = file_name(["test_a[" + "x" * 300 + "]"])
    assert len(long) < 140
    assert long.endswith(".txt")
    assert file_name(["test_a[" + "x" * 300 + "]"]) != file_name(["test_a[" + "x" * 301 + "]"])
    assert not re.search(r"[^A-Za-z0-9_.,=+@\[\]-]", file_name(['t[é\\/:*?"<>|\n ]']))


# -- unused files --------------------------------------------------------------------------------

TWO_TESTS = """
import pytest
from priceapp import quote

@pytest.mark.cachemock(snapshot=True)
def test_one():
    quote("A-1")

@pytest.mark.cachemock(snapshot=True)
def test_two():
    quote("B-2")

class TestK:
    @pytest.mark.cachemock(snapshot=True)
    def test_three(self):
        quote("C-3")
"""


def _recorded(app: pytest.Pytester) -> list[str]:
    _run(app, test_prices=TWO_TESTS).assert_outcomes(passed=3)
    return sorted(p.name for p in (app.path / SNAPS).iterdir())


def test_unused_files_are_listed_and_all_removes_them(app: pytest.Pytester) -> None:
    assert _recorded(app) == ["TestK.test_three.txt", "test_one.txt", "test_two.txt"]
    (app.path / SNAPS / "test_gone.txt").write_text("prices get 'x' -> hit\n")
    (app.path / SNAPS / "notes.md").write_text("not a snapshot\n")
    gone_module = app.path / "__cachemock__" / "test_gone_module"
    result = _run(app)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= cachemock: snapshots =*",
            "1 snapshot file that no collected test maps to (remove it, or run with "
            "--cachemock-snapshot=all):",
            "  __cachemock__/test_prices/test_gone.txt",
        ]
    )
    assert "notes.md" not in result.stdout.str()
    assert (app.path / SNAPS / "test_gone.txt").exists()  # listed, not removed
    _run(app, "--cachemock-snapshot=none").stdout.fnmatch_lines(
        ["  __cachemock__/test_prices/test_gone.txt"]
    )

    # Under all, removed; a directory left empty goes too, __cachemock__ stays (not empty).
    gone_module.mkdir()
    app.makepyfile(test_gone_module="def test_plain():\n    pass\n")
    (gone_module / "test_renamed.txt").write_text("")
    result = _run(app, "--cachemock-snapshot=all")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "removed 2 unused snapshot files (--cachemock-snapshot=all, given on the command "
            "line):",
            "  __cachemock__/test_gone_module/test_renamed.txt",
            "  __cachemock__/test_prices/test_gone.txt",
        ]
    )
    assert not (app.path / SNAPS / "test_gone.txt").exists()
    assert not gone_module.exists()
    assert (app.path / SNAPS / "notes.md").exists()
    assert sorted(p.name for p in (app.path / SNAPS).iterdir()) == [
        "TestK.test_three.txt",
        "notes.md",
        "test_one.txt",
        "test_two.txt",
    ]
    assert "snapshot file" not in _run(app).stdout.str()


def test_a_renamed_test_leaves_its_old_file_unused(app: pytest.Pytester) -> None:
    _recorded(app)
    result = _run(app, test_prices=TWO_TESTS.replace("def test_two", "def test_second"))
    result.stdout.fnmatch_lines(
        [
            "wrote 1 new snapshot (*",
            "  __cachemock__/test_prices/test_second.txt",
            "1 snapshot file that no collected test maps to *",
            "  __cachemock__/test_prices/test_two.txt",
        ]
    )


def test_a_test_that_no_longer_takes_a_snapshot_leaves_its_file_unused(
    app: pytest.Pytester,
) -> None:
    _recorded(app)
    plain = TWO_TESTS.replace(
        "@pytest.mark.cachemock(snapshot=True)\ndef test_two", "def test_two"
    ).replace("class TestK:", "@pytest.mark.cachemock(snapshot=False)\nclass TestK:")
    # test_three's own marker is closer than TestK's: it still takes its snapshot.
    result = _run(app, "-k", "not one", test_prices=plain)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "1 snapshot file that no collected test maps to *",
            "  __cachemock__/test_prices/test_two.txt",
        ]
    )
    assert "test_one.txt" not in result.stdout.str()  # deselected, still takes its snapshot
    assert "TestK" not in result.stdout.str()


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "one"],
        ["-m", "slow"],
        ["--deselect", "test_prices.py::test_two"],
        ["test_prices.py::test_one"],  # no class of the module is collected
        ["test_prices.py::TestK::test_three"],
        ["test_other.py"],  # test_prices.py is not collected at all
    ],
)
def test_tests_that_do_not_run_keep_their_files(app: pytest.Pytester, args: list[str]) -> None:
    _recorded(app)
    (app.path / SNAPS / "test_gone.txt").write_text("")
    app.makepyfile(test_other="import pytest\n\n@pytest.mark.slow\ndef test_o():\n    pass\n")
    app.makeini("[pytest]\nmarkers = slow\n")
    result = _run(app, "--cachemock-snapshot=all", *args)
    assert result.ret == 0
    out = result.stdout.str()
    # Only the file of no test is ever unused; under test_other.py, not even that one.
    kept = ["test_one.txt", "test_two.txt", "TestK.test_three.txt"]
    assert all((app.path / SNAPS / name).exists() for name in kept), out
    if args == ["test_other.py"]:
        assert (app.path / SNAPS / "test_gone.txt").exists()
        assert "cachemock: snapshots" not in out
    else:
        assert not (app.path / SNAPS / "test_gone.txt").exists()
        result.stdout.fnmatch_lines(["removed 1 unused snapshot file (*", "  *test_gone.txt"])


def test_last_failed_does_not_make_files_unused(app: pytest.Pytester) -> None:
    _recorded(app)
    (app.path / SNAPS / "test_gone.txt").write_text("")
    app.makepyfile(test_fails="def test_f():\n    assert False\n")
    app.runpytest("-p", "no:randomly")  # with the cacheprovider: remembers test_f failed
    result = app.runpytest("-p", "no:randomly", "--lf", "--cachemock-snapshot=all")
    result.assert_outcomes(failed=1)
    assert (app.path / SNAPS / "test_one.txt").exists()
    assert (app.path / SNAPS / "test_gone.txt").exists()  # test_prices.py was not looked at


# -- normalised keys -------------------------------------------------------------------------------

NORMALISED = """
import hashlib, tempfile, uuid
import pytest
from priceapp import prices

@pytest.mark.cachemock(snapshot=True)
def test_keys(tmp_path, tmp_path_factory):
    digest = hashlib.sha256(str(tmp_path).encode()).hexdigest()
    other = hashlib.sha1(str(uuid.uuid4()).encode()).hexdigest()
    made = uuid.uuid4()
    for key in [
        str(tmp_path / "db.sqlite") + ":row-1",
        str(tmp_path_factory.mktemp("data")),
        tempfile.mkdtemp() + "/x.json",
        f"graph:{digest}", f"graph:{other}", f"graph:{digest}",
        f"job-{made}", f"job-{str(made).upper()}",
        repr(object()), f"at {hex(id(prices))}",
        "sku-A-1", "tag:v12", "fx:internationalization", "n:12345678901234567890",
        "fyhfujbixg4ha5htu5pwqjlkf7rtlmlyakudxsrhnevzxk2ytrid",
    ]:
        prices.get(key)
"""
NORMALISED_LINES = [
    "prices get 'prices::<tmp>/db.sqlite:row-1:v1' -> miss",
    "prices get 'prices::<tmp>:v1' -> miss",
    "prices get 'prices::<tmp>/x.json:v1' -> miss",
    "prices get 'prices::graph:<hash1>:v1' -> miss",
    "prices get 'prices::graph:<hash2>:v1' -> miss",
    "prices get 'prices::graph:<hash1>:v1' -> miss",
    "prices get 'prices::job-<uuid1>:v1' -> miss",
    "prices get 'prices::job-<uuid1>:v1' -> miss",
    "prices get 'prices::<object object at <id1>>:v1' -> miss",
    "prices get 'prices::at <id2>:v1' -> miss",
    "prices get 'prices::sku-A-1:v1' -> miss",
    "prices get 'prices::tag:v12:v1' -> miss",
    "prices get 'prices::fx:internationalization:v1' -> miss",
    "prices get 'prices::n:<hash3>:v1' -> miss",
    "prices get 'prices::<hash4>:v1' -> miss",
]


def test_temporary_paths_hashes_uuids_and_ids_are_normalised(app: pytest.Pytester) -> None:
    _run(app, test_prices=NORMALISED).assert_outcomes(passed=1)
    text = _snap(app, "test_keys.txt").read_text()
    assert text.splitlines()[1:] == NORMALISED_LINES
    # A second run (other temporary directories, digests, uuids, addresses): the same file.
    result = _run(app, "--cachemock-snapshot=none")
    result.assert_outcomes(passed=1)
    assert _snap(app, "test_keys.txt").read_text() == text


def test_ini_rules_run_in_order_before_the_built_in_ones(app: pytest.Pytester) -> None:
    app.makeini(
        "[pytest]\ncachemock_snapshot_rules =\n"
        "    session-[0-9]+ => session-<n>\n"
        r"    (\d{4})-\d\d-\d\d => \1-<date>"
        "\n"
        "    <n> => <number>\n"
        "    drop-me-=>\n"
        "    a=>b => a-to-b\n"
    )
    source = """
import pytest
from priceapp import prices

@pytest.mark.cachemock(snapshot=True)
def test_keys():
    for key in ["session-4711", "day:2026-12-02", "drop-me-x", "a=>b", "sha:" + "ab12" * 10]:
        prices.get(key)
"""
    _run(app, test_prices=source).assert_outcomes(passed=1)
    assert _snap(app, "test_keys.txt").read_text().splitlines()[1:] == [
        "prices get 'prices::session-<number>:v1' -> miss",
        "prices get 'prices::day:2026-<date>:v1' -> miss",
        "prices get 'prices::x:v1' -> miss",
        "prices get 'prices::a-to-b:v1' -> miss",
        "prices get 'prices::sha:<hash1>:v1' -> miss",
    ]


def test_the_hook_runs_first_for_the_tests_under_its_conftest(app: pytest.Pytester) -> None:
    app.makeini("[pytest]\ncachemock_snapshot_rules = lower-[a-z]+ => lower-<word>\n")
    app.mkdir("sub").joinpath("conftest.py").write_text(
        "def pytest_cachemock_snapshot_key(kind, key):\n"
        "    assert kind == 'prices'\n"
        "    return key.lower() if 'KEEP' not in key else None\n"
    )
    source = """
import pytest
from priceapp import prices

@pytest.mark.cachemock(snapshot=True)
def test_keys():
    prices.get("Lower-CASE")
    prices.get("KEEP-Me")
"""
    app.path.joinpath("sub", "test_sub.py").write_text(source)
    app.makepyfile(test_prices=source)
    _run(app).assert_outcomes(passed=2)
    sub = app.path / "sub" / "__cachemock__" / "test_sub" / "test_keys.txt"
    assert sub.read_text().splitlines()[1:] == [
        "prices get 'prices::lower-<word>:v1' -> miss",
        "prices get 'prices::KEEP-Me:v1' -> miss",
    ]
    assert _snap(app, "test_keys.txt").read_text().splitlines()[1:] == [
        "prices get 'prices::Lower-CASE:v1' -> miss",  # no hook above this one
        "prices get 'prices::KEEP-Me:v1' -> miss",
    ]


def test_a_hook_that_returns_no_str_fails_the_test_saying_so(app: pytest.Pytester) -> None:
    app.makeconftest("def pytest_cachemock_snapshot_key(kind, key):\n    return 42\n")
    result = _run(app, test_prices=QUOTE_TWICE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: pytest_cachemock_snapshot_key(kind='prices', key='prices::A-1:v1') "
            "returned 42; return a str (the key to write) or None (leave the key to the rules)"
        ]
    )


def test_the_normaliser_numbers_values_unless_sorted() -> None:
    log = CacheLog(
        [
            CacheOp("k", "get", "a" * 40, "miss"),
            CacheOp("k", "put", "b" * 40, "stored"),
            CacheOp("k", "get", "a" * 40, "hit"),
        ]
    )
    assert render(log, Normaliser()) == [
        "k get '<hash1>' -> miss",
        "k put '<hash2>' -> stored",
        "k get '<hash1>' -> hit",
    ]
    assert render(log, Normaliser(numbered=False), sort=True) == [
        "k get '<hash>' -> hit",
        "k get '<hash>' -> miss",
        "k put '<hash>' -> stored",
    ]
    assert render(CacheLog([CacheOp("k", "get", "line\nbreak 'q'", "miss")]), Normaliser()) == [
        "k get \"line\\nbreak 'q'\" -> miss"
    ]


def test_a_temporary_directory_is_replaced_only_as_a_whole_path() -> None:
    normaliser = Normaliser(roots=["/tmp", "/tmp/pytest-of-me/pytest-7"])
    keys = {
        "/tmp/tmpab12cd/x.json": "<tmp>/x.json",
        "/tmp/pytest-of-me/pytest-7/test_a0/db": "<tmp>/db",
        "/tmp/pytest-of-me/pytest-70/test_a0/db": "<tmp>/pytest-70/test_a0/db",  # in /tmp
        "file:/tmp/tmpab12cd:row": "file:<tmp>:row",
        "/tmp": "<tmp>",
        "/var/tmp/x": "/var/tmp/x",
        "/tmpfoo/x": "/tmpfoo/x",
        "cache-/tmp/x": "cache-/tmp/x",
    }
    assert {key: normaliser.key("k", key) for key in keys} == keys


def test_a_snapshot_that_cannot_be_read_or_written_fails_saying_so(app: pytest.Pytester) -> None:
    app.makepyfile(test_prices=QUOTE_TWICE)
    (app.path / SNAPS / "test_quote_twice.txt").mkdir(parents=True)
    result = _run(app)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: cannot read the snapshot __cachemock__/test_prices/test_quote_twice.txt: "
            "[[]Errno 21[]] Is a directory: *"
        ]
    )
    (app.path / SNAPS / "test_quote_twice.txt").rmdir()
    (app.path / SNAPS).rmdir()
    (app.path / SNAPS).write_text("a file where the directory goes")
    result = _run(app)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: cannot write the snapshot __cachemock__/test_prices/test_quote_twice.txt:"
            " [[]Errno *"
        ]
    )
    assert "wrote" not in result.stdout.str()


# -- sorted snapshots ------------------------------------------------------------------------------

ORDERED = """
import os
import pytest
from priceapp import quote

@pytest.mark.cachemock(snapshot={snapshot!r})
def test_order():
    for sku in os.environ["SKUS"].split(","):
        quote(sku)
"""


@pytest.mark.parametrize("snapshot", [True, "sorted"])
def test_sorted_snapshots_pass_in_any_order(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, snapshot: object
) -> None:
    app.makepyfile(test_prices=ORDERED.format(snapshot=snapshot))
    monkeypatch.setenv("SKUS", "A-1,B-2,C-3")
    _run(app).assert_outcomes(passed=1)
    monkeypatch.setenv("SKUS", "C-3,A-1,B-2")
    result = _run(app)
    if snapshot is True:
        result.assert_outcomes(failed=1)
        return
    result.assert_outcomes(passed=1)
    assert _snap(app, "test_order.txt").read_text() == (
        "# cachemock snapshot of test_prices.py::test_order\n"
        "# sorted: the lines are compared in sorted order\n"
        "prices get 'prices::A-1:v1' -> miss\n"
        "prices get 'prices::B-2:v1' -> miss\n"
        "prices get 'prices::C-3:v1' -> miss\n"
        "prices put 'prices::A-1:v1' -> stored\n"
        "prices put 'prices::B-2:v1' -> stored\n"
        "prices put 'prices::C-3:v1' -> stored\n"
    )
    monkeypatch.setenv("SKUS", "C-3,A-1,B-2,D-4")  # sorted still sees a new operation
    result = _run(app)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*differs from its snapshot sorted (*", "+prices get 'prices::D-4:v1' -> miss"]
    )


def test_the_threads_example_of_the_docs_passes_run_after_run(app: pytest.Pytester) -> None:
    source = _doc_block("# test_workers.py").replace("from shop import", "from priceapp import")
    for _ in range(3):
        _run(app, test_prices=source).assert_outcomes(passed=1)
    assert len(_snap(app, "test_quotes_in_threads.txt").read_text().splitlines()) == 2 + 6


# -- xdist -----------------------------------------------------------------------------------------


def test_under_xdist_workers_write_and_the_controller_lists_and_removes(
    app: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    many = "\n".join(
        f"@pytest.mark.cachemock(snapshot=True)\ndef test_{i}():\n    quote('S-{i}')\n"
        for i in range(6)
    )
    head = "import pytest\nfrom priceapp import quote\n\n"
    app.makepyfile(test_prices=head + many, test_more=head + many.replace("S-", "M-"))
    args = ("-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2")
    result = app.runpytest_subprocess(*args)
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["wrote 12 new snapshots (--cachemock-snapshot=new, the default):"])
    assert "2/2 workers" in result.stdout.str()
    for module in ("test_prices", "test_more"):
        names = sorted(p.name for p in (app.path / "__cachemock__" / module).iterdir())
        assert names == [f"test_{i}.txt" for i in range(6)]
    (app.path / SNAPS / "test_gone.txt").write_text("")
    result = app.runpytest_subprocess(*args, "--cachemock-snapshot=none", "-k", "not test_3")
    result.assert_outcomes(passed=10)  # xdist reports no deselected count
    result.stdout.fnmatch_lines(
        [
            "1 snapshot file that no collected test maps to (remove it, or run with "
            "--cachemock-snapshot=all):",
            "  __cachemock__/test_prices/test_gone.txt",
        ]
    )
    assert result.stdout.str().count("test_gone.txt") == 1  # the controller's list only
    result = app.runpytest_subprocess(*args, "--cachemock-snapshot=all")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["removed 1 unused snapshot file (*", "  *test_gone.txt"])
    assert not (app.path / SNAPS / "test_gone.txt").exists()
    assert len(list((app.path / SNAPS).iterdir())) == 6


# -- configuration errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--cachemock-snapshot=sometimes"],
            None,
            "ERROR: cachemock: option --cachemock-snapshot=sometimes: not a snapshot mode; choose "
            "one of none (compare, never write), new (write missing snapshots, compare the "
            "others), all (rewrite every snapshot, remove unused ones)",
        ),
        (
            [],
            "cachemock_snapshot = always",
            "ERROR: cachemock: ini option cachemock_snapshot = 'always': not a snapshot mode; "
            "choose one of none (*",
        ),
        (
            [],
            "cachemock_snapshot_rules =\n    a => b\n    session-[0-9]+",
            "ERROR: cachemock: ini option cachemock_snapshot_rules, rule 2 ('session-[0-9]+'): "
            "no '=>'; write one rule a line, REGEX => REPLACEMENT, such as "
            "'session-[0-9]+ => session-<n>'",
        ),
        (
            [],
            "cachemock_snapshot_rules = (unclosed => x",
            "ERROR: cachemock: ini option cachemock_snapshot_rules, rule 1 ('(unclosed => x'): "
            "'(unclosed' is not a valid regular expression (missing ), unterminated subpattern "
            "at position 0)",
        ),
        (
            [],
            r"cachemock_snapshot_rules = a(b) => \2",
            "ERROR: cachemock: ini option cachemock_snapshot_rules, rule 1 ('a(b) => \\\\2'): the "
            "replacement '\\\\2' does not fit the regex (invalid group reference 2 at position 1)",
        ),
        (
            [],
            "cachemock_snapshot_rules = => x",
            "ERROR: cachemock: ini option cachemock_snapshot_rules, rule 1 ('=> x'): the regex "
            "before '=>' is empty",
        ),
    ],
)
def test_a_bad_mode_or_rule_stops_the_run_at_start_up(
    app: pytest.Pytester, args: list[str], ini: str | None, message: str
) -> None:
    if ini is not None:
        app.makeini(f"[pytest]\n{ini}\n")
    result = _run(app, *args, test_prices=QUOTE_TWICE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message if message.endswith("*") else _esc(message)])
    assert not (app.path / "__cachemock__").exists()


def test_a_bad_snapshot_argument_of_the_marker_is_a_usage_error(app: pytest.Pytester) -> None:
    source = QUOTE_TWICE.replace("snapshot=True", 'snapshot="sort"')
    result = _run(app, test_prices=source)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: cachemock: @pytest.mark.cachemock: snapshot='sort': give True (the "
            "operations in the order they ran), 'sorted' (the operations compared in sorted "
            "order, for threads whose order varies) or False "
            "(in test_prices.py::test_quote_twice)"
        ]
    )


def test_snapshot_false_and_a_closer_marker_turn_it_off(app: pytest.Pytester) -> None:
    source = """
import pytest
from priceapp import quote

pytestmark = pytest.mark.cachemock(snapshot=True)

def test_on():
    quote("A-1")

@pytest.mark.cachemock(snapshot=False)
def test_off():
    quote("A-1")
"""
    _run(app, test_prices=source).assert_outcomes(passed=2)
    assert sorted(p.name for p in (app.path / SNAPS).iterdir()) == ["test_on.txt"]


# -- the docs' examples, as the page shows them ---------------------------------------------------


def _fences(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```[^`\n]*\n(.*?)^```$", text, re.M | re.S)]


def _doc_block(first_line: str) -> str:
    """The block of docs/expectations.md whose first line is ``first_line``."""
    found = [b for b in _fences(DOCS.read_text(encoding="utf-8")) if b.startswith(first_line)]
    assert len(found) == 1, f"{DOCS.name}: no single block starts with {first_line!r}"
    return found[0]


def _shop(pytester: pytest.Pytester) -> None:
    """The application at the top of the page, as shop.py."""
    pytester.makepyfile(shop=_fences(DOCS.read_text(encoding="utf-8"))[0])
    pytester.syspathinsert()


def test_the_docs_examples_record_compare_and_fail_as_shown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shop(pytester)
    test = _doc_block("# test_prices.py")
    pytester.makepyfile(test_prices=test)
    _run(pytester).assert_outcomes(passed=1)
    golden = _doc_block("# cachemock snapshot of test_prices.py::test_quote_twice")
    assert _snap(pytester, "test_quote_twice.txt").read_text() == golden

    changed = test.replace('    quote("A-1")\n', '    quote("B-2")\n')
    changed = changed.replace('quote("B-2")\n', 'quote("A-1")\n', 1)
    assert changed.count('quote("B-2")') == 1
    assert changed != test
    result = _run(pytester, test_prices=changed)
    result.assert_outcomes(failed=1)
    shown = _doc_block("cachemock: the cache traffic of this test differs").splitlines()
    result.stdout.fnmatch_lines([_esc(line) for line in shown])

    _snap(pytester, "test_quote_twice.txt").unlink()
    monkeypatch.setenv("CI", "true")
    result = _run(pytester)
    missing = _doc_block("cachemock: this test takes a snapshot").strip()
    result.stdout.fnmatch_lines([_esc(missing)])


def test_the_docs_unused_listing_and_hook_are_as_shown(pytester: pytest.Pytester) -> None:
    _shop(pytester)
    pytester.makepyfile(test_gone="def test_new_name():\n    pass\n")
    old = pytester.path / "__cachemock__" / "test_gone" / "test_old_name.txt"
    old.parent.mkdir(parents=True)
    old.write_text("")
    shown = _doc_block("============================= cachemock: snapshots").splitlines()
    _run(pytester).stdout.fnmatch_lines(shown[1:])

    hook = _doc_block("# conftest.py")
    pytester.makeconftest(hook)
    pytester.makepyfile(test_prices=_doc_block("# test_prices.py").replace('"A-1"', '"A-Big"'))
    _run(pytester).assert_outcomes(passed=2)
    assert "'prices::a-big:v1'" in _snap(pytester, "test_quote_twice.txt").read_text()


def test_errors_md_lists_the_snapshot_messages() -> None:
    def flat(text: str) -> str:
        return " ".join(text.replace("`", "").split())

    page = flat((ROOT / "docs" / "errors.md").read_text(encoding="utf-8"))
    messages = [
        "cachemock: option --cachemock-snapshot=sometimes: not a snapshot mode; choose one of "
        "none (compare, never write), new (write missing snapshots, compare the others), all "
        "(rewrite every snapshot, remove unused ones)",
        "cachemock: ini option cachemock_snapshot = 'always': not a snapshot mode;",
        "cachemock: ini option cachemock_snapshot_rules, rule 2 ('session-[0-9]+'): no '=>'; "
        "write one rule a line, REGEX => REPLACEMENT, such as 'session-[0-9]+ => session-<n>'",
        "rule 1 ('(unclosed => x'): '(unclosed' is not a valid regular expression (missing ), "
        "unterminated subpattern at position 0)",
        "rule 1 ('a(b) => \\\\2'): the replacement '\\\\2' does not fit the regex (invalid group "
        "reference 2 at position 1)",
        "rule 1 ('=> x'): the regex before '=>' is empty",
        "@pytest.mark.cachemock: snapshot='sort': give True (the operations in the order they "
        "ran), 'sorted' (the operations compared in sorted order, for threads whose order "
        "varies) or False",
        "cachemock: the cache traffic of this test differs from its snapshot "
        "(__cachemock__/test_prices/test_quote_twice.txt):",
        "If the change is expected, rewrite the snapshot by running the test with "
        "--cachemock-snapshot=all.",
        "cachemock: this test takes a snapshot of its cache traffic, and there is none at "
        "__cachemock__/test_prices/test_quote_twice.txt (--cachemock-snapshot=none: the default "
        "when CI=true). Record it by running the test with --cachemock-snapshot=new, and commit "
        "the file.",
        "cachemock: this test takes a snapshot of its cache traffic, but its operation log let 1 "
        "early operations go (it keeps the last 2); raise the ini option cachemock_log_size "
        "above the test's 3 operations",
        "cachemock: pytest_cachemock_snapshot_key(kind='prices', key='prices::A-1:v1') returned "
        "42; return a str (the key to write) or None (leave the key to the rules)",
        "cachemock: cannot read the snapshot __cachemock__/test_prices/test_quote_twice.txt: "
        "[Errno 21] Is a directory:",
        "cachemock: cannot write the snapshot __cachemock__/test_prices/test_quote_twice.txt: "
        "[Errno 20] Not a directory:",
    ]
    missing = [m for m in messages if flat(m) not in page]
    assert not missing


# -- kinds that are counted, not logged -----------------------------------------------------------

RATES = """
import functools

LOOKUPS = []

@functools.lru_cache(maxsize=None)
def vat(country):
    LOOKUPS.append(country)
    return {"DE": 19, "FR": 20}[country]
"""
RATES_TEST = """
import pytest
from rates import vat

@pytest.mark.cachemock(snapshot=True)
def test_rates():
    vat("DE")
    vat("DE")
"""


def test_an_lru_cache_kind_is_in_the_snapshot_as_its_counts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(rates=RATES)
    pytester.makeini(
        "[pytest]\npythonpath = .\n"
        "cachemock_profiles = functools\ncachemock_functools = rates:vat\n"
    )
    _run(pytester, test_rates=RATES_TEST).assert_outcomes(passed=1)
    assert _snap(pytester, "test_rates.txt", "test_rates").read_text() == (
        "# cachemock snapshot of test_rates.py::test_rates\nvat counted puts=1 hits=1 misses=1\n"
    )
    result = _run(
        pytester,
        test_rates=RATES_TEST.replace('vat("DE")\n    vat("DE")', 'vat("DE")\n    vat("FR")'),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "cachemock: the cache traffic of this test differs from its snapshot *",
            "-vat counted puts=1 hits=1 misses=1",
            "+vat counted puts=2 hits=0 misses=2",
            # The report section says why no operation of the kind is shown.
            "Cache operations: (none; vat: counted, not logged)",
        ]
    )
