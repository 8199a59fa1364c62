#!/usr/bin/env bash
# Install the project with its test extras into .venv (idempotent) and run the test suite.
# Heavy checks are behind `-m slow` (see bench/ and `pytest -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Headless Chromium for the end-to-end browser test (Debian packages; Playwright never downloads a browser).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; the e2e browser test will be skipped with its reason"
fi
# Tesseract for OCR of scanned PDF pages and images (Debian packages: English; more: tesseract-ocr-<lang>).
if ! command -v tesseract >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr >/dev/null) \
    || echo "warning: could not install tesseract-ocr; scanned pages and images will fail with that reason"
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/pip install -q --disable-pip-version-check -e ".[cpu,torch,app,train,dev]"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
