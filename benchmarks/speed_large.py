"""The large index of benchmarks/speed.py: real chunks, then copies of whole documents with noisy vectors.

Real: every document, chunk (text and embedded text) and stored vector of the given indexes, read-only: the
SQuAD index that speed.py builds and, when it exists, the SciFact index of benchmarks/quality.py (15,798
chunks of biomedical abstracts), so that the vocabulary is not only SQuAD's.
Copies: whole documents again, in a seeded order, under copyNN/<path>, until the size is reached. A copy keeps
its document's words, so BM25 has real texts to index and its posting lists grow with the corpus as they would;
its vectors are the real ones plus noise shaped like the real vectors' covariance (benchmarks/ann.py: median
cosine 0.845 to the source). Its shown text has the case of one letter in RECASE swapped (_recased): the same
length and offsets, the same words to BM25 and to the uncased model, but a string of its own, so that the
answer's work is not flattered by copies of one paragraph in the top passages (the embedder embeds identical
sentences once). The index is then written by the product's own write_build and build_dense, so
the vector index type (flat up to ASSISTANT_ANN_THRESHOLD) and the BM25 arrays are what a build would write.
Nothing is embedded: the build is measured at the real 2,067 paragraphs only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from ann import noise_shape, noisy_copies
from evaldata import SEED

from assistant.config import Settings
from assistant.documents import Chunk, Document, Section
from assistant.index.faiss.folder import publish, write_build
from assistant.index.faiss.store import open_index
from assistant.index.faiss.vectors import build_dense

RECASE = 16  # copy round r swaps the case of the letters at positions i with (i + r) % RECASE == 0


def assemble(out: Path, sources: list[Path], size: int, settings: Settings, sentences: bool = True) -> dict:
    """Write an index of `size` chunks to `out` (replacing it) and return its manifest's summary. A copy keeps
    its source chunk's sentence vectors (the same words to the uncased model); without `sentences`, no chunk
    keeps any, as a build before they were kept (its highlights embed sentences when shown)."""
    documents, chunks, vectors, template, packed = _read_real(sources)
    entries = dict(template["documents"])  # each document's manifest entry, its copies' too
    if len(chunks) > size:
        raise SystemExit(f"the real indexes already hold {len(chunks)} chunks, more than --large {size}")
    copied_docs, copied_chunks, rows = _copies(documents, chunks, size - len(chunks))
    entries.update({copy.path: entries[copy.path.split("/", 1)[1]] for copy in copied_docs})
    rng = np.random.default_rng(SEED)
    vectors = np.vstack([vectors, noisy_copies(vectors, np.asarray(rows, np.int64), noise_shape(vectors), rng)])
    documents, chunks = documents + copied_docs, chunks + copied_chunks
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].start))  # a build's row order
    packed = packed + [packed[row] for row in rows] if sentences else [None] * len(chunks)
    chunks, vectors, packed = [chunks[i] for i in order], vectors[order], [packed[i] for i in order]
    dense, spec = build_dense(vectors, settings.ann_threshold, settings.ann_nprobe)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = _manifest(template, name, entries, chunks, spec)
    shutil.rmtree(out, ignore_errors=True)
    write_build(out, name, manifest, sorted(documents, key=lambda d: d.path), chunks, dense, packed)
    publish(out, name)
    return {
        "chunks": len(chunks),
        "documents": len(documents),
        "real_chunks": len(chunks) - len(rows),
        "with_sentence_vectors": sum(p is not None for p in packed),
        "vectors": spec,
        "precision": manifest.get("precision"),
    }


def _read_real(sources: list[Path]) -> tuple[list[Document], list[Chunk], np.ndarray, dict, list[bytes | None]]:
    """Documents, chunks, vectors and packed sentence vectors of the source indexes; the first one's manifest is
    the template."""
    documents: list[Document] = []
    chunks: list[Chunk] = []
    packed: list[bytes | None] = []
    parts = []
    template: dict = {}
    for folder in sources:
        index = open_index(folder)
        template = template or {**index.manifest, "documents": {}}
        template["documents"].update(index.manifest["documents"])
        documents += [_document(row) for row in index.documents().values()]
        stored = index.chunks(list(range(len(index))))
        chunks += [
            Chunk(r["id"], r["source"], r["page"], r["start"], r["end"], r["text"], r["embed_text"])
            for r in (stored[row] for row in range(len(index)))
        ]
        parts.append(index.stored_vectors(list(range(len(index)))))
        packed += index.packed_sentences(list(range(len(index))))
        index.close()
    return documents, chunks, np.vstack(parts).astype(np.float32), template, packed


def _document(row) -> Document:
    sections = tuple(Section(**s) for s in json.loads(row["sections"]))
    return Document(row["path"], row["title"], row["text"], row["sha256"], sections)


def _copies(
    documents: list[Document], chunks: list[Chunk], wanted: int
) -> tuple[list[Document], list[Chunk], list[int]]:
    """Copies of whole documents, round after round in one seeded order, that add up to `wanted` chunks;
    also the row of each copied chunk's source chunk (whose vector it perturbs)."""
    rows_of: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        rows_of.setdefault(chunk.source, []).append(row)
    order = np.random.default_rng(SEED).permutation(len(documents))
    copied_docs: list[Document] = []
    copied_chunks: list[Chunk] = []
    rows: list[int] = []
    round_ = 0
    while len(rows) < wanted:
        round_ += 1
        added = len(rows)
        for d in order:
            doc = documents[d]
            own = rows_of.get(doc.path, [])
            if own and len(rows) + len(own) <= wanted:
                path, text = f"copy{round_:02d}/{doc.path}", _recased(doc.text, round_)
                copied_docs.append(Document(path, doc.title, text, doc.sha256, doc.sections))
                copied_chunks += [_renamed(chunks[r], path, text) for r in own]
                rows += own
        if len(rows) == added:  # no document is small enough for what is left
            break
    return copied_docs, copied_chunks, rows


def _recased(text: str, round_: int) -> str:
    """`text` with the case of every RECASE-th character swapped, shifted by the round (see the module's docstring);
    a character whose other case is longer ("ß" -> "SS") is kept, so offsets hold."""
    swapped = (ch.swapcase() if (i + round_) % RECASE == 0 else ch for i, ch in enumerate(text))
    return "".join(new if len(new) == 1 else old for new, old in zip(swapped, text))


def _renamed(chunk: Chunk, path: str, text: str) -> Chunk:
    """The chunk in the copy `path` of document text `text`, with the id the product would give it there
    (chunking._make_chunk). The embedded text stays the source's: it is what BM25 indexes, and case is lost there."""
    shown = text[chunk.start : chunk.end]
    digest = hashlib.sha1(f"{path}\0{chunk.start}\0{chunk.end}\0{shown}".encode()).hexdigest()[:16]
    return Chunk(digest, path, chunk.page, chunk.start, chunk.end, shown, chunk.embed_text)


def _manifest(template: dict, name: str, entries: dict[str, dict], chunks: list[Chunk], spec: dict) -> dict:
    """The first source's model, chunking and precision, with this index's documents, chunks and vectors."""
    return {
        **template,
        "build": name,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chunks": len(chunks),
        "skipped": [],
        "vectors": spec,
        "documents": {path: entries[path] for path in sorted(entries)},
    }
