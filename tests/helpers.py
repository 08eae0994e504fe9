"""Shared helpers of the tests that are not fixtures: a deterministic fake embedder, the repository root, the
build's own walk of a corpus, a free port, a wait, Chromium, and the seed article's participants. Import them
with `from tests.helpers import ...`; the fixtures are in tests/conftest.py."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from pathlib import Path

import numpy as np

from assistant.config import Settings

ROOT = Path(__file__).resolve().parent.parent  # the repository root
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


CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright cannot download its own here
# the 21 countries the seed article lists as taking part, in its order
PARTICIPANTS = ["Pakistan", "Afghanistan", "Iran", "Turkey", "Greece", "Spain", "Italy", "Austria", "Oman", "Qatar",
                "Bahrain", "Saudi Arabia", "Kuwait", "Thailand", "Malaysia", "Indonesia", "Hungary",
                "Russian Federation", "Czech Republic", "UAE", "Iraq"]  # fmt: skip


def launch_chromium(playwright):
    """Debian's Chromium, headless, with no calls out of the machine (no background networking, no updates)."""
    flags = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
             "--disable-sync"]  # fmt: skip
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)


def read_as_headed_guide(monkeypatch) -> None:
    """guide.txt reads as a two-section guide whose second section came from OCR, as the format
    readers that know headings and OCR produce it: for the stores' tests of `section` and `ocr`."""
    import hashlib

    import assistant.ingest
    from assistant.documents import Document, Section

    install = "Run the installer from the first disc and answer its questions."
    upgrade = "Back up your data first. Then change the sources and upgrade every package."
    text = f"{install}\n\n{upgrade}"
    sections = (
        Section(0, len(install), heading=("Guide", "Installing")),
        Section(len(install) + 2, len(text), heading=("Guide", "Upgrading"), ocr=True),
    )

    original = assistant.ingest.read_document

    def read(path: Path, rel: str, *args, **kwargs) -> Document:
        if rel != "guide.txt":
            return original(path, rel, *args, **kwargs)
        return Document(rel, "Admin guide", text, hashlib.sha256(path.read_bytes()).hexdigest(), sections)

    monkeypatch.setattr(assistant.ingest, "read_document", read)


def assert_section_and_ocr_reach_the_passage(settings, embedder) -> None:
    """After a build over read_as_headed_guide's corpus: search returns each passage with its heading path and
    OCR flag, in the JSON too, and the document keeps its sections."""
    from assistant.service import Assistant

    answer = Assistant(settings, embedder).ask("upgrade every package", 5)
    found = {p.section: p for p in answer.passages if p.source == "guide.txt"}
    assert set(found) == {"Guide › Installing", "Guide › Upgrading"}
    assert found["Guide › Upgrading"].ocr and not found["Guide › Installing"].ocr
    shown = found["Guide › Upgrading"].to_json()
    assert shown["section"] == "Guide › Upgrading" and shown["ocr"] is True
