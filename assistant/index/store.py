"""The Store protocol: what search, answers and the service need from an index, whichever engine holds it."""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict, TypeVar

import numpy as np

from ..documents import printable
from ..errors import QueryError
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
    """A chunk as search reads it, with its document's title and its sentences' vectors."""

    title: str
    sentences: bytes | None  # documents.SentenceVectors.pack()'s; None from a build that kept none


class DocumentRow(TypedDict):
    """A stored document: its whole text, and its sections as JSON (documents.Section's fields)."""

    path: str
    title: str
    sha256: str
    text: str
    sections: str


@dataclass(frozen=True)
class Scope:
    """The documents a search may return: those at `paths` and every one under `folders` (relative to the corpus,
    "/"-separated, a folder without its trailing "/"). The stores take a sequence of scopes and search only the
    chunks that every one of them allows, so a question's scope combines with another filter of the same kind
    (the documents a user may read, say) without either knowing of the other."""

    paths: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def allows(self, path: str) -> bool:
        return path in self._paths or any(path.startswith(folder + "/") for folder in self.folders)

    @functools.cached_property
    def _paths(self) -> frozenset[str]:  # a reader's scope may name thousands of documents
        return frozenset(self.paths)

    @classmethod
    def of(cls, sources: Sequence[str], documents: Collection[str]) -> Scope:
        """The scope that `sources` (question.read_sources's) name among `documents`, the index's paths: each is
        a document or a folder of one or more. QueryError naming those that are neither."""
        ordered = sorted(documents)  # a folder holds a document when one starts with its name and "/"
        paths, folders, unknown = [], [], []
        for source in sources:
            if source in documents:
                paths.append(source)
            elif (at := bisect_left(ordered, source + "/")) < len(ordered) and ordered[at].startswith(source + "/"):
                folders.append(source)
            else:
                unknown.append(source)
        if unknown:
            named = ", ".join(printable(source) for source in unknown[:5]) + (" …" if len(unknown) > 5 else "")
            hint = " (folders are separated by /)" if any("\\" in source for source in unknown) else ""
            raise QueryError(
                f"no document or folder {named} in the index{hint} — give paths relative to the corpus folder, "
                "as `assistant status` lists the documents"
            )
        return cls(tuple(paths), tuple(folders))


class Store(Protocol[K]):
    """An index, read-only. `dense` scores are cosines (normalized vectors, inner product). `lexical` scores are
    BM25 over the same terms in both stores (lexical.terms), 0 where no term occurs. Fusion, thresholds and
    answers stay in the search stage, so they are the same whatever the store.

    `within`: the scopes a search keeps to; a chunk is searched only when every one allows its document (none:
    the whole index). The store filters, so the k best of the scope come back, never a filtered top k."""

    manifest: Manifest
    version: str  # changes whenever a build changes what is served; answers are cached per version
    where: str  # for messages: "the index at index/", "the Milvus collection ... at ..."

    def __len__(self) -> int: ...

    def dense(self, vector: np.ndarray, k: int, within: Sequence[Scope] = ()) -> list[tuple[K, float]]: ...

    def lexical(self, query: str, k: int, also: Sequence[K] = (), within: Sequence[Scope] = ()) -> dict[K, float]: ...

    def known_terms(self, words: Sequence[str], within: Sequence[Scope] = ()) -> set[str]: ...

    def stored_vectors(self, keys: Sequence[K]) -> np.ndarray: ...

    def chunks(self, keys: Sequence[K]) -> dict[K, TitledChunk]: ...

    def chunks_of(self, sources: Sequence[str]) -> list[ChunkRow]: ...

    def documents(self, paths: Sequence[str] | None = None) -> dict[str, DocumentRow]: ...

    def catalog(self) -> dict[str, CatalogEntry]: ...

    def chunk_by_id(self, chunk_id: str) -> ChunkRow | None: ...

    def stale(self) -> bool: ...  # its connection was lost and a new one made: open the store again

    def close(self) -> None: ...
