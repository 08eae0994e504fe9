"""Retriever: embed the question, search the index, return ranked Passages above the relevance floor."""
from __future__ import annotations

import logging

import numpy as np

from .documents import Passage
from .embedding import Embedder
from .errors import QueryError
from .index import Index

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000


class Retriever:
    """Scores are cosine similarities (normalized vectors, inner-product index), from -1 to 1."""

    def __init__(self, index: Index, embedder: Embedder, min_score: float = 0.15) -> None:
        self.index = index
        self.embedder = embedder
        self.min_score = min_score

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.encode([clean_query(query)])[0]

    def search(self, query: str, k: int = 5, vector: np.ndarray | None = None) -> list[Passage]:
        """The k best passages for `query`, best first; k is capped at the number of chunks."""
        if k < 1:
            raise QueryError(f"k must be at least 1 (got {k})")
        vector = self.embed_query(query) if vector is None else vector
        hits = [(row, score) for row, score in self.index.search(vector, k) if score >= self.min_score]
        rows = self.index.chunks([row for row, _ in hits])
        titles = {path: doc["title"] for path, doc in self.index.manifest["documents"].items()}
        return [
            Passage(r["text"], r["source"], r["page"], score, r["start"], r["end"], r["id"], titles.get(r["source"], ""))
            for row, score in hits
            for r in [rows[row]]
        ]


def clean_query(query: str) -> str:
    """Strip control characters and surrounding space; refuse what cannot be searched."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in query or "").strip()
    if not cleaned:
        raise QueryError("the question is empty — type a question, for example: Who spoke at the conference?")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question has {len(cleaned)} characters; the limit is {MAX_QUESTION_CHARS} — shorten it")
    return cleaned
