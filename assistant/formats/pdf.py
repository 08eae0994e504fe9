"""PDF: the text layer page by page, running heads and page numbers left out, the outline's headings as sections (or,
without an outline, the lines set in a larger font); pages without a text layer are rendered by PDFium and read by
OCR."""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..documents import Section
from ..ocr import OcrOptions
from ..structure import split_at_headings, strip_page_furniture
from .base import Deadline, SkipFile, join_pages
from .images import IMAGE_MAX_PIXELS, OCR_DPI, OCR_MAX_PAGES, OCR_MAX_PIXELS, recognize_image, too_many_pixels

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

# The limits below are measured in docs/reliability.md#why-these-limits.
# pypdf parses a page's content stream in one go, which the deadline can't interrupt: a budget of 1,000,000
# tokens (pypdf's is 2,000,000) keeps that to 5-8 s here, so a PDF takes 28 s at worst
PDF_MAX_PAGE_TOKENS = 1_000_000
PDF_MAX_OUTLINE = 10_000  # outline entries read as headings: a real book has hundreds

# Headings from font sizes, for a PDF without an outline. The body size is the one that carries the most characters;
# a heading is a short line set almost all in one size at least HEADING_MIN_RATIO times it. 1.08: a word processor's
# third heading is 12 pt over an 11 pt body, LaTeX's \large 12 pt over 10.95 pt. Measured against PDF outlines in
# docs/benchmarks.md#pdf-headings-from-font-sizes.
HEADING_MIN_RATIO = 1.08
HEADING_ONE_SIZE = 0.8  # share of the line's characters in its size: a function's signature mixes sizes
HEADING_MAX_WORDS = 15
HEADING_MAX_CHARS = 120
HEADING_MAX_SHARE = 1 / 3  # more of the lines than this look like headings (a poster): none are taken
HEADING_SIZE_STEP = 0.5  # points: sizes closer than this to a larger heading size are of its level
HEADING_LEVELS = 6  # as HTML's h1-h6: sizes past the sixth largest are of the sixth level
_LINE_KEPT = 8 * HEADING_MAX_CHARS  # characters of a line kept while reading it: a longer line is no heading
_SENTENCE_END = re.compile(r"[.,;:]$")
_LEADERS = re.compile(r"(\.\s?){3,}\s*[\dIVXLCivxlc]*$")  # a table of contents' line: "2 Vectors . . . . 8"
_LETTERS = re.compile(r"[^\W\d_]{2}")  # a heading has words, not "A" (an index's letter) nor "[1] 3"


def read_pdf(data: bytes, path: Path, deadline: Deadline, ocr: OcrOptions) -> tuple[str, str, list[Section]]:
    from pypdf import PdfReader, apply_configuration

    try:
        with apply_configuration(stream_parsing_work_maximum_count=PDF_MAX_PAGE_TOKENS):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise SkipFile("encrypted PDF — remove the password and build again")
            outline = _pdf_outline(reader)
            sizes = None if outline else _FontSizes()
            pages = []
            for number, page in enumerate(reader.pages, start=1):  # text extraction can take minutes on a crafted page
                deadline()
                pages.append(_page_text(page, deadline, number, sizes))
            title = (reader.metadata.title if reader.metadata else "") or ""
    except SkipFile:
        raise
    except Exception as err:  # pypdf raises many types for damaged files
        raise SkipFile(f"corrupt or unreadable PDF ({type(err).__name__}: {str(err)[:80]})") from None
    scanned = [number for number, page in enumerate(pages, start=1) if not page.strip()]
    if scanned and ocr.enabled:
        read, refused = _ocr_pdf_pages(data, scanned, deadline, ocr)
        for number, text in read.items():
            pages[number - 1] = text
        for number, reason in refused.items():
            log.warning("%s: page %d left out — %s", path.name, number, reason)
        if refused and not any(page.strip() for page in pages):  # nothing else to read: the file is skipped
            raise SkipFile(next(iter(refused.values())))
    elif scanned and len(scanned) == len(pages):
        raise SkipFile(f"scanned (no text layer) — {ocr.why_not}")
    elif scanned:
        log.warning("%s: %d page(s) without a text layer left out — %s", path.name, len(scanned), ocr.why_not)
    text, sections = join_pages(strip_page_furniture(pages), scanned if ocr.enabled else ())
    headings = outline or (sizes.headings() if sizes else [])
    return str(title), text, split_at_headings(text, sections, headings)


