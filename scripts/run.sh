#!/usr/bin/env bash
# Fresh machine -> running product: install into .venv, build the default model's ONNX files, start the app
# on the embedded Qdrant store under ./data, listening on 127.0.0.1:8501 (.streamlit/config.toml; streamlit flags
# such as --server.address pass through). The first start prints an admin password (python -m app.auth --set
# replaces it). The same server serves the HTTP API at /api/v1 (docs/api.md; admin tokens: python -m api token
# create NAME) and runs the synced folders; `python -m indexer ...` talks to it while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Tesseract for OCR of scanned PDF pages and images (Debian packages: English; more: tesseract-ocr-<lang>).
if ! command -v tesseract >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) \
    || echo "warning: could not install tesseract-ocr; scanned pages and images will fail with that reason"
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[cpu,torch,app]"
.venv/bin/python -m embedder prepare
exec .venv/bin/python -m app.server --server.headless true "$@"
