"""Milvus for the index stage: the connection, its errors, and the collections of an index (Milvus Lite's file
or a server). Searching them is store.py; writing them, build.py.

Layout, for ASSISTANT_MILVUS_COLLECTION=C:
  C_meta          the manifest (model, chunking, ..., the live data's suffix and a generation counter),
                  the skipped files and the build lease; read by every assistant that shares the cluster
  C_<live>_docs   one row per document: path, sha, title, chunk count, and `pending` while a build rewrites it
  C_<live>_texts  each document's text and sections, as JSON in parts (a VARCHAR holds at most 65,535 bytes)
  C_<live>_chunks one row per chunk and document version: text, dense vector, BM25 over its terms, and its
                  sentences' vectors (documents.SentenceVectors, base64 in a VARCHAR; "" when over its limit)
A chunk counts only while its document's row names its version (`sha`): a build writes a document's new chunks,
then switches that one row, then deletes the old chunks (build.py), so readers see each document whole.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...config import Settings
from ...errors import ConfigError, IndexDamaged, IndexMismatch, IndexNotFound, StoreUnavailable
from ..manifest import CatalogEntry

log = logging.getLogger(__name__)

# of the collections' layout; 2: each chunk's section (heading path) and ocr flag; 3: documents found by the hash
# of their path (path_key), never by the path in a filter; 4: each chunk's sentences' vectors
FORMAT = 4
READS = (3, 4)  # the formats the store reads: a format-3 index is served (its highlights embed sentences)
PART_CHARS = 16_000  # characters per VARCHAR part: at most 4 bytes each, under Milvus's 65,535-byte limit
MAX_VARCHAR = 65_535
LIMIT = 16_384  # rows one Milvus query returns at most
BM25 = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults, which the FAISS store uses
PLACEHOLDER = [0.0, 0.0]  # the vector of a side collection's row: Milvus wants a vector field in every collection
NO_PAGE = -1  # Milvus Lite has no NULL: a chunk without a page

_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()
_loaded: set[tuple[str, str]] = set()  # (uri, side collection) loaded by this process's client


def is_lite(uri: str) -> bool:
    """A file path (pymilvus wants it to end in .db) is Milvus Lite; a URI with a scheme is a server."""
    return "://" not in uri


def client_for(settings: Settings) -> Any:
    """One MilvusClient per URI, token and database in this process (Milvus Lite lets one process open its file)."""
    key = _client_key(settings)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _connect(*key)
        return _clients[key]


def _client_key(settings: Settings) -> tuple[str, str, str]:
    return settings.milvus_target(), settings.milvus_token, settings.milvus_db


def _connect(uri: str, token: str, db: str = "") -> Any:
    try:
        with warnings.catch_warnings():  # milvus-lite 2.5 imports pkg_resources, which warns that it is deprecated
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from pymilvus import MilvusClient

            if is_lite(uri):
                import milvus_lite  # noqa: F401  (imported here, under the filter, before pymilvus imports it)
    except ImportError:
        raise ConfigError(
            "ASSISTANT_STORE=milvus needs pymilvus and milvus-lite — run: pip install 'assistant[milvus]'"
        ) from None
    if is_lite(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        # Lite's engine (a child process, on a local socket) gives the query iterator no snapshot timestamp; the
        # iterator takes the client's own, and would say so at every page read. A server gives one.
        logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)
    try:
        # keepalive pings to Lite's engine on its local socket are pointless: off for Lite; a server keeps
        # pymilvus's defaults
        options: dict[str, Any] = {"grpc_options": {"grpc.keepalive_time_ms": 2**31 - 1}} if is_lite(uri) else {}
        if db:
            options["db_name"] = db
        return MilvusClient(uri=uri, token=token, timeout=30, **options)
    except Exception as err:  # pymilvus raises its own exceptions, and grpc's
        raise StoreUnavailable(_unreachable(uri, err)) from None


def _unreachable(uri: str, err: Exception) -> str:
    reason = getattr(err, "message", None) or str(err) or type(err).__name__
    if is_lite(uri):
        return (
            f"cannot open Milvus Lite at {uri}: {reason} — Milvus Lite lets one process at a time open its file: "
            "stop the other assistant (or build from its chat), or run a Milvus server and set ASSISTANT_MILVUS_URI"
        )
    return (
        f"cannot reach Milvus at {uri}: {reason} — start Milvus there, or set ASSISTANT_MILVUS_URI "
        "(http://host:19530 for a server, a file path for Milvus Lite) and ASSISTANT_MILVUS_TOKEN"
    )


def reached(method):
    """A Milvus error while serving or building becomes StoreUnavailable, naming the URI. When the connection
    itself is gone (the server went away, Milvus Lite's engine died), the client is dropped, so the next question
    connects again (restarting Lite's engine) and reopens the store: it recovers without a restart."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (StoreUnavailable, IndexNotFound, IndexMismatch, ConfigError):
            raise
        except Exception as err:
            if not is_milvus_error(err):
                raise
            log.warning("Milvus at %s: %s", self.uri, err)
            if _connection_lost(err):
                close_clients(self.uri)  # the next use connects anew (Lite: a new engine)
            reason = getattr(err, "message", None) or str(err) or type(err).__name__
            if "collection not found" in reason:  # dropped by hand, say: no retry brings it back
                raise IndexDamaged(
                    f"Milvus at {self.uri}: a collection of the index is gone ({reason}) — run: assistant build, "
                    "which writes the index anew"
                ) from None
            raise StoreUnavailable(
                f"Milvus at {self.uri} failed: {reason} — check that it is running and reachable, then try again"
            ) from None

    return wrapper


def is_milvus_error(err: Exception) -> bool:
    return type(err).__module__.split(".")[0] in ("pymilvus", "grpc")


def _connection_lost(err: Exception) -> bool:
    """pymilvus's "Fail connecting to server" (code 2) or gRPC's UNAVAILABLE: nothing answers at the URI."""
    code = getattr(err, "code", None)
    status = code() if callable(code) else code
    return status == 2 or getattr(status, "name", "") == "UNAVAILABLE" or "Fail connecting" in str(err)


_ESCAPES = {"\\": "\\\\", '"': '\\"'}


def literal(text: str) -> str:
    """A string in a Milvus filter expression, its backslashes and double quotes escaped. Milvus's engine takes no
    other escape as it should ("\\n" matches no line break, and a raw one is refused): a path never goes into a
    filter (path_key), only hashes, keys of our own and plain folder names."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def one_of(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(literal(v) for v in values)}]"


class Collections:
    """The names and the raw reads and writes of one C_* family of collections on one client."""

    def __init__(self, settings: Settings) -> None:
        self.uri = settings.milvus_target()
        self.base = settings.milvus_collection
        self.settings = settings
        self.client = client_for(settings)
        self.meta = f"{self.base}_meta"
        self.consistency = settings.milvus_consistency  # of every search and query (Settings.milvus_consistency)

    def connected(self) -> bool:
        """Whether this client is still the process's client of the URI (reached drops a lost one)."""
        with _clients_lock:
            return _clients.get(_client_key(self.settings)) is self.client

    def data(self, live: str, kind: str) -> str:
        return f"{self.base}_{live}_{kind}"

    @reached
    def get_meta(self, key: str) -> Any:
        """A value of the side collection (None when there is none): one query once the collection is loaded,
        since the service reads the manifest's version before every question."""
        if (self.uri, self.meta) not in _loaded:
            if not self.client.has_collection(self.meta):
                return None
            self.client.load_collection(self.meta)
            _loaded.add((self.uri, self.meta))
        rows = self.client.query(
            self.meta, filter=f"key == {literal(key)}", output_fields=["value"], consistency_level=self.consistency
        )
        return json.loads(rows[0]["value"]) if rows else None

    def create_family(self, live: str, dimension: int, vectors: dict[str, Any]) -> None:
        """The chunks, docs and texts collections of a build; `vectors`: the dense index (dense_index())."""
        from pymilvus import DataType, Function, FunctionType

        client = self.client
        chunks = self._schema(
            [("chunk_id", 64), ("source", None), ("doc", 64), ("sha", 64)],
            [("page", DataType.INT64), ("start", DataType.INT64), ("end", DataType.INT64)],
            ["text", "embed_text", "section", "sentences"],
        )
        chunks.add_field("ocr", DataType.BOOL)
        chunks.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )  # the terms are ours (lexical.terms), as bm25s gets them
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        chunks.add_function(
            Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
            )
        )
        index = client.prepare_index_params()
        index.add_index("dense", index_type=vectors["type"], metric_type="IP", params=dict(vectors["params"]))
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=dict(BM25))
        client.create_collection(
            self.data(live, "chunks"), schema=chunks, index_params=index, consistency_level=self.consistency
        )
        docs = self._schema(
            [("path", None), ("sha", 64), ("pending", 64), ("title", None), ("precision", 16)],
            [("chunks", DataType.INT64), ("parts", DataType.INT64)],
            [],
        )
        texts = self._schema([("path", None), ("doc", 64), ("sha", 64)], [("part", DataType.INT64)], ["body"])
        for kind, schema in (("docs", docs), ("texts", texts)):
            self.create_side(self.data(live, kind), schema)

    def _schema(self, strings: list, numbers: list, texts: list, key: str = "key"):
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field(key, DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
        for name, length in strings:
            schema.add_field(name, DataType.VARCHAR, max_length=length or MAX_VARCHAR)
        for name, kind in numbers:
            schema.add_field(name, kind)
        for name in texts:
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
        return schema

    def create_side(self, name: str, schema) -> None:
        """A collection without vectors of its own: Milvus wants one vector field, so it gets a 2-d placeholder."""
        from pymilvus import DataType

        schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=len(PLACEHOLDER))
        index = self.client.prepare_index_params()
        index.add_index("placeholder", index_type="FLAT", metric_type="IP")
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level=self.consistency)

    def put_meta(self, key: str, value: Any) -> None:
        if not self.client.has_collection(self.meta):
            self.create_side(self.meta, self._schema([], [], ["value"]))
        text = json.dumps(value, ensure_ascii=False)
        if len(text.encode()) > MAX_VARCHAR:  # only a very long list of skipped files gets here
            text = json.dumps(value[: max(1, len(value) * MAX_VARCHAR // len(text.encode()) // 2)], ensure_ascii=False)
        self.client.upsert(self.meta, [{"key": key, "value": text, "placeholder": PLACEHOLDER}])

    @reached
    def query_all(self, collection: str, expression: str, fields: list[str]) -> list[dict]:
        """Every row that matches, read LIMIT at a time with Milvus's query iterator (one query returns at most
        LIMIT rows). Its paging goes by primary key, which never holds a path (path_key)."""
        rows: list[dict] = []
        pages = self.client.query_iterator(
            collection, batch_size=LIMIT, filter=expression, output_fields=fields, consistency_level=self.consistency
        )
        try:
            while page := pages.next():
                rows += page
        finally:
            pages.close()
        return rows

    @reached
    def documents_rows(self, collection: str, paths: Sequence[str], fields: list[str]) -> list[dict]:
        """The docs collection's rows of these documents, by key: one query per LIMIT documents."""
        return [
            row
            for start in range(0, len(paths), LIMIT)
            for row in self.query(collection, of_documents("key", paths[start : start + LIMIT]), fields)
        ]

    @reached
    def query(self, collection: str, expression: str, fields: list[str]) -> list[dict]:
        """The rows that match, up to LIMIT: for lookups of a bounded number of keys."""
        return self.client.query(
            collection, filter=expression, output_fields=fields, limit=LIMIT, consistency_level=self.consistency
        )


def dense_index(settings: Settings) -> dict[str, Any]:
    """The dense field's index as a build records it in the manifest's `vectors`: type, build and search params."""
    kind, build, search = settings.milvus_dense_index()
    return {"type": kind, "params": build, "search": search}


def dense_search_params(vectors: dict[str, Any], limit: int) -> dict[str, Any]:
    """The search parameters of the dense index a build made (FLAT: none; HNSW's ef at least the limit)."""
    search = dict(vectors.get("search", {}))
    if "ef" in search:
        search["ef"] = max(int(search["ef"]), limit)
    return {"metric_type": "IP", "params": search} if search else {"metric_type": "IP"}


def catalog_entry(row: dict[str, Any]) -> CatalogEntry:
    """A document's entry from its row in the docs collection."""
    return {"sha256": row["sha"], "title": row["title"], "chunks": int(row["chunks"]), "precision": row["precision"]}


def path_key(path: str) -> str:
    """A document's key: a hash of its path. It is the docs collection's primary key and the `doc` field of its
    chunks and texts, and every filter that names documents names them by it, never by their path: Milvus's
    engine writes primary keys into SQL unescaped (upserting a key that holds a quote fails), and its filter
    expressions cannot hold a line break (neither raw nor as an escape)."""
    return hashlib.sha256(path.encode()).hexdigest()


def of_documents(field: str, paths: Sequence[str]) -> str:
    """The filter keeping the rows of these documents: `field` (key or doc) among their path_keys."""
    return one_of(field, [path_key(path) for path in paths])


def close_clients(uri: str | None = None) -> None:
    """Close this process's Milvus clients (of `uri`, or all): Milvus Lite then stops its engine and lets go of
    its file, which another process may open; the next use of a URI connects anew."""
    with _clients_lock:
        for key in [key for key in _clients if uri is None or key[0] == uri]:
            _close(key[0], _clients.pop(key))
        _loaded.difference_update({loaded for loaded in _loaded if uri is None or loaded[0] == uri})


def _close(uri: str, client: Any) -> None:
    try:
        client.close()
        if is_lite(uri):  # the engine's process holds the file until it is stopped
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)
    except Exception as err:  # closing is best effort: the process may be on its way out, or its engine dead
        log.warning("closing a Milvus client: %s", err)
