"""Readers, one per file format: bytes in, (title, text, sections) out, or SkipFile with the one-line reason."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .documents import Section
from .ocr import OcrError, OcrOptions, recognize
from .structure import (
    Block,
    assemble,
    html_blocks,
    markdown_sections,
    split_at_headings,
    strip_page_furniture,
    table_lines,
)

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

# The limits below are measured in docs/reliability.md#why-these-limits.
# ~0.8 KB and ~30 µs each in BeautifulSoup's tree: 200,000 stay near 160 MB and 6 s
HTML_MAX_TAGS = 200_000
# pypdf parses a page's content stream in one go, which the deadline can't interrupt: a budget of 1,000,000
# tokens (pypdf's is 2,000,000) keeps that to 5-8 s here, so a PDF takes 28 s at worst
PDF_MAX_PAGE_TOKENS = 1_000_000
PDF_MAX_OUTLINE = 10_000  # outline entries read as headings: a real book has hundreds
# a DOCX is refused before python-docx unpacks it when it would unpack to over 64 MB (zip bombs: 300 KB to
# 150 MB of XML; python-docx holds about 3.8 times the XML it reads, so 64 MB comes to about 240 MB), holds over
# 10,000 files, or over 1,000,000 XML tags (< signs; worst case, empty paragraphs: 17 s, 310 MB)
DOCX_MAX_UNPACKED_MB = 64
DOCX_MAX_PARTS = 10_000
DOCX_MAX_TAGS = 1_000_000
# OCR of scanned PDF pages and images. Tesseract, on one thread, reads a 300 dpi letter page of text in 1.1 to 1.8 s
# here, at 70 MB. It is given at most OCR_MAX_PIXELS: 20 MP of text took 3 s and 110 MB, of noise (the slowest)
# 6 to 7 s and 310 MB; larger images are scaled down to it, and PDF pages are rendered at OCR_DPI or less to fit
OCR_DPI = 300
OCR_MAX_PIXELS = 20_000_000
# what Pillow or PDFium may decode, checked on the headers first: an image file's page, or all the images of a PDF
# page (PDFium decodes each whole, whatever the size of the page: 200 MP took +300 MB). 39 MP came to +255 MB (RGB)
# and +260 MB (with transparency), Tesseract's 20 MP apart; it holds a page scanned at 600 dpi or a 40 MP photo
IMAGE_MAX_PIXELS = 40_000_000
# pages OCR'd per file: at 1.1 to 1.8 s a page, 200 pages hold a build for up to 6 minutes (with the time limit
# raised for them: the default 20 s reads about 10 pages)
OCR_MAX_PAGES = 200
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_IMAGE_FORMATS = ("PNG", "JPEG", "TIFF")  # Pillow opens no other kind, whatever the name says (EPS runs Ghostscript)
_LINE_END_HYPHEN = re.compile(r"(?<=[a-z])-\n(?=[a-z])")  # "traf-\nficking" in OCR text: a word split at a line's end
_HTML_DROP = {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"}
_HTML_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "td",
    "th",
    "pre",
    "blockquote",
    "figure",
    "figcaption",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "title",
    "hr",
}
_BLOCK_END = object()  # marks where a block element ends, in _html_text's stack


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


def _read_text(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    text = decode_text(data)
    title = ""
    if path.suffix.lower() in {".md", ".markdown"}:
        heading = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
        return heading.group(1) if heading else "", text, markdown_sections(text)
    # a plain-text file whose first line stands alone, short and unpunctuated, is titled by it
    first = re.match(r"\s*([^\n]{1,150})\n[ \t]*\n", text)
    if first and not first.group(1).rstrip().endswith(tuple('.!?…,;"”’')):
        title = first.group(1).strip()
    return title, text, []


def _read_html(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    from bs4 import BeautifulSoup

    markup = decode_text(data)
    # lxml's parser is linear on any input; Python's html.parser (3.11) is quadratic on some unclosed markup
    tags = markup.count("<") - markup.count("</") + markup.count("=")
    if tags > HTML_MAX_TAGS:
        raise SkipFile(
            f"HTML has about {tags:,} tags and attributes, over the limit of {HTML_MAX_TAGS:,} "
            "— split the page or save it as text"
        )
    with warnings.catch_warnings(record=True) as caught:  # XHTML read as HTML warns at length, and lxml reads it well
        soup = BeautifulSoup(markup, "lxml")
    for warning in caught:
        log.debug("%s: %s", path.name, warning.message)
    title_tag = soup.find("title") or soup.find("h1")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    blocks = html_blocks(soup, deadline)
    if any(not block.level for block in blocks):
        return title, *assemble(blocks)
    # all of it looked like navigation (an index of links, say): the page's whole text, as it was read before
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", _html_text(soup))]
    return title, "\n\n".join(p for p in paragraphs if p), []


def _html_text(soup) -> str:
    """The page's text, a blank line around each block; a loop with a stack, so any depth of nesting is linear."""
    from bs4 import CData, NavigableString, Tag

    parts: list[str] = []
    stack: list = [soup]
    while stack:
        node = stack.pop()
        if node is _BLOCK_END:
            parts.append("\n\n")
        elif isinstance(node, Tag):
            if node.name in _HTML_DROP or node.name == "head":
                continue
            if node.name == "br":
                parts.append("\n")
            elif node.name in _HTML_BLOCKS:
                parts.append("\n\n")
                stack.append(_BLOCK_END)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes or processing instructions
            parts.append(node)
    return "".join(parts)


