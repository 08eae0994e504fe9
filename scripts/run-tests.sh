#!/usr/bin/env bash
# Set up (virtualenv + install with the test, milvus and onnx extras, Debian's Chromium and nginx for the browser and
# proxy tests, Tesseract and the DejaVu fonts for the OCR tests, which render scans), check the code with ruff (lint
# and format) and mypy, then run every test; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/sbin/nginx ] || [ ! -x /usr/bin/tesseract ] \
    || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
    apt-get update -qq && apt-get install -y -qq chromium nginx-light tesseract-ocr fonts-dejavu-core > /dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,milvus,onnx]'
.venv/bin/ruff check assistant app.py tests benchmarks
.venv/bin/ruff format --check assistant app.py tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
