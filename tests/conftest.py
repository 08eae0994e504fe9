"""Shared fixtures: a deterministic fake embedder for fast tests, the real one for end-to-end tests, a corpus and
its settings. The helpers that are not fixtures (FakeEmbedder, ROOT, free_port, ...) are in tests/helpers.py."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from assistant.config import Settings
from tests.helpers import ROOT, FakeEmbedder

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    from assistant.embedding import Embedder

    return Embedder()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No test reads the developer's ASSISTANT_* settings."""
    import os

    for var in [v for v in os.environ if v.startswith("ASSISTANT_")]:
        monkeypatch.delenv(var)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, corpus: Path) -> Settings:
    return Settings(corpus=corpus, index=tmp_path / "index", model="fake", min_score=-1.0)


@pytest.fixture
def assistant(settings, corpus, fake_embedder):
    """An Assistant over a one-document index built with the fake embedder (API, security, hostile queries)."""
    from assistant.index import build_index
    from assistant.service import Assistant

    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    build_index(settings, fake_embedder)
    return Assistant(settings, fake_embedder)


@pytest.fixture
def seed_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "seed"
    shutil.copytree(ROOT / "corpus", folder)
    return folder


# ---- the README's Reliability table ------------------------------------------------------------

_RELIABILITY_LOG = os.environ.get("RELIABILITY_LOG")  # set by benchmarks/reliability.py


@pytest.fixture
def reliability(request):
    """Record what a reliability test tried, for the README's Reliability table.

    Call it after the test's assertions: reliability(area, item, tried=..., survived=..., lost=0, detail="").
    area is one of "load", "faults", "files", "queries", "security". benchmarks/reliability.py runs the suite
    with RELIABILITY_LOG set, joins these records to each test's outcome and prints the table; without
    RELIABILITY_LOG nothing is written."""

    def record(area: str, item: str, tried: int = 1, survived: int | None = None, lost: int = 0, detail: str = "") -> None:
        if not _RELIABILITY_LOG:
            return
        entry = {"test": request.node.nodeid, "area": area, "item": item, "tried": tried,
                 "survived": tried if survived is None else survived, "lost": lost, "detail": detail}
        with open(_RELIABILITY_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    return record
