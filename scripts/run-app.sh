#!/usr/bin/env bash
# Set up (virtualenv + install, CPU torch from pyproject's pin) and run the app on corpus/.
# The app builds the index first if there is none, then serves http://127.0.0.1:7860 (ASSISTANT_HOST/PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# ASSISTANT_STORE=milvus needs the milvus extra (pymilvus, Milvus Lite); the default stays FAISS-only
extra=""
[ "${ASSISTANT_STORE:-faiss}" = "milvus" ] && extra="[milvus]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extra"
cat >&2 <<HINT
the assistant's command line is in the virtualenv: .venv/bin/assistant --help
  (or: source .venv/bin/activate, then: assistant build / assistant ask "..." / assistant status)
HINT
exec .venv/bin/python app.py
