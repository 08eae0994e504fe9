"""The index folder: versioned builds (FAISS vectors, BM25, SQLite chunk store, manifest.json) behind an atomic CURRENT pointer."""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .documents import Chunk, Document
from .errors import IndexDamaged, IndexLocked, IndexMismatch, IndexNotFound, IndexWriteError
from .lexical import FOLDER as BM25_FOLDER, LexicalIndex, write_bm25
from . import threads
from .vectors import dense_spec, read_dense

log = logging.getLogger(__name__)

FORMAT = 2  # 2: bm25/ beside the vectors
POINTER = "CURRENT"
BUILDS = "builds"
_SCHEMA = """
CREATE TABLE documents (path TEXT PRIMARY KEY, title TEXT, sha256 TEXT, text TEXT, sections TEXT);
CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT UNIQUE, source TEXT, page INTEGER,
                     start INTEGER, "end" INTEGER, text TEXT, embed_text TEXT);
CREATE INDEX chunks_source ON chunks(source);
"""


def fault_point(name: str) -> None:
    """Test hook: ASSISTANT_FAULT=<name> kills the process here, as kill -9 would."""
    if os.environ.get("ASSISTANT_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


_DISK_ERRORS = {  # errno -> what happened and what to do; the old index is still published either way
    errno.ENOSPC: "the disk is full — free some space, then run: assistant build",
    errno.EDQUOT: "the disk quota is used up — free some space, then run: assistant build",
    errno.EROFS: "its file system is read-only — remount it read-write or set ASSISTANT_INDEX to a writable folder, "
                 "then run: assistant build",
    errno.EACCES: "permission denied — let this user write there or set ASSISTANT_INDEX, then run: assistant build",
    errno.EPERM: "permission denied — let this user write there or set ASSISTANT_INDEX, then run: assistant build",
}


@contextmanager
def disk_errors(index_dir: Path):
    """An OSError while writing the index becomes an IndexWriteError that names the cause and the next step."""
    try:
        yield
    except (OSError, sqlite3.OperationalError, RuntimeError) as err:
        code = getattr(err, "errno", None) or _errno_in(str(err))
        if code not in _DISK_ERRORS:  # faiss and SQLite name disk errors only in their messages
            raise
        what = _DISK_ERRORS[code]
        raise IndexWriteError(f"cannot write the index at {index_dir}/: {what}; the previous index is unchanged "
                              "and still served") from None


def _errno_in(message: str) -> int | None:
    """The errno that SQLite ("database or disk is full") or faiss ("... (No space left on device)") names."""
    lowered = message.lower()
    if "disk is full" in lowered:
        return errno.ENOSPC
    return next((code for code in _DISK_ERRORS if os.strerror(code).lower() in lowered), None)


@contextmanager
def build_lock(index_dir: Path):
    """Hold index/.lock for the whole build; a second build refuses instead of waiting."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLocked(f"another build is running on {index_dir}/ (pid {holder}) — wait for it to finish") from None
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


def write_build(index_dir: Path, name: str, manifest: dict, documents: Iterable[Document],
                chunks: list[Chunk], dense: Any) -> Path:
    """Write a complete build into builds/<name>.partial, then rename it to builds/<name>.
    `dense` is the FAISS index of the chunks' vectors, row for row (vectors.build_dense)."""
    import faiss

    final = index_dir / BUILDS / name
    partial = final.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        _write_store(partial / "store.sqlite", documents, chunks)
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


def _write_store(path: Path, documents: Iterable[Document], chunks: list[Chunk]) -> None:
    # closed on failure too: a removed .partial gives its space back only once none of its files is open
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            ((d.path, d.title, d.sha256, d.text, json.dumps([asdict(s) for s in d.sections])) for d in documents),
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((row, c.id, c.source, c.page, c.start, c.end, c.text, c.embed_text) for row, c in enumerate(chunks)),
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Index:
    """One published build, read-only: vectors in FAISS, BM25 in bm25s, chunk and document text in SQLite.
    A chunk's key is its row, the same in all three. The search stage uses it through stores.Store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.version = folder.name  # a build is never changed once published: its name is its version
        self.where = f"the index at {folder.parent.parent}/"
        self.manifest: dict = _read_part(folder, "manifest.json", lambda path: json.loads(path.read_text()))
        if self.manifest.get("format") != FORMAT:
            raise IndexMismatch(f"the index at {folder.parent.parent}/ was written by another version of the assistant "
                                f"(format {self.manifest.get('format')}, this one reads {FORMAT}) — run: assistant build --rebuild")
        # no file of a build is ever unpickled: FAISS's own format, bm25s's .npy arrays with allow_pickle=False, SQLite, JSON
        self.vectors = _read_part(folder, "vectors.faiss", lambda path: read_dense(path, dense_spec(self.manifest)))
        self.bm25 = _read_part(folder, BM25_FOLDER, lambda path: LexicalIndex(path.parent, int(self.vectors.ntotal)))
        self._db = _read_part(folder, "store.sqlite", _open_store)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(row, cosine) pairs of the k nearest chunks, best first; over an IVF index, the nearest of the
        chunks in the lists it visits (cosines exact, the ranking approximate: README, Large corpora)."""
        k = min(k, len(self))
        if k <= 0:
            return []
        with threads.FAISS.held():  # one question's search is not worth splitting (threads.py)
            scores, rows = self.vectors.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def lexical(self, query: str, k: int, also: Sequence[int] = ()) -> dict[int, float]:
        """BM25 scores of the k best-scoring rows (score above 0), and of the rows in `also` whatever they score."""
        scores = self.bm25.scores(query)
        positive = np.flatnonzero(scores > 0)
        if len(positive) > k:
            positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
        found = {int(row): float(scores[row]) for row in positive}
        found.update({int(row): float(scores[row]) for row in also})
        return found

    def chunks(self, rows: Sequence[int]) -> dict[int, sqlite3.Row]:
        """The chunks at these rows, with their document's title."""
        return self._query("SELECT chunks.*, documents.title FROM chunks JOIN documents ON documents.path = chunks.source "
                           f"WHERE row IN ({','.join('?' * len(rows))})", list(rows), "row")

    def chunks_of(self, sources: Sequence[str]) -> list[sqlite3.Row]:
        found = self._query(f"SELECT * FROM chunks WHERE source IN ({','.join('?' * len(sources))})", list(sources), "row")
        return [found[row] for row in sorted(found)]

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, sqlite3.Row]:
        if paths is None:
            return self._query("SELECT * FROM documents", [], "path")
        return self._query(f"SELECT * FROM documents WHERE path IN ({','.join('?' * len(paths))})", list(paths), "path")

    def catalog(self) -> dict[str, dict]:
        """Every document: path -> sha256, title, chunks, precision."""
        return self.manifest["documents"]

    def chunk_by_id(self, chunk_id: str) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute("SELECT * FROM chunks WHERE id = ?", (chunk_id,)).fetchone()

    def stored_vectors(self, rows: Sequence[int]) -> np.ndarray:
        if not len(rows):
            return np.zeros((0, self.vectors.d), np.float32)
        return self.vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def _query(self, sql: str, args: list, key: str) -> dict:
        with self._lock:
            return {row[key]: row for row in self._db.execute(sql, args)}

    def close(self) -> None:
        self._db.close()


