"""A store as one reader sees it: every search keeps to what they may read, and every read drops the rest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic

import numpy as np

from .manifest import CatalogEntry, Manifest
from .store import ChunkRow, DocumentRow, K, Scope, Store, TitledChunk


class Readable(Generic[K]):
    """`store` restricted to `scope` (the documents a reader may read, as policy.readable gives it), with
    `may_read` deciding for a path that is not in the index (a skipped file, say). Implements Store: the searches
    filter inside the store, before k (a reader gets the k best of what they may read, never fewer because others'
    were cut afterwards), and the reads (rows, documents, catalog, a chunk by id) return nothing else. Counts and
    the manifest are the reader's: the size of what they may not read does not show either."""

    def __init__(self, store: Store[K], scope: Scope, may_read: Callable[[str], bool]) -> None:
        self.store: Store[K] = store
        self.scope, self.may_read = scope, may_read
        self.version, self.where = store.version, store.where
        self._catalog = {path: entry for path, entry in store.catalog().items() if scope.allows(path)}
        self._chunks = sum(int(entry["chunks"]) for entry in self._catalog.values())
        self.manifest: Manifest = {
            **store.manifest,
            "documents": self._catalog,
            "chunks": self._chunks,
            "skipped": [s for s in store.manifest.get("skipped", []) if may_read(s["path"])],
        }

    def __len__(self) -> int:
        return self._chunks

    def dense(self, vector: np.ndarray, k: int, within: Sequence[Scope] = ()) -> list[tuple[K, float]]:
        return self.store.dense(vector, k, (*within, self.scope))

    def lexical(self, query: str, k: int, also: Sequence[K] = (), within: Sequence[Scope] = ()) -> dict[K, float]:
        """`also` is scored within the scopes too: a key outside them scores 0 (FAISS) or not at all (Milvus)."""
        return self.store.lexical(query, k, also, (*within, self.scope))

    def known_terms(self, words: Sequence[str], within: Sequence[Scope] = ()) -> set[str]:
        return self.store.known_terms(words, (*within, self.scope))

    def stored_vectors(self, keys: Sequence[K]) -> np.ndarray:
        return self.store.stored_vectors(keys)

    def chunks(self, keys: Sequence[K]) -> dict[K, TitledChunk]:
        return {key: row for key, row in self.store.chunks(keys).items() if self.scope.allows(row["source"])}

    def chunks_of(self, sources: Sequence[str]) -> list[ChunkRow]:
        return self.store.chunks_of([source for source in sources if source in self._catalog])

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, DocumentRow]:
        wanted = list(self._catalog) if paths is None else [path for path in paths if path in self._catalog]
        return self.store.documents(wanted) if wanted else {}

    def catalog(self) -> dict[str, CatalogEntry]:
        return self._catalog

    def chunk_by_id(self, chunk_id: str) -> ChunkRow | None:
        row = self.store.chunk_by_id(chunk_id)
        return row if row is not None and row["source"] in self._catalog else None

    def stale(self) -> bool:
        return self.store.stale()

    def close(self) -> None:
        """The store is the service's, shared by every reader: it stays open."""


def readable(store: Store[Any], scope: Scope | None, may_read: Callable[[str], bool]) -> Store[Any]:
    """The store as a reader sees it: itself when they may read everything (scope None)."""
    return store if scope is None else Readable(store, scope, may_read)
