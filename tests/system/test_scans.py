"""End to end on a scan of the seed article, with Debian's Tesseract and the real bundled model: the scanned PDF
alone, and its PNG pages alone, each answer "Which countries took part?" with exactly the 21 participants, through
the CLI (build, then ask --json, in subprocesses) and through the chat's own function, and every passage says that
OCR read it. The scan is made at test time (tests.helpers.make_scan: DejaVu Sans at 200 dpi, black on white)."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys

import pytest
from bs4 import BeautifulSoup

from assistant.config import Settings
from assistant.index.faiss.store import open_index
from assistant.serve.ui import chat_turn
from assistant.service import Assistant
from tests.helpers import PARTICIPANTS, ROOT, make_scan

pytestmark = pytest.mark.model  # the real embedding model, in the CLI's processes and in the chat's
SEED = ROOT / "corpus" / "unodc-regional-conference-islamabad.txt"
QUESTION = "Which countries took part?"


def cli(settings: Settings, *args: str) -> dict:
    """What `python -m assistant <args>` prints as JSON, run in a subprocess on these settings' corpus and index."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ASSISTANT_CORPUS": str(settings.corpus),
        "ASSISTANT_INDEX": str(settings.index),
    }
    done = subprocess.run(
        [sys.executable, "-m", "assistant", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=["pdf", "png"])
def scanned(request, tmp_path_factory) -> Settings:
    """The settings of a corpus holding only the scanned PDF, or only its PNG pages, built by the CLI."""
    folder = tmp_path_factory.mktemp(f"scan-{request.param}")
    pdf, pngs = make_scan(SEED.read_text(encoding="utf-8"), folder / "scans")
    files = [pdf] if request.param == "pdf" else pngs
    settings = Settings(corpus=folder / "corpus", index=folder / "index")
    settings.corpus.mkdir()
    for path in files:
        shutil.copy(path, settings.corpus / path.name)
    summary = cli(settings, "build", "--json")
    assert summary["added"] == len(files) and summary["skipped"] == []
    return settings


def test_the_cli_answers_the_21_countries_from_the_scan_and_its_passages_say_ocr(scanned):
    answer = cli(scanned, "ask", "--json", QUESTION)
    assert [item["text"] for item in answer["answer"]["items"]] == PARTICIPANTS
    assert answer["passages"] and all(passage["ocr"] is True for passage in answer["passages"])


def test_the_chat_answers_the_21_countries_from_the_scan_and_shows_read_by_ocr(scanned, real_embedder):
    history, _ = chat_turn(Assistant(scanned, real_embedder), QUESTION, [], 5, None)
    reply = BeautifulSoup(history[-1]["content"], "html.parser")
    first = reply.select_one(".answer")  # the best document's list; another page may answer too ("Also in …")
    assert first is not None and [item.strong.get_text() for item in first.select("li")] == PARTICIPANTS
    sources = [source.get_text() for source in reply.select(".passage .source")]
    assert sources and all("read by OCR" in source for source in sources)


def test_ocr_reads_over_99_percent_of_the_seed_article_s_characters(scanned):
    index = open_index(scanned.index)
    try:
        read = " ".join(row["text"] for _, row in sorted(index.documents().items()))  # scan-1.png, scan-2.png
    finally:
        index.close()
    accuracy = character_accuracy(read, SEED.read_text(encoding="utf-8"))
    print(f"OCR character accuracy on the seed article ({scanned.corpus.parent.name}): {accuracy:.4f}")
    assert accuracy > 0.99


def character_accuracy(read: str, truth: str) -> float:
    """1 - edits / characters of the truth, spaces collapsed on both sides. The edits are difflib's: each run that
    differs counts as its longer side, an upper bound on the Levenshtein distance."""
    read, truth = " ".join(read.split()), " ".join(truth.split())
    matcher = difflib.SequenceMatcher(None, read, truth, autojunk=False)
    edits = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return 1 - edits / len(truth)
