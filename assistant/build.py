"""assistant build: read the corpus, chunk and embed what is new or changed, and publish a new index atomically."""
from __future__ import annotations

import json
import logging
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .chunking import chunk_document
from .config import Settings
from .documents import Chunk, Document, Section, SkippedFile
from .embedding import Embedder, Progress
from .errors import ConfigError, IndexMismatch
from .index import FORMAT, Index, build_lock, current_build, disk_errors, fault_point, publish, remove_old_builds, write_build
from .ingest import check_readable, file_sha256, iter_corpus, read_document, skipped_file
from .vectors import build_dense, dense_settled, dense_spec

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded: int = 0  # chunks sent to the model in this build
    published: bool = False  # False when nothing changed and the index was kept as it was

    def to_json(self) -> dict:
        return {
            "added": self.added, "changed": self.changed, "removed": self.removed, "unchanged": self.unchanged,
            "chunks": self.chunks, "seconds": round(self.seconds, 3),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "embedded": self.embedded, "published": self.published,
        }

    def line(self) -> str:
        return (f"{self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged, "
                f"{len(self.skipped)} skipped; {self.chunks} chunks ({self.embedded} embedded) in {self.seconds:.1f}s")


def build_index(settings: Settings, embedder: Embedder, rebuild: bool = False, progress: Progress | None = None) -> BuildSummary:
    """Bring the index in line with the corpus, re-embedding only new and changed documents."""
    if settings.store == "milvus":  # document by document, in place: milvus_build.py
        from .milvus_build import build_milvus

        return build_milvus(settings, embedder, rebuild, progress)
    started = time.monotonic()
    with disk_errors(settings.index), build_lock(settings.index):
        current = current_build(settings.index)  # leftovers of killed builds are unpublished: safe to delete
        remove_old_builds(settings.index, keep=current.name if current else None)
        old = _reusable(settings, rebuild)
        try:
            scan = scan_corpus(settings, old.manifest["documents"] if old else {})
            summary = scan.summary()
            if old and not (scan.fresh or summary.removed) and _same_skips(old, scan.skipped) and _same_dense(old, settings):
                summary.chunks = len(old)
            else:
                summary.embedded, summary.chunks = _write_new_build(settings, embedder, old, scan, progress)
                summary.published = True
        finally:
            if old:
                old.close()
    summary.seconds = time.monotonic() - started
    return summary


@dataclass
class _Scan:
    """The corpus compared with the published index."""

    previous: dict  # the old manifest's documents
    kept: list[str] = field(default_factory=list)  # unchanged: their chunks and vectors are reused
    fresh: list[Document] = field(default_factory=list)  # new or changed: to chunk and embed
    skipped: list[SkippedFile] = field(default_factory=list)
    sha: dict[str, str] = field(default_factory=dict)  # content hash of every file that could be read

    def summary(self) -> BuildSummary:
        changed = sum(1 for d in self.fresh if d.path in self.previous)
        current = set(self.kept) | {d.path for d in self.fresh}
        return BuildSummary(added=len(self.fresh) - changed, changed=changed, unchanged=len(self.kept),
                            removed=len(set(self.previous) - current), skipped=self.skipped)


def scan_corpus(settings: Settings, previous: dict) -> _Scan:
    scan = _Scan(previous)
    for path, rel in iter_corpus(settings.corpus):
        try:
            check_readable(path, settings.corpus, settings.max_file_mb)
            scan.sha[rel] = file_sha256(path)
            if rel in previous and previous[rel]["sha256"] == scan.sha[rel]:
                scan.kept.append(rel)
            else:
                scan.fresh.append(read_document(path, rel, settings.max_file_mb, settings.corpus, settings.max_file_seconds))
        except Exception as err:  # one bad file never stops the build: it is skipped with the reason
            scan.skipped.append(skipped_file(rel, err))
    return scan


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
    manifest = index.manifest
    # precision is not compared: fp32 and bf16 vectors agree to a cosine of 0.9999, so either is reused (README)
    if manifest["model"] != settings.model or any(
        manifest["chunking"].get(k) != v for k, v in settings.chunking().items()
    ):
        log.warning("index was built with other settings; re-embedding every document")
        index.close()
        return None
    return index


def _same_skips(old: Index, skipped: list[SkippedFile]) -> bool:
    return {s["path"]: s["reason"] for s in old.manifest.get("skipped", [])} == {s.path: s.reason for s in skipped}


def _same_dense(old: Index, settings: Settings) -> bool:
    return dense_settled(dense_spec(old.manifest), len(old), settings.ann_threshold, settings.ann_nprobe)


