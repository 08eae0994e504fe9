"""The chunk store behind search, chosen by ASSISTANT_STORE: FAISS files in index/ (the default) or Milvus."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

from .config import Settings
from .index import current_build, open_index

Key = Hashable  # a chunk's handle inside its store: its row in a FAISS build, its primary key in Milvus


class Store(Protocol):
    """What search, answers and the service need from an index, whichever engine holds it.

    `dense` scores are cosines (normalized vectors, inner product). `lexical` scores are BM25 over the same
    terms in both stores (lexical.terms), 0 where no term occurs. Fusion, thresholds and answers stay in the
    search stage, so they are the same whatever the store. Rows are mappings with the fields of
    documents.Chunk ("id", "source", "page", "start", "end", "text", "embed_text"); `chunks` adds "title".
    """

    manifest: dict  # format, model, dimension, chunking, precision, built_at, chunks, skipped, vectors
    version: str  # changes whenever a build changes what is served; answers are cached per version
    where: str  # for messages: "the index at index/", "the Milvus collection ... at ..."

    def __len__(self) -> int: ...

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[Key, float]]: ...

    def lexical(self, query: str, k: int, also: Sequence[Key] = ()) -> dict[Key, float]: ...

    def stored_vectors(self, keys: Sequence[Key]) -> np.ndarray: ...

    def chunks(self, keys: Sequence[Key]) -> dict[Key, Mapping]: ...

    def chunks_of(self, sources: Sequence[str]) -> list[Mapping]: ...

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, Mapping]: ...

    def catalog(self) -> dict[str, dict]: ...

    def chunk_by_id(self, chunk_id: str) -> Mapping | None: ...

    def close(self) -> None: ...


def published(settings: Settings) -> str | None:
    """The version of the index being served now, or None when nothing was ever built."""
    if settings.store == "milvus":
        from .milvus_store import published_version

        return published_version(settings)
    folder = current_build(settings.index)
    return folder.name if folder else None


def open_store(settings: Settings) -> Store:
    """The published index; IndexMismatch when it was built with another model or other chunking."""
    if settings.store == "milvus":
        from .milvus_store import open_milvus

        return open_milvus(settings)
    return open_index(settings.index, settings.model, settings.chunking())
