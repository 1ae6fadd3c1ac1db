"""Naming a ``django_<alias>`` kind while the django profile is not loaded says how to load it:
a pytester run of a small Django project, first without ``cachemock_profiles = django`` (the
message, at each place an unknown kind is named), then with it (the hint's advice works)."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

CONFTEST = """
from django.conf import settings

settings.configure(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
)


def pytest_cachemock_register_kinds(registry):
    registry.add("prices")
"""

TESTS = """
import pytest
from django.core.cache import cache


def test_stats(global_stats):
    cache.set("k", 1)
    assert global_stats.django_default.puts == 1


def test_enable(patch_caches):
    patch_caches.enable("django_default")
"""

HINT = (
    "'django_default' looks like a kind of the built-in 'django' profile, which is not loaded "
    "(it makes a kind django_<alias> for each alias of settings.CACHES): add it to the pytest "
    "configuration, cachemock_profiles = django (or pass --cachemock-profile=django; outside "
    "pytest, call registry.load_profile('django'))."
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_caches=TESTS)
    return pytester


def test_without_the_profile_each_unknown_django_kind_names_the_ini_line(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest_subprocess()
    result.assert_outcomes(failed=2)
    message = "unknown cache kind 'django_default'. Known kinds: prices. " + HINT
    # global_stats.django_default: UnknownKindError; enable(): UnknownKindUsageError.
    result.stdout.fnmatch_lines(
        [
            f"E   *pytest_cachemock.errors.UnknownKindError: {message}",
            f"E   *pytest_cachemock.errors.UnknownKindUsageError: {message}",
        ],
        consecutive=False,
    )


def test_the_marker_names_it_at_collection(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.cachemock(enable="django_default")
        def test_marked():
            pass
        """
    )
    result = project.runpytest_subprocess("test_marked.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: cachemock: @pytest.mark.cachemock(enable=...): unknown cache kind "
        f"'django_default'. Known kinds: prices. {HINT} (in test_marked.py::test_marked)\n"
    ) in result.stderr.str()


@pytest.mark.parametrize(
    ("ini", "args"),
    [
        ("[pytest]\ncachemock_profiles = django\n", ()),
        ("[pytest]\n", ("--cachemock-profile=django",)),
    ],
    ids=["ini", "option"],
)
def test_doing_what_the_hint_says_makes_the_kind_known(
    project: pytest.Pytester, ini: str, args: tuple[str, ...]
) -> None:
    project.makeini(ini)
    result = project.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)


def test_no_hint_once_a_django_kind_is_known() -> None:
    from pytest_cachemock.errors import _unknown_kind

    message = _unknown_kind("django_other", ["django_default", "prices"])
    assert message == (
        "unknown cache kind 'django_other'. Did you mean 'django_default'? "
        "Known kinds: django_default, prices."
    )
    assert "profile" not in _unknown_kind("djangodefault", ["prices"])
