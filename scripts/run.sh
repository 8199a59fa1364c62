#!/usr/bin/env bash
# Fresh machine -> running product: install into .venv, build the default model's ONNX files, start the app
# on the embedded Qdrant store under ./data. Set MOESEARCH_ADMIN_PASSWORD_HASH (python -m app.auth) for admin pages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[cpu,torch,app]"
.venv/bin/python -m embedder prepare
exec .venv/bin/streamlit run app/main.py --server.headless true "$@"
