"""The FAISS index folder: versioned builds (FAISS vectors, BM25, SQLite chunk store, manifest.json) behind an
atomic CURRENT pointer, the build lock, and disk errors that name the next step."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...documents import Chunk, Document
from ...errors import IndexLocked, IndexWriteError
from ..lexical import write_bm25
from ..manifest import Manifest, fault_point

# 2: bm25/ beside the vectors; 3: each chunk's section (heading path) and ocr flag; 4: its sentences' vectors
FORMAT = 4
READS = (3, 4)  # the formats the store reads: a format-3 build is served (its highlights embed sentences)
POINTER = "CURRENT"
BUILDS = "builds"
_SCHEMA = """
CREATE TABLE documents (path TEXT PRIMARY KEY, title TEXT, sha256 TEXT, text TEXT, sections TEXT);
CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT UNIQUE, source TEXT, page INTEGER,
                     start INTEGER, "end" INTEGER, text TEXT, embed_text TEXT, section TEXT, ocr INTEGER);
CREATE INDEX chunks_source ON chunks(source);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, packed BLOB);
"""


_DISK_ERRORS = {  # errno -> what happened and what to do; the old index is still published either way
    errno.ENOSPC: "the disk is full — free some space, then run: assistant build",
    errno.EDQUOT: "the disk quota is used up — free some space, then run: assistant build",
    errno.EROFS: "its file system is read-only — remount it read-write or set ASSISTANT_INDEX to a writable folder, "
    "then run: assistant build",
    errno.EACCES: "permission denied — let this user write there or set ASSISTANT_INDEX, then run: assistant build",
    errno.EPERM: "permission denied — let this user write there or set ASSISTANT_INDEX, then run: assistant build",
}


@contextmanager
def disk_errors(index_dir: Path) -> Iterator[None]:
    """An OSError while writing the index becomes an IndexWriteError that names the cause and the next step."""
    try:
        yield
    except (OSError, sqlite3.OperationalError, RuntimeError) as err:
        code = getattr(err, "errno", None) or _errno_in(str(err))
        if code not in _DISK_ERRORS:  # faiss and SQLite name disk errors only in their messages
            raise
        what = _DISK_ERRORS[code]
        raise IndexWriteError(
            f"cannot write the index at {index_dir}/: {what}; the previous index is unchanged and still served"
        ) from None


def _errno_in(message: str) -> int | None:
    """The errno that SQLite ("database or disk is full") or faiss ("... (No space left on device)") names."""
    lowered = message.lower()
    if "disk is full" in lowered:
        return errno.ENOSPC
    return next((code for code in _DISK_ERRORS if os.strerror(code).lower() in lowered), None)


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold index/.lock for the whole build; a second build refuses instead of waiting."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLocked(
                f"another build is running on {index_dir}/ (pid {holder}) — wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_build(index_dir: Path) -> Path | None:
    """The published build folder, or None when nothing was ever published."""
    try:
        name = (index_dir / POINTER).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    folder = index_dir / BUILDS / name
    return folder if (folder / "manifest.json").is_file() else None


def write_build(
    index_dir: Path,
    name: str,
    manifest: Manifest,
    documents: Iterable[Document],
    chunks: list[Chunk],
    dense: Any,
    sentences: list[bytes | None],
) -> Path:
    """Write a complete build into builds/<name>.partial, then rename it to builds/<name>.
    `dense` is the FAISS index of the chunks' vectors, row for row (vectors.build_dense); `sentences` their
    sentences' vectors (SentenceVectors.pack()'s, None for a chunk kept from a build that had none)."""
    import faiss

    final = index_dir / BUILDS / name
    partial = final.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        _write_store(partial / "store.sqlite", documents, chunks, sentences)
        fault_point("writing")
        faiss.write_index(dense, str(partial / "vectors.faiss"))
        write_bm25(partial, [c.embed_text for c in chunks])
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        for file in partial.rglob("*"):
            _fsync(file)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # give back the space of a build that will never be published
        raise
    os.rename(partial, final)
    _fsync(final.parent)
    return final


def publish(index_dir: Path, name: str) -> None:
    """Point CURRENT at builds/<name> with one atomic rename, then remove the builds no one points at."""
    tmp = index_dir / (POINTER + ".tmp")
    tmp.write_text(name + "\n")
    _fsync(tmp)
    fault_point("switch")
    os.replace(tmp, index_dir / POINTER)
    _fsync(index_dir)
    fault_point("published")
    remove_old_builds(index_dir, keep=name)


def remove_old_builds(index_dir: Path, keep: str | None) -> None:
    builds = index_dir / BUILDS
    if builds.is_dir():
        for folder in builds.iterdir():
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)


def _write_store(path: Path, documents: Iterable[Document], chunks: list[Chunk], sentences: list[bytes | None]) -> None:
    # closed on failure too: a removed .partial gives its space back only once none of its files is open
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            ((d.path, d.title, d.sha256, d.text, json.dumps([asdict(s) for s in d.sections])) for d in documents),
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (row, c.id, c.source, c.page, c.start, c.end, c.text, c.embed_text, c.section, c.ocr)
                for row, c in enumerate(chunks)
            ),
        )
        db.executemany(
            "INSERT INTO sentences VALUES (?, ?)", ((row, packed) for row, packed in enumerate(sentences) if packed)
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
