"""Shared fixtures: a deterministic fake embedder for fast tests, the real one for end-to-end tests, a corpus and
its settings. The helpers that are not fixtures (FakeEmbedder, ROOT, free_port, ...) are in tests/helpers.py;
the `reliability` fixture, which records for benchmarks/reliability.py, is in benchmarks/recorder.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.config import Settings
from benchmarks.recorder import reliability  # noqa: F401
from tests.helpers import ROOT, FakeEmbedder


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
    yield
    from assistant import entities

    entities.keep_parses(None)  # an Assistant keeps parses in its index folder: the next test's is another


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