def _read_pdf(data: bytes, path: Path, deadline: Deadline, ocr: OcrOptions) -> tuple[str, str, list[Section]]:
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
        for number, text in _ocr_pdf_pages(data, scanned, deadline, ocr).items():
            pages[number - 1] = text
    elif scanned and len(scanned) == len(pages):
        raise SkipFile(f"scanned (no text layer) — {ocr.why_not}")
    elif scanned:
        log.warning("%s: %d page(s) without a text layer left out — %s", path.name, len(scanned), ocr.why_not)
    text, sections = _join_pages(strip_page_furniture(pages), scanned if ocr.enabled else ())
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


def _join_pages(pages: list[str], ocr_pages: Collection[int] = ()) -> tuple[str, list[Section]]:
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


def _ocr_pdf_pages(data: bytes, numbers: list[int], deadline: Deadline, ocr: OcrOptions) -> dict[int, str]:
    """The text Tesseract reads on each of these pages (1-based), rendered by PDFium."""
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
        texts = {}
        for number in numbers:
            deadline()
            image, dpi = _render_page(document, number)
            texts[number] = _recognize(image, deadline, ocr, dpi)
        return texts
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
            raise _too_many_pixels(pixels, f"page {number}'s images")
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


def _read_image(data: bytes, path: Path, deadline: Deadline, ocr: OcrOptions) -> tuple[str, str, list[Section]]:
    if not ocr.enabled:
        raise SkipFile(f"image (its text needs OCR) — {ocr.why_not}")
    pages = [_recognize(page, deadline, ocr) for page in _image_pages(data, deadline)]
    return "", *_join_pages(pages, range(1, len(pages) + 1))


def _image_pages(data: bytes, deadline: Deadline) -> Iterator[Image.Image]:
    """Each page of an image file (a TIFF's frames, the first frame of others) as OCR takes it. Each is checked on
    its header before it is decoded, and decoded alone: the file is opened again for each page."""
    from PIL import ImageOps

    for index in range(_page_count(data, deadline)):
        deadline()
        with _image_errors(), _open_image(data) as image:
            image.seek(index)
            if image.width * image.height > IMAGE_MAX_PIXELS:
                raise _too_many_pixels(image.width * image.height, "image")
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # a photo taken upright is stored sideways, with a tag
            page = _for_ocr(image)
        yield page


