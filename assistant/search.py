"""Retriever: dense, lexical (BM25) or hybrid search over one store (FAISS or Milvus), and the fusion of the two."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from .config import check_mode
from .documents import Passage, SentenceVectors
from .embedding import Embedder
from .errors import QueryError
from .index.store import Key, Scope, Store, TitledChunk
from .question import Question

log = logging.getLogger(__name__)

CANDIDATES = 100  # per side, before fusion
FUSION = "minmax"  # or "rrf"; chosen on SciFact train by benchmarks/quality.py
FUSION_WEIGHT = 0.6  # weight of the dense side in "minmax" fusion; chosen likewise (train nDCG@10 0.7246)
# Diversity: the first k passages hold at most MAX_PER_DOCUMENT of one document (unless the question is about
# it, or too few documents are left to fill k), looking SPREAD_POOL candidates deep per passage wanted. Measured
# in docs/benchmarks.md#diversity.
MAX_PER_DOCUMENT = 3
SPREAD_POOL = 6
RRF_K = 60  # the constant of reciprocal rank fusion, as in Cormack et al. (2009)
# The relevance floor. The best cosine that a question about something else reaches grows with the number of
# passages (the best of more unrelated passages scores higher), so the floor grows with the log of the index
# size: it refuses 95% of off-topic questions at every size. Fitted by benchmarks/no_answer.py
# (docs/benchmarks.md#not-in-the-documents).
FLOOR_BASE, FLOOR_SLOPE = 0.104, 0.0374


def relevance_floor(passages: int) -> float:
    """The cosine the best passage of an index of `passages` chunks must reach for the question to be covered."""
    return round(FLOOR_BASE + FLOOR_SLOPE * math.log(max(passages, 1)), 3)


def fuse(dense: np.ndarray, lexical: np.ndarray, weight: float = FUSION_WEIGHT, method: str = FUSION) -> np.ndarray:
    """One score per candidate from its dense and lexical scores.

    "minmax": convex combination of the two sides, each min-max normalized over the candidates; a side
    whose candidates all score the same (no query term matched, say) contributes nothing.
    "rrf": reciprocal rank fusion, sum of 1 / (RRF_K + rank) over the sides where the candidate scores.
    """
    if method == "rrf":
        return _reciprocal_rank(dense) + _reciprocal_rank(lexical, only_positive=True)
    return weight * _minmax(dense) + (1.0 - weight) * _minmax(lexical)


def _reciprocal_rank(scores: np.ndarray, only_positive: bool = False) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.float32)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    fused = 1.0 / (RRF_K + ranks)
    return np.where(scores > 0, fused, 0.0).astype(np.float32) if only_positive else fused


def _minmax(scores: np.ndarray) -> np.ndarray:
    if len(scores) == 0 or float(scores.max() - scores.min()) < 1e-9:
        return np.zeros_like(scores, dtype=np.float32)
    return ((scores - scores.min()) / (scores.max() - scores.min())).astype(np.float32)


def spread(ranked: Sequence[tuple[Key, str]], k: int, about: Collection[str] = ()) -> list[Key]:
    """The first k of `ranked` (keys with their document, best first) with at most MAX_PER_DOCUMENT of one
    document, unless it is one the question is about; when that leaves fewer than k, the best of the rest fill
    them, so the count never falls under k for a scope or a corpus of few documents."""
    first: list[Key] = []
    held: Counter[str] = Counter()
    for key, source in ranked:
        if len(first) == k:
            break
        if held[source] < MAX_PER_DOCUMENT or source in about:
            first.append(key)
            held[source] += 1
    if len(first) < k:
        taken = set(first)
        first += [key for key, _ in ranked if key not in taken][: k - len(first)]
    return first


class Retriever:
    """`Passage.score` is the cosine similarity of question and passage (normalized vectors, inner product),
    from -1 to 1, in every mode; the ranking is by the mode's own score (cosine, BM25 or fused).
    `floor` is the relevance floor: `min_score` if given, else the one measured for the index's size. A floor
    given is a rule (under it, not in the documents); the measured one is a signal of answers' confidence."""

    def __init__(
        self, index: Store[Any], embedder: Embedder, min_score: float | None = None, mode: str = "hybrid"
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.floor = relevance_floor(len(index)) if min_score is None else min_score
        self.fixed_floor = min_score is not None  # set by hand: it alone decides "not in the documents"
        self.mode = check_mode(mode)
        self.fusion, self.weight = FUSION, FUSION_WEIGHT  # benchmarks/quality.py varies these

    def read(self, asked: Question | str) -> Question:
        """The question's record with its vector: read from the text if need be, embedded once."""
        question = asked if isinstance(asked, Question) else Question.read(asked)
        if question.vector is None:
            question = question.with_vector(self.embedder.encode([question.text])[0])
        return question

    def embed_query(self, query: str) -> np.ndarray:
        vector = self.read(query).vector
        assert vector is not None
        return vector

    def search(self, query: Question | str, k: int = 5, mode: str | None = None) -> list[Passage]:
        """The k best passages for `query`, best first; k is capped at the number of chunks (of its scope)."""
        return self.ranked(query, k, mode)[0]

    def ranked(
        self, query: Question | str, k: int = 5, mode: str | None = None, shown: int | None = None
    ) -> tuple[list[Passage], float]:
        """search() and relevance() together. The dense side's first candidate is the best cosine in the index,
        so a mode with a dense side searches the vectors once (at 100,000 chunks one exact search is ~12 ms).
        A question asked within sources searches only their chunks, relevance included.
        In hybrid, the lexical side's best passage is among the first `shown` (default: all k), in the last place
        if the fusion ranks it lower: a passage that holds the question's words best (a name, a title) is not
        buried by a weak cosine. The first `shown` are spread over documents (spread()); the rest follow in
        ranked order."""
        mode = check_mode(mode or self.mode)
        if k < 1:
            raise QueryError(f"k must be at least 1 (got {k})")
        question = self.read(query)
        vector = question.vector
        assert vector is not None
        within = self.within(question)
        keys, ranking, best, lead = self._rank(question.text, vector, mode, max(k, CANDIDATES), within)
        order = [keys[i] for i in np.argsort(-ranking, kind="stable")]
        shown = min(k, shown or k)
        if lead is not None and shown >= 2 and lead not in order[:shown]:
            order.remove(lead)  # the lexical side's best passage is shown, last of the first `shown`
            order.insert(shown - 1, lead)
        pool = order[: max(k, shown * SPREAD_POOL)]
        rows = self.index.chunks(pool)  # with their document's title
        first = spread([(key, rows[key]["source"]) for key in pool if key in rows], shown, question.about)
        taken = set(first)
        keep = [key for key in (*first, *(key for key in pool if key not in taken)) if key in rows][:k]
        cosines = self._cosines(keep, vector)
        passages = self._passages(keep, [float(c) for c in cosines], rows)
        return passages, self.relevance(vector, within) if best is None else best

    def within(self, question: Question) -> tuple[Scope, ...]:
        """The scopes the question's search keeps to: its sources' (QueryError for one not in the index); none
        for a question asked of the whole index."""
        return (Scope.of(question.sources, self.index.catalog()),) if question.sources else ()

    def relevance(self, vector: np.ndarray, within: Sequence[Scope] = ()) -> float:
        """How close the documents come to the question: the best cosine of any passage in the index, or in the
        scope a question is asked within (-1 if empty). The documents cover the question when it reaches
        `floor`, whatever the mode ranks first; a scope keeps the index's floor, so it never makes a question
        answered that the same best passage would leave unanswered without it."""
        best = self.index.dense(vector, 1, within)
        return best[0][1] if best else -1.0

    def _rank(
        self, query: str, vector: np.ndarray, mode: str, depth: int, within: Sequence[Scope] = ()
    ) -> tuple[list[Key], np.ndarray, float | None, Key | None]:
        """Candidate keys, the score they are ranked by, the best cosine in the index (None for bm25), and, in
        hybrid, the lexical side's best candidate (None when no word matched).
        Each side returns its own candidates with scores; in hybrid, the lexical side also scores the dense
        side's candidates, and the dense scores of the lexical side's come from their stored vectors."""
        dense = self.index.dense(vector, depth, within) if mode != "bm25" else []
        best = dense[0][1] if dense else (None if mode == "bm25" else -1.0)
        if mode == "dense":
            return [key for key, _ in dense], np.array([s for _, s in dense], dtype=np.float32), best, None
        lexical = self.index.lexical(query, depth, also=[key for key, _ in dense], within=within)
        if mode == "bm25":
            found = sorted((key for key, score in lexical.items() if score > 0), key=lambda key: -lexical[key])[:depth]
            return found, np.array([lexical[key] for key in found], dtype=np.float32), best, None
        keys = sorted({key for key, _ in dense} | {key for key, score in lexical.items() if score > 0})
        scores = np.array([lexical.get(key, 0.0) for key in keys], dtype=np.float32)
        lead = keys[int(scores.argmax())] if len(scores) and scores.max() > 0 else None
        return keys, fuse(self._cosines(keys, vector), scores, self.weight, self.fusion), best, lead

    def _cosines(self, keys: list[Key], vector: np.ndarray) -> np.ndarray:
        """Cosine of each chunk's stored vector with the question's (both are normalized)."""
        if not keys:
            return np.zeros(0, np.float32)
        return self.index.stored_vectors(keys) @ np.asarray(vector, dtype=np.float32)

    def _passages(self, keys: list[Key], cosines: list[float], stored: dict[Key, TitledChunk]) -> list[Passage]:
        return [
            Passage(
                r["text"],
                r["source"],
                r["page"],
                score,
                r["start"],
                r["end"],
                r["id"],
                r["title"] or "",
                r["section"] or "",
                bool(r["ocr"]),
                sentences=SentenceVectors.unpack(r.get("sentences")),
            )
            for key, score in zip(keys, cosines)
            if (r := stored.get(key)) is not None
        ]
