"""Documents added to and deleted from the corpus over the network: every check first, then atomic writes."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..config import Settings
from ..errors import AssistantError
from ..ingest import SUPPORTED

log = logging.getLogger(__name__)

TEMP_PREFIX = ".upload-"  # hidden: the corpus walk (ingest.iter_corpus) and the watcher (watch.ignored) skip it
TEMP_SUFFIX = ".part"
_BLOCK = 1 << 20
_MAX_NAME_BYTES = 255  # a file name's limit on Linux filesystems


class UploadError(AssistantError):
    """An upload or a deletion refused: `status` is the HTTP status that says why, the message the next step."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def max_file_bytes(settings: Settings) -> int:
    """ASSISTANT_MAX_FILE_MB in bytes: the largest file the build reads, and so the largest one taken."""
    return int(settings.max_file_mb * 1024 * 1024)


def check_name(name: str) -> None:
    """A file's name: one plain name of a type the assistant reads; UploadError (422, 415) otherwise."""
    _check_part(name, "file name")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise UploadError(
            415,
            f"{name!r}: the assistant does not read {suffix or 'files without an extension'} files — "
            f"send one of: {', '.join(sorted(SUPPORTED))}",
        )


def check_folder(corpus: Path, folder: str) -> Path:
    """The folder a relative path names inside the corpus ("" for the corpus itself), symlinks resolved; it need
    not exist yet. UploadError (422) for an absolute path, "..", a hidden part or one that leads out of the corpus."""
    if not corpus.is_dir():
        raise UploadError(503, f"the corpus folder {corpus}/ does not exist — create it, or set ASSISTANT_CORPUS")
    if folder.startswith("/") or "\\" in folder:
        raise UploadError(422, f"folder {folder!r} must be relative to the corpus, with /, like 'hr' or 'hr/2024'")
    clean = folder.removesuffix("/")
    for part in clean.split("/") if clean else ():
        _check_part(part, "folder name")
    return _inside(corpus, corpus / clean, f"folder {folder!r}")


def store_files(
    corpus: Path, folder: str, files: Sequence[tuple[str, BinaryIO]], replace: bool, max_bytes: int
) -> list[str]:
    """Write `files` (name, stream) into `folder` of the corpus; their paths relative to the corpus, as written.

    Every name, type, the folder and the existing files are checked before anything is written; then each file
    is copied to a hidden temporary name beside its place, counting its bytes (413 once one passes `max_bytes`),
    and only when all are copied are they renamed into place. A batch with one bad file writes nothing."""
    target = _check_batch(corpus, folder, [name for name, _ in files], replace)
    created = _make_folders(target)
    written: list[tuple[Path, Path]] = []
    try:
        for name, stream in files:
            written.append((_copy(stream, target, name, max_bytes), target / name))
    except BaseException:
        for temp, _ in written:
            temp.unlink(missing_ok=True)
        _remove_empty(created)
        raise
    _place(written)
    stored = [final.relative_to(corpus.resolve()).as_posix() for _, final in written]
    log.info("stored %d file(s) in %s/: %s", len(stored), corpus, ", ".join(stored))
    return stored


def delete_file(corpus: Path, path: str) -> str:
    """Remove one file of the corpus (never a folder); its path relative to the corpus. UploadError: 422 for a bad
    path or a folder, 404 for a file that is not there."""
    if not path or path.startswith("/") or "\\" in path:
        raise UploadError(422, f"path {path!r} must name a file relative to the corpus, like 'hr/report.pdf'")
    *folders, name = path.split("/")
    for part in folders:
        _check_part(part, "folder name")
    _check_part(name, "file name")
    parent = _inside(corpus, corpus.joinpath(*folders), f"path {path!r}")
    found = parent / name
    if found.is_dir() and not found.is_symlink():
        raise UploadError(422, f"{path!r} is a folder: only files are deleted — delete its files one by one")
    try:
        found.unlink()
    except FileNotFoundError:
        raise UploadError(404, f"no file {path!r} in the corpus — GET /api/status lists the documents") from None
    log.info("deleted %s from %s/", path, corpus)
    return found.relative_to(corpus.resolve()).as_posix()


