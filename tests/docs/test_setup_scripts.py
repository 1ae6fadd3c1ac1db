"""The set-up scripts (README's opening commands): what the main job installs, and the stamp of
scripts/_venv.sh that skips pip when nothing that decides the install changed.

The stamp is run for real (bash sourcing _venv.sh) against a venv whose ``python`` forwards to
this interpreter except for ``-m pip``, which it logs: so the test sees every pip call the
scripts would make, without installing anything. .ci/run runs the scripts themselves.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _install_args(script: str) -> list[str]:
    """The arguments each ``venv_install DIR ARGS...`` line of ``script`` passes."""
    calls = [
        shlex.split(line)
        for line in (SCRIPTS / script).read_text().splitlines()
        if line.strip().startswith("venv_install ")
    ]
    assert calls, f"{script} does not call venv_install"
    return [arg for call in calls for arg in call[1:]]


def test_the_main_job_installs_the_package_alone() -> None:
    args = _install_args("examples.sh")
    # No extras (no torch, mypy, ruff); cachetools for the shop's stock cache.
    assert args == [".venv-examples", "-e", ".", "cachetools==6.2.6"], args
    assert "setup.sh" not in (SCRIPTS / "examples.sh").read_text()
    assert ".venv-examples/" in (ROOT / ".gitignore").read_text().splitlines()
    # The package's own dependencies hold no test or torch tool.
    deps = re.search(
        r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M
    )
    assert deps is not None
    assert not re.search(r"torch|mypy|ruff|coverage", deps.group(1))


def test_each_setup_script_uses_the_shared_stamp() -> None:
    for script in ("setup.sh", "setup-notorch.sh", "examples.sh"):
        text = (SCRIPTS / script).read_text()
        assert "source scripts/_venv.sh" in text, script
        assert "pip install" not in text, f"{script} calls pip itself, past the stamp"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with pyproject.toml and a venv whose pip calls are logged."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    fake = bindir / "python"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        '  echo "$*" >> "$(dirname "$0")/../pip.log"\n'
        '  exit "${FAIL_PIP:-0}"\n'
        "fi\n"
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    fake.chmod(0o755)
    return tmp_path


def _run(project: Path, *args: str, fail_pip: bool = False) -> list[str]:
    """Run ``venv_install venv ARGS`` and return the pip calls it made."""
    log = project / "venv" / "pip.log"
    log.unlink(missing_ok=True)
    script = f"set -euo pipefail; source {shlex.quote(str(SCRIPTS / '_venv.sh'))}; "
    script += "venv_install venv " + " ".join(map(shlex.quote, args))
    env = {"PATH": "/usr/bin:/bin", "FAIL_PIP": "1" if fail_pip else "0"}
    proc = subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True
    )
    assert (proc.returncode != 0) == fail_pip, proc.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_a_rerun_calls_no_pip(project: Path) -> None:
    first = _run(project, "-e", ".[test]")
    assert first[-1] == "-m pip install -q --disable-pip-version-check -e .[test]"
    assert _run(project, "-e", ".[test]") == []  # nothing changed: no pip at all


def test_a_change_that_decides_the_install_reinstalls(project: Path) -> None:
    _run(project, "-e", ".[test]")
    assert _run(project, "-e", ".") != []  # other arguments
    assert _run(project, "-e", ".") == []
    with (project / "pyproject.toml").open("a") as f:
        f.write('version = "2"\n')
    assert _run(project, "-e", ".") != []  # pyproject.toml changed
    assert _run(project, "-e", ".") == []


def test_a_failed_install_is_retried(project: Path) -> None:
    assert _run(project, "-e", ".", fail_pip=True) != []
    assert not (project / "venv" / ".cachemock-install").exists()
    assert _run(project, "-e", ".") != []  # no stamp was written: pip runs again
