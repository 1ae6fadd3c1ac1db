#!/usr/bin/env bash
# The main job: the example suite with the per-kind stats report, in .venv-examples, which has
# the package and what it depends on (pytest), cachetools for the shop's stock cache, and
# nothing else: no torch, no linters. The
# install is skipped when nothing that decides it changed (scripts/_venv.sh). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
venv_install .venv-examples -e . "cachetools==6.2.6"
cd examples
exec ../.venv-examples/bin/python -m pytest --cachemock-report "$@"
