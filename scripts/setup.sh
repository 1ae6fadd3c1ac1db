#!/usr/bin/env bash
# Create .venv (if missing) and install the package with everything tests, lint and benchmarks need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# torch is pinned so that every run tests the same version. The pin does not choose the build:
# from the public index the Linux wheel pulls the CUDA libraries (several GB); the CPU build
# comes from https://download.pytorch.org/whl/cpu (see README.md, Development).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,torch]'
.venv/bin/python -c "import pytest_cachemock, torch, diskcache, cachetools" 
