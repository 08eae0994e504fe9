"""`assistant serve --watch` with the real bundled model: a file copied into the corpus of a running server answers
questions within seconds, with no build command and no restart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.helpers import ROOT, free_port

FACT = (
    "The Varnholt lighthouse on Skerra Island was painted violet in 1987, "
    "after the harbour master Ingrid Solvang won a village vote on its colour."
)
QUESTION = "What colour was the Varnholt lighthouse painted?"


def test_a_file_copied_into_a_watched_corpus_answers_within_30_seconds(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "assistant", "serve", "--watch", "--corpus", str(corpus),
               "--index", str(tmp_path / "index"), "--port", str(port)]  # fmt: skip
    with open(log, "w") as output:
        server = subprocess.Popen(command, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # the first build and the warm-up, on a busy 2-core machine
        while not _ready(base + "/readyz"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        assert _new_passages(base) == [], "the fact is found before its file is in the corpus"
        (tmp_path / "lighthouse.txt").write_text(FACT)
        shutil.copy(tmp_path / "lighthouse.txt", corpus / "lighthouse.txt")
        copied = time.monotonic()
        while not (found := _new_passages(base)):
            assert server.poll() is None and time.monotonic() - copied < 30, log.read_text()
            time.sleep(0.5)
        assert "violet" in found[0]["text"]
        # the build that read it may be the one that catches up at start; the one the copy asked for follows
        while "lighthouse.txt" not in _last_build(base).get("reason", ""):
            assert time.monotonic() - copied < 60, _last_build(base)
            time.sleep(0.5)
        assert _last_build(base)["error"] is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text()


def _new_passages(base: str) -> list[dict]:
    """The passages of the answer to QUESTION that come from the new file."""
    request = urllib.request.Request(
        base + "/api/ask", json.dumps({"question": QUESTION, "k": 3}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return [p for p in answer["passages"] if p["source"] == "lighthouse.txt"]


def _last_build(base: str) -> dict:
    """The status's record of the server's last build ({} before the first has finished)."""
    with urllib.request.urlopen(base + "/api/status", timeout=10) as response:
        return json.loads(response.read())["last_build"] or {}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False
