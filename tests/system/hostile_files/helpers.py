"""Helpers of the hostile files' tests: a good text, a build that checks every skip reason is
one printable line, a file read alone next to a good one, DOCX and PDF makers, and the time and memory of
reading each file of a corpus (Tesseract's included), measured in a fresh process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from assistant.config import Ocr
from assistant.index import build_index
from assistant.index.faiss.store import open_index
from tests.helpers import ROOT, read_corpus

GOOD_TEXT = "The harbour of Valparaiso handles most of the copper exports."


def build(settings, embedder) -> tuple[dict, dict[str, str]]:
    """Build the index; return its documents (path -> manifest entry) and the skipped files (path -> reason)."""
    summary = build_index(settings, embedder)
    index = open_index(settings.index)
    try:
        documents = dict(index.manifest["documents"])
    finally:
        index.close()
    skipped = {s.path: s.reason for s in summary.skipped}
    for path, reason in skipped.items():
        assert reason.strip() and reason.isprintable(), (path, reason)  # one line, no control characters
    return documents, skipped


def _read_alone(corpus: Path, name: str, data: bytes) -> tuple[dict[str, str], dict[str, str], float]:
    """Read a corpus of `name` and a good file; the texts, the skip reasons and the seconds it took."""
    (corpus / name).write_bytes(data)
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    started = time.monotonic()
    documents, skipped = read_corpus(corpus)
    seconds = time.monotonic() - started
    texts = {d.path: d.text for d in documents}
    assert texts.pop("good.txt") == GOOD_TEXT
    return texts, {s.path: s.reason for s in skipped}, seconds


def docx_with_body(body: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A DOCX made by python-docx, with `body` as the XML inside <w:body> and `extra` parts added."""
    import docx

    blank = io.BytesIO()
    docx.Document().save(blank)
    source = zipfile.ZipFile(blank)
    head, tail = source.read("word/document.xml").decode().split("<w:body>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in source.infolist():
            data = (
                (head + "<w:body>" + body + tail).encode()
                if item.filename == "word/document.xml"
                else source.read(item)
            )
            archive.writestr(item.filename, data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF of these objects, numbered from 1 (the first must be the catalog), with its cross-reference table."""
    out, offsets = io.BytesIO(b"%PDF-1.4\n"), []
    out.seek(0, io.SEEK_END)
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(
        b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    )
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def zip_bomb_docx(megabytes: int) -> bytes:
    """A DOCX whose document.xml holds `megabytes` of spaces after its one paragraph: deflated a thousand times."""
    blank = zipfile.ZipFile(io.BytesIO(docx_with_body("")))
    head, tail = blank.read("word/document.xml").split(b"<w:body>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in blank.infolist():
            if item.filename != "word/document.xml":
                archive.writestr(item.filename, blank.read(item))
        with archive.open("word/document.xml", "w") as part:
            part.write(head + b"<w:body><w:p><w:r><w:t>Bomb.</w:t></w:r></w:p>")
            for _ in range(megabytes):
                part.write(b" " * (1 << 20))
            part.write(tail)
    return out.getvalue()


# ---------------------------------------------------------------- time and memory, measured in a fresh process

_MEASURE = """
import json, sys, time
from pathlib import Path
import resource
import bs4, charset_normalizer, docx, lxml.html, pypdf, pypdfium2, PIL.Image  # their cost is not a file's
from assistant.ingest import iter_corpus, read_document, skipped_file
from assistant.ocr import ocr_options

def peak_mb():
    # VmHWM: the peak RSS of this program since its exec. ru_maxrss would start at the peak of pytest, the
    # parent: Linux carries the parent's peak over when the child is spawned (vfork, then exec)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB

corpus, max_file_mb, ocr = Path(sys.argv[1]), float(sys.argv[2]), ocr_options(sys.argv[3], "eng")
baseline, rows = peak_mb(), []
for path, rel in iter_corpus(corpus):
    started = time.monotonic()
    try:
        outcome = "indexed" if read_document(path, rel, max_file_mb, corpus, ocr=ocr) else ""
    except Exception as err:
        outcome = skipped_file(rel, err).reason
    seconds, growth = time.monotonic() - started, peak_mb() - baseline
    tesseract = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child's peak, in kB
    rows.append({"path": rel, "seconds": seconds, "growth_mb": growth, "tesseract_mb": tesseract, "outcome": outcome})
print(json.dumps(rows))
"""


def measure(corpus: Path, max_file_mb: float = 50.0, ocr: Ocr = "auto") -> list[dict]:
    """Read each file of `corpus` in a fresh Python, as a build does (OCR with the installed Tesseract): seconds
    per file, the growth of the peak RSS since the imports, and the peak RSS of the largest Tesseract process so
    far (both peaks only rise, so each file's figures also cover every file before it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(corpus), str(max_file_mb), ocr],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)