def _page_text(page, deadline: Deadline, number: int, sizes: _FontSizes | None) -> str:
    """The page's text layer; its lines and their font sizes go to `sizes`, from the same pass over the page."""
    if sizes is None:
        return page.extract_text(visitor_operand_before=deadline) or ""
    sizes.new_page(number)
    text = page.extract_text(visitor_operand_before=deadline, visitor_text=sizes.visit)
    sizes.end_line()
    return text or ""


def _rendered(font_size: float, cm: list[float], tm: list[float]) -> float:
    """A text run's size as drawn, in points to a tenth: Tf's size scaled by the text matrix times the current
    matrix (their vertical axis); 0 when the matrices make no sense."""
    try:
        size = abs(float(font_size)) * math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
    return round(size, 1) if math.isfinite(size) and size < 10_000 else 0.0


@dataclass(frozen=True)
class _Line:
    page: int
    index: int  # the line's place on its page
    size: float
    text: str  # its words, one space apart


class _FontSizes:
    """What a PDF's font sizes say about its headings, gathered line by line as pypdf reads the text: the characters
    set in each size, the number of lines, and the short lines that could be headings once the body size is known
    (not the runs themselves: a crafted page holds a million)."""

    def __init__(self) -> None:
        self.chars: Counter[float] = Counter()
        self.lines = 0
        self.candidates: list[_Line] = []
        self.page, self.index = 0, 0  # where the current line is
        self.parts: list[str] = []  # its text, while it is short enough to be a heading
        self.length = 0
        self.sizes: Counter[float] = Counter()  # its characters in each size, spaces aside

    def new_page(self, number: int) -> None:
        self.page, self.index = number, 0

    def visit(self, run: str, cm: list[float], tm: list[float], _font: object, font_size: float) -> None:
        """pypdf's visitor_text: a run of the page's text, in the order of the extracted text."""
        size = _rendered(font_size, cm, tm)
        for i, piece in enumerate(run.split("\n")):
            if i:
                self.end_line()
            self.length += len(piece)
            if self.length <= _LINE_KEPT:
                self.parts.append(piece)
            count = len(piece) - sum(ch.isspace() for ch in piece)
            if count and size:
                self.sizes[size] += count

    def end_line(self) -> None:
        """The line read so far is whole: counted, and kept when it could be a heading."""
        if self.sizes:
            self.lines += 1
            self.chars.update(self.sizes)
            size, count = max(self.sizes.items(), key=lambda item: item[1])
            text = " ".join("".join(self.parts).split())
            whole = self.length <= _LINE_KEPT
            if whole and count >= HEADING_ONE_SIZE * self.sizes.total() and _heading_like(text):
                self.candidates.append(_Line(self.page, self.index, size, text))
        self.index += 1
        self.parts, self.length, self.sizes = [], 0, Counter()

    def headings(self) -> list[tuple[int, int, str]]:
        """(1-based page, level, title) of each heading, as an outline gives them; none when too many lines qualify."""
        if not self.chars:
            return []
        body = max(self.chars, key=self.chars.__getitem__)
        runs = _runs([line for line in self.candidates if line.size >= HEADING_MIN_RATIO * body])
        if sum(len(run) for run in runs) > HEADING_MAX_SHARE * self.lines:
            return []
        headings = [_Line(run[0].page, run[0].index, run[0].size, " ".join(line.text for line in run)) for run in runs]
        levels = _levels({line.size for line in headings})
        return [(line.page, levels[line.size], line.text) for line in headings[:PDF_MAX_OUTLINE]]


def _heading_like(text: str) -> bool:
    """Short, with words, not ending as a sentence or clause does, not a table of contents' line, not cut inside
    brackets as a wrapped function signature is ("int f (int x, int" and "int flags)")."""
    return (
        _short(text)
        and _LETTERS.search(text) is not None
        and not _SENTENCE_END.search(text)
        and not _LEADERS.search(text)
        and text.rfind("(") <= text.rfind(")")
        and not (text.endswith(")") and "(" not in text)
    )


