"""The index stage: where chunks live. `open_store`, `published` and `build_index` pick FAISS (files in the index
folder, the default) or Milvus by ASSISTANT_STORE; each store's modules are imported only when it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..embedding import Embedder
    from .manifest import BuildProgress, BuildSummary
    from .store import Store


def published(settings: Settings) -> str | None:
    """The version of the index being served now, or None when nothing was ever built."""
    if settings.store == "milvus":
        from .milvus.store import published_version

        return published_version(settings)
    from .faiss.folder import current_build

    folder = current_build(settings.index)
    return folder.name if folder else None


def open_store(settings: Settings) -> Store[Any]:
    """The published index; IndexMismatch when it was built with another model or other chunking."""
    if settings.store == "milvus":
        from .milvus.store import open_milvus

        return open_milvus(settings)
    from .faiss.store import open_index

    return open_index(settings.index, settings.model, settings.chunking())


def build_index(
    settings: Settings, embedder: Embedder, rebuild: bool = False, progress: BuildProgress | None = None
) -> BuildSummary:
    """Bring the index in line with the corpus, re-embedding only new and changed documents; `progress` is told
    of each phase (reading, chunking, embedding) as it goes."""
    if settings.store == "milvus":  # document by document, in place
        from .milvus.build import build_milvus

        return build_milvus(settings, embedder, rebuild, progress)
    from .faiss.build import build_faiss

    return build_faiss(settings, embedder, rebuild, progress)
