"""What every reader shares: the skip reason, the per-file deadline, the reader's signature, text decoding, and
pages joined into one text with a section per page."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

from ..documents import Section


class SkipFile(Exception):
    """Raised by a reader: the file is skipped and the message is the one-line reason."""


class Deadline:
    """Called by a reader between steps: raises SkipFile once reading the file has taken over `seconds`.

    Text and HTML are bounded by their size and tag limits; PDF and DOCX call it, as small files of theirs
    can hold minutes of work (docs/reliability.md#why-these-limits)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def __call__(self, *_: object) -> None:  # *_: also a pypdf visitor, called with each content-stream operator
        if time.monotonic() > self.end:
            raise self.passed()

    def left(self) -> float:
        """Seconds left: what a step that cannot stop itself in between (Tesseract) is given."""
        return self.end - time.monotonic()

    def passed(self) -> SkipFile:
        """The skip reason of a file whose reading took too long."""
        return SkipFile(
            f"reading took over {self.seconds:g} s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit"
        )


Reader = Callable[[bytes, Path, Deadline], tuple[str, str, list[Section]]]  # see docs/development.md


def decode_text(data: bytes) -> str:
    """Decode bytes as UTF-8 when they are, else by detected encoding; refuse binary data."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SkipFile("binary data, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise SkipFile("cannot decode the text: encoding not recognised") from None
        # on short text the detector can't tell the Latin code pages apart ("très" read as cp1250 "trčs"):
        # prefer Windows-1252, a superset of Latin-1 and by far the most common of them, when it reads about as cleanly
        western = from_bytes(data, cp_isolation=["cp1252"]).best()
        if western is not None and western.chaos <= best.chaos + 0.1:
            best = western
        text = str(best)
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > 0.05 * min(len(text), 8192):
        raise SkipFile("binary data, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def join_pages(pages: list[str], ocr_pages: Collection[int] = ()) -> tuple[str, list[Section]]:
    """The pages' text, a blank line between them, and a section per page with text (1-based; read by OCR or not)."""
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        page = page.replace("\r\n", "\n").strip()
        if not page:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        sections.append(Section(offset, offset + len(page), number, ocr=number in ocr_pages))
        parts.append(page)
        offset += len(page)
    return "".join(parts), sections
