"""assistant build on FAISS: read the corpus, chunk and embed what is new or changed, and publish a new build."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ...chunking import chunk_documents
from ...config import Settings
from ...documents import Chunk, Document, Section, SkippedFile
from ...embedding import Embedder, embed_chunks
from ...errors import IndexMismatch
from ...ingest import Scan, scan_corpus
from ..manifest import (
    BuildProgress,
    BuildSummary,
    Manifest,
    built_with,
    dense_spec,
    fault_point,
    new_manifest,
    phase,
    read_alike,
    skipped_entries,
)
from ..store import ChunkRow, DocumentRow
from .folder import FORMAT, build_lock, current_build, disk_errors, publish, remove_old_builds, write_build
from .store import Index
from .vectors import build_dense, dense_settled

log = logging.getLogger(__name__)


def build_faiss(
    settings: Settings, embedder: Embedder, rebuild: bool = False, progress: BuildProgress | None = None
) -> BuildSummary:
    """Write a new build from the unchanged documents' stored vectors and the new ones', then publish it."""
    started = time.monotonic()
    with disk_errors(settings.index), build_lock(settings.index):
        current = current_build(settings.index)  # leftovers of killed builds are unpublished: safe to delete
        remove_old_builds(settings.index, keep=current.name if current else None)
        old = _reusable(settings, rebuild)
        try:
            catalog = old.catalog() if old else {}
            known = {path: entry["sha256"] for path, entry in catalog.items()}
            scan = scan_corpus(settings, known, phase(progress, "reading"))
            summary = BuildSummary.of(scan)
            if (
                old
                and not (scan.fresh or summary.removed)
                and _same_skips(old, scan.skipped)
                and _same_dense(old, settings)
            ):
                summary.chunks = len(old)
            else:
                summary.embedded, summary.chunks = _write_new_build(settings, embedder, old, scan, progress)
                summary.published = True
        finally:
            if old:
                old.close()
    summary.seconds = time.monotonic() - started
    return summary


def _reusable(settings: Settings, rebuild: bool) -> Index | None:
    """The published index, if its vectors can be reused: same format, model and chunking."""
    folder = current_build(settings.index)
    if folder is None or rebuild:
        return None
    try:
        index = Index(folder)
    except IndexMismatch as why:
        log.warning("%s; re-embedding every document", why)
        return None
    if not built_with(index.manifest, settings.model, settings.chunking()):
        log.warning("index was built with other settings; re-embedding every document")
        index.close()
        return None
    if index.manifest.get("format") != FORMAT:
        log.warning("index was written by an older version (no sentence vectors); re-embedding every document")
        index.close()
        return None
    if not read_alike(index.manifest):
        log.warning("index was built by an older version of the readers; reading every document again")
        index.close()
        return None
    return index


def _same_skips(old: Index, skipped: list[SkippedFile]) -> bool:
    return {s["path"]: s["reason"] for s in old.manifest.get("skipped", [])} == {s.path: s.reason for s in skipped}


def _same_dense(old: Index, settings: Settings) -> bool:
    return dense_settled(dense_spec(old.manifest), len(old), settings.ann_threshold, settings.ann_nprobe)


def _write_new_build(
    settings: Settings, embedder: Embedder, old: Index | None, scan: Scan, progress: BuildProgress | None
) -> tuple[int, int]:
    """Embed the fresh documents, add the kept ones, write and publish. Returns (embedded, total) chunks."""
    new_chunks, new_vectors, new_sentences, max_tokens = _embed_fresh(settings, embedder, scan.fresh, progress)
    fault_point("embedding")
    kept_docs, kept_chunks, kept_vectors, kept_rows = _kept(old, scan.kept)
    kept_sentences = old.packed_sentences(kept_rows.tolist()) if old else []
    if max_tokens is None:  # nothing was embedded: the model was not even loaded
        max_tokens = old.manifest["chunking"]["max_tokens"] if old else 0
    dimension = new_vectors.shape[1] if len(new_chunks) else (old.manifest["dimension"] if old else embedder.dimension)
    vectors = np.vstack([kept_vectors.reshape(-1, dimension), new_vectors.reshape(-1, dimension)])
    chunks = kept_chunks + new_chunks
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].start))
    chunks, vectors = [chunks[i] for i in order], vectors[order]
    sentences = [(kept_sentences + new_sentences)[i] for i in order]
    old_rows = np.concatenate([kept_rows, np.full(len(new_chunks), -1, np.int64)])[order]
    previous, previous_spec = (old.vectors, dense_spec(old.manifest)) if old else (None, None)
    dense, vectors_spec = build_dense(
        vectors, settings.ann_threshold, settings.ann_nprobe, previous, previous_spec, old_rows
    )
    documents = sorted(kept_docs + scan.fresh, key=lambda d: d.path)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = new_manifest(settings, FORMAT, name, dimension, max_tokens, embedder.precision)
    made_in = {path: entry.get("precision", "fp32") for path, entry in (old.catalog() if old else {}).items()}
    _add_contents(manifest, documents, chunks, scan, made_in)
    manifest["vectors"] = vectors_spec
    write_build(settings.index, name, manifest, documents, chunks, dense, sentences)
    publish(settings.index, name)
    return len(new_chunks), len(chunks)


def _embed_fresh(
    settings: Settings, embedder: Embedder, fresh: list[Document], progress: BuildProgress | None
) -> tuple[list[Chunk], np.ndarray, list[bytes | None], int | None]:
    if not fresh:
        return [], np.zeros((0,), np.float32), [], None
    chunks = chunk_documents(settings, embedder, fresh, phase(progress, "chunking"))
    if not chunks:
        return [], np.zeros((0,), np.float32), [], embedder.max_tokens
    vectors, sentences = embed_chunks(embedder, chunks, phase(progress, "embedding"))
    return chunks, vectors, list(sentences), embedder.max_tokens


def _kept(old: Index | None, kept: list[str]) -> tuple[list[Document], list[Chunk], np.ndarray, np.ndarray]:
    """Documents, chunks, stored vectors and old rows of the unchanged files, read back from the old build."""
    if old is None or not kept:
        return [], [], np.zeros((0,), np.float32), np.zeros(0, np.int64)
    rows: Sequence[Any] = old.chunks_of(kept)  # with their "row" column
    chunks = [_stored_chunk(row) for row in rows]
    documents = [_stored_document(row) for row in old.documents(kept).values()]
    old_rows = [r["row"] for r in rows]
    return documents, chunks, old.stored_vectors(old_rows), np.asarray(old_rows, dtype=np.int64)


def _add_contents(
    manifest: Manifest, documents: list[Document], chunks: list[Chunk], scan: Scan, made_in: dict[str, str]
) -> None:
    """The build's documents, chunk count and skipped files. Each document records the precision of its own
    vectors: the embedder's for those this build embedded, their earlier build's for the unchanged ones
    (`made_in`; fp32 before the field existed)."""
    counts = Counter(chunk.source for chunk in chunks)
    kept = set(scan.kept)
    manifest["chunks"] = len(chunks)
    manifest["documents"] = {
        d.path: {
            "sha256": d.sha256,
            "title": d.title,
            "chunks": counts[d.path],
            "precision": made_in[d.path] if d.path in kept else manifest["precision"],
        }
        for d in documents
    }
    manifest["skipped"] = skipped_entries(scan)


def _stored_chunk(row: ChunkRow) -> Chunk:
    return Chunk(
        row["id"],
        row["source"],
        row["page"],
        row["start"],
        row["end"],
        row["text"],
        row["embed_text"],
        row["section"],
        bool(row["ocr"]),
    )


def _stored_document(row: DocumentRow) -> Document:
    sections = tuple(Section.from_json(s) for s in json.loads(row["sections"]))
    return Document(row["path"], row["title"], row["text"], row["sha256"], sections)