def _read_part(folder: Path, name: str, read):
    """read(folder / name); a part that cannot be read as the assistant wrote it makes the build damaged."""
    try:
        return read(folder / name)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, sqlite3.Error) as err:
        log.warning("cannot read %s: %s: %s", folder / name, type(err).__name__, err)
        raise IndexDamaged(f"the index at {folder.parent.parent}/ is damaged: {BUILDS}/{folder.name}/{name} cannot be read "
                           "— run: assistant build --rebuild") from None


def _open_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        db.execute("SELECT row FROM chunks LIMIT 1").fetchall()  # a file that is not our store fails here, not mid-answer
    except sqlite3.Error:
        db.close()
        raise
    return db


def open_index(index_dir: Path, model: str | None = None, chunking: dict | None = None) -> Index:
    """Load the published build; refuse one built with another model or other chunking."""
    folder = current_build(index_dir)
    if folder is None:
        raise IndexNotFound(f"no index at {index_dir}/ — run: assistant build")
    index = Index(folder)
    try:
        check_built_with(index.manifest, index.where, model, chunking)
    except IndexMismatch:
        index.close()
        raise
    return index


def check_built_with(manifest: dict, where: str, model: str | None, chunking: dict | None) -> None:
    """IndexMismatch, with the command that fixes it, when an index was built with another model or chunking."""
    built_chunking = {k: manifest["chunking"].get(k) for k in (chunking or {})}
    if (model and manifest["model"] != model) or (chunking and built_chunking != chunking):
        raise IndexMismatch(
            f"{where} was built with model {manifest['model']} and chunking {built_chunking}, "
            f"but the settings ask for model {model} and chunking {chunking} — run: assistant build --rebuild"
        )
