"""How a build was made, and when it can be reused: the manifest, the reuse rule, the build summary, fault points."""

from __future__ import annotations

import os
import platform
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypedDict

from ..config import Settings
from ..documents import READING, SkippedFile, printable
from ..errors import IndexMismatch
from ..ingest import Scan

# what a build reports as it goes: (phase, done, total), the phases being "reading" (files), "chunking" (the
# new and changed documents) and "embedding" (their chunks)
BuildProgress = Callable[[str, int, int], None]


def phase(progress: BuildProgress | None, name: str) -> Callable[[int, int], None] | None:
    """A stage's (done, total) progress, as the build's progress in phase `name`."""
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


class CatalogEntry(TypedDict):
    """What the index knows of one document without reading its text."""

    sha256: str
    title: str
    chunks: int
    precision: str  # of the model that embedded this document's chunks: fp32 or bf16


class _SkippedBase(TypedDict):
    path: str
    reason: str
    sha256: str | None  # of the file's bytes, when it could be read: a skipped file that changes is stale


class SkippedEntry(_SkippedBase, total=False):
    too_long: bool  # Milvus only: a passage over the field limit; not chunked again while the file is unchanged


class Manifest(TypedDict, total=False):
    """How a build was made. Both stores write the common fields (new_manifest); FAISS adds `documents` and
    `skipped`, Milvus keeps those in its collections and adds `live` and `generation`."""

    format: int
    build: str
    model: str
    precision: str
    dimension: int
    chunking: dict[str, int]  # chunk_tokens, chunk_overlap, and the model's max_tokens
    reading: int  # documents.READING of the build; missing in builds made before it existed
    versions: dict[str, str]
    built_at: str
    chunks: int
    vectors: dict[str, Any]  # the dense index: {"type": "flat"} or an IVF's lists and nprobe
    documents: dict[str, CatalogEntry]
    skipped: list[SkippedEntry]
    live: str  # Milvus: the suffix of the collections being served
    generation: int  # Milvus: bumped by every change that readers see


def new_manifest(
    settings: Settings, format: int, build: str, dimension: int, max_tokens: int, precision: str
) -> Manifest:
    """The fields that every build records, whichever store holds it (library versions among them)."""
    return {
        "format": format,
        "build": build,
        "model": settings.model,
        "precision": precision,
        "dimension": int(dimension),
        "chunking": {**settings.chunking(), "max_tokens": int(max_tokens)},
        "reading": READING,
        "versions": library_versions(),
        "built_at": now(),
        "chunks": 0,
        "vectors": {"type": "flat"},
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def dense_spec(manifest: Manifest) -> dict[str, Any]:
    """The manifest's "vectors" entry; builds written before it existed are flat."""
    return manifest.get("vectors", {"type": "flat"})


def built_with(manifest: Manifest, model: str | None, chunking: dict[str, int] | None) -> bool:
    """Whether an index was built with this model and these chunking parameters (None: any).
    Precision is not compared: fp32 and bf16 vectors agree to a cosine of 0.9999, so either is reused
    (docs/benchmarks.md#precision)."""
    built_chunking = manifest["chunking"]
    return (not model or manifest["model"] == model) and all(
        built_chunking.get(k) == v for k, v in (chunking or {}).items()
    )


def read_alike(manifest: Manifest) -> bool:
    """Whether the build's passages are what today's readers and chunker make of its files: else a build reads
    every file again (searching it is fine)."""
    return manifest.get("reading") == READING


def check_built_with(manifest: Manifest, where: str, model: str | None, chunking: dict[str, int] | None) -> None:
    """IndexMismatch, with the command that fixes it, when an index was built with another model or chunking."""
    if not built_with(manifest, model, chunking):
        built_chunking = {k: manifest["chunking"].get(k) for k in (chunking or {})}
        raise IndexMismatch(
            f"{where} was built with model {manifest['model']} and chunking {built_chunking}, "
            f"but the settings ask for model {model} and chunking {chunking} — run: assistant build --rebuild"
        )


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("assistant", "faiss-cpu", "sentence-transformers", "transformers", "torch", "numpy", "spacy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def skipped_entries(scan: Scan) -> list[SkippedEntry]:
    return [{"path": s.path, "reason": s.reason, "sha256": scan.sha.get(s.path)} for s in scan.skipped]


def fault_point(name: str) -> None:
    """Test hook: ASSISTANT_FAULT=<name> kills the process here, as kill -9 would (docs/development.md)."""
    if os.environ.get("ASSISTANT_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


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

    @classmethod
    def of(cls, scan: Scan) -> BuildSummary:
        """The counts of a scan of the corpus against the index it was compared with."""
        changed = sum(1 for d in scan.fresh if d.path in scan.previous)
        current = set(scan.kept) | {d.path for d in scan.fresh}
        return cls(
            added=len(scan.fresh) - changed,
            changed=changed,
            unchanged=len(scan.kept),
            removed=len(set(scan.previous) - current),
            skipped=list(scan.skipped),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "embedded": self.embedded,
            "published": self.published,
        }

    def lines(self) -> list[str]:
        """The skipped files, a line each with the reason, then the summary line: what a build prints."""
        return [f"skipped {printable(s.path)}: {s.reason}" for s in self.skipped] + [self.line()]

    def line(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped; {self.chunks} chunks ({self.embedded} embedded) in {self.seconds:.1f}s"
        )


class BuildRecord(TypedDict):
    """A finished build, as `assistant status --json` (last_build) and the chat's banner show it."""

    started: str  # ISO 8601, UTC
    finished: str
    reason: str  # why it was asked for: the reasons of every request it covered, joined by "; "
    summary: dict[str, Any] | None  # BuildSummary.to_json(); None when the build failed
    error: str | None  # the one-line reason it failed; None when it succeeded


class BuildState(TypedDict):
    """The builds of this process: the one running (its progress) and the last one that finished."""

    running: bool
    phase: str  # of the running build: reading, chunking or embedding ("" before its first report)
    done: int
    total: int
    last: BuildRecord | None
