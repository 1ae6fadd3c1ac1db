#!/usr/bin/env bash
# Create .venv (if missing) and install the package with everything tests, lint and benchmarks need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# torch is pinned: an open range could pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,torch]'
.venv/bin/python -c "import pytest_cachemock, torch, diskcache, cachetools" 
