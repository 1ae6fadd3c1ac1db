"""The pytest plugin (entry point ``cachemock``): hooks, fixtures, the marker, options.

Everything of substance lives in the modules it imports; this one wires them to pytest.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any, Callable

import pytest

from . import hookspecs, patching
from .kinds import KindConfigError, Registry
from .patching import PatchCaches
from .stats import GlobalStats, Stats, explain_mismatch, last_mismatch
from .stats import global_stats as _global_stats

# node id -> the PatchCaches of a test that uses the plugin, until its last report.
# Rebound per session (see pytest_configure), so a nested session with the same node ids
# cannot take the outer session's entries.
_used: dict[str, PatchCaches] = {}
_used_key = pytest.StashKey[dict[str, PatchCaches]]()
_summary_key = pytest.StashKey["Summary"]()
_registry_key = pytest.StashKey[Registry]()
_listeners_key = pytest.StashKey[list[Callable[[dict[str, Stats]], None]]]()
# node id -> how many PatchCaches.setUp() were open when its setup phase ended (when any were).
_setups_before: dict[str, int] = {}
_setups = patching._setups
GUARD = "_cachemock_guard"

MARKER = (
    "cachemock(*, enable=(), isolation='thread'): use the cachemock plugin in this test: mock "
    "every cache kind, with the real caches of `enable` turned on."
)


def _marker_args(*, enable: Iterable[str] | str = (), isolation: str = "thread") -> dict[str, Any]:
    if isinstance(enable, str):
        enable = (enable,)
    return {"enable": tuple(enable), "isolation": isolation}


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
    parser.addini("cachemock_profiles", type="args", default=[], help="built-in profiles to load")
    parser.addini(
        "cachemock_autouse",
        type="bool",
        default=False,
        help="use the plugin (patch_caches) in every test of the suite",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _used
    config.addinivalue_line("markers", MARKER)
    config.stash[_used_key] = _used
    _used = {}
    # A registry per session: a nested session (pytester's inline runs) gets its own and puts
    # the outer one's back at its end.
    config.stash[_registry_key] = patching.default_registry
    registry = patching.default_registry = Registry()
    config.stash[_listeners_key] = patching.stop_listeners
    patching.stop_listeners = []
    try:
        for number, line in enumerate(config.getini("cachemock_kinds"), start=1):
            registry.add_line(line, f"ini option cachemock_kinds, line {number} ({line.strip()!r})")
        # A profile named in the ini and on the command line (or twice) is loaded once.
        profiles: dict[str, str] = {}
        for name in config.getini("cachemock_profiles"):
            profiles.setdefault(name, f"ini option cachemock_profiles ({name!r})")
        for name in config.getoption("cachemock_profile"):
            profiles.setdefault(name, f"option --cachemock-profile={name}")
        for name, origin in profiles.items():
            registry.load_profile(name, origin)
        for impl in reversed(config.hook.pytest_cachemock_register_kinds.get_hookimpls()):
            # One call per implementation, so an error can name where the kind was declared.
            where = getattr(impl.function, "__code__", None)
            place = f"{where.co_filename}:{where.co_firstlineno}" if where else impl.plugin_name
            with registry.declaring(f"hook pytest_cachemock_register_kinds in {place}"):
                impl.function(registry=registry)
    except ValueError as exc:  # KindConfigError, and bad kind names
        raise pytest.UsageError(f"cachemock: {exc}") from None
    if config.getoption("cachemock_report"):
        summary = Summary()
        config.stash[_summary_key] = summary
        patching.stop_listeners.append(summary.add)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _used
    used = config.stash.get(_used_key, None)
    if used is not None:
        _used = used
    summary = config.stash.get(_summary_key, None)
    if summary is not None and summary.add in patching.stop_listeners:
        patching.stop_listeners.remove(summary.add)
    outer = config.stash.get(_registry_key, None)
    if outer is not None:
        patching.default_registry = outer
    listeners = config.stash.get(_listeners_key, None)
    if listeners is not None:
        patching.stop_listeners = listeners


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    autouse = config.getini("cachemock_autouse")
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None:
            continue
        if "patch_caches" not in names:
            if not (autouse or item.get_closest_marker("cachemock") is not None):
                continue
            # Requested like any fixture at setup; tests that don't want it pay nothing.
            names.append("patch_caches")
        _guard_first(item, names)


def _guard_first(item: pytest.Item, names: list[str]) -> None:
    """Put the guard before the test's first function-scoped fixture.

    So it is set up after the wider-scoped fixtures (which pytest sets up first) and before,
    and torn down after, every function-scoped one, monkeypatch included (see
    ``_cachemock_guard``).
    """
    if GUARD in names:
        names.remove(GUARD)
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    at = 0
    for i, name in enumerate(names):
        found = defs.get(name)
        if found and found[-1].scope != "function":
            at = i + 1
    names.insert(at, GUARD)


@pytest.fixture(name=GUARD)
def _cachemock_guard() -> Generator[list[PatchCaches], None, None]:
    """Put back, after every fixture of the test is gone, what a fixture restored wrongly.

    A ``monkeypatch`` set up before ``patch_caches`` saves the mock (or the switched-off flag)
    when the test patches a target, and puts it back after ``patch_caches`` restored the real
    one. Taken before any fixture of the test runs, the snapshot says what belongs there.
    """
    before = patching.snapshot()
    patches: list[PatchCaches] = []
    yield patches
    for patch in patches:
        patch.repair(before)


@pytest.fixture
def patch_caches(
    request: pytest.FixtureRequest, _cachemock_guard: list[PatchCaches]
) -> Generator[PatchCaches, None, None]:
    """Mock every cache kind for this test; returns the controller (enable, entries, fail...)."""
    marker = request.node.get_closest_marker("cachemock")
    options: dict[str, Any] = {}
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"{request.node.nodeid}: @pytest.mark.cachemock takes keyword arguments only "
                f"(enable=..., isolation=...), got {marker.args!r}"
            )
        try:
            options = _marker_args(**marker.kwargs)
        except TypeError as exc:
            raise pytest.UsageError(
                f"{request.node.nodeid}: @pytest.mark.cachemock: {exc}"
            ) from None
    last_mismatch(clear=True)
    try:
        patch = PatchCaches(switches="off", **options)
        patch.start()
    except (ValueError, KindConfigError) as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: cachemock: {exc}") from None
    nodeid = request.node.nodeid
    _used[nodeid] = patch
    _cachemock_guard.append(patch)
    try:
        yield patch
    finally:
        patch.stop()


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid: str) -> None:
    if _used:
        _used.pop(nodeid, None)


@pytest.fixture(name="global_stats")
def global_stats_fixture(patch_caches: PatchCaches) -> GlobalStats:
    """The per-kind stats of this test (``global_stats.kind == Stats(...)``); installs mocks."""
    return _global_stats


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    if op == "==" and isinstance(left, Stats) and isinstance(right, Stats):
        return explain_mismatch(left, right)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A plain hook on the report (not a wrapper around making it): cheapest for the many
    # tests that do not use the plugin.
    if _setups or _setups_before:
        _close_leftover_setups(report)
    if not report.failed or not _used:
        return
    patch = _used.get(report.nodeid)
    if patch is not None:
        text = patch.report()
        mismatch = last_mismatch()
        if mismatch is not None:
            text = "\n".join(explain_mismatch(*mismatch)) + "\n" + text
        report.sections.append((f"cachemock ({report.when})", text))


def _close_leftover_setups(report: pytest.TestReport) -> None:
    """Tear down the ``PatchCaches.setUp()`` calls a test opened and left open.

    A unittest ``setUp`` that raises after ``PatchCaches.setUp()`` never reaches ``tearDown``.
    Under pytest a TestCase's setUp, test and tearDown all run in the call phase, while
    ``setUpClass`` runs in the setup phase: what the call phase left open is a leftover.
    """
    if report.when == "setup":
        if _setups:
            _setups_before[report.nodeid] = len(_setups)
    elif report.when == "call":
        patching.close_setups(_setups_before.pop(report.nodeid, 0))
    else:
        _setups_before.pop(report.nodeid, None)


class Summary:
    """Per-kind totals over the session, for ``--cachemock-report``."""

    def __init__(self) -> None:
        self.totals: dict[str, Stats] = {}
        self.tests: dict[str, int] = {}

    def add(self, stats: dict[str, Stats]) -> None:
        for kind, value in stats.items():
            self.totals[kind] = self.totals.get(kind, Stats()) + value
            if any(value.as_tuple()):
                self.tests[kind] = self.tests.get(kind, 0) + 1

    def lines(self) -> list[str]:
        header = ("kind", "tests", "puts", "hits", "misses", "errors")
        rows = [
            (kind, str(self.tests.get(kind, 0)), *(str(n) for n in value.as_tuple()))
            for kind, value in sorted(self.totals.items())
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = []
        for row in [header, *rows]:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            out.append("  ".join(cells))
        return out


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = config.stash.get(_summary_key, None)
    if summary is None:
        return
    terminalreporter.write_sep("=", "cachemock: cache stats per kind")
    if not summary.totals:
        terminalreporter.write_line("no test used the cachemock plugin")
        return
    for line in summary.lines():
        terminalreporter.write_line(line)
