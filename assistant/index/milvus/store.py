"""The Milvus store, read-only: search and reads on the live collections of a Milvus index (layout: collections.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any, TypedDict, cast

import numpy as np

from ...config import Settings
from ...errors import IndexMismatch, IndexNotFound
from ...lru import LRU
from ..lexical import terms
from ..manifest import CatalogEntry, Manifest, check_built_with
from ..store import ChunkRow, DocumentRow, Scope, TitledChunk
from .collections import (
    BM25,
    FORMAT,
    NO_PAGE,
    READS,
    Collections,
    catalog_entry,
    dense_search_params,
    is_milvus_error,
    literal,
    of_documents,
    one_of,
    reached,
)

_PLAIN = re.compile(r"[^%_\\\x00-\x1f\x7f]*")  # a folder name a LIKE pattern can hold as it is
CACHED_VECTORS = 20_000  # chunk vectors kept by a store: about 30 MB at 384 dimensions
CACHED_ROWS = 5_000  # chunk rows (text and offsets) kept by a store
KNOWN_AMONG = 16  # known_terms: a term is known when one of the first chunks that hold it is live


class _Sentences(TypedDict, total=False):
    sentences: str  # base64 of SentenceVectors.pack()'s, when read (format 4; "" for none)


class MilvusChunk(ChunkRow, _Sentences):
    """A chunk row with its primary key and its document's version."""

    key: str
    sha: str


def published_version(settings: Settings) -> str | None:
    manifest = Collections(settings).get_meta("manifest")
    return f"{manifest['live']}.{manifest['generation']}" if manifest else None


def open_milvus(settings: Settings) -> MilvusStore:
    collections = Collections(settings)
    manifest: Manifest | None = collections.get_meta("manifest")
    where = f"the Milvus collection {settings.milvus_collection} at {collections.uri}"
    if manifest is None:
        raise IndexNotFound(f"no index in {where} — run: assistant build --store milvus")
    if manifest.get("format") not in READS:
        raise IndexMismatch(
            f"{where} was written by another version of the assistant (format {manifest.get('format')}, "
            f"this one reads {FORMAT}) — run: assistant build --store milvus --rebuild"
        )
    check_built_with(manifest, where, settings.model, settings.chunking())
    manifest["skipped"] = list(collections.get_meta("skipped") or [])
    return MilvusStore(collections, manifest, where)


