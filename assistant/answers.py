"""Answers: the retrieved passages, with the sentences that best answer the question highlighted."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .chunking import sentence_spans
from .documents import Passage
from .search import Retriever

HIGHLIGHT_MARGIN = 0.05  # sentences this close to the best one in a passage are highlighted too


@dataclass
class Answer:
    question: str
    passages: list[Passage] = field(default_factory=list)
    mode: str = "hybrid"
    no_answer: bool = False  # nothing relevant: `passages` are only the closest ones, not an answer

    def to_json(self) -> dict:
        return {"question": self.question, "passages": [p.to_json() for p in self.passages], "mode": self.mode,
                "no_answer": self.no_answer}


def answer_question(retriever: Retriever, question: str, k: int = 5) -> Answer:
    """Search, then mark in each passage the sentence(s) closest in meaning to the question."""
    vector = retriever.embed_query(question)
    passages = retriever.search(question, k, vector=vector)
    if not retriever.covers(passages):
        return Answer(question, passages, retriever.mode, no_answer=True)
    highlight(passages, vector, retriever.embedder, floor=retriever.min_score)
    return Answer(question, passages, retriever.mode)


def highlight(passages: list[Passage], query_vector: np.ndarray, embedder, floor: float = 0.0) -> None:
    """Fill `passage.highlights` with (start, end) offsets in `passage.text`: the passage's best sentence and
    those within HIGHLIGHT_MARGIN of it, if they score at least `floor`. One batch of embeddings for all."""
    spans = [sentence_spans(p.text, 0, len(p.text)) for p in passages]
    sentences = [p.text[s:e] for p, found in zip(passages, spans) for s, e in found]
    if not sentences:
        return
    scores = embedder.encode(sentences) @ np.asarray(query_vector, dtype=np.float32)
    position = 0
    for passage, found in zip(passages, spans):
        own = scores[position : position + len(found)]
        position += len(found)
        if len(found):
            best = float(own.max())
            cut = max(best - HIGHLIGHT_MARGIN, floor)
            passage.highlights = [span for span, score in zip(found, own) if score >= cut]
