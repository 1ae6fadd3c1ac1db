"""The pytest plugin (entry point ``cachemock``): hooks, fixtures, the marker, options.

Everything of substance lives in the modules it imports; this one wires them to pytest. What
it remembers for a session (the registry of kinds, the tests that used it, the summary) is a
:class:`_Session` kept in ``config.stash``, so a nested session has its own.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from typing import Any, Callable

import pytest

from . import _snapshot, _state, _verify, hookspecs, kinds, patching
from ._expect import leftovers as _leftovers
from ._expect import log_of as _log_of
from ._oplog import CacheLog
from ._oplog import render as _render_log
from ._report import Summary
from .errors import KindConfigError, _unknown_kind
from .patching import PatchCaches
from .stats import GlobalStats, Stats, _explain_mismatch, _last_mismatch
from .stats import global_stats as _global_stats

_SESSION = pytest.StashKey["_Session"]()
_WORKER_KEY = "cachemock_summary"  # in an xdist worker's workeroutput
_SNAP_KEY = "cachemock_snapshots"  # the same, for the snapshots' bookkeeping
_OPTIONS = pytest.StashKey[dict[str, Any]]()  # an item's marker options, checked at collection
_GUARD = "_cachemock_guard"
_OPEN_SETUPS = patching._setups  # the PatchCaches.setUp() calls not yet torn down

_MARKER = (
    "cachemock(*, enable=(), isolation='thread', verify=False, forbid_puts=(), snapshot=False): "
    "use the cachemock plugin in this test: mock every cache kind, with the real caches of "
    "`enable` turned on; `verify` (True, or kind names) recomputes every hit of those kinds and "
    "fails on a stale one; every put to the kinds of `forbid_puts` is refused; `snapshot` (True, "
    "or 'sorted') compares the test's cache traffic with its file under __cachemock__/. Markers "
    "merge closest first: a function's argument wins over its class's and module's."
)


def _check_enable(value: object, arg: str = "enable") -> None:
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return
    raise ValueError(
        f"{arg}={value!r}: give a kind name or a list of kind names, such as {arg}='pages' or "
        f"{arg}=['pages', 'prices']; got {_a(value)}"
    )


def _check_forbid_puts(value: object) -> None:
    _check_enable(value, "forbid_puts")


def _a(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        odd = next(v for v in value if not isinstance(v, str))
        return f"{_a(odd)} in the {type(value).__qualname__}"
    name = type(value).__qualname__
    return ("an " if name[:1] in "aeiou" else "a ") + name


def _check_verify(value: object) -> None:
    _verify.normalize(value)


def _check_snapshot(value: object) -> None:
    if value is True or value is False or value == "sorted":
        return
    raise ValueError(
        f"snapshot={value!r}: give True (the operations in the order they ran), 'sorted' (the "
        "operations compared in sorted order, for threads whose order varies) or False"
    )


# The marker's arguments, each with its check (a ValueError with the message).
_MARKER_ARGS: dict[str, Callable[[object], None]] = {
    "enable": _check_enable,
    "isolation": patching._check_isolation,
    "verify": _check_verify,
    "forbid_puts": _check_forbid_puts,
    "snapshot": _check_snapshot,
}
# Marker arguments that name kinds (one name, or a list): each name must be a known kind.
_KIND_ARGS = ("enable", "verify", "forbid_puts")
# Marker arguments that are not PatchCaches arguments: the fixture applies them after start.
_AFTER_START = ("forbid_puts", "snapshot")


def _check_marker(marker: pytest.Mark) -> None:
    """Raise a ValueError saying what is wrong with one ``cachemock`` marker's arguments."""
    if marker.args:
        raise ValueError(
            "@pytest.mark.cachemock takes keyword arguments only (enable=..., isolation=...), "
            f"got {marker.args!r}"
        )
    for name, value in marker.kwargs.items():
        check = _MARKER_ARGS.get(name)
        if check is None:
            import difflib  # on this error path only

            close = difflib.get_close_matches(name, list(_MARKER_ARGS), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            known = ", ".join(f"{arg}=" for arg in _MARKER_ARGS)
            raise ValueError(
                f"@pytest.mark.cachemock({name}=...): unknown argument {name!r}{hint} "
                f"The marker takes {known}"
            )
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"@pytest.mark.cachemock: {exc}") from None


