"""assistant build on Milvus: document by document, each one switched from its old version to its new in one row.

Milvus cannot swap a whole cluster at once, so a build never tries to. For each new or changed document it
  1. marks the document's row `pending` (the build's intent, for the next build if this one dies),
  2. writes the new version's text and chunks (keys carry the version, so nothing old is overwritten),
  3. switches the document's row to the new version: from here on readers see only the new chunks,
  4. deletes the old version's chunks and text, and clears `pending`.
A removed document's row is blanked first (readers stop seeing it), then its chunks and text are deleted.
A full build (the first, --rebuild, or a new model or chunking) writes a new family of collections that no
reader uses until the manifest switches to it: there, a batch of documents is written at once.
Killed anywhere, every document is in its old version or its new one; the next build cleans up after the
`pending` rows and re-does whatever the corpus still asks for. A model or chunking change (or --rebuild) writes
a whole new family of collections and switches the manifest to it, also in one row.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import numpy as np

from ...chunking import chunk_documents
from ...config import Settings
from ...documents import Chunk, Document, Progress, SkippedFile
from ...embedding import Embedder, embed_chunks
from ...ingest import Scan, scan_corpus
from ..lexical import terms
from ..manifest import (
    BuildProgress,
    BuildSummary,
    CatalogEntry,
    Manifest,
    SkippedEntry,
    built_with,
    fault_point,
    new_manifest,
    now,
    phase,
    read_alike,
    skipped_entries,
)
from .collections import (
    FORMAT,
    MAX_VARCHAR,
    NO_PAGE,
    PART_CHARS,
    PLACEHOLDER,
    Collections,
    catalog_entry,
    dense_index,
    literal,
    of_documents,
    path_key,
    reached,
)
from .lease import held, renew

log = logging.getLogger(__name__)


class Listed(CatalogEntry):
    """A document of the live collections, as a build lists them."""

    parts: int  # rows of its text in the texts collection


BATCH_CHUNKS = 512  # chunks embedded before their documents are written: the work a killed build loses
WRITE_ROWS = 1_000  # rows per upsert into a full build's collections
DROP_GRACE = 2.0  # seconds between switching to new collections and dropping the old: questions in flight finish


def build_milvus(
    settings: Settings, embedder: Embedder, rebuild: bool = False, progress: BuildProgress | None = None
) -> BuildSummary:
    started = time.monotonic()
    writer = Writer(settings)
    with writer.lease():
        summary = writer.run(embedder, rebuild, progress)
    summary.seconds = time.monotonic() - started
    return summary


class Writer(Collections):
    """The writes of a build, on one family of collections."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    @reached
    def run(self, embedder: Embedder, rebuild: bool, progress: BuildProgress | None) -> BuildSummary:
        old: Manifest | None = self.get_meta("manifest")
        reuse = old is not None and not rebuild and self._same_settings(old)
        if old is not None and not reuse and not rebuild:
            log.warning("the Milvus index was built with other settings; re-embedding every document")
        if old is not None and reuse and not self._whole(old["live"]):
            log.warning("a collection of the Milvus index is gone (dropped by hand?); writing the index anew")
            reuse = False
        self._drop_unpublished(keep=old["live"] if old else None)
        live = old["live"] if old and reuse else datetime.now(timezone.utc).strftime("b%Y%m%dT%H%M%S%f")
        if reuse:
            for kind in ("chunks", "docs", "texts"):
                self.client.load_collection(self.data(live, kind))
        catalog = self._recover_and_list(live) if reuse else {}
        known = {path: entry["sha256"] for path, entry in catalog.items()}
        scan = scan_corpus(self.settings, known, phase(progress, "reading"))
        before: list[SkippedEntry] | None = self.get_meta("skipped") if reuse else None
        skipped = skipped_entries(scan)
        skipped += _still_too_long(scan, before or [])
        summary = BuildSummary.of(scan)
        summary.skipped = [SkippedFile(s["path"], s["reason"]) for s in skipped]
        removed = sorted(set(catalog) - set(scan.kept) - {d.path for d in scan.fresh})
        vectors = dense_index(self.settings)
        if old and reuse and not scan.fresh and not removed and skipped == before and old["vectors"] == vectors:
            summary.chunks = int(old["chunks"])
            return summary
        manifest: Manifest = old.copy() if old and reuse else self._new_manifest(live, embedder, old)
        if not reuse:
            self.create_family(live, int(manifest["dimension"]), manifest["vectors"])
        elif manifest["vectors"] != vectors:
            self._reindex(live, manifest["vectors"], vectors)
            manifest["vectors"] = vectors
        self.manifest, self.catalog, self.in_place = manifest, catalog, reuse
        summary.embedded = self._write_fresh(embedder, scan.fresh, progress, skipped)
        for path in removed:
            self._remove(path)
        self.put_meta("skipped", skipped)
        summary.skipped = [SkippedFile(s["path"], s["reason"]) for s in skipped]
        self._finish(old, reuse)
        summary.chunks, summary.published = int(self.manifest["chunks"]), True
        return summary

    # the manifest and the collections

    def _same_settings(self, manifest: Manifest) -> bool:
        return (
            manifest.get("format") == FORMAT
            and built_with(manifest, self.settings.model, self.settings.chunking())
            and read_alike(manifest)
        )

    def _whole(self, live: str) -> bool:
        """Whether every collection of the live family is there."""
        return all(self.client.has_collection(self.data(live, kind)) for kind in ("chunks", "docs", "texts"))

    def _new_manifest(self, live: str, embedder: Embedder, old: Manifest | None) -> Manifest:
        manifest = new_manifest(
            self.settings, FORMAT, live, embedder.dimension, embedder.max_tokens, embedder.precision
        )
        manifest["live"], manifest["generation"] = live, (old or {}).get("generation", 0) + 1
        manifest["vectors"] = dense_index(self.settings)
        return manifest

    def _reindex(self, live: str, before: dict, after: dict) -> None:
        """A new dense index on the live chunks (ASSISTANT_MILVUS_INDEX or its build parameters changed), from the
        vectors already stored: nothing is embedded again. The collection is released while it is rebuilt, so a
        question asked then fails and can be asked again. Search parameters alone need no new index."""
        if (before.get("type"), before.get("params")) == (after["type"], after["params"]):
            return
        log.info("re-indexing the vectors: %s -> %s %s", before.get("type"), after["type"], after["params"])
        chunks = self.data(live, "chunks")
        self.client.release_collection(chunks)
        self.client.drop_index(chunks, "dense")
        index = self.client.prepare_index_params()
        index.add_index("dense", index_type=after["type"], metric_type="IP", params=dict(after["params"]))
        self.client.create_index(chunks, index)
        self.client.load_collection(chunks)

    def _drop_unpublished(self, keep: str | None) -> None:
        """Collections of full builds that were killed before they were switched to."""
        # exactly this index's names: another index on the cluster may be called, say, C_bob
        family = re.compile(rf"{re.escape(self.base)}_(b\d{{8}}T\d{{12}})_(chunks|docs|texts)")
        for name in self.client.list_collections():
            if (found := family.fullmatch(name)) and found.group(1) != keep:
                log.info("dropping %s, left by a build that did not finish", name)
                self.client.drop_collection(name)

    def _finish(self, old: Manifest | None, reuse: bool) -> None:
        # sealed segments search far faster than growing ones (Milvus Lite: 16,000 chunks in 50 ms, not 1 s)
        for kind in ("chunks", "docs", "texts"):
            self.client.flush(self.data(self.manifest["live"], kind))
        self.manifest["built_at"] = now()
        self.manifest["generation"] = int(self.manifest["generation"]) + 1
        self.put_meta("manifest", self.manifest)  # for a full build: the switch to its collections
        fault_point("published")
        if old is not None and not reuse:
            time.sleep(DROP_GRACE)
            for kind in ("chunks", "docs", "texts"):
                self.client.drop_collection(self.data(old["live"], kind))

    # documents

    def _recover_and_list(self, live: str) -> dict[str, Listed]:
        """Finish what a killed build left `pending`, then list the documents: path -> their row."""
        docs = self.data(live, "docs")
        for row in list(self.query_all(docs, 'pending != ""', ["path", "sha"])):
            log.info("cleaning up %s after an interrupted build", row["path"])
            self._delete_versions(live, row["path"], keep=row["sha"])
            if row["sha"]:
                self.client.upsert(docs, [{**self._doc_row(live, row["path"]), "pending": ""}])
            else:
                self.client.delete(docs, filter=of_documents("key", [row["path"]]))
        rows = self.query_all(docs, 'sha != ""', ["path", "sha", "title", "chunks", "precision", "parts"])
        return {row["path"]: {**catalog_entry(row), "parts": int(row["parts"])} for row in rows}

    def _doc_row(self, live: str, path: str) -> dict:
        fields = ["key", "path", "sha", "pending", "title", "precision", "chunks", "parts"]
        return {
            **self.query(self.data(live, "docs"), of_documents("key", [path]), fields)[0],
            "placeholder": PLACEHOLDER,
        }

    def _delete_versions(self, live: str, path: str, keep: str) -> None:
        """Delete the chunks and text of every version of `path` but `keep` ("": all of them)."""
        expression = of_documents("doc", [path]) + (f" and sha != {literal(keep)}" if keep else "")
        self.client.delete(self.data(live, "chunks"), filter=expression)
        self.client.delete(self.data(live, "texts"), filter=expression)

    def _write_fresh(
        self, embedder: Embedder, fresh: list[Document], progress: BuildProgress | None, skipped: list[SkippedEntry]
    ) -> int:
        """Embed the new and changed documents a batch at a time, and write them as soon as they are embedded.
        A document with a passage too long for a Milvus field is skipped (added to `skipped`)."""
        chunked = _group(chunk_documents(self.settings, embedder, fresh, phase(progress, "chunking")) if fresh else [])
        total, embedded = sum(len(chunks) for chunks in chunked.values()), 0
        for batch in _batches(fresh, chunked):
            chunks_of_batch = [c for document in batch for c in chunked.get(document.path, [])]
            vectors, sentences = (
                embed_chunks(embedder, chunks_of_batch, _offset(phase(progress, "embedding"), embedded, total))
                if chunks_of_batch
                else (np.zeros((0, 1), np.float32), [])
            )
            fault_point("embedding")
            written, start = [], 0
            for document in batch:
                chunks = chunked.get(document.path, [])
                if reason := _too_long(chunks):
                    skipped.append(
                        {"path": document.path, "reason": reason, "sha256": document.sha256, "too_long": True}
                    )
                    if document.path in self.catalog:  # its old version goes too: a skipped file is not in the index
                        self._remove(document.path)
                else:
                    span = slice(start, start + len(chunks))
                    written.append(self._rows(document, chunks, vectors[span], sentences[span], embedder.precision))
                start += len(chunks)
            for rows in written if self.in_place else []:
                self._switch(*rows)
            if not self.in_place and written:
                self._write_unpublished(written)
            self._renew()
            embedded += len(chunks_of_batch)
        return embedded

    def _rows(
        self, document: Document, chunks: list[Chunk], vectors: np.ndarray, sentences: list[bytes], precision: str
    ) -> tuple:
        """A document's new version: its row (without `sha` and `pending`), text rows and chunk rows."""
        path, sha = document.path, document.sha256
        parts = _parts(document)
        row = {
            "key": path_key(path),
            "path": path,
            "title": document.title[:PART_CHARS],
            "precision": precision,
            "chunks": len(chunks),
            "parts": len(parts),
            "placeholder": PLACEHOLDER,
        }
        texts = [
            {
                "key": f"{sha}:{i}:{path_key(path)}",
                "path": path,
                "doc": path_key(path),
                "sha": sha,
                "part": i,
                "body": body,
                "placeholder": PLACEHOLDER,
            }
            for i, body in enumerate(parts)
        ]
        return row, texts, _chunk_rows(chunks, vectors, sentences, sha) if chunks else [], sha

    def _write_unpublished(self, written: list[tuple]) -> None:
        """Into a family of collections no reader uses yet (a full build): a batch at a time, no switch needed."""
        live = self.manifest["live"]
        for kind, rows in (
            ("texts", [t for _, texts, _, _ in written for t in texts]),
            ("chunks", [c for _, _, chunks, _ in written for c in chunks]),
        ):
            for start in range(0, len(rows), WRITE_ROWS):
                self.client.upsert(self.data(live, kind), rows[start : start + WRITE_ROWS])
        fault_point("writing")
        self.client.upsert(self.data(live, "docs"), [{**row, "sha": sha, "pending": ""} for row, _, _, sha in written])
        fault_point("switch")
        self.manifest["chunks"] = int(self.manifest["chunks"]) + sum(row["chunks"] for row, _, _, _ in written)

    def _switch(self, row: dict, texts: list[dict], chunks: list[dict], sha: str) -> None:
        """Into the live collections: one document, from its old version to its new in one row."""
        live, path = self.manifest["live"], row["path"]
        docs, before = self.data(live, "docs"), self.catalog.get(path)
        old = (
            {**row, "title": "", "chunks": 0, "parts": 0, "precision": ""}
            if before is None
            else {
                **row,
                "title": before["title"],
                "chunks": before["chunks"],
                "parts": before["parts"],
                "precision": before["precision"],
            }
        )
        self.client.upsert(docs, [{**old, "sha": before["sha256"] if before else "", "pending": sha}])  # 1. intent
        self.client.upsert(self.data(live, "texts"), texts)
        if chunks:
            self.client.upsert(self.data(live, "chunks"), chunks)  # 2. the new version
        fault_point("writing")
        self.client.upsert(docs, [{**row, "sha": sha, "pending": sha}])  # 3. the switch
        fault_point("switch")
        self._delete_versions(live, path, keep=sha)  # 4. the old version goes
        self.client.upsert(docs, [{**row, "sha": sha, "pending": ""}])
        self.manifest["chunks"] = int(self.manifest["chunks"]) + row["chunks"] - (before["chunks"] if before else 0)
        self._bump()

    def _remove(self, path: str) -> None:
        live, before = self.manifest["live"], self.catalog[path]
        docs = self.data(live, "docs")
        self.client.upsert(
            docs,
            [
                {
                    "key": path_key(path),
                    "path": path,
                    "sha": "",
                    "pending": "removed",
                    "title": before["title"],
                    "precision": "",
                    "chunks": 0,
                    "parts": 0,
                    "placeholder": PLACEHOLDER,
                }
            ],
        )  # readers stop seeing it
        self._delete_versions(live, path, keep="")
        self.client.delete(docs, filter=of_documents("key", [path]))
        self.manifest["chunks"] = int(self.manifest["chunks"]) - before["chunks"]
        self._bump()

    def _bump(self) -> None:
        """In the live collections every document switched is published: a new generation, so that no answer
        cached before it is served after it. A full build publishes once, at the end."""
        if self.in_place:
            self.manifest["generation"] = int(self.manifest["generation"]) + 1
            self.put_meta("manifest", self.manifest)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """This build's lease on its collections (lease.py)."""
        with held(self, self.owner):
            yield

    def _renew(self) -> None:
        renew(self, self.owner)


