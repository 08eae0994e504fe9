"""The Milvus store: chunks, their dense vectors and BM25 in Milvus collections (Milvus Lite's file, or a server).

Layout, for ASSISTANT_MILVUS_COLLECTION=C:
  C_meta          the manifest (model, chunking, ..., the live data's suffix and a generation counter),
                  the skipped files and the build lease; read by every assistant that shares the cluster
  C_<live>_docs   one row per document: path, sha, title, chunk count, and `pending` while a build rewrites it
  C_<live>_texts  each document's text and sections, as JSON in parts (a VARCHAR holds at most 65,535 bytes)
  C_<live>_chunks one row per chunk and document version: text, dense vector, and BM25 over its terms
A chunk counts only while its document's row names its version (`sha`): a build writes a document's new chunks,
then switches that one row, then deletes the old chunks (milvus_build.py), so readers see each document whole.
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .errors import ConfigError, IndexMismatch, IndexNotFound, StoreUnavailable
from .index import check_built_with
from .lexical import terms

log = logging.getLogger(__name__)

FORMAT = 1  # of the collections' layout
PART_CHARS = 16_000  # characters per VARCHAR part: at most 4 bytes each, under Milvus's 65,535-byte limit
MAX_VARCHAR = 65_535
LIMIT = 16_384  # rows one Milvus query returns at most
BUCKETS = 65_536  # docs and chunks carry bucket = crc32(key) % BUCKETS, to read more than LIMIT rows in slices
BM25 = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults, which the FAISS store uses
_NO_PAGE = -1  # Milvus Lite has no NULL: a chunk without a page

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def is_lite(uri: str) -> bool:
    """A file path (pymilvus wants it to end in .db) is Milvus Lite; a URI with a scheme is a server."""
    return "://" not in uri


def client_for(settings: Settings) -> Any:
    """One MilvusClient per URI and token in this process (Milvus Lite lets one process open its file)."""
    uri, token = settings.milvus_target(), settings.milvus_token
    with _clients_lock:
        if (uri, token) not in _clients:
            _clients[(uri, token)] = _connect(uri, token)
        return _clients[(uri, token)]


def _connect(uri: str, token: str) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError("ASSISTANT_STORE=milvus needs pymilvus and milvus-lite — run: pip install 'assistant[milvus]'") from None
    if is_lite(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        # Milvus Lite serves gRPC in this process, without AllocTimestamp, which pymilvus asks for while it
        # waits for a new collection's index; pymilvus does without, but grpc would log each refusal with a traceback
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=uri, token=token, timeout=30)
    except Exception as err:  # pymilvus raises its own exceptions, and grpc's
        raise StoreUnavailable(_unreachable(uri, err)) from None


def _unreachable(uri: str, err: Exception) -> str:
    reason = getattr(err, "message", None) or str(err) or type(err).__name__
    if is_lite(uri):
        return (f"cannot open Milvus Lite at {uri}: {reason} — Milvus Lite lets one process at a time open its file: "
                "stop the other assistant (or build from its chat), or run a Milvus server and set ASSISTANT_MILVUS_URI")
    return (f"cannot reach Milvus at {uri}: {reason} — start Milvus there, or set ASSISTANT_MILVUS_URI "
            "(http://host:19530 for a server, a file path for Milvus Lite) and ASSISTANT_MILVUS_TOKEN")


def reached(method):
    """A Milvus error while serving or building becomes StoreUnavailable, naming the URI."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (StoreUnavailable, IndexNotFound, IndexMismatch, ConfigError):
            raise
        except Exception as err:
            if not _is_milvus_error(err):
                raise
            log.warning("Milvus at %s: %s", self.uri, err)
            reason = getattr(err, "message", None) or str(err) or type(err).__name__
            raise StoreUnavailable(f"Milvus at {self.uri} failed: {reason} — check that it is running and reachable, "
                                   "then try again") from None
    return wrapper


