"""Word (DOCX): paragraphs and tables in the body's order, Heading N and Title paragraphs bound sections; the archive
is checked before python-docx unpacks it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..documents import Section
from ..structure import Block, assemble, table_lines
from .base import Deadline, SkipFile

# The limits below are measured in docs/reliability.md#why-these-limits.
# a DOCX is refused before python-docx unpacks it when it would unpack to over 64 MB (zip bombs: 300 KB to
# 150 MB of XML; python-docx holds about 3.8 times the XML it reads, so 64 MB comes to about 240 MB), holds over
# 10,000 files, or over 1,000,000 XML tags (< signs; worst case, empty paragraphs: 17 s, 310 MB)
DOCX_MAX_UNPACKED_MB = 64
DOCX_MAX_PARTS = 10_000
DOCX_MAX_TAGS = 1_000_000


def read_docx(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
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