def _page_count(data: bytes, deadline: Deadline) -> int:
    """A TIFF's pages, counted on their headers (refused over OCR_MAX_PAGES); 1 for other images."""
    with _image_errors(), _open_image(data) as image:
        count = 1
        while image.format == "TIFF":
            deadline()
            try:
                image.seek(count)
            except EOFError:
                break
            count += 1
            if count > OCR_MAX_PAGES:
                raise SkipFile(f"TIFF has over {OCR_MAX_PAGES} pages, the OCR limit — split the file")
        return count


def _open_image(data: bytes) -> Image.Image:
    """The image with its header read, nothing decoded yet."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise SkipFile("not a PNG, JPEG or TIFF image — damaged, or named wrongly") from None
    except Image.DecompressionBombError as err:  # Pillow's own limit, far above ours, checked first (179 MP)
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise _too_many_pixels(int(pixels.group(1)) if pixels else 2 * (Image.MAX_IMAGE_PIXELS or 0), "image") from None


@contextlib.contextmanager
def _image_errors() -> Iterator[None]:
    """Within it, Pillow's errors on a damaged image become a skip reason."""
    try:
        yield
    except SkipFile:
        raise
    except Exception as err:  # Pillow raises many types for damaged files
        raise SkipFile(f"corrupt or unreadable image ({type(err).__name__}: {str(err)[:80]})") from None


def _too_many_pixels(pixels: int, what: str) -> SkipFile:
    return SkipFile(
        f"{what} would decode to {pixels / 1e6:,.0f} megapixels, over the limit of {IMAGE_MAX_PIXELS // 1_000_000} "
        "— a decompression bomb? Scale it down to read it"
    )


