"""Shared fixtures: a deterministic fake embedder for fast tests, and the real one for end-to-end tests."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
_WORD = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Bag-of-words vectors hashed into 64 dimensions: same interface as Embedder, no model, no torch."""

    name = "fake"
    precision = "fp32"
    dimension = 64
    max_tokens = 254

    def __init__(self) -> None:
        self.embedded = 0
        self.texts: list[str] = []

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]

    def encode(self, texts: list[str], progress=None, remember: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        self.texts.extend(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if progress:
            progress(len(texts), len(texts))
        return vectors / np.where(norms == 0, 1, norms)


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


def read_corpus(corpus: Path, max_file_mb: float = 50.0, max_file_seconds: float = 20.0):
    """(documents, skipped files) of a corpus, read by the build's own walk with nothing indexed yet."""
    from assistant.ingest import scan_corpus

    scan = scan_corpus(Settings(corpus=corpus, max_file_mb=max_file_mb, max_file_seconds=max_file_seconds), {})
    return scan.fresh, scan.skipped


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"not ready within {timeout:.0f} s"
        time.sleep(0.05)


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
