#!/usr/bin/env bash
# Create .venv-notorch (if missing): the package with its test extra and without torch, for
# CI's second look (mypy --strict and the tests that do not need torch, where torch is absent).
# The install is skipped when nothing that decides it changed (scripts/_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
venv_install .venv-notorch -e '.[test]'
if .venv-notorch/bin/python -c "import torch" 2>/dev/null; then
  echo "setup-notorch: torch is importable in .venv-notorch; it must not be" >&2
  exit 1
fi
.venv-notorch/bin/python -c "import pytest_cachemock, diskcache, cachetools"