class _Session:
    """What the plugin remembers for one session; registered as a plugin of that session."""

    def __init__(self, scope: _state.Scope) -> None:
        self.scope = scope
        # node id -> the PatchCaches of a test that uses the plugin, until its last report.
        self.used: dict[str, PatchCaches] = {}
        # node id -> how many PatchCaches.setUp() were open when its setup phase ended.
        self.setups_before: dict[str, int] = {}
        self.summary: Summary | None = None
        self.autouse = False
        self.isolation = "thread"
        self.log_size: int | None = None
        self.failed_calls: set[str] = set()  # tests whose call phase failed, until logfinish
        self.verify: bool | tuple[str, ...] = False  # --cachemock-verify, cachemock_verify
        # Snapshots: the record mode and what chose it, the ini rules, what the session saw.
        self.snapshot_mode = "new"
        self.snapshot_where = "the default"
        self.snapshot_rules: list[_snapshot.Rule] = []
        self.book = _snapshot.Book()
        self._tmp_roots: list[str] | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        # Verify mode: a stale hit fails a test that passed, in its call phase. A test that
        # failed anyway gets them at teardown (the fixture's check), next to its failure.
        # A snapshot is compared here too, once the test passed: a test that failed already
        # neither writes nor compares its snapshot.
        result = yield
        patch = self.used.get(item.nodeid) if self.used else None
        if patch is None:
            return result
        stale = patch.stale_hits()
        if stale:
            pytest.fail(stale, pytrace=False)
        options = item.stash.get(_OPTIONS, None)
        snapshot = (options if options is not None else _marker_options(item)).get("snapshot")
        if snapshot:
            self._snapshot(item, patch, sort=snapshot == "sorted")
        return result

    def _snapshot(self, item: pytest.Item, patch: PatchCaches, sort: bool) -> None:
        """Compare the test's traffic with its snapshot, writing it as the mode says."""
        __tracebackhide__ = True
        box = patch._box
        log = _log_of(box) if box is not None else CacheLog(())
        cut = _snapshot.cut(log)
        if cut is not None:
            pytest.fail(cut, pytrace=False)
        if self._tmp_roots is None:
            factory = getattr(item.config, "_tmp_path_factory", None)
            base = factory.getbasetemp() if factory is not None else None
            self._tmp_roots = _snapshot.tmp_roots(base)
        hook = item.ihook.pytest_cachemock_snapshot_key
        normaliser = _snapshot.Normaliser(
            self.snapshot_rules,
            self._tmp_roots,
            key_hook=lambda kind, key: hook(kind=kind, key=key),
            numbered=not sort,
        )
        try:
            lines = _snapshot.render(log, normaliser, sort)
        except TypeError as exc:  # the hook returned something else than a str or None
            pytest.fail(f"cachemock: {exc}", pytrace=False)
        if box is not None:  # kinds that log nothing (an lru_cache function): their counts
            lines += _snapshot.counted(patch.stats(), box.counted_only())
        path = _snapshot.snapshot_dir(item.path) / _snapshot.file_name(_names(item))
        result = _snapshot.check(
            path,
            item.nodeid,
            lines,
            self.snapshot_mode,
            self.snapshot_where,
            sort=sort,
            root=item.config.rootpath,
        )
        self.book.note(result, path)
        if result.message is not None:
            pytest.fail(result.message, pytrace=False)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        # Innermost, so it sees every test a module or class holds, before --lf or another
        # plugin filters the report. Only modules that have a snapshot directory cost more
        # than the isinstance check.
        report = yield
        if report.passed and report.result and isinstance(collector, (pytest.Module, pytest.Class)):
            directory = self.book.has_dir(collector.path)
            if directory is not None:
                self.book.collected(
                    directory,
                    [
                        _names(node)
                        for node in report.result
                        if isinstance(node, pytest.Item) and _takes_snapshot(node)
                    ],
                    [
                        (node.nodeid, _names(node))
                        for node in report.result
                        if isinstance(node, pytest.Class)
                    ],
                    expanded=collector.nodeid if isinstance(collector, pytest.Class) else None,
                )
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A new test: what a PatchCaches counted in an earlier one is not this test's.
        self.scope.epoch += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A plain hook on the report (not a wrapper around making it): cheapest for the many
        # tests that do not use the plugin.
        if _OPEN_SETUPS or self.setups_before:
            self._close_leftover_setups(report)
        if not report.failed or not self.used:
            return
        patch = self.used.get(report.nodeid)
        if patch is not None:
            if report.when == "call":  # its own failure says it: no second one at teardown
                self.failed_calls.add(report.nodeid)
            box = patch._box
            only = _snapshot.used(patch.stats(), box.counted_only()) if box is not None else []
            log_lines = _render_log(patch.log(), counted_only=only)
            text = patch.report() + "\n" + "\n".join(log_lines)
            mismatch = _last_mismatch()
            if mismatch is not None:
                text = "\n".join(_explain_mismatch(*mismatch)) + "\n" + text
            name = f"cachemock ({report.when})"
            add = getattr(report.longrepr, "addsection", None)
            if callable(add):
                # Part of the failure itself, after its traceback: shown whatever
                # --show-capture keeps of the captured sections (torch's logs), and sent by
                # pytest-xdist with the traceback.
                add(name, text)
            else:  # a failure without a traceback (pytest.fail(pytrace=False))
                report.sections.append((name, text))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.used:
            self.used.pop(nodeid, None)
        self.failed_calls.discard(nodeid)

    def _close_leftover_setups(self, report: pytest.TestReport) -> None:
        """Tear down the ``PatchCaches.setUp()`` calls a test opened and left open.

        A unittest ``setUp`` that raises after ``PatchCaches.setUp()`` never reaches
        ``tearDown``. Under pytest a TestCase's setUp, test and tearDown all run in the call
        phase, while ``setUpClass`` runs in the setup phase: what the call phase left open is
        a leftover.
        """
        if report.when == "setup":
            if _OPEN_SETUPS:
                self.setups_before[report.nodeid] = len(_OPEN_SETUPS)
        elif report.when == "call":
            patching._close_setups(self.setups_before.pop(report.nodeid, 0))
        else:
            self.setups_before.pop(report.nodeid, None)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # On a pytest-xdist worker: send the totals to the controller, which prints them.
        output = getattr(session.config, "workeroutput", None)
        if output is not None:
            if self.summary is not None:
                output[_WORKER_KEY] = self.summary.data()
            output[_SNAP_KEY] = self.book.data()
            return
        if self.snapshot_mode == "all" and exitstatus not in _UNFINISHED:
            self.book.remove(self.book.unused())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._snapshot_summary(terminalreporter)
        if self.summary is None:
            return
        terminalreporter.write_sep("=", "cachemock: cache stats per kind")
        if not self.summary.totals:
            terminalreporter.write_line("no test used the cachemock plugin")
            return
        for line in self.summary.lines():
            terminalreporter.write_line(line)
        workers = self.summary.workers
        if workers:
            plural = "s" if workers != 1 else ""
            terminalreporter.write_line(f"(summed over {workers} pytest-xdist worker{plural})")

    def _snapshot_summary(self, terminalreporter: Any) -> None:
        if hasattr(terminalreporter.config, "workerinput"):
            return
        lines = self.book.summary(
            self.snapshot_mode, self.snapshot_where, terminalreporter.config.rootpath
        )
        if lines:
            terminalreporter.write_sep("=", "cachemock: snapshots")
            for line in lines:
                terminalreporter.write_line(line)


