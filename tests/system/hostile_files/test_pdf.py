"""Hostile PDFs: a PDF made to take minutes is stopped at the time limit, a good one is read
within it."""

from __future__ import annotations

import time
import zlib

from tests.helpers import read_corpus
from tests.system.hostile_files.helpers import _read_alone, pdf_of


def pdf_with_pages(contents: list[bytes]) -> bytes:
    """A PDF whose pages have these content streams, each deflated: a few KB can hold minutes of pypdf's work."""
    font = b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(contents))]
    for i, content in enumerate(contents):
        packed = zlib.compress(content, 9)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R %s >>" % (4 + 2 * i, font)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed))
    return pdf_of(objects)


TEXT_OPERATORS = b"BT /F1 12 Tf 72 712 Td (Hello world) Tj ET\n"  # about 4 s of pypdf's time per MB here


def test_a_pdf_made_to_take_minutes_is_skipped_at_the_time_limit(corpus):
    data = pdf_with_pages([TEXT_OPERATORS * 8_000] * 40)  # 40 pages of 350 KB: about a minute of extraction
    (corpus / "slow.pdf").write_bytes(data)
    started = time.monotonic()
    documents, skipped = read_corpus(corpus, max_file_seconds=1.5)
    seconds = time.monotonic() - started
    assert documents == []
    assert [(s.path, s.reason) for s in skipped] == [
        ("slow.pdf", "reading took over 1.5 s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit")
    ]
    assert seconds < 1.5 + 5, seconds  # stopped between two content-stream operators


def test_a_good_pdf_is_read_within_the_default_time_limit(corpus):
    page = b"BT /F1 11 Tf 72 712 Td (%s) Tj ET\n"
    data = pdf_with_pages(
        [b"".join(page % f"Line {i} of page {n} about copper.".encode() for i in range(40)) for n in range(30)]
    )
    texts, skipped, _ = _read_alone(corpus, "report.pdf", data)
    assert skipped == {} and texts["report.pdf"].count("about copper") == 1200
