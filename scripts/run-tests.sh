#!/usr/bin/env bash
# Set up (virtualenv + install with the test and milvus extras (Milvus Lite runs the Milvus tests), Debian's Chromium and nginx for the browser and proxy tests)
# and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/sbin/nginx ]; then
    apt-get update -qq && apt-get install -y -qq chromium nginx-light > /dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,milvus]'
exec .venv/bin/python -m pytest "$@"