def _check_batch(corpus: Path, folder: str, names: list[str], replace: bool) -> Path:
    """The target folder, once every check of the batch has passed (nothing is written here)."""
    if not names:
        raise UploadError(422, "no files in the request — send one or more `files` fields")
    for name in names:
        check_name(name)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UploadError(422, f"{twice[0]!r} is sent twice in one request — send each file once")
    target = check_folder(corpus, folder)
    for name in names:
        existing = target / name
        if existing.is_dir() and not existing.is_symlink():
            raise UploadError(409, f"{_shown(corpus, existing)!r} is a folder — pick another name for the file")
        if not replace and os.path.lexists(existing):
            raise UploadError(
                409, f"{_shown(corpus, existing)!r} exists already — send replace=true to replace it, or rename it"
            )
    return target


def _check_part(part: str, what: str) -> None:
    """One name of a path: not empty, "." or "..", hidden, padded with spaces, or holding a separator or control."""
    if part in ("", ".", ".."):
        raise UploadError(422, f"{what} {part!r} is not a name — send a plain name like 'report.pdf'")
    if "/" in part or "\\" in part:
        raise UploadError(422, f"{what} {part!r} holds a path separator — send the name alone, and the folder apart")
    if any(unicodedata.category(ch) == "Cc" for ch in part):
        raise UploadError(422, f"{what} {part!r} holds a control character — rename it")
    if part != part.strip():
        raise UploadError(422, f"{what} {part!r} starts or ends with a space — rename it")
    if part.startswith("."):
        raise UploadError(422, f"{what} {part!r} is hidden (starts with .): the assistant skips hidden files")
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise UploadError(422, f"{what} {part[:40]!r}… is longer than {_MAX_NAME_BYTES} bytes — shorten it")


def _inside(corpus: Path, path: Path, what: str) -> Path:
    """`path` with its symlinks resolved, refused (422) when it leads out of the corpus."""
    root = corpus.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise UploadError(422, f"{what} leads out of the corpus (through a symlink) — pick a folder inside it")
    return resolved


def _make_folders(target: Path) -> list[Path]:
    """Create `target` and its missing parents; the ones created, outermost first."""
    missing = [folder for folder in (target, *target.parents) if not folder.exists()][::-1]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UploadError(500, f"cannot create the folder {target} ({err.strerror}) — check its permissions") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _copy(stream: BinaryIO, folder: Path, name: str, max_bytes: int) -> Path:
    """`stream` into a hidden temporary file of `folder`, synced to disk; removed and 413 once over `max_bytes`."""
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    try:
        with open(temp, "xb") as out:
            size = 0
            while block := stream.read(_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise over_limit(name, max_bytes)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException as err:
        temp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UploadError(
                500,
                f"cannot copy {name!r} into {folder} ({err.strerror or err}) — check its free space and permissions",
            ) from None
        raise
    return temp


def _place(written: list[tuple[Path, Path]]) -> None:
    """Rename each temporary file into place: atomic, so a reader sees the old file or the whole new one."""
    try:
        for temp, final in written:
            os.replace(temp, final)
    except OSError as err:
        for temp, _ in written:
            temp.unlink(missing_ok=True)
        raise UploadError(500, f"cannot rename into place ({err}) — check the corpus folder's permissions") from None


def over_limit(name: str, max_bytes: int) -> UploadError:
    return UploadError(
        413, f"{name!r} is over the {max_bytes / 1048576:g} MB limit (ASSISTANT_MAX_FILE_MB) — the build would skip it"
    )


def _shown(corpus: Path, path: Path) -> str:
    return path.relative_to(corpus.resolve()).as_posix()
