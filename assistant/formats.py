"""Readers, one per file format: bytes in, (title, text, sections) out, or SkipFile with the one-line reason."""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from .documents import Section
from .structure import Block, assemble, html_blocks, markdown_sections, table_lines

log = logging.getLogger(__name__)

# The limits below are measured in docs/reliability.md#why-these-limits.
# ~0.8 KB and ~30 µs each in BeautifulSoup's tree: 200,000 stay near 160 MB and 6 s
HTML_MAX_TAGS = 200_000
# pypdf parses a page's content stream in one go, which the deadline can't interrupt: a budget of 1,000,000
# tokens (pypdf's is 2,000,000) keeps that to 5-8 s here, so a PDF takes 28 s at worst
PDF_MAX_PAGE_TOKENS = 1_000_000
# a DOCX is refused before python-docx unpacks it when it would unpack to over 64 MB (zip bombs: 300 KB to
# 150 MB of XML; python-docx holds about 3.8 times the XML it reads, so 64 MB comes to about 240 MB), holds over
# 10,000 files, or over 1,000,000 XML tags (< signs; worst case, empty paragraphs: 17 s, 310 MB)
DOCX_MAX_UNPACKED_MB = 64
DOCX_MAX_PARTS = 10_000
DOCX_MAX_TAGS = 1_000_000
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
            raise SkipFile(
                f"reading took over {self.seconds:g} s (ASSISTANT_MAX_FILE_SECONDS)"
                " — split the file, or raise the limit"
            )


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
    else:  # a plain-text file whose first line stands alone, short and unpunctuated, is titled by it
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


def _read_pdf(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    import io

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
    except SkipFile:
        raise
    except Exception as err:  # pypdf raises many types for damaged files
        raise SkipFile(f"corrupt or unreadable PDF ({type(err).__name__}: {str(err)[:80]})") from None
    if not any(p.strip() for p in pages):
        raise SkipFile("no text layer — scanned? (run OCR on it first)")
    return str(title), *_join_pages(pages)


def _join_pages(pages: list[str]) -> tuple[str, list[Section]]:
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
        sections.append(Section(offset, offset + len(page), number))
        parts.append(page)
        offset += len(page)
    return "".join(parts), sections


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


def reader_for(path: Path) -> Callable[[bytes, Path, Deadline], tuple[str, str, list[Section]]]:
    """The reader of the file's format: PDF, DOCX, HTML, else plain text."""
    return {".pdf": _read_pdf, ".docx": _read_docx, ".html": _read_html, ".htm": _read_html}.get(
        path.suffix.lower(), _read_text
    )
