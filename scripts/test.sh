#!/usr/bin/env bash
# Install the project with its test extras into .venv (idempotent) and run the test suite.
# Heavy checks are behind `-m slow` (see bench/ and `pytest -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[cpu,torch,dev]"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