_UNFINISHED = (
    pytest.ExitCode.INTERRUPTED,
    pytest.ExitCode.INTERNAL_ERROR,
    pytest.ExitCode.USAGE_ERROR,
)


def _takes_snapshot(item: pytest.Item) -> bool:
    """Whether the closest ``cachemock`` marker that says ``snapshot=`` turns it on."""
    for marker in item.iter_markers("cachemock"):
        if "snapshot" in marker.kwargs:
            return bool(marker.kwargs["snapshot"])
    return False


def _names(node: pytest.Item | pytest.Collector) -> list[str]:
    """The names of ``node`` below its module: ``["TestA", "test_b[1]"]``."""
    chain = node.listchain()
    for at, parent in enumerate(chain):
        if isinstance(parent, pytest.Module):
            return [below.name for below in chain[at + 1 :]]
    return [node.name]


class _XdistController:
    """Registered on a pytest-xdist controller only (xdist's hook exists only there)."""

    def __init__(self, summary: Summary | None, book: _snapshot.Book) -> None:
        self.summary = summary
        self.book = book

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        data = output.get(_WORKER_KEY)
        if data is not None and self.summary is not None:
            self.summary.merge(data)
        snapshots = output.get(_SNAP_KEY)
        if snapshots is not None:
            self.book.merge(snapshots)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cachemock", "cache mocking (pytest-cachemock)")
    group.addoption(
        "--cachemock-report",
        action="store_true",
        default=False,
        help="print a per-kind summary of cache puts, hits, misses and errors at the end",
    )
    group.addoption(
        "--cachemock-profile",
        action="append",
        default=[],
        metavar="NAME",
        help="load a built-in profile of cache kinds (e.g. torch); adds to cachemock_profiles",
    )
    parser.addini(
        "cachemock_kinds",
        type="linelist",
        default=[],
        help="cache kinds, one a line: 'name target=pkg.mod:Name switch=pkg.mod:FLAG'",
    )
    group.addoption(
        "--cachemock-isolation",
        default=None,
        metavar="MODE",
        help="isolation mode of every test's store: thread (default: a test's own threads and "
        "the threads they start), process (every thread) or shared (also child processes); "
        "overrides cachemock_isolation",
    )
    parser.addini("cachemock_profiles", type="args", default=[], help="built-in profiles to load")
    for profile in kinds._ENTRY_PROFILES:
        parser.addini(
            f"cachemock_{profile}",
            type="linelist",
            default=[],
            help=f"the caches of the {profile} profile, one a line: '[alias=]module:name' or "
            "a whole module",
        )
    parser.addini(
        "cachemock_isolation",
        default="thread",
        help="isolation mode of every test's store: thread, process or shared (the marker's wins)",
    )
    group.addoption(
        "--cachemock-verify",
        action="store_true",
        default=False,
        help="verify mode in every test: recompute each hit of every kind that can be "
        "(memoizers, kinds with a recompute function) and fail on a stale one",
    )
    parser.addini(
        "cachemock_verify",
        type="args",
        default=[],
        help="verify mode in every test, for these kinds ('all': every kind that can be)",
    )
    parser.addini(
        "cachemock_log_size",
        default="",
        help="operations each test's log keeps (the newest; default 10000, 0: none)",
    )
    group.addoption(
        "--cachemock-snapshot",
        default=None,
        metavar="MODE",
        help="snapshots of the tests marked cachemock(snapshot=True): none (compare, never "
        "write; the default when CI is true), new (write missing ones; the default), all "
        "(rewrite every one, remove unused files); overrides cachemock_snapshot",
    )
    parser.addini(
        "cachemock_snapshot",
        default="",
        help="the snapshot mode when --cachemock-snapshot is not given: none, new or all",
    )
    parser.addini(
        "cachemock_snapshot_rules",
        type="linelist",
        default=[],
        help="rules that normalise the keys of snapshots, one a line: 'REGEX => REPLACEMENT'",
    )
    parser.addini(
        "cachemock_autouse",
        type="bool",
        default=False,
        help="use the plugin (patch_caches) in every test of the suite",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)
    session = _Session(_state.Scope())
    config.stash[_SESSION] = session
    # Entered before the kinds load: a hook that makes a PatchCaches sees this session's.
    _state.enter(session.scope)
    config.pluginmanager.register(session, "cachemock-session")
    profiles = [
        (name, f"ini option cachemock_profiles ({name!r})")
        for name in config.getini("cachemock_profiles")
    ]
    profiles += [
        (name, f"option --cachemock-profile={name}")
        for name in config.getoption("cachemock_profile")
    ]
    session.autouse = _ini_bool(config, "cachemock_autouse")
    session.isolation = _isolation(config)
    verify = list(config.getini("cachemock_verify"))
    session.verify = (
        True if config.getoption("cachemock_verify") or verify == ["all"] else tuple(verify)
    )
    session.log_size = _log_size(config)
    try:
        session.snapshot_mode, session.snapshot_where = _snapshot.choose_mode(
            config.getoption("cachemock_snapshot"),
            str(config.getini("cachemock_snapshot")),
            os.environ,
        )
        session.snapshot_rules = _snapshot.parse_rules(config.getini("cachemock_snapshot_rules"))
    except ValueError as exc:
        raise pytest.UsageError(f"cachemock: {exc}") from None
    hooks = config.hook.pytest_cachemock_register_kinds.get_hookimpls()
    try:
        kinds._load(
            session.scope.registry,
            lines=config.getini("cachemock_kinds"),
            profiles=profiles,
            hooks=[impl.function for impl in reversed(hooks)],
            entries={name: config.getini(f"cachemock_{name}") for name in kinds._ENTRY_PROFILES},
        )
    except ValueError as exc:  # KindConfigError, and bad kind names
        raise pytest.UsageError(f"cachemock: {exc}") from None
    if config.getoption("cachemock_report"):
        session.summary = Summary()
        session.scope.listeners.append(session.summary.add)
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(
            _XdistController(session.summary, session.book), "cachemock-xdist-controller"
        )


