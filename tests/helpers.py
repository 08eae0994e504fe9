"""Shared helpers of the tests that are not fixtures: a deterministic fake embedder, the repository root, the
build's own walk of a corpus, a free port, a wait, Chromium, the seed article's participants, and scans of a text
(for OCR). Import them with `from tests.helpers import ...`; the fixtures are in tests/conftest.py."""

from __future__ import annotations

import hashlib
import re
import socket
import textwrap
import time
from pathlib import Path

import numpy as np

from assistant.config import Ocr, Settings

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
        if progress:
            progress(len(texts), len(texts))
        return self._vectors(texts)

    def encode_passages(self, texts: list[str], spans, progress=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The texts' vectors, and each span's as if embedded alone (a real model pools the passage's own)."""
        pooled = [
            self._vectors([text[s:e] for s, e in found]).astype(np.float16).reshape(len(found), self.dimension)
            for text, found in zip(texts, spans)
        ]
        return self.encode(texts, progress), pooled

    def _vectors(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def read_corpus(corpus: Path, max_file_mb: float = 50.0, max_file_seconds: float = 20.0, ocr: Ocr = "auto"):
    """(documents, skipped files) of a corpus, read by the build's own walk with nothing indexed yet."""
    from assistant.ingest import scan_corpus

    settings = Settings(corpus=corpus, max_file_mb=max_file_mb, max_file_seconds=max_file_seconds, ocr=ocr)
    scan = scan_corpus(settings, {})
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


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core: run-tests.sh installs it
LETTER = (8.5, 11.0)  # inches


def scan_pages(text: str, dpi: int = 200, page: tuple[float, float] = LETTER, margin: float = 1.0) -> list:
    """`text` as a scanner gives it back: black 10-point DejaVu Sans on white, its paragraphs wrapped at 90
    characters, each kept whole on one page when it fits one; grayscale PIL images of `page` inches at `dpi`."""
    from PIL import Image, ImageDraw, ImageFont

    assert FONT.exists(), f"{FONT} is missing: apt-get install fonts-dejavu-core (./scripts/run-tests.sh does)"
    font = ImageFont.truetype(str(FONT), round(10 * dpi / 72))
    step, top = round(font.size * 1.5), round(margin * dpi)
    per_page = (round((page[1] - margin) * dpi) - top) // step
    pages: list[list[str]] = [[]]
    for paragraph in text.split("\n\n"):
        lines = textwrap.wrap(paragraph, 90)
        if pages[-1] and len(pages[-1]) + len(lines) > per_page:
            pages.append([])  # a paragraph that fits on a page starts one
        for line in [*lines, ""]:
            if len(pages[-1]) == per_page:
                pages.append([])
            pages[-1].append(line)
    images = []
    for lines in pages:
        image = Image.new("L", (round(page[0] * dpi), round(page[1] * dpi)), 255)
        draw = ImageDraw.Draw(image)
        for number, line in enumerate(lines):
            draw.text((round(margin * dpi), top + number * step), line, font=font, fill=0)
        images.append(image)
    return images


def make_scan(text: str, folder: Path) -> tuple[Path, list[Path]]:
    """A scanned copy of `text` (see scan_pages, at 200 dpi) in `folder`: scan.pdf, a PDF of the page images with
    no text layer, and the same pages as PNG files scan-1.png, scan-2.png, ..."""
    pages = scan_pages(text)
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / "scan.pdf"
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=200)  # JPEG inside, as scanners do
    pngs = [folder / f"scan-{number}.png" for number in range(1, len(pages) + 1)]
    for page, png in zip(pages, pngs):
        page.copy().save(png, dpi=(200, 200))  # a copy: Pillow kept the PDF's save options on the appended pages
    return pdf, pngs


# A corpus for scoped search: the passages closest to "maritime patrols" lie outside the folder cold/, which holds
# seven passages that match it less well; beside them, names that a careless filter would take for cold/ or for
# one another (a LIKE wildcard, a prefix without its "/", a quote, a backslash). One short passage per document.
SCOPED_CORPUS = {
    **{f"hot/d{i}.txt": f"Maritime patrols {i}: maritime patrols at sea, patrols." for i in range(8)},
    **{f"cold/x{i}.txt": f"Note {i} on budgets and the harbour {i}; maritime matters came up once." for i in range(6)},
    "cold/deep/y.txt": "A deeper note on budgets, and maritime ones.",
    "cold.txt": "Maritime patrols, maritime patrols.",  # beside the folder, not in it
    "coldness/z.txt": "Maritime patrols, again.",  # a folder whose name starts like it
    "a_b/u.txt": "Maritime patrols kept under a_b.",
    "aXb/v.txt": "Maritime patrols kept under aXb.",  # in a_b if "_" were a wildcard
    "p%q/w.txt": "Maritime patrols kept under p%q.",
    "pzzq/w.txt": "Maritime patrols kept under pzzq.",  # in p%q if "%" were a wildcard
    'q"\\%r/t.txt': "Maritime patrols kept under a quote, a backslash and a percent sign.",
    "q\\\\%r/t.txt": "Maritime patrols kept under two backslashes.",  # in the one above if a backslash were lost
}
COLD = sorted(path for path in SCOPED_CORPUS if path.startswith("cold/"))


def write_scoped_corpus(corpus: Path, filler: int = 0) -> None:
    """SCOPED_CORPUS, and `filler` documents of other words (enough chunks for an IVF index to have lists)."""
    files = {
        **SCOPED_CORPUS,
        **{f"filler/f{i:03}.txt": f"Filler {i} about forests, rivers and {i % 7} owls." for i in range(filler)},
    }
    for name, text in files.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)


def assert_scopes_are_searched_by_the_store(store, embedder) -> None:
    """After a build of write_scoped_corpus: each side of the store and each mode of search returns k passages,
    all from the scope, though better ones lie outside it; scopes combine by intersection; names are exact."""
    from assistant.index.store import Scope
    from assistant.question import Question
    from assistant.search import Retriever

    query = "maritime patrols"
    vector = embedder.encode([query])[0]
    cold = [Scope(folders=("cold",))]
    source = lambda keys: sorted({row["source"] for row in store.chunks(list(keys)).values()})  # noqa: E731
    assert not set(source(key for key, _ in store.dense(vector, 5))) & set(COLD)  # the best lie outside cold/
    dense = store.dense(vector, 5, cold)
    assert len(dense) == 5 and set(source(key for key, _ in dense)) <= set(COLD)
    assert [score for _, score in dense] == sorted((score for _, score in dense), reverse=True)
    lexical = store.lexical(query, 5, within=cold)
    assert len(lexical) == 5 and set(source(lexical)) <= set(COLD) and min(lexical.values()) > 0
    assert source(key for key, _ in store.dense(vector, 50, cold)) == COLD  # every chunk of the folder, no other
    both = [Scope(folders=("cold",)), Scope(paths=("cold/x1.txt", "hot/d1.txt"))]
    assert source(store.lexical(query, 50, within=both)) == source(key for key, _ in store.dense(vector, 50, both))
    assert source(key for key, _ in store.dense(vector, 50, both)) == ["cold/x1.txt"]
    for folder, expected in [("a_b", "a_b/u.txt"), ("p%q", "p%q/w.txt"), ('q"\\%r', 'q"\\%r/t.txt'),
                             ("q\\\\%r", "q\\\\%r/t.txt")]:  # fmt: skip
        found = source(key for key, _ in store.dense(vector, 50, [Scope(folders=(folder,))]))
        assert found == [expected] == source(store.lexical(query, 50, within=[Scope(folders=(folder,))])), folder
    assert store.dense(vector, 5, [Scope()]) == [] and store.lexical(query, 5, within=[Scope()]) == {}
    for mode in ("dense", "bm25", "hybrid"):
        retriever = Retriever(store, embedder, -1.0, mode)
        outside = retriever.search(query, 5)
        assert not {p.source for p in outside} & set(COLD), mode
        passages, relevance = retriever.ranked(Question.read(query, ["cold/"]), 5)
        assert len(passages) == 5 and {p.source for p in passages} <= set(COLD), mode
        assert relevance == max(score for _, score in dense) < retriever.relevance(vector), mode
        files = retriever.search(Question.read(query, ["cold/x1.txt", "hot/d2.txt", "cold/x1.txt"]), 5)
        assert sorted(p.source for p in files) == ["cold/x1.txt", "hot/d2.txt"], mode  # capped at the scope
