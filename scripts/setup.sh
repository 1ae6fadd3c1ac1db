#!/usr/bin/env bash
# Create .venv (if missing) and install the package with everything tests, lint and benchmarks
# need; skipped when nothing that decides the install changed (scripts/_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
VENV_INSTALLED=0
# torch is pinned so that every run tests the same version. The pin does not choose the build:
# from the public index the Linux wheel pulls the CUDA libraries (several GB); the CPU build
# comes from https://download.pytorch.org/whl/cpu (see README.md, Development).
venv_install .venv -e '.[test,torch]'
if [ "$VENV_INSTALLED" = 1 ]; then
  .venv/bin/python -c "import pytest_cachemock, torch, diskcache, cachetools"
fi