def _write_new_build(settings: Settings, embedder: Embedder, old: Index | None, scan: _Scan,
                     progress: Progress | None) -> tuple[int, int]:
    """Embed the fresh documents, add the kept ones, write and publish. Returns (embedded, total) chunks."""
    new_chunks, new_vectors, max_tokens = _embed_fresh(settings, embedder, scan.fresh, progress)
    fault_point("embedding")
    kept_docs, kept_chunks, kept_vectors, kept_rows = _kept(old, scan.kept)
    if max_tokens is None:  # nothing was embedded: the model was not even loaded
        max_tokens = old.manifest["chunking"]["max_tokens"] if old else 0
    dimension = new_vectors.shape[1] if len(new_chunks) else (old.manifest["dimension"] if old else embedder.dimension)
    vectors = np.vstack([kept_vectors.reshape(-1, dimension), new_vectors.reshape(-1, dimension)])
    chunks = kept_chunks + new_chunks
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].start))
    chunks, vectors = [chunks[i] for i in order], vectors[order]
    old_rows = np.concatenate([kept_rows, np.full(len(new_chunks), -1, np.int64)])[order]
    dense, manifest_vectors = build_dense(vectors, settings.ann_threshold, settings.ann_nprobe, *_previous_dense(old), old_rows)
    documents = sorted(kept_docs + scan.fresh, key=lambda d: d.path)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = _manifest(settings, name, dimension, max_tokens, documents, chunks, scan, embedder.precision)
    manifest["vectors"] = manifest_vectors
    write_build(settings.index, name, manifest, documents, chunks, dense)
    publish(settings.index, name)
    return len(new_chunks), len(chunks)


def _embed_fresh(settings: Settings, embedder: Embedder, fresh: list[Document],
                 progress: Progress | None) -> tuple[list[Chunk], np.ndarray, int | None]:
    if not fresh:
        return [], np.zeros((0,), np.float32), None
    chunks = chunk_fresh(settings, embedder, fresh)
    vectors = embedder.encode([c.embed_text for c in chunks], progress) if chunks else np.zeros((0,), np.float32)
    return chunks, vectors, embedder.max_tokens


def chunk_fresh(settings: Settings, embedder: Embedder, fresh: list[Document]) -> list[Chunk]:
    """The chunks of the new and changed documents, in document order."""
    max_tokens = embedder.max_tokens
    if settings.chunk_tokens > max_tokens:
        raise ConfigError(f"ASSISTANT_CHUNK_TOKENS={settings.chunk_tokens} is over the model's limit of {max_tokens} word pieces")
    return [c for doc in fresh for c in chunk_document(doc, embedder, settings.chunk_tokens, settings.chunk_overlap, max_tokens)]


def _kept(old: Index | None, kept: list[str]) -> tuple[list[Document], list[Chunk], np.ndarray, np.ndarray]:
    """Documents, chunks, stored vectors and old rows of the unchanged files, read back from the old build."""
    if old is None or not kept:
        return [], [], np.zeros((0,), np.float32), np.zeros(0, np.int64)
    rows = old.chunks_of(kept)
    chunks = [Chunk(r["id"], r["source"], r["page"], r["start"], r["end"], r["text"], r["embed_text"]) for r in rows]
    documents = [_stored_document(row) for row in old.documents(kept).values()]
    old_rows = [r["row"] for r in rows]
    return documents, chunks, old.stored_vectors(old_rows), np.asarray(old_rows, dtype=np.int64)


def _previous_dense(old: Index | None) -> tuple:
    """The old build's FAISS index and manifest entry, whose IVF lists the new build may reuse."""
    return (old.vectors, dense_spec(old.manifest)) if old else (None, None)


def _manifest(settings: Settings, name: str, dimension: int, max_tokens: int, documents: list[Document],
              chunks: list[Chunk], scan: _Scan, precision: str) -> dict:
    """`precision` is the embedder's, for the chunks this build embedded; each document records the precision
    of its own vectors, since unchanged ones keep theirs from an earlier build (fp32 before the field existed)."""
    counts = Counter(chunk.source for chunk in chunks)
    kept = set(scan.kept)
    made_in = {d.path: scan.previous[d.path].get("precision", "fp32") if d.path in kept else precision for d in documents}
    return {
        "format": FORMAT,
        "build": name,
        "model": settings.model,
        "precision": precision,
        "dimension": int(dimension),
        "chunking": {**settings.chunking(), "max_tokens": max_tokens},
        "versions": library_versions(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chunks": len(chunks),
        "documents": {d.path: {"sha256": d.sha256, "title": d.title, "chunks": counts[d.path], "precision": made_in[d.path]}
                      for d in documents},
        "skipped": [{"path": s.path, "reason": s.reason, "sha256": scan.sha.get(s.path)} for s in scan.skipped],
    }


def _stored_document(row) -> Document:
    sections = tuple(Section(**s) for s in json.loads(row["sections"]))
    return Document(row["path"], row["title"], row["text"], row["sha256"], sections)


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("assistant", "faiss-cpu", "sentence-transformers", "transformers", "torch", "numpy", "spacy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def stale_documents(corpus: Path, catalog: dict, skipped: list[dict], max_file_mb: float = 50.0) -> list[str]:
    """Paths added, changed or removed in the corpus since the index was built (skipped files included).
    `catalog`: the store's documents (path -> sha256, ...); `skipped`: the manifest's skipped files."""
    known = {path: entry["sha256"] for path, entry in catalog.items()}
    known.update({s["path"]: s.get("sha256") for s in skipped})
    stale: list[str] = []
    seen: set[str] = set()
    if corpus.is_dir():
        for path, rel in iter_corpus(corpus):
            seen.add(rel)
            try:
                check_readable(path, corpus, max_file_mb)
                sha = file_sha256(path)
            except Exception:  # unreadable now (skipped at build time): stale only when new
                sha = None
            if rel not in known or (sha is not None and known[rel] != sha):
                stale.append(rel)
    stale.extend(path for path in catalog if path not in seen)
    return sorted(stale)
