"""PDF: the text layer page by page, running heads and page numbers left out, the outline's headings as sections;
pages without a text layer are rendered by PDFium and read by OCR."""

from __future__ import annotations

import io
import logging
import math
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


def read_pdf(data: bytes, path: Path, deadline: Deadline, ocr: OcrOptions) -> tuple[str, str, list[Section]]:
    from pypdf import PdfReader, apply_configuration

    try:
        with apply_configuration(stream_parsing_work_maximum_count=PDF_MAX_PAGE_TOKENS):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise SkipFile("encrypted PDF — remove the password and build again")
            pages = []
            for page in reader.pages:  # pypdf's text extraction can take minutes on a small crafted page
                deadline()
                pages.append(page.extract_text(visitor_operand_before=deadline) or "")
            title = (reader.metadata.title if reader.metadata else "") or ""
            outline = _pdf_outline(reader)
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
    return str(title), text, split_at_headings(text, sections, outline)


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
