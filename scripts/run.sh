#!/usr/bin/env bash
# Fresh machine -> running product: install into .venv, build the default model's ONNX files, start the app
# on the embedded Qdrant store under ./data. Set MOESEARCH_ADMIN_PASSWORD_HASH (python -m app.auth) for admin pages.
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
exec .venv/bin/streamlit run app/main.py --server.headless true "$@"