def _for_ocr(image: Image.Image) -> Image.Image:
    """A decoded page as Tesseract reads it best: grayscale, transparent parts white, at most OCR_MAX_PIXELS."""
    from PIL import Image

    if image.has_transparency_data and "A" not in image.getbands():
        image = image.convert("RGBA")  # a palette or a colour marked transparent
    gray = image.convert("L")
    if "A" in image.getbands():  # a transparent pixel is often black under its alpha: it would read as ink
        page = Image.new("L", image.size, 255)
        page.paste(gray, mask=image.getchannel("A"))
        gray = page
    scale = math.sqrt(OCR_MAX_PIXELS / max(gray.width * gray.height, 1))
    if scale < 1:
        size = (max(1, int(gray.width * scale)), max(1, int(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    return gray


def _recognize(image: Image.Image, deadline: Deadline, ocr: OcrOptions, dpi: float | None = None) -> str:
    """The text Tesseract reads in the image, as paragraphs, within the time left to read the file."""
    deadline()
    darkest, lightest = image.getextrema()
    if darkest == lightest:  # blank, as PDF pages whose content is damaged render: 0.4 s of Tesseract saved
        return ""
    try:
        text = recognize(image, ocr, deadline.left(), dpi)
    except TimeoutError:
        raise deadline.passed() from None
    except OcrError as err:
        raise SkipFile(f"OCR failed (Tesseract: {err})") from None
    paragraphs = re.split(r"\n\s*\n", _LINE_END_HYPHEN.sub("", text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())  # lines joined: one sentence, one line


def _read_docx(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    """Paragraphs and tables in the order of the body; Heading N (and Title) paragraphs bound sections."""
    import io
    import zipfile

    import docx
    from docx.table import Table

    _check_docx_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
        styles = _docx_styles(document)
        blocks: list[Block] = []
        title = document.core_properties.title or ""
        for item in document.iter_inner_content():
            deadline()
            if isinstance(item, Table):
                blocks.append(Block("\n".join(table_lines(_docx_rows(item, deadline)))))
                continue
            text, level = item.text.strip(), _heading_level(styles(item))
            title = title or (text if level == 1 else "")
            blocks.append(Block(text, level))
    except SkipFile:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise SkipFile(f"corrupt or unreadable DOCX ({type(err).__name__})") from None
    except Exception as err:  # python-docx and lxml raise many types for damaged files
        raise SkipFile(f"corrupt or unreadable DOCX ({type(err).__name__}: {str(err)[:80]})") from None
    return title, *assemble([b for b in blocks if b.text])


def _check_docx_archive(data: bytes) -> None:
    """Refuse, before python-docx unpacks it, a DOCX that would unpack to too much (a zip bomb) or parse too long."""
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        parts = archive.infolist()
        if len(parts) > DOCX_MAX_PARTS:
            raise SkipFile(
                f"DOCX holds {len(parts):,} files, over the limit of {DOCX_MAX_PARTS:,} — not a Word document?"
            )
        unpacked = sum(part.file_size for part in parts)  # zipfile stops at these sizes: a lie fails the CRC check
        if unpacked > DOCX_MAX_UNPACKED_MB * 1024 * 1024:
            raise SkipFile(
                f"DOCX would unpack to {unpacked / 1048576:,.0f} MB, over the limit of {DOCX_MAX_UNPACKED_MB} MB "
                "— a zip bomb?"
            )
        tags = 0
        for part in parts:  # every part, whatever its name: python-docx parses a part by its declared type
            with archive.open(part) as handle:
                tags += sum(block.count(b"<") for block in iter(lambda: handle.read(1 << 20), b""))
            if tags > DOCX_MAX_TAGS:
                raise SkipFile(f"DOCX holds over {DOCX_MAX_TAGS:,} XML tags — split the document, or save it as PDF")
    except SkipFile:
        raise
    except Exception as err:  # zipfile raises several types for damaged archives
        raise SkipFile(f"corrupt or unreadable DOCX ({type(err).__name__}: {str(err)[:80]})") from None


def _docx_rows(table, deadline: Deadline) -> list[list[str]]:
    """The cells of each row, as python-docx's row.cells gives them (a merged cell repeats in every row and
    column it spans), in one pass: python-docx walks up a vertical merge again for each row, recursively, which
    is quadratic and passes the recursion limit at about 1,000 merged rows (a 36 KB file took 33 s to fail)."""
    from docx.table import _Cell

    rows: list[list[str]] = []
    above: dict[int, tuple[str, int]] = {}  # grid column -> (text, span) of the merged cell starting there, row above
    for tr in table._tbl.tr_lst:
        deadline()
        offset, here, cells = tr.grid_before, {}, []
        for tc in tr.tc_lst:
            if tc.vMerge == "continue":
                text, span = above.get(offset, ("", tc.grid_span))
            else:
                text, span = _Cell(tc, table).text.strip(), tc.grid_span
            here[offset] = (text, span)
            cells += [text] * span
            offset += tc.grid_span
        above = here
        rows.append(cells)
    return rows


def _docx_styles(document) -> Callable[[object], str | None]:
    """A paragraph's style name; the names are looked up once, as python-docx's paragraph.style costs over a
    millisecond a paragraph (a document without headings took minutes)."""
    from docx.enum.style import WD_STYLE_TYPE

    names: dict[str, str] = {}
    for style in document.styles:
        if style.type == WD_STYLE_TYPE.PARAGRAPH:
            names.setdefault(style.style_id, style.name)
    default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)  # what paragraph.style gives for a missing id
    fallback = default.name if default is not None else None
    return lambda paragraph: names.get(paragraph._p.style, fallback)  # type: ignore[attr-defined]


def _heading_level(style: str | None) -> int:
    """1 to 6 for Word's Title and Heading N styles, 0 for any other paragraph."""
    if style == "Title":
        return 1
    found = re.fullmatch(r"Heading ([1-6])", style or "")
    return int(found.group(1)) if found else 0


def reader_for(path: Path, ocr: OcrOptions) -> Reader:
    """The reader of the file's format: PDF, an image, DOCX, HTML, else plain text. The first two are given the
    build's OCR options, for scanned pages and images."""
    suffix = path.suffix.lower()
    if suffix == ".pdf" or suffix in IMAGE_SUFFIXES:
        return functools.partial(_read_pdf if suffix == ".pdf" else _read_image, ocr=ocr)
    return {".docx": _read_docx, ".html": _read_html, ".htm": _read_html}.get(suffix, _read_text)
