#!/usr/bin/env bash
# Fresh machine -> running product: install into .venv, build the default model's ONNX files, start the app.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[cpu,torch]"
.venv/bin/python -m embedder prepare
exec .venv/bin/python -m embedder embed "moesearch is ready" --query
