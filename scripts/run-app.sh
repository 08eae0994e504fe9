#!/usr/bin/env bash
# Set up (virtualenv + install, CPU torch from pyproject's pin) and run the app on corpus/.
# The app builds the index first if there is none, then serves http://127.0.0.1:7860 (ASSISTANT_HOST/PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python app.py
