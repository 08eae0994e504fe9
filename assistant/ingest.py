"""Read the corpus: every supported file becomes a Document; a file that can't be read is skipped with a reason."""
from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .documents import Document, Section, SkippedFile

log = logging.getLogger(__name__)

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
_HTML_DROP = ["script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"]
_HTML_BLOCKS = [
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th",
    "pre", "blockquote", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "title", "hr",
]


class SkipFile(Exception):
    """Raised by a reader: the file is skipped and the message is the one-line reason."""


def load_documents(corpus: Path, max_file_mb: float = 50.0) -> tuple[list[Document], list[SkippedFile]]:
    """Read every supported file under `corpus`, recursively, in a stable order."""
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    for path, rel in iter_corpus(corpus):
        try:
            documents.append(read_document(path, rel, max_file_mb, corpus))
        except SkipFile as why:
            skipped.append(SkippedFile(rel, str(why)))
    return documents, skipped


def iter_corpus(corpus: Path) -> Iterator[tuple[Path, str]]:
    """Yield (path, path relative to the corpus) for every file, hidden files and folders excluded.

    Symlinked folders are not followed; a symlinked file is read only if it resolves inside the corpus.
    """
    if not corpus.is_dir():
        from .errors import ConfigError

        raise ConfigError(f"corpus folder {corpus}/ does not exist — create it and put documents in it")
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(corpus, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                path = Path(root) / name
                found.append((path.relative_to(corpus).as_posix(), path))
    for rel, path in sorted(found, key=lambda item: item[0]):  # by relative path, not folder by folder
        yield path, rel


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_readable(path: Path, corpus: Path, max_file_mb: float) -> None:
    """Raise SkipFile for what is skipped before any parsing: type, size, links, emptiness."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise SkipFile(f"unsupported file type {suffix or '(no extension)'} — supported: {', '.join(sorted(SUPPORTED))}")
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(corpus.resolve()):
            raise SkipFile("symlink points outside the corpus — not followed")
    if not path.is_file():
        raise SkipFile("not a regular file (broken link or vanished during the build)")
    size = path.stat().st_size
    if size == 0:
        raise SkipFile("empty file")
    if size > max_file_mb * 1024 * 1024:
        raise SkipFile(f"file is {size / 1048576:.1f} MB, over the {max_file_mb:g} MB limit (ASSISTANT_MAX_FILE_MB)")


def read_document(path: Path, rel: str, max_file_mb: float = 50.0, corpus: Path | None = None) -> Document:
    """Parse one file into a Document, or raise SkipFile with the reason."""
    check_readable(path, corpus or path.parent, max_file_mb)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SkipFile(f"cannot read file: {err.strerror or err}") from None
    suffix = path.suffix.lower()
    reader = {".pdf": _read_pdf, ".docx": _read_docx, ".html": _read_html, ".htm": _read_html}.get(suffix, _read_text)
    title, text, sections = reader(data, path)
    if not text.strip():
        raise SkipFile("no text found in the file")
    return Document(rel, title or _title_from_name(path), text, hashlib.sha256(data).hexdigest(), tuple(sections))


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


def _read_text(data: bytes, path: Path) -> tuple[str, str, list[Section]]:
    text = decode_text(data)
    title = ""
    if path.suffix.lower() in {".md", ".markdown"}:
        heading = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
        title = heading.group(1) if heading else ""
    else:  # a plain-text file whose first line stands alone, short and unpunctuated, is titled by it
        first = re.match(r"\s*([^\n]{1,150})\n[ \t]*\n", text)
        if first and not first.group(1).rstrip().endswith(tuple('.!?…,;"”’')):
            title = first.group(1).strip()
    return title, text, []


def _read_html(data: bytes, path: Path) -> tuple[str, str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    title_tag = soup.find("title") or soup.find("h1")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    if soup.head:
        soup.head.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_HTML_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", soup.get_text())]
    return title, "\n\n".join(p for p in paragraphs if p), []


def _read_pdf(data: bytes, path: Path) -> tuple[str, str, list[Section]]:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF — remove the password and build again")
        pages = [page.extract_text() or "" for page in reader.pages]
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


def _read_docx(data: bytes, path: Path) -> tuple[str, str, list[Section]]:
    import io
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise SkipFile(f"corrupt or unreadable DOCX ({type(err).__name__})") from None
    except Exception as err:  # python-docx and lxml raise many types for damaged files
        raise SkipFile(f"corrupt or unreadable DOCX ({type(err).__name__}: {str(err)[:80]})") from None
    blocks = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    title = document.core_properties.title or next(
        (p.text.strip() for p in document.paragraphs if p.style is not None and p.style.name in ("Title", "Heading 1") and p.text.strip()),
        "",
    )
    return title, "\n\n".join(b for b in blocks if b), []


def _title_from_name(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip()
