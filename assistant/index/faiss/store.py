"""One published FAISS build, read-only: vectors in FAISS, BM25 in bm25s, chunk and document text in SQLite."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from ... import threads
from ...errors import IndexDamaged, IndexMismatch, IndexNotFound
from ...lru import LRU
from ..lexical import FOLDER as BM25_FOLDER
from ..lexical import LexicalIndex
from ..manifest import CatalogEntry, Manifest, check_built_with, dense_spec
from ..store import ChunkRow, DocumentRow, Scope, TitledChunk
from .folder import BUILDS, FORMAT, READS, current_build
from .vectors import read_dense, search_within

log = logging.getLogger(__name__)
T = TypeVar("T")
PATHS_PER_QUERY = 10_000
CACHED_SCOPES = 16  # the rows of the latest scopes searched: 1.1 MB each at a million chunks


@dataclass(frozen=True)
class Allowed:
    """The rows a scoped search may return: a flag per row (BM25's weight mask), the same as a bitmap (FAISS's
    selector), and how many."""

    mask: np.ndarray
    bitmap: np.ndarray
    count: int


class Index:
    """One published build. A chunk's key is its row, the same in all three parts; implements index.store.Store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.version = folder.name  # a build is never changed once published: its name is its version
        self.where = f"the index at {folder.parent.parent}/"
        self.manifest: Manifest = _read_part(folder, "manifest.json", lambda path: json.loads(path.read_text()))
        if self.manifest.get("format") not in READS:
            raise IndexMismatch(
                f"the index at {folder.parent.parent}/ was written by another version of the assistant "
                f"(format {self.manifest.get('format')}, this one reads {FORMAT}) — run: assistant build --rebuild"
            )
        # no file of a build is ever unpickled: FAISS's own format, bm25s's .npy arrays (allow_pickle=False),
        # SQLite, JSON
        self.vectors = _read_part(folder, "vectors.faiss", lambda path: read_dense(path, dense_spec(self.manifest)))
        self.bm25 = _read_part(folder, BM25_FOLDER, lambda path: LexicalIndex(path.parent, int(self.vectors.ntotal)))
        self._db = _read_part(folder, "store.sqlite", _open_store)
        self._sentences = self.manifest["format"] >= 4  # format 3 kept no sentence vectors
        self._lock = threading.Lock()
        self._scopes: LRU[Allowed] = LRU(CACHED_SCOPES)

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    def dense(self, vector: np.ndarray, k: int, within: Sequence[Scope] = ()) -> list[tuple[int, float]]:
        """(row, cosine) pairs of the k nearest chunks (of those `within` allows), best first; over an IVF index,
        the nearest of the chunks in the lists it visits (cosines exact, the ranking approximate:
        docs/architecture.md#large-corpora)."""
        allowed = self._allowed(within)
        k = min(k, len(self) if allowed is None else allowed.count)
        if k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with threads.FAISS.held():  # one question's search is not worth splitting (threads.py)
            if allowed is None:
                scores, rows = self.vectors.search(query, k)
            else:
                scores, rows = search_within(self.vectors, query, k, allowed.bitmap)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def lexical(self, query: str, k: int, also: Sequence[int] = (), within: Sequence[Scope] = ()) -> dict[int, float]:
        """BM25 scores of the k best-scoring rows (score above 0) of those `within` allows, and of the rows in
        `also` whatever they score (0 outside the scopes)."""
        allowed = self._allowed(within)
        scores = self.bm25.scores(query, None if allowed is None else allowed.mask)
        positive = np.flatnonzero(scores > 0)
        if len(positive) > k:
            positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
        found = {int(row): float(scores[row]) for row in positive}
        found.update({int(row): float(scores[row]) for row in also})
        return found

    def known_terms(self, words: Sequence[str], within: Sequence[Scope] = ()) -> set[str]:
        """The terms (lexical.terms) that some chunk of those `within` allows holds."""
        allowed = self._allowed(within)
        return self.bm25.known(list(words), None if allowed is None else allowed.mask)

    def chunks(self, rows: Sequence[int]) -> dict[int, TitledChunk]:
        """The chunks at these rows, with their document's title and their sentences' vectors."""
        sentences = (
            ("sentences.packed", "LEFT JOIN sentences ON sentences.row = chunks.row")
            if self._sentences
            else ("NULL", "")
        )
        return self._query(  # type: ignore[return-value]
            f"SELECT chunks.*, documents.title, {sentences[0]} AS sentences FROM chunks "
            f"JOIN documents ON documents.path = chunks.source {sentences[1]} "
            f"WHERE chunks.row IN ({','.join('?' * len(rows))})",
            list(rows),
            "row",
        )

    def packed_sentences(self, rows: Sequence[int]) -> list[bytes | None]:
        """The sentences' vectors of the chunks at these rows, as stored (None: none kept)."""
        if not self._sentences or not len(rows):
            return [None] * len(rows)
        found: dict[int, bytes] = {}
        for at in range(0, len(rows), PATHS_PER_QUERY):
            part = list(rows[at : at + PATHS_PER_QUERY])
            with self._lock:
                found.update(
                    self._db.execute(
                        f"SELECT row, packed FROM sentences WHERE row IN ({','.join('?' * len(part))})", part
                    ).fetchall()
                )
        return [found.get(row) for row in rows]

    def chunks_of(self, sources: Sequence[str]) -> list[ChunkRow]:
        found: dict[int, Any] = self._query(
            f"SELECT * FROM chunks WHERE source IN ({','.join('?' * len(sources))})", list(sources), "row"
        )
        return [found[row] for row in sorted(found)]

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, DocumentRow]:
        if paths is None:
            return self._query("SELECT * FROM documents", [], "path")  # type: ignore[return-value]
        return self._query(  # type: ignore[return-value]
            f"SELECT * FROM documents WHERE path IN ({','.join('?' * len(paths))})", list(paths), "path"
        )

    def catalog(self) -> dict[str, CatalogEntry]:
        """Every document: path -> sha256, title, chunks, precision."""
        return self.manifest["documents"]

    def chunk_by_id(self, chunk_id: str) -> ChunkRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        return cast(ChunkRow, dict(row)) if row is not None else None

    def stored_vectors(self, rows: Sequence[int]) -> np.ndarray:
        if not len(rows):
            return np.zeros((0, self.vectors.d), np.float32)
        return self.vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def _allowed(self, within: Sequence[Scope]) -> Allowed | None:
        """The rows that every scope allows (None: no scope, every row), kept for the latest scopes."""
        if not within:
            return None
        allowed = self._scopes.get(tuple(within))
        if allowed is None:
            mask = np.ones(len(self), dtype=bool)
            for scope in within:
                mask &= self._rows_of(scope)
            allowed = Allowed(mask, np.packbits(mask, bitorder="little"), int(mask.sum()))
            self._scopes.put(tuple(within), allowed)
        return allowed

    def _rows_of(self, scope: Scope) -> np.ndarray:
        """A flag per row: whether `scope` allows its document. A folder is the range of paths from "folder/" up
        to "folder0" ("0" follows "/"): SQLite compares text byte by byte, and UTF-8 keeps the order of
        characters, so the range holds exactly the paths under the folder, found through the index on source.
        Paths go PATHS_PER_QUERY at a time (a reader's scope may name thousands; SQLite takes 32,766 at most)."""
        mask = np.zeros(len(self), dtype=bool)
        bounds = [bound for folder in scope.folders for bound in (folder + "/", folder + "0")]
        queries = [(" OR ".join(["(source >= ? AND source < ?)"] * len(scope.folders)), bounds)] if bounds else []
        for at in range(0, len(scope.paths), PATHS_PER_QUERY):
            paths = list(scope.paths[at : at + PATHS_PER_QUERY])
            queries.append((f"source IN ({','.join('?' * len(paths))})", paths))
        with self._lock:
            for where, args in queries:
                mask[[row[0] for row in self._db.execute(f"SELECT row FROM chunks WHERE {where}", args)]] = True
        return mask

    def _query(self, sql: str, args: list[Any], key: str) -> dict[Any, dict[str, Any]]:
        """Rows as plain dicts, by the value of their `key` column."""
        with self._lock:
            return {row[key]: dict(row) for row in self._db.execute(sql, args)}

    def stale(self) -> bool:
        return False  # files on this machine: no connection to lose

    def close(self) -> None:
        self._db.close()


def _read_part(folder: Path, name: str, read: Callable[[Path], T]) -> T:
    """read(folder / name); a part that cannot be read as the assistant wrote it makes the build damaged."""
    try:
        return read(folder / name)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, sqlite3.Error) as err:
        log.warning("cannot read %s: %s: %s", folder / name, type(err).__name__, err)
        raise IndexDamaged(
            f"the index at {folder.parent.parent}/ is damaged: {BUILDS}/{folder.name}/{name} cannot be read "
            "— run: assistant build --rebuild"
        ) from None


def _open_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        db.execute(
            "SELECT row FROM chunks LIMIT 1"
        ).fetchall()  # a file that is not our store fails here, not mid-answer
    except sqlite3.Error:
        db.close()
        raise
    return db


def open_index(index_dir: Path, model: str | None = None, chunking: dict[str, int] | None = None) -> Index:
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
