"""The Store protocol: what search, answers and the service need from an index, whichever engine holds it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict, TypeVar

import numpy as np

from .manifest import CatalogEntry, Manifest

Key = int | str  # a chunk's handle inside its store: its row in a FAISS build, its primary key in Milvus
K = TypeVar("K", int, str)  # the Key of one store


class ChunkRow(TypedDict):
    """A stored chunk: the fields of documents.Chunk."""

    id: str
    source: str
    page: int | None
    start: int
    end: int
    text: str
    embed_text: str
    section: str  # the heading path
    ocr: bool  # FAISS stores it as 0 or 1


class TitledChunk(ChunkRow):
    """A chunk as search reads it, with its document's title."""

    title: str


class DocumentRow(TypedDict):
    """A stored document: its whole text, and its sections as JSON (documents.Section's fields)."""

    path: str
    title: str
    sha256: str
    text: str
    sections: str


class Store(Protocol[K]):
    """An index, read-only. `dense` scores are cosines (normalized vectors, inner product). `lexical` scores are
    BM25 over the same terms in both stores (lexical.terms), 0 where no term occurs. Fusion, thresholds and
    answers stay in the search stage, so they are the same whatever the store."""

    manifest: Manifest
    version: str  # changes whenever a build changes what is served; answers are cached per version
    where: str  # for messages: "the index at index/", "the Milvus collection ... at ..."

    def __len__(self) -> int: ...

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[K, float]]: ...

    def lexical(self, query: str, k: int, also: Sequence[K] = ()) -> dict[K, float]: ...

    def stored_vectors(self, keys: Sequence[K]) -> np.ndarray: ...

    def chunks(self, keys: Sequence[K]) -> dict[K, TitledChunk]: ...

    def chunks_of(self, sources: Sequence[str]) -> list[ChunkRow]: ...

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, DocumentRow]: ...

    def catalog(self) -> dict[str, CatalogEntry]: ...

    def chunk_by_id(self, chunk_id: str) -> ChunkRow | None: ...

    def close(self) -> None: ...