def _runs(lines: list[_Line]) -> list[list[_Line]]:
    """Lines that follow each other on a page in the same size, as one heading's (a long title wraps); a run too long
    for a heading is a paragraph in a larger font, and is left out."""
    runs: list[list[_Line]] = []
    for line in lines:
        last = runs[-1][-1] if runs else None
        if last and (last.page, last.index + 1, last.size) == (line.page, line.index, line.size):
            runs[-1].append(line)
        else:
            runs.append([line])
    return [run for run in runs if _short(" ".join(line.text for line in run))]


def _short(text: str) -> bool:
    return len(text) <= HEADING_MAX_CHARS and len(text.split()) <= HEADING_MAX_WORDS


def _levels(sizes: set[float]) -> dict[float, int]:
    """Each heading size's level, the largest first; a size within HEADING_SIZE_STEP of the larger one before it
    shares its level."""
    levels: dict[float, int] = {}
    level, top = 0, math.inf
    for size in sorted(sizes, reverse=True):
        if top - size > HEADING_SIZE_STEP:
            level, top = level + 1, size
        levels[size] = min(level, HEADING_LEVELS)
    return levels


def _pdf_outline(reader) -> list[tuple[int, int, str]]:
    """The PDF's outline (bookmarks) as (1-based page, level, title), in order; none if it cannot be read."""
    found: list[tuple[int, int, str]] = []
    stack: list[tuple[list, int]] = [(list(reversed(reader.outline)), 1)]
    try:
        while stack and len(found) < PDF_MAX_OUTLINE:
            items, level = stack[-1]
            if not items:
                stack.pop()
                continue
            item = items.pop()
            if isinstance(item, list):
                stack.append((list(reversed(item)), level + 1))
            elif (page := reader.get_destination_page_number(item)) is not None and page >= 0:
                found.append((page + 1, level, str(item.title or "")))
    except Exception as err:  # a damaged outline costs the headings, not the document
        log.debug("outline of the PDF not read: %s", err)
    return found


def _ocr_pdf_pages(
    data: bytes, numbers: list[int], deadline: Deadline, ocr: OcrOptions
) -> tuple[dict[int, str], dict[int, str]]:
    """The text Tesseract reads on each of these pages (1-based), rendered by PDFium, and the reason of each page
    that could not be rendered (a decompression bomb, damage): such a page costs itself, not the file."""
    import pypdfium2 as pdfium

    if len(numbers) > OCR_MAX_PAGES:
        raise SkipFile(
            f"PDF has {len(numbers):,} pages without a text layer, over the OCR limit of {OCR_MAX_PAGES} "
            "— split the file"
        )
    try:
        document = pdfium.PdfDocument(data)
    except Exception as err:  # PdfiumError, and its own checks of the data
        raise SkipFile(f"corrupt or unreadable PDF ({type(err).__name__}: {str(err)[:80]})") from None
    try:
        texts, refused = {}, {}
        for number in numbers:
            deadline()
            try:
                image, dpi = _render_page(document, number)
            except SkipFile as err:
                refused[number] = str(err)
                continue
            texts[number] = recognize_image(image, deadline, ocr, dpi)
        return texts, refused
    finally:
        document.close()


def _render_page(document, number: int) -> tuple[Image.Image, float]:
    """Page `number` in grayscale at OCR_DPI, or less to fit OCR_MAX_PIXELS, and its dpi; refused when the images
    on it would decode to over IMAGE_MAX_PIXELS."""
    import pypdfium2.raw as pdfium_c

    page = document[number - 1]
    try:
        images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])  # their sizes come from their headers
        pixels = sum(width * height for width, height in (image.get_px_size() for image in images))
        if pixels > IMAGE_MAX_PIXELS:
            raise too_many_pixels(pixels, f"page {number}'s images")
        width, height = page.get_size()
        scale = min(OCR_DPI / 72, math.sqrt(OCR_MAX_PIXELS / max(width * height, 1.0)))
        # annotations are not drawn: the images of their appearance streams are not among those counted above
        bitmap = page.render(scale=scale, grayscale=True, draw_annots=False)
        return bitmap.to_pil().copy(), scale * 72  # a copy: to_pil() shares PDFium's buffer, freed with the bitmap
    except SkipFile:
        raise
    except Exception as err:  # PDFium's errors on damaged pages
        raise SkipFile(f"cannot render page {number} for OCR ({type(err).__name__}: {str(err)[:80]})") from None
    finally:
        page.close()