def _ini_bool(config: pytest.Config, name: str) -> bool:
    """A bool ini option; a value pytest cannot read is a usage error naming the option."""
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError):  # pytest < 9 raises the first, later the second
        with warnings.catch_warnings():  # pytest 9 deprecates inicfg; no getini gives raw text
            warnings.simplefilter("ignore")
            raw = config.inicfg.get(name)
        value = getattr(raw, "value", raw)
        raise pytest.UsageError(
            f"cachemock: ini option {name} = {value!r} is not a boolean; write true or false "
            "(also accepted, in any case: yes/no, on/off, 1/0, y/n, t/f)"
        ) from None


def _isolation(config: pytest.Config) -> str:
    """The suite's isolation mode: the option's, else the ini option's; checked."""
    given = config.getoption("cachemock_isolation")
    where = f"option --cachemock-isolation={given}"
    if given is None:
        given = str(config.getini("cachemock_isolation")).strip()
        where = f"ini option cachemock_isolation = {given}"
    try:
        patching._check_isolation(given)
    except ValueError as exc:
        raise pytest.UsageError(f"cachemock: {where}: {exc}") from None
    return str(given)


def _log_size(config: pytest.Config) -> int | None:
    """The ini option cachemock_log_size, checked (None: the default)."""
    raw = str(config.getini("cachemock_log_size")).strip()
    if not raw:
        return None
    try:
        size = int(raw)
    except ValueError:
        size = -1
    if size < 0:
        raise pytest.UsageError(
            f"cachemock: ini option cachemock_log_size = {raw!r} is not a number of operations; "
            "write an int >= 0 (0 keeps no log; the default is 10000)"
        )
    return size


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        _state.leave(session.scope)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the tests that use the plugin its fixtures, and check their configuration.

    Runs after deselection (``-k``, ``-m``). What cannot work — a marker with a wrong
    argument, a kind it enables that is not known, the kinds themselves — stops the run here,
    once, as a usage error, rather than failing each test that uses the plugin.
    """
    autouse = config.stash[_SESSION].autouse
    using: list[pytest.Item] = []
    problems: dict[str, list[str]] = {}  # message -> the tests it is about
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None:
            continue
        if "patch_caches" not in names:
            if not (autouse or item.get_closest_marker("cachemock") is not None):
                continue
            # Requested like any fixture at setup; tests that don't want it pay nothing.
            names.append("patch_caches")
            _guard_first(item, names, install_first=True)
        else:
            _guard_first(item, names)
        try:
            item.stash[_OPTIONS] = _marker_options(item)
        except ValueError as exc:
            problems.setdefault(str(exc), []).append(item.nodeid)
            continue
        using.append(item)
    if using:
        session = config.stash[_SESSION]
        _check_kinds(session.scope.registry, using, problems, session.verify)
    if problems:
        raise pytest.UsageError(_problems_text(problems))


def _check_kinds(
    registry: kinds.Registry,
    using: list[pytest.Item],
    problems: dict[str, list[str]],
    verify: bool | tuple[str, ...] = (),
) -> None:
    """The kinds every test will mock, and the kinds the tests' markers enable and verify
    (and ``cachemock_verify`` names), known now."""
    try:
        registry.autoload()
        known = registry.kinds()
    except ValueError as exc:  # KindConfigError
        problems.setdefault(str(exc), [])
        return
    for name in () if isinstance(verify, bool) else verify:
        if name not in known:
            problems.setdefault(f"ini option cachemock_verify: {_unknown_kind(name, known)}", [])
    for item in using:
        options = item.stash[_OPTIONS]
        for arg in _KIND_ARGS:
            names = options.get(arg, ())
            for name in () if isinstance(names, bool) else names:
                if name not in known:
                    message = f"@pytest.mark.cachemock({arg}=...): {_unknown_kind(name, known)}"
                    problems.setdefault(message, []).append(item.nodeid)


def _problems_text(problems: dict[str, list[str]]) -> str:
    lines = []
    for message, nodeids in problems.items():
        if not nodeids:
            lines.append(f"cachemock: {message}")
            continue
        where = ", ".join(nodeids[:3])
        if len(nodeids) > 3:
            where += f" and {len(nodeids) - 3} more"
        lines.append(f"cachemock: {message} (in {where})")
    return "\n".join(lines)


def _guard_first(item: pytest.Item, names: list[str], install_first: bool = False) -> None:
    """Put the guard before the test's first function-scoped fixture.

    So it is set up after the wider-scoped fixtures (which pytest sets up first) and before,
    and torn down after, every function-scoped one, monkeypatch included (see
    ``_cachemock_guard``). With ``install_first`` (the plugin added ``patch_caches``: autouse
    or the marker) ``patch_caches`` goes right after it: the test's own fixtures already see
    the mocks and empty caches (an lru_cache a fixture warms stays warm for the test).
    """
    if _GUARD in names:
        names.remove(_GUARD)
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    at = 0
    for i, name in enumerate(names):
        found = defs.get(name)
        if found and found[-1].scope != "function":
            at = i + 1
    names.insert(at, _GUARD)
    if install_first:
        names.remove("patch_caches")
        names.insert(at + 1, "patch_caches")


@pytest.fixture(name=_GUARD)
def _cachemock_guard() -> Generator[list[PatchCaches], None, None]:
    """Put back, after every fixture of the test is gone, what a fixture restored wrongly.

    A ``monkeypatch`` set up before ``patch_caches`` saves the mock (or the switched-off flag)
    when the test patches a target, and puts it back after ``patch_caches`` restored the real
    one. Taken before any fixture of the test runs, the snapshot says what belongs there.
    """
    before = patching._snapshot()
    patches: list[PatchCaches] = []
    yield patches
    for patch in patches:
        patch.repair(before)


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    """The marker's arguments merged closest first: per argument, the closest marker's wins.

    A marker that cannot be used is a ValueError saying why (see ``_check_marker``).
    """
    options: dict[str, Any] = {}
    for marker in node.iter_markers("cachemock"):
        _check_marker(marker)
        options = {**marker.kwargs, **options}
    for arg in _KIND_ARGS:
        if isinstance(options.get(arg), str):
            options[arg] = (options[arg],)
    return options


@pytest.fixture
def patch_caches(
    request: pytest.FixtureRequest, _cachemock_guard: list[PatchCaches]
) -> Generator[PatchCaches, None, None]:
    """Mock every cache kind for this test; returns the controller (enable, entries, fail...)."""
    __tracebackhide__ = True
    node = request.node
    _last_mismatch(clear=True)
    try:
        # Checked at collection; a test that asks for the fixture by getfixturevalue() was not.
        options = node.stash.get(_OPTIONS, None)
        if options is None:
            options = _marker_options(node)
        session = request.config.stash[_SESSION]
        options = {
            "isolation": session.isolation,
            "verify": session.verify,
            "log_size": session.log_size,
            **options,
        }
        after = {arg: options.pop(arg) for arg in _AFTER_START if arg in options}
        patch = PatchCaches(switches="off", **options)
        patch.start()
        if after.get("forbid_puts"):
            patch.forbid_puts(*after["forbid_puts"])
    except (ValueError, KindConfigError) as exc:
        # What the plugin could not do, without a traceback of the plugin's own code.
        pytest.fail(f"cachemock: {exc}", pytrace=False)
    request.config.stash[_SESSION].used[node.nodeid] = patch
    _cachemock_guard.append(patch)
    try:
        yield patch
    finally:
        patch.stop()
    stale = patch.stale_hits()  # found after the call phase (threads, teardown)
    if stale:
        pytest.fail(stale, pytrace=False)
    leftovers = _leftovers(patch._box)
    if (
        leftovers is not None and node.nodeid not in request.config.stash[_SESSION].failed_calls
    ):  # strict seeds never read, forbidden puts tried
        pytest.fail(leftovers, pytrace=False)


@pytest.fixture(name="global_stats")
def _global_stats_fixture(patch_caches: PatchCaches) -> GlobalStats:
    """The per-kind stats of this test (``global_stats.kind == Stats(...)``); installs mocks."""
    return _global_stats


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    if op == "==" and isinstance(left, Stats) and isinstance(right, Stats):
        return _explain_mismatch(left, right)
    return None