def _is_milvus_error(err: Exception) -> bool:
    return type(err).__module__.split(".")[0] in ("pymilvus", "grpc")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """A string in a Milvus filter expression. Its parser takes these escapes (and refuses \\u and \\x); other
    characters, the rest of the control characters included, go in as they are."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def one_of(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(literal(v) for v in values)}]"


class Collections:
    """The names and the raw reads and writes of one C_* family of collections on one client."""

    def __init__(self, settings: Settings) -> None:
        self.uri = settings.milvus_target()
        self.base = settings.milvus_collection
        self.client = client_for(settings)
        self.meta = f"{self.base}_meta"

    def data(self, live: str, kind: str) -> str:
        return f"{self.base}_{live}_{kind}"

    @reached
    def get_meta(self, key: str) -> Any:
        if not self.client.has_collection(self.meta):
            return None
        self.client.load_collection(self.meta)
        rows = self.client.query(self.meta, filter=f"key == {literal(key)}", output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    @reached
    def query_all(self, collection: str, expression: str, fields: list[str]) -> list[dict]:
        """Every row that matches. One query returns at most LIMIT rows; past that, the rows are read in
        slices of `bucket` (a hash of the key). pymilvus's query iterator is not used: it breaks on keys
        that hold a double quote."""
        return self._slice(collection, expression, fields, 0, BUCKETS)

    def _slice(self, collection: str, expression: str, fields: list[str], low: int, high: int) -> list[dict]:
        where = [expression] if expression else []
        if (low, high) != (0, BUCKETS):
            where.append(f"bucket >= {low} and bucket < {high}")
        rows = self.client.query(collection, filter=" and ".join(f"({w})" for w in where), output_fields=fields, limit=LIMIT)
        if len(rows) < LIMIT or high - low == 1:
            return rows
        middle = (low + high) // 2
        return self._slice(collection, expression, fields, low, middle) + self._slice(collection, expression, fields, middle, high)

    @reached
    def query(self, collection: str, expression: str, fields: list[str]) -> list[dict]:
        """The rows that match, up to LIMIT: for lookups of a bounded number of keys."""
        return self.client.query(collection, filter=expression, output_fields=fields, limit=LIMIT)


def published_version(settings: Settings) -> str | None:
    manifest = Collections(settings).get_meta("manifest")
    return f"{manifest['live']}.{manifest['generation']}" if manifest else None


def open_milvus(settings: Settings) -> MilvusStore:
    collections = Collections(settings)
    manifest = collections.get_meta("manifest")
    where = f"the Milvus collection {settings.milvus_collection} at {collections.uri}"
    if manifest is None:
        raise IndexNotFound(f"no index in {where} — run: assistant build --store milvus")
    if manifest.get("format") != FORMAT:
        raise IndexMismatch(f"{where} was written by another version of the assistant (format {manifest.get('format')}, "
                            f"this one reads {FORMAT}) — run: assistant build --store milvus --rebuild")
    check_built_with(manifest, where, settings.model, settings.chunking())
    manifest["skipped"] = list(collections.get_meta("skipped") or [])
    return MilvusStore(collections, manifest, where)


class MilvusStore:
    """The live data of one Milvus index, read-only; implements stores.Store. A chunk's key is its primary key,
    "<chunk id>:<document sha>". Both sides of search run inside Milvus: FLAT inner product over normalized
    vectors (cosines, exact) and the BM25 function over the chunks' terms."""

    def __init__(self, collections: Collections, manifest: dict, where: str) -> None:
        self.db, self.manifest, self.where = collections, manifest, where
        self.uri = collections.uri
        self.version = f"{manifest['live']}.{manifest['generation']}"
        self.chunk_table = collections.data(manifest["live"], "chunks")
        self.doc_table = collections.data(manifest["live"], "docs")
        self.text_table = collections.data(manifest["live"], "texts")
        for name in (self.chunk_table, self.doc_table, self.text_table):
            collections.client.load_collection(name)

    def __len__(self) -> int:
        return int(self.manifest["chunks"])

    @reached
    def dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        if k <= 0 or not len(self):
            return []
        hits = self.db.client.search(self.chunk_table, data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="dense",
                                     limit=min(k, len(self)), output_fields=["source", "sha"],
                                     search_params={"metric_type": "IP"})[0]
        return [(hit["key"], float(hit["distance"])) for hit in self._live(hits)]

    @reached
    def lexical(self, query: str, k: int, also: Sequence[str] = ()) -> dict[str, float]:
        words = " ".join(terms([query])[0])
        if not words or not len(self):
            return {}
        found = self._bm25(words, k, None)
        missing = [key for key in also if key not in found]
        if missing:
            found.update(self._bm25(words, len(missing), one_of("key", missing)))
        return found

    def _bm25(self, words: str, limit: int, expression: str | None) -> dict[str, float]:
        hits = self.db.client.search(self.chunk_table, data=[words], anns_field="sparse", limit=min(limit, 16_384),
                                     filter=expression or "", output_fields=["source", "sha"],
                                     search_params={"metric_type": "BM25"})[0]
        return {hit["key"]: abs(float(hit["distance"])) for hit in self._live(hits)}  # Milvus Lite reports -score

    def _live(self, hits: list[dict]) -> list[dict]:
        """The rows whose document's row names their version: a document being rewritten shows whole."""
        entity = [hit.get("entity", hit) for hit in hits]
        shas = self._shas({e["source"] for e in entity})
        return [hit for hit, e in zip(hits, entity) if shas.get(e["source"]) == e["sha"]]

    def _shas(self, paths: set[str]) -> dict[str, str]:
        if not paths:
            return {}
        rows = self.db.query(self.doc_table, one_of("path", sorted(paths)), ["path", "sha"])
        return {row["path"]: row["sha"] for row in rows if row["sha"]}

    @reached
    def stored_vectors(self, keys: Sequence[str]) -> np.ndarray:
        if not len(keys):
            return np.zeros((0, int(self.manifest["dimension"])), np.float32)
        rows = {row["key"]: row["dense"] for row in self.db.query(self.chunk_table, one_of("key", list(keys)), ["key", "dense"])}
        return np.asarray([rows[key] for key in keys], dtype=np.float32)

    @reached
    def chunks(self, keys: Sequence[str]) -> dict[str, dict]:
        rows = self._chunk_rows(one_of("key", list(keys))) if len(keys) else []
        titles = self._titles({row["source"] for row in rows})
        return {row["key"]: {**row, "title": titles.get(row["source"], "")} for row in rows}

    @reached
    def chunks_of(self, sources: Sequence[str]) -> list[dict]:
        rows = self._chunk_rows(one_of("source", list(sources))) if len(sources) else []
        return sorted(rows, key=lambda row: (row["source"], row["start"]))

    def _chunk_rows(self, expression: str) -> list[dict]:
        fields = ["key", "chunk_id", "source", "sha", "page", "start", "end", "text", "embed_text"]
        rows = self.db.query_all(self.chunk_table, expression, fields)
        shas = self._shas({row["source"] for row in rows})
        return [_chunk_row(row) for row in rows if shas.get(row["source"]) == row["sha"]]

    def _titles(self, paths: set[str]) -> dict[str, str]:
        if not paths:
            return {}
        return {row["path"]: row["title"] for row in self.db.query(self.doc_table, one_of("path", sorted(paths)), ["path", "title"])}

    @reached
    def chunk_by_id(self, chunk_id: str) -> dict | None:
        rows = self._chunk_rows(f"chunk_id == {literal(chunk_id)}")
        return rows[0] if rows else None

    @reached
    def documents(self, paths: Sequence[str] | None = None) -> dict[str, dict]:
        """Documents with their text and sections (JSON), as the FAISS store's rows."""
        catalog = self.catalog() if paths is None else self._catalog(one_of("path", list(paths)) if paths else None)
        found = {}
        for path, entry in catalog.items():
            parts = self.db.query(self.text_table, f"path == {literal(path)} and sha == {literal(entry['sha256'])}", ["part", "body"])
            body = json.loads("".join(row["body"] for row in sorted(parts, key=lambda row: row["part"])))
            found[path] = {"path": path, "title": entry["title"], "sha256": entry["sha256"], "text": body["text"],
                           "sections": json.dumps(body["sections"])}
        return found

    @reached
    def catalog(self) -> dict[str, dict]:
        return self._catalog('sha != ""')

    def _catalog(self, expression: str | None) -> dict[str, dict]:
        if expression is None:
            return {}
        rows = self.db.query_all(self.doc_table, expression, ["path", "sha", "title", "chunks", "precision"])
        return {row["path"]: {"sha256": row["sha"], "title": row["title"], "chunks": int(row["chunks"]),
                              "precision": row["precision"]}
                for row in sorted(rows, key=lambda row: row["path"]) if row["sha"]}

    def close(self) -> None:
        """The client stays open: it is shared by every store of this process on the same URI."""


def bucket(key: str) -> int:
    return zlib.crc32(key.encode()) % BUCKETS


def _chunk_row(row: dict) -> dict:
    page = int(row["page"])
    return {"key": row["key"], "id": row["chunk_id"], "source": row["source"], "sha": row["sha"],
            "page": None if page == _NO_PAGE else page, "start": int(row["start"]), "end": int(row["end"]),
            "text": row["text"], "embed_text": row["embed_text"]}


def close_clients() -> None:
    """Close this process's Milvus clients; Milvus Lite then lets go of its file, which another process may open."""
    with _clients_lock:
        for (uri, _), client in _clients.items():
            try:
                client.close()
                if is_lite(uri):  # the in-process server holds the file until it is stopped
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(uri)
            except Exception as err:  # closing is best effort: the process may be on its way out
                log.warning("closing a Milvus client: %s", err)
        _clients.clear()
