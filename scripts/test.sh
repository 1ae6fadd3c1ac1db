#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
# The whole suite (no arguments) runs under coverage, and fails below the floor in
# pyproject.toml ([tool.coverage.report] fail_under); a run of some tests is not measured.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
rm -f .coverage .coverage.*
status=0
# Two workers (pytest-xdist): the machines have 2 cores. coverage measures them as it does
# any Python child process.
.venv/bin/python -m coverage run -m pytest -q -n 2 || status=$?
# One data file per measured process (pyproject.toml: patch = subprocess): add them up.
.venv/bin/python -m coverage combine -q
report=0
.venv/bin/python -m coverage report || report=$?
if [ "$status" -eq 0 ]; then status=$report; fi
exit "$status"
