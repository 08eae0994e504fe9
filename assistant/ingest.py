"""Read the corpus: every supported file becomes a Document; a file that can't be read is skipped with a reason."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .documents import Document, SkippedFile, printable
from .formats import Deadline, SkipFile, decode_text, reader_for  # noqa: F401 (decode_text: part of this stage's API)

log = logging.getLogger(__name__)

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
_VANISHED = "vanished during the build"
_BROKEN_LINK = "broken symlink: its target does not exist"
_NOT_REGULAR = "not a regular file (a pipe, socket or device)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def load_documents(corpus: Path, max_file_mb: float = 50.0,
                   max_file_seconds: float = 20.0) -> tuple[list[Document], list[SkippedFile]]:
    """Read every supported file under `corpus`, recursively, in a stable order."""
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    for path, rel in iter_corpus(corpus):
        try:
            documents.append(read_document(path, rel, max_file_mb, corpus, max_file_seconds))
        except Exception as err:  # one bad file never stops the build: it is skipped with the reason
            skipped.append(skipped_file(rel, err))
    return documents, skipped


def skipped_file(rel: str, err: Exception) -> SkippedFile:
    """What reading `rel` raised, as a one-line reason; logged, with the traceback when it was unexpected."""
    if isinstance(err, SkipFile):
        reason = str(err)
    elif isinstance(err, OSError):
        reason = _os_reason(err)
    else:
        reason = f"unexpected error ({type(err).__name__}: {err})"
    reason = " ".join(reason.split())[:300] or type(err).__name__
    log.warning("skipped %s: %s", printable(rel), reason, exc_info=None if isinstance(err, (SkipFile, OSError)) else err)
    return SkippedFile(rel, reason)


def iter_corpus(corpus: Path) -> Iterator[tuple[Path, str]]:
    """Yield (path, path relative to the corpus) for every file, hidden files and folders excluded.

    Symlinked folders are not followed; a symlinked file is read only if it resolves inside the corpus.
    The relative path is always valid text: bytes of a name that are not UTF-8 show as \\xNN escapes.
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
                rel = path.relative_to(corpus).as_posix().encode("utf-8", "surrogateescape")
                found.append((rel.decode("utf-8", "backslashreplace"), path))
    for rel, path in sorted(found, key=lambda item: item[0]):  # by relative path, not folder by folder
        yield path, rel


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with _open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_readable(path: Path, corpus: Path, max_file_mb: float) -> None:
    """Raise SkipFile for what is skipped before any parsing: name, type, links, kind of file, size, emptiness."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise SkipFile("file name is not valid UTF-8 — rename the file") from None
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise SkipFile(f"unsupported file type {suffix or '(no extension)'} — supported: {', '.join(sorted(SUPPORTED))}")
    if path.is_symlink():
        _check_link(path, corpus)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SkipFile(_BROKEN_LINK if os.path.islink(path) else _VANISHED) from None
    if not stat.S_ISREG(info.st_mode):
        raise SkipFile(_NOT_REGULAR)
    if info.st_size == 0:
        raise SkipFile("empty file")
    if info.st_size > max_file_mb * 1024 * 1024:
        raise SkipFile(f"file is {info.st_size / 1048576:.1f} MB, over the {max_file_mb:g} MB limit (ASSISTANT_MAX_FILE_MB)")


def _check_link(path: Path, corpus: Path) -> None:
    """A symlinked file is read only when it resolves inside the corpus; a link that loops is not followed."""
    try:
        target = path.resolve()
    except (RuntimeError, OSError) as err:  # a loop: RuntimeError up to Python 3.12, OSError (ELOOP) from 3.13
        if isinstance(err, OSError) and err.errno != errno.ELOOP:
            raise
        raise SkipFile("symlink loop — not followed") from None
    if not target.is_relative_to(corpus.resolve()):
        raise SkipFile("symlink points outside the corpus — not followed")


def read_document(path: Path, rel: str, max_file_mb: float = 50.0, corpus: Path | None = None,
                  max_file_seconds: float = 20.0) -> Document:
    """Parse one file into a Document, or raise SkipFile with the reason."""
    deadline = Deadline(max_file_seconds)
    check_readable(path, corpus or path.parent, max_file_mb)
    try:
        data = _read_capped(path, max_file_mb)
    except OSError as err:
        raise SkipFile(_os_reason(err)) from None
    title, text, sections = reader_for(path)(data, path, deadline)
    if not text or text.isspace():  # not text.strip(): that copies the text, 100 MB for a 100 MB file
        raise SkipFile("no text found in the file")
    title = " ".join(_SURROGATE.sub("\ufffd", title).split()) or _title_from_name(path)
    if _SURROGATE.search(text):  # a damaged PDF font map can yield lone surrogates, which SQLite and JSON refuse
        text = _SURROGATE.sub("\ufffd", text)  # one U+FFFD each: offsets stay
    return Document(rel, title, text, hashlib.sha256(data).hexdigest(), tuple(sections))


def _read_capped(path: Path, max_file_mb: float) -> bytes:
    """The file's bytes, refusing a file that grew past the size limit since it was checked."""
    limit = int(max_file_mb * 1024 * 1024)
    with _open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise SkipFile(f"file grew past the {max_file_mb:g} MB limit while it was read (ASSISTANT_MAX_FILE_MB)")
    return data


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading without blocking on a pipe swapped in after the checks; refuse all but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SkipFile(_NOT_REGULAR)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _os_reason(err: OSError) -> str:
    return _VANISHED if isinstance(err, FileNotFoundError) else f"cannot read file: {err.strerror or err}"


def _title_from_name(path: Path) -> str:
    return " ".join(re.sub(r"[-_]+", " ", path.stem).split())
