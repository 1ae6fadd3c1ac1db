#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: the example suite with the per-kind stats report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd examples
../.venv/bin/python -m pytest --cachemock-report "$@"
