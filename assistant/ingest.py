"""One walk of the corpus: every supported file is checked, hashed and read into a Document, or skipped with a
one-line reason; the same walk tells which files changed since a build (stale_documents)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .config import Settings
from .documents import Document, Progress, SkippedFile, printable
from .errors import ConfigError
from .formats import IMAGE_SUFFIXES, Deadline, SkipFile, reader_for
from .ocr import OCR_OFF, OcrOptions, ocr_options

log = logging.getLogger(__name__)

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", *IMAGE_SUFFIXES}
_VANISHED = "vanished during the build"
_BROKEN_LINK = "broken symlink: its target does not exist"
_NOT_REGULAR = "not a regular file (a pipe, socket or device)"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Scan:
    """The corpus compared with what an index holds."""

    previous: Mapping[str, str]  # path -> sha256 of every document the index holds
    kept: list[str] = field(default_factory=list)  # unchanged: their chunks and vectors are reused
    fresh: list[Document] = field(default_factory=list)  # new or changed: to chunk and embed
    skipped: list[SkippedFile] = field(default_factory=list)
    sha: dict[str, str] = field(default_factory=dict)  # content hash of every file that could be read


def scan_corpus(settings: Settings, previous: Mapping[str, str], progress: Progress | None = None) -> Scan:
    """Read the files that are new or changed since `previous` (path -> sha256); skip what cannot be read.
    `progress(done, total)` is told of each file looked at. The OCR settings are checked first:
    ASSISTANT_OCR=on without Tesseract stops the build before any file is read."""
    scan = Scan(previous)
    ocr = ocr_options(settings.ocr, settings.ocr_langs)
    files = list(iter_corpus(settings.corpus))
    for done, (path, rel, sha) in enumerate(_hashed(files, settings.corpus, settings.max_file_mb)):
        if progress:
            progress(done, len(files))
        try:
            if isinstance(sha, Exception):
                raise sha
            scan.sha[rel] = sha
            if previous.get(rel) == sha:
                scan.kept.append(rel)
            else:
                scan.fresh.append(
                    read_document(path, rel, settings.max_file_mb, settings.corpus, settings.max_file_seconds, ocr=ocr)
                )
        except Exception as err:  # one bad file never stops the build: it is skipped with the reason
            scan.skipped.append(skipped_file(rel, err))
    if progress:
        progress(len(files), len(files))
    return scan


def stale_documents(
    corpus: Path, indexed: Mapping[str, str], skipped: Mapping[str, str | None], max_file_mb: float = 50.0
) -> list[str]:
    """Paths added, changed or removed in the corpus since the index was built (skipped files included).
    `indexed`: path -> sha256 of the documents in the index; `skipped`: the same for the files it skipped."""
    known = {**indexed, **skipped}
    stale: list[str] = []
    seen: set[str] = set()
    if corpus.is_dir():
        for _, rel, sha in walk(corpus, max_file_mb):
            seen.add(rel)
            readable = not isinstance(sha, Exception)  # unreadable now (skipped at build time): stale only when new
            if rel not in known or (readable and known[rel] != sha):
                stale.append(rel)
    stale.extend(path for path in indexed if path not in seen)
    return sorted(stale)


def walk(corpus: Path, max_file_mb: float) -> Iterator[tuple[Path, str, str | Exception]]:
    """(path, relative path, sha256) of every file of the corpus; in place of the hash, why it cannot be read."""
    return _hashed(iter_corpus(corpus), corpus, max_file_mb)


def _hashed(
    files: Iterable[tuple[Path, str]], corpus: Path, max_file_mb: float
) -> Iterator[tuple[Path, str, str | Exception]]:
    for path, rel in files:
        try:
            check_readable(path, corpus, max_file_mb)
            yield path, rel, file_sha256(path)
        except Exception as err:  # the caller decides: skipped by a build, unchanged for stale_documents
            yield path, rel, err


def skipped_file(rel: str, err: Exception) -> SkippedFile:
    """What reading `rel` raised, as a one-line reason; logged, with the traceback when it was unexpected."""
    if isinstance(err, SkipFile):
        reason = str(err)
    elif isinstance(err, OSError):
        reason = _os_reason(err)
    else:
        reason = f"unexpected error ({type(err).__name__}: {err})"
    reason = " ".join(reason.split())[:300] or type(err).__name__
    if isinstance(err, (SkipFile, OSError)):  # the build's summary lists it: the log has it at INFO
        log.info("skipped %s: %s", printable(rel), reason)
    else:
        log.warning("skipped %s: %s", printable(rel), reason, exc_info=err)
    return SkippedFile(rel, reason)


def iter_corpus(corpus: Path) -> Iterator[tuple[Path, str]]:
    """Yield (path, path relative to the corpus) for every file, hidden files and folders excluded.

    Symlinked folders are not followed; a symlinked file is read only if it resolves inside the corpus.
    The relative path is always valid text: bytes of a name that are not UTF-8 show as \\xNN escapes.
    """
    if not corpus.is_dir():
        raise ConfigError(f"corpus folder {corpus}/ does not exist — create it and put documents in it")
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(corpus, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                path = Path(root) / name
                name_bytes = path.relative_to(corpus).as_posix().encode("utf-8", "surrogateescape")
                found.append((name_bytes.decode("utf-8", "backslashreplace"), path))
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
        raise SkipFile(
            f"unsupported file type {suffix or '(no extension)'} — supported: {', '.join(sorted(SUPPORTED))}"
        )
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
        raise SkipFile(
            f"file is {info.st_size / 1048576:.1f} MB, over the {max_file_mb:g} MB limit (ASSISTANT_MAX_FILE_MB)"
        )


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


def read_document(
    path: Path,
    rel: str,
    max_file_mb: float = 50.0,
    corpus: Path | None = None,
    max_file_seconds: float = 20.0,
    *,
    ocr: OcrOptions = OCR_OFF,
) -> Document:
    """Parse one file into a Document, or raise SkipFile with the reason. Scanned PDF pages and images are read
    only with `ocr` enabled (a build passes the settings' own, from ocr_options)."""
    deadline = Deadline(max_file_seconds)
    check_readable(path, corpus or path.parent, max_file_mb)
    try:
        data = _read_capped(path, max_file_mb)
    except OSError as err:
        raise SkipFile(_os_reason(err)) from None
    title, text, sections = reader_for(path, ocr)(data, path, deadline)
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