def _still_too_long(scan: Scan, before: list[SkippedEntry]) -> list[SkippedEntry]:
    """Documents skipped by the last build for a passage too long for Milvus, unchanged since: still skipped,
    without being chunked again. They leave scan.fresh."""
    known = {s["path"]: s for s in before if s.get("too_long")}
    kept = [s for d in scan.fresh if (s := known.get(d.path)) and s["sha256"] == d.sha256]
    paths = {s["path"] for s in kept}
    scan.fresh = [d for d in scan.fresh if d.path not in paths]
    return kept


def _group(chunks: list[Chunk]) -> dict[str, list[Chunk]]:
    grouped: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        grouped.setdefault(chunk.source, []).append(chunk)
    return grouped


def _batches(fresh: list[Document], chunked: dict[str, list[Chunk]]) -> Iterator[list[Document]]:
    """Documents in groups of at least BATCH_CHUNKS chunks (the last one smaller); a document is never split."""
    batch: list[Document] = []
    size = 0
    for document in fresh:
        batch.append(document)
        size += len(chunked.get(document.path, []))
        if size >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """The embedder's progress within one batch, as progress over the whole build."""
    if progress is None:
        return None
    return lambda batch_done, _: progress(done + batch_done, total)


def _too_long(chunks: list[Chunk]) -> str | None:
    """Why Milvus cannot store these chunks, if it cannot: a VARCHAR field holds at most 65,535 bytes."""
    longest = max((len(c.embed_text.encode()) for c in chunks), default=0)
    if longest > MAX_VARCHAR:
        return (
            f"a passage is {longest:,} bytes, over Milvus's limit of {MAX_VARCHAR:,} for one field "
            "(a very long word or line) — split the text, or use ASSISTANT_STORE=faiss"
        )
    return None


def _parts(document: Document) -> list[str]:
    body = json.dumps({"text": document.text, "sections": [vars(s) for s in document.sections]}, ensure_ascii=False)
    return [body[i : i + PART_CHARS] for i in range(0, len(body), PART_CHARS)] or [""]


def _chunk_rows(chunks: list[Chunk], vectors: np.ndarray, sentences: list[bytes], sha: str) -> list[dict]:
    words = terms([c.embed_text for c in chunks])
    encoded = [base64.b64encode(packed).decode() for packed in sentences]
    return [
        {
            "key": f"{c.id}:{sha}",
            "chunk_id": c.id,
            "source": c.source,
            "doc": path_key(c.source),
            "sha": sha,
            "page": NO_PAGE if c.page is None else c.page,
            "start": c.start,
            "end": c.end,
            "text": c.text,
            "embed_text": c.embed_text,
            "section": c.section[:PART_CHARS],
            "ocr": c.ocr,
            "terms": " ".join(w)[:PART_CHARS],
            "dense": v.tolist(),
            "sentences": b if len(b) <= MAX_VARCHAR else "",  # 63 sentences fit; more are embedded when shown
        }
        for c, w, v, b in zip(chunks, words, np.asarray(vectors, dtype=np.float32), encoded)
    ]
