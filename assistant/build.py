"""assistant build: read the corpus, chunk and embed what is new or changed, and publish a new index atomically."""
from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .chunking import chunk_document
from .config import Settings
from .documents import Chunk, Document, Section, SkippedFile
from .embedding import Embedder, Progress
from .index import FORMAT, Index, build_lock, current_build, fault_point, publish, remove_old_builds, write_build
from .ingest import SkipFile, check_readable, file_sha256, iter_corpus, read_document

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
    started = time.monotonic()
    index_dir = settings.index
    with build_lock(index_dir):
        remove_old_builds_partial(index_dir)
        old = _reusable(index_dir, settings, rebuild)
        old_docs = old.manifest["documents"] if old else {}
        summary = BuildSummary()
        kept: list[str] = []
        fresh: list[Document] = []
        skipped_sha: dict[str, str] = {}
        for path, rel in iter_corpus(settings.corpus):
            try:
                check_readable(path, settings.corpus, settings.max_file_mb)
                sha = file_sha256(path)
                if rel in old_docs and old_docs[rel]["sha256"] == sha:
                    kept.append(rel)
                    continue
                skipped_sha[rel] = sha
                fresh.append(read_document(path, rel, settings.max_file_mb, settings.corpus))
            except (SkipFile, OSError) as why:
                reason = str(why) if isinstance(why, SkipFile) else f"cannot read file: {why}"
                summary.skipped.append(SkippedFile(rel, reason))
                log.warning("skipped %s: %s", rel, reason)
        summary.unchanged = len(kept)
        summary.changed = sum(1 for d in fresh if d.path in old_docs)
        summary.added = len(fresh) - summary.changed
        summary.removed = len(set(old_docs) - set(kept) - {d.path for d in fresh})
        if old and not fresh and not summary.removed and _same_skips(old, summary.skipped):
            summary.chunks = len(old)
        else:
            _write_new_build(settings, embedder, old, kept, fresh, summary, skipped_sha, progress)
        if old:
            old.close()
    summary.seconds = time.monotonic() - started
    return summary


def remove_old_builds_partial(index_dir: Path) -> None:
    """A build killed mid-way leaves builds/*.partial behind: unpublished, so safe to delete."""
    current = current_build(index_dir)
    remove_old_builds(index_dir, keep=current.name if current else None)


def _reusable(index_dir: Path, settings: Settings, rebuild: bool) -> Index | None:
    folder = current_build(index_dir)
    if folder is None or rebuild:
        return None
    index = Index(folder)
    manifest = index.manifest
    if manifest.get("format") != FORMAT or manifest["model"] != settings.model or any(
        manifest["chunking"].get(k) != v for k, v in settings.chunking().items()
    ):
        log.warning("index was built with other settings; re-embedding every document")
        index.close()
        return None
    return index


def _same_skips(old: Index, skipped: list[SkippedFile]) -> bool:
    return {s["path"]: s["reason"] for s in old.manifest.get("skipped", [])} == {s.path: s.reason for s in skipped}


def _write_new_build(settings: Settings, embedder: Embedder, old: Index | None, kept: list[str], fresh: list[Document],
                     summary: BuildSummary, skipped_sha: dict[str, str], progress: Progress | None) -> None:
    new_chunks: list[Chunk] = []
    max_tokens = 0
    if fresh:
        max_tokens = embedder.max_tokens
        if settings.chunk_tokens > max_tokens:
            from .errors import ConfigError

            raise ConfigError(f"ASSISTANT_CHUNK_TOKENS={settings.chunk_tokens} is over the model's limit of {max_tokens} word pieces")
        for doc in fresh:
            new_chunks.extend(chunk_document(doc, embedder, settings.chunk_tokens, settings.chunk_overlap, max_tokens))
    new_vectors = embedder.encode([c.embed_text for c in new_chunks], progress) if new_chunks else None
    summary.embedded = len(new_chunks)
    fault_point("embedding")
    kept_rows = old.chunks_of(kept) if old and kept else []
    kept_chunks = [Chunk(r["id"], r["source"], r["page"], r["start"], r["end"], r["text"], r["embed_text"]) for r in kept_rows]
    kept_docs = [_stored_document(row) for row in old.documents(kept).values()] if old and kept else []
    dimension = new_vectors.shape[1] if new_vectors is not None else (old.manifest["dimension"] if old else embedder.dimension)
    vectors = np.vstack([
        old.stored_vectors([r["row"] for r in kept_rows]) if old else np.zeros((0, dimension), np.float32),
        new_vectors if new_vectors is not None else np.zeros((0, dimension), np.float32),
    ])
    documents = sorted(kept_docs + fresh, key=lambda d: d.path)
    chunks = kept_chunks + new_chunks
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].start))
    chunks, vectors = [chunks[i] for i in order], vectors[order]
    counts = {d.path: 0 for d in documents}
    for chunk in chunks:
        counts[chunk.source] += 1
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = {
        "format": FORMAT,
        "build": name,
        "model": settings.model,
        "dimension": int(dimension),
        "chunking": {**settings.chunking(), "max_tokens": max_tokens or (old.manifest["chunking"]["max_tokens"] if old else 0)},
        "versions": _versions(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chunks": len(chunks),
        "documents": {d.path: {"sha256": d.sha256, "title": d.title, "chunks": counts[d.path]} for d in documents},
        "skipped": [{"path": s.path, "reason": s.reason, "sha256": skipped_sha.get(s.path)} for s in summary.skipped],
    }
    write_build(settings.index, name, manifest, documents, chunks, vectors)
    publish(settings.index, name)
    summary.chunks = len(chunks)
    summary.published = True


def _stored_document(row) -> Document:
    import json

    sections = tuple(Section(**s) for s in json.loads(row["sections"]))
    return Document(row["path"], row["title"], row["text"], row["sha256"], sections)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("assistant", "faiss-cpu", "sentence-transformers", "transformers", "torch", "numpy", "spacy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def stale_documents(corpus: Path, manifest: dict, max_file_mb: float = 50.0) -> list[str]:
    """Paths added, changed or removed in the corpus since the index was built (skipped files included)."""
    known = {path: entry["sha256"] for path, entry in manifest["documents"].items()}
    known.update({s["path"]: s.get("sha256") for s in manifest.get("skipped", [])})
    stale: list[str] = []
    seen: set[str] = set()
    if corpus.is_dir():
        for path, rel in iter_corpus(corpus):
            seen.add(rel)
            try:
                check_readable(path, corpus, max_file_mb)
                sha = file_sha256(path)
            except (SkipFile, OSError):
                sha = None
            if rel not in known or (sha is not None and known[rel] != sha):
                stale.append(rel)
    stale.extend(path for path in manifest["documents"] if path not in seen)
    return sorted(stale)