class MilvusStore:
    """The live data of one Milvus index, read-only; implements index.store.Store. A chunk's key is its primary key,
    "<chunk id>:<document sha>". Both sides of search run inside Milvus: FLAT inner product over normalized
    vectors (cosines, exact) and the BM25 function over the chunks' terms."""

    def __init__(self, collections: Collections, manifest: Manifest, where: str) -> None:
        self.db, self.manifest, self.where = collections, manifest, where
        self.uri = collections.uri
        self.version = f"{manifest['live']}.{manifest['generation']}"
        self.chunk_table = collections.data(manifest["live"], "chunks")
        self.doc_table = collections.data(manifest["live"], "docs")
        self.text_table = collections.data(manifest["live"], "texts")
        # a chunk's key names its document's version, so its vector and row never change: kept across questions.
        # A document's version and title are kept for this store's version (a build's switch opens a new store).
        self._vectors: LRU[np.ndarray] = LRU(CACHED_VECTORS)
        self._rows: LRU[MilvusChunk] = LRU(CACHED_ROWS)
        self._docs: dict[str, tuple[str, str]] = {}
        self._every: dict[str, CatalogEntry] | None = None  # the catalog, once read
        try:
            for name in (self.chunk_table, self.doc_table, self.text_table):
                collections.client.load_collection(name)
        except Exception as err:
            if not is_milvus_error(err):
                raise
            # a full rebuild elsewhere switched to new collections and dropped these; the service opens again
            raise IndexNotFound(
                f"{where}: the collections of build {manifest['live']} are gone ({err}) — "
                "ask again: a newer build has replaced them"
            ) from None

    def __len__(self) -> int:
        return int(self.manifest["chunks"])

    @reached
    def dense(self, vector: np.ndarray, k: int, within: Sequence[Scope] = ()) -> list[tuple[str, float]]:
        if k <= 0 or not len(self):
            return []
        hits = self.db.client.search(
            self.chunk_table,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            anns_field="dense",
            limit=min(k, len(self)),
            filter=self._within(within),  # FLAT: the k nearest of the chunks the filter keeps, exactly
            output_fields=["source", "sha", "dense"],
            search_params=dense_search_params(self.manifest["vectors"], min(k, len(self))),
            consistency_level=self.db.consistency,
        )[0]
        live = self._live(hits)
        for hit in live:  # the fusion's cosines need them next: no second trip for the dense side's candidates
            self._vectors.put(hit["id"], np.asarray(hit["entity"]["dense"], dtype=np.float32))
        return [(hit["id"], float(hit["distance"])) for hit in live]

    @reached
    def lexical(self, query: str, k: int, also: Sequence[str] = (), within: Sequence[Scope] = ()) -> dict[str, float]:
        words = " ".join(terms([query])[0])
        if not words or not len(self):
            return {}
        scoped = self._within(within)
        found = self._bm25(words, k, scoped)
        missing = [key for key in also if key not in found]
        if missing:
            found.update(self._bm25(words, len(missing), " and ".join(filter(None, [one_of("key", missing), scoped]))))
        return found

    def _bm25(self, words: str, limit: int, expression: str) -> dict[str, float]:
        hits = self.db.client.search(
            self.chunk_table,
            data=[words],
            anns_field="sparse",
            limit=min(limit, 16_384),
            filter=expression,
            output_fields=["source", "sha"],
            search_params={"metric_type": "BM25"},
            consistency_level=self.db.consistency,
        )[0]
        # the engine's BM25 is bm25s's (Lucene's) times (k1 + 1): the same ranking; divided, the same scores too
        return {hit["id"]: float(hit["distance"]) / (BM25["bm25_k1"] + 1) for hit in self._live(hits)}

    @reached
    def known_terms(self, words: Sequence[str], within: Sequence[Scope] = ()) -> set[str]:
        """The terms that some live chunk of those `within` allows holds: each term searched alone, in one
        request, for the few chunks that hold it (a document's older versions are not live)."""
        asked = list(dict.fromkeys(words))
        if not asked or not len(self):
            return set()
        hits = self.db.client.search(
            self.chunk_table,
            data=asked,
            anns_field="sparse",
            limit=min(KNOWN_AMONG, len(self)),
            filter=self._within(within),
            output_fields=["source", "sha"],
            search_params={"metric_type": "BM25"},
            consistency_level=self.db.consistency,
        )
        return {word for word, matched in zip(asked, hits) if self._live(list(matched))}

    def _within(self, within: Sequence[Scope]) -> str:
        """The filter on `source` that keeps the chunks every scope allows ("": no scope, every chunk)."""
        return " and ".join(f"({self._scope_filter(scope)})" for scope in within)

    def _scope_filter(self, scope: Scope) -> str:
        """Documents by their key (path_key); a folder as a LIKE prefix of `source` when its name is plain, else
        spelled out as its documents: the engine's LIKE takes "%" and "_" as wildcards, with no escape that works,
        and a filter cannot hold a line break."""
        paths = list(scope.paths)
        likes = []
        for folder in scope.folders:
            if _PLAIN.fullmatch(folder):
                likes.append(f"source like {literal(folder + '/%')}")
            else:
                paths += [path for path in self.catalog() if path.startswith(folder + "/")]
        return " or ".join(([of_documents("doc", paths)] if paths else []) + likes) or 'doc == ""'  # nothing

    def _live(self, hits: list[dict]) -> list[dict]:
        """The hits whose document's row names their version: a document being rewritten shows whole. A hit is
        Milvus's: the primary key in `id`, the output fields in `entity`."""
        shas = self._shas({hit["entity"]["source"] for hit in hits})
        return [hit for hit in hits if shas.get(hit["entity"]["source"]) == hit["entity"]["sha"]]

    def _shas(self, paths: set[str]) -> dict[str, str]:
        """The live version of each document ("" for none)."""
        return {path: sha for path, (sha, _) in self._doc_rows(paths).items()}

    def _doc_rows(self, paths: set[str]) -> dict[str, tuple[str, str]]:
        """(sha, title) of each document, read once per store."""
        missing = sorted(p for p in paths if p not in self._docs)
        if missing:
            rows = {
                row["path"]: (row["sha"], row["title"])
                for row in self.db.documents_rows(self.doc_table, missing, ["path", "sha", "title"])
            }
            self._docs.update({path: rows.get(path, ("", "")) for path in missing})
        return {path: self._docs[path] for path in paths}

    @reached
    def stored_vectors(self, keys: Sequence[str]) -> np.ndarray:
        if not len(keys):
            return np.zeros((0, int(self.manifest["dimension"])), np.float32)
        known = {key: vector for key in keys if (vector := self._vectors.get(key)) is not None}
        missing = [key for key in keys if key not in known]
        found = (
            {
                row["key"]: np.asarray(row["dense"], dtype=np.float32)
                for row in self.db.query(self.chunk_table, one_of("key", missing), ["key", "dense"])
            }
            if missing
            else {}
        )
        for key, vector in found.items():
            self._vectors.put(key, vector)
        return np.stack([found[key] if key in found else known[key] for key in keys])

    @reached
    def chunks(self, keys: Sequence[str]) -> dict[str, TitledChunk]:
        missing = [key for key in keys if self._rows.get(key) is None]
        for fetched in self._chunk_rows(one_of("key", missing), sentences=True) if missing else []:
            self._rows.put(fetched["key"], fetched)
        rows = [row for key in keys if (row := self._rows.get(key)) is not None]
        docs = self._doc_rows({row["source"] for row in rows})
        return {
            row["key"]: cast(TitledChunk, {**row, "title": docs[row["source"]][1], "sentences": _packed(row)})
            for row in rows
            if docs[row["source"]][0] == row["sha"]
        }

    @reached
    def chunks_of(self, sources: Sequence[str]) -> list[ChunkRow]:
        rows = self._chunk_rows(of_documents("doc", list(sources))) if len(sources) else []
        return sorted(rows, key=lambda row: (row["source"], row["start"]))

    def _chunk_rows(self, expression: str, sentences: bool = False) -> list[MilvusChunk]:
        """The live chunks that match; with `sentences`, their sentences' vectors too (chunks() reads them)."""
        fields = ["key", "chunk_id", "source", "sha", "page", "start", "end", "text", "embed_text", "section", "ocr"]
        if sentences and self.manifest["format"] >= 4:  # format 3 kept no sentence vectors
            fields.append("sentences")
        rows = self.db.query_all(self.chunk_table, expression, fields)
        shas = self._shas({row["source"] for row in rows})
        return [_chunk_row(row) for row in rows if shas.get(row["source"]) == row["sha"]]

    @reached
    def chunk_by_id(self, chunk_id: str) -> ChunkRow | None:
        rows = self._chunk_rows(f"chunk_id == {literal(chunk_id)}")
        return rows[0] if rows else None

    @reached
    def documents(self, paths: Sequence[str] | None = None) -> dict[str, DocumentRow]:
        """Documents with their text and sections (JSON), as the FAISS store's rows."""
        if paths is None:
            catalog = self.catalog()
        else:
            catalog = self._catalog(of_documents("key", list(paths)) if paths else None)
        found: dict[str, DocumentRow] = {}
        for path, entry in catalog.items():
            version = f"{of_documents('doc', [path])} and sha == {literal(entry['sha256'])}"
            parts = self.db.query(self.text_table, version, ["part", "body"])
            body = json.loads("".join(row["body"] for row in sorted(parts, key=lambda row: row["part"])))
            found[path] = {
                "path": path,
                "title": entry["title"],
                "sha256": entry["sha256"],
                "text": body["text"],
                "sections": json.dumps(body["sections"]),
            }
        return found

    @reached
    def catalog(self) -> dict[str, CatalogEntry]:
        """Every live document, read once per store: a build that changes a document publishes a new version,
        which the service opens as a new store. A scoped question needs it (13-17 ms at 2,000 documents)."""
        if self._every is None:
            self._every = self._catalog('sha != ""')
        return self._every

    def _catalog(self, expression: str | None) -> dict[str, CatalogEntry]:
        if expression is None:
            return {}
        rows = self.db.query_all(self.doc_table, expression, ["path", "sha", "title", "chunks", "precision"])
        return {row["path"]: catalog_entry(row) for row in sorted(rows, key=lambda row: row["path"]) if row["sha"]}

    def stale(self) -> bool:
        """Whether the connection this store loaded its collections on was lost (and dropped, see reached): the
        service then opens the store again, on a new connection that loads them anew."""
        return not self.db.connected()

    def close(self) -> None:
        """The client stays open: it is shared by every store of this process on the same URI."""


def _packed(row: MilvusChunk) -> bytes | None:
    """The row's sentences' vectors as bytes (None for none: format 3, or a passage of over 63 sentences)."""
    try:
        return base64.b64decode(row.get("sentences", ""), validate=True) or None
    except ValueError:  # not base64: not ours, and its sentences are embedded when shown
        return None


def _chunk_row(row: dict[str, Any]) -> MilvusChunk:
    page = int(row["page"])
    chunk: MilvusChunk = {
        "key": row["key"],
        "id": row["chunk_id"],
        "source": row["source"],
        "sha": row["sha"],
        "page": None if page == NO_PAGE else page,
        "start": int(row["start"]),
        "end": int(row["end"]),
        "text": row["text"],
        "embed_text": row["embed_text"],
        "section": row["section"],
        "ocr": bool(row["ocr"]),
    }
    if "sentences" in row:
        chunk["sentences"] = row["sentences"]
    return chunk
