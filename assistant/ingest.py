"""Read the corpus: every supported file becomes a Document; a file that can't be read is skipped with a reason."""
from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .documents import Document, SkippedFile
from .formats import SkipFile, decode_text, reader_for  # noqa: F401 (decode_text: part of this stage's API)

log = logging.getLogger(__name__)

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}


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
    title, text, sections = reader_for(path)(data, path)
    if not text.strip():
        raise SkipFile("no text found in the file")
    return Document(rel, title or _title_from_name(path), text, hashlib.sha256(data).hexdigest(), tuple(sections))


def _title_from_name(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip()
