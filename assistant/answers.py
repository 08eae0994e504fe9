"""Answers: the passages, the entities they give as a direct answer, highlights, and "not in the documents"."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .chunking import sentence_spans
from .confidence import Signals, level, rarity, read_signals, share
from .documents import Passage
from .entities import AnswerGroup, AnswerItem, ExtractedAnswer, extract_answer
from .question import Question
from .search import Retriever

HIGHLIGHT_MARGIN = 0.05  # sentences this close to the best one in a passage are highlighted too
# the same for the build's sentence vectors (pooled in their passage), whose cosines lie closer together: on
# SQuAD (tune half) 0.03 marks as many sentences as 0.05 does for sentences embedded alone, and as often the
# one that holds the answer (docs/benchmarks.md#highlights)
POOLED_MARGIN = 0.03
SENTENCE_FLOOR = 0.15  # a sentence under this cosine to the question is never highlighted
LIST_DEPTH = 30  # candidates searched for a list question (who…, which…), so that a spread-out answer is complete
ANSWERING_DOCUMENTS = 5  # the documents of the candidates, in the order of their best passage, drawn answers from


@dataclass
class Answer:
    question: str
    passages: list[Passage] = field(default_factory=list)
    mode: str = "hybrid"
    no_answer: bool = False  # nothing relevant (confidence "none"): `passages` are only the closest ones
    confidence: str = "high"  # "high", "low" (shown, but the documents may not answer it) or "none"
    certainty: float = 1.0  # the probability that the documents answer it (confidence.Signals.probability)
    signals: Signals | None = None  # what `certainty` was read from (none when nothing was found)
    answer: ExtractedAnswer | None = None
    relevance: float = -1.0  # the best cosine of any passage in the index to the question
    floor: float = 0.0  # the relevance floor it was held to: under it, no_answer
    sources: tuple[str, ...] = ()  # the documents and folders it was asked within; none: the whole index
    context: dict | None = None  # a follow-up's: {"question": the earlier one it leans on, "sources": [...]}
    searched: str = ""  # the text searched: the question, with the topic of the one it leans on

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "passages": [p.to_json() for p in self.passages],
            "mode": self.mode,
            "sources": list(self.sources),
            "context": self.context,
            "no_answer": self.no_answer,
            "confidence": self.confidence,
            "certainty": round(self.certainty, 4),
            "signals": self.signals.to_json() if self.signals else None,
            "answer": _answer_json(self.answer),
            "relevance": round(self.relevance, 4),
            "relevance_floor": self.floor,
        }

    @classmethod
    def from_json(cls, data: dict) -> Answer:
        """The answer of to_json()'s object, as a server's /api/ask returns it (what is rounded there stays so)."""
        signals = data.get("signals")
        return cls(
            data["question"],
            [Passage.from_json(p) for p in data["passages"]],
            data["mode"],
            bool(data["no_answer"]),
            data["confidence"],
            float(data["certainty"]),
            Signals(**signals) if signals else None,
            _answer_from_json(data.get("answer")),
            float(data["relevance"]),
            float(data["relevance_floor"]),
            tuple(data.get("sources") or ()),
            data.get("context"),
        )

    def why_none(self) -> str:
        """Why it is not in the documents, in a few words (for a reply with `no_answer`)."""
        if not self.passages:
            if self.mode == "bm25":
                return "no passage holds a word of the question, and bm25 search matches words exactly"
            return "the index holds no passage"
        closest = f"the closest passage scores {self.relevance:.2f}"
        if self.relevance < self.floor:
            closest += f", under the relevance floor {self.floor:.2f}"
        reasons = [closest]
        if self.signals is not None and self.signals.unknown > 0:
            reasons.append("a word of the question is in no document")
        elif self.signals is not None and self.signals.passages < 0.5:
            reasons.append("no passage holds most of the question's words")
        return "; ".join(reasons)


def answer_question(retriever: Retriever, asked: Question | str, k: int = 5) -> Answer:
    """Search (deeper for a list question), draw the entities that answer it, and mark the best sentences."""
    question = retriever.read(asked)
    vector = question.vector
    assert vector is not None  # read() embeds it
    depth = max(k, LIST_DEPTH) if question.type and question.is_list else k
    found, relevance = retriever.ranked(question, depth, shown=k)
    shown = found[:k]
    reply = Answer(
        question.text,
        shown,
        retriever.mode,
        relevance=relevance,
        floor=retriever.floor,
        sources=question.sources,  # as asked within, whether answered or not
        searched=question.text,
    )
    if not found:  # none found: in bm25 mode, no word of the question is in the index
        reply.confidence, reply.certainty, reply.no_answer = "none", 0.0, True
        return reply
    signals = read_signals(retriever.index, question, found, relevance, retriever.floor, retriever.within(question))
    reply.signals, reply.certainty = signals, signals.probability()
    reply.confidence = level(reply.certainty)
    if retriever.fixed_floor:  # a floor set by hand decides alone whether it is answered
        reply.confidence = (
            "none" if relevance < retriever.floor else "low" if reply.confidence == "none" else reply.confidence
        )
    if reply.confidence == "none":
        reply.no_answer = True
        return reply
    reply.answer = _answer_by_document(question, found)
    if reply.answer and question.intent:
        found += _complete_first_group(retriever, question, reply.answer, found)
    if reply.answer:
        groups = reply.answer.groups
        cited = {chunk_id for group in groups for item in group.items for chunk_id in item.passages}
        if groups and groups[0].told:
            shown = reply.passages = _led_by(groups[0], found, k)
        kept = {p.chunk_id for p in shown}
        shown += [p for p in found if p.chunk_id in cited and p.chunk_id not in kept]  # cited beyond the top k
        _mark_entities(shown, reply.answer)
    highlight(shown, vector, retriever.embedder, floor=min(retriever.floor, SENTENCE_FLOOR))
    return reply


def _answer_by_document(question: Question, found: list[Passage]) -> ExtractedAnswer | None:
    """The entities that answer the question, drawn from one document at a time (the first ANSWERING_DOCUMENTS
    of the candidates, in the order of their best passage), each with all its candidate passages, however they
    score, as the answer may be spread over it; two documents' lists are never merged.
    Their order: a document whose text tells the asked event of its entities (took part, spoke) first; then the
    one whose title names more of the question (rarity-weighed, as the confidence weighs words); then the one
    that tells the event of more entities; then the order of their best passage."""
    if question.type is None:
        return None
    by_source: dict[str, list[Passage]] = {}
    for passage in found:
        if passage.source in by_source or len(by_source) < ANSWERING_DOCUMENTS:
            by_source.setdefault(passage.source, []).append(passage)
    weights = rarity(question.text)
    ranked = [
        (
            (not extracted.matched, -round(share(weights, passages[0].title), 6), -_told(question, extracted), order),
            AnswerGroup(source, passages[0].title, extracted.items, bool(question.intent and extracted.matched)),
        )
        for order, (source, passages) in enumerate(by_source.items())
        if (extracted := extract_answer(question, passages))
    ]
    if not ranked:
        return None
    groups = [group for _, group in sorted(ranked, key=lambda pair: pair[0])]
    return ExtractedAnswer(question.type, groups[0].items, question.category, groups)


def _complete_first_group(
    retriever: Retriever, question: Question, answer: ExtractedAnswer, found: list[Passage]
) -> list[Passage]:
    """For a question whose answer is whoever the text says did something (spoke, took part), the first
    document read whole when it is short (up to LIST_DEPTH passages), so that its list is complete though some of
    its passages were not among the candidates: its first group (and `answer.items`) is drawn again from all its
    passages, if that finds more. The passages not found before are returned. Only the asked event admits a
    name, so reading more of the document adds members, not names that only stand near the topic."""
    source = answer.groups[0].source
    entry = retriever.index.catalog().get(source)
    if entry is None or entry["chunks"] > LIST_DEPTH:
        return []
    known = {p.chunk_id for p in found}
    if sum(p.source == source for p in found) >= entry["chunks"]:
        return []  # all of it was among the candidates
    whole, _ = retriever.ranked(replace(question, sources=(source,)), LIST_DEPTH)
    extracted = extract_answer(question, whole)
    if not extracted or len(extracted.items) <= len(answer.items):
        return []
    answer.groups[0] = replace(answer.groups[0], items=extracted.items)
    answer.items = extracted.items
    return [p for p in whole if p.chunk_id not in known]


def _led_by(group: AnswerGroup, found: list[Passage], k: int) -> list[Passage]:
    """The top k when the answer's document tells the asked event: the passages its answer cites first (in the
    order found), then the others found; the evidence of what is shown as the answer leads."""
    cited = {chunk_id for item in group.items for chunk_id in item.passages}
    first = [p for p in found if p.chunk_id in cited][:k]
    return first + [p for p in found if p.chunk_id not in cited][: k - len(first)]


def _told(question: Question, extracted: ExtractedAnswer) -> int:
    """How many entities a document tells the asked event of (0 when nothing but their kind is asked)."""
    return len(extracted.items) if question.intent and extracted.matched else 0


def highlight(passages: list[Passage], query_vector: np.ndarray, embedder, floor: float = 0.0) -> None:
    """Fill `passage.highlights` with (start, end) offsets in `passage.text`: the passage's best sentence and
    those close to it (HIGHLIGHT_MARGIN, or POOLED_MARGIN for the build's sentence vectors), if they score at
    least `floor` and stand out: a passage whose sentences would all be marked (a one-sentence passage among
    them) gets none, as the mark would say nothing. A passage's sentences are scored by the vectors its build
    kept (a matrix product); only a passage built without them has its sentences embedded, in one batch."""
    question = np.asarray(query_vector, dtype=np.float32)
    unread = [p for p in passages if p.sentences is None]
    spans = [sentence_spans(p.text, 0, len(p.text)) for p in unread]
    sentences = [p.text[s:e] for p, found in zip(unread, spans) for s, e in found]
    embedded = embedder.encode(sentences, remember=True) @ question if sentences else np.zeros(0, np.float32)
    position = 0
    for passage, found in zip(unread, spans):
        _mark(passage, found, embedded[position : position + len(found)], HIGHLIGHT_MARGIN, floor)
        position += len(found)
    for passage in passages:
        if passage.sentences is not None:
            stored = passage.sentences
            scores = stored.vectors.astype(np.float32) @ question
            _mark(passage, list(stored.spans), scores, POOLED_MARGIN, floor)


def _mark(passage: Passage, spans: list[tuple[int, int]], scores: np.ndarray, margin: float, floor: float) -> None:
    if len(spans):
        cut = max(float(scores.max()) - margin, floor)
        marked = [span for span, score in zip(spans, scores) if score >= cut]
        passage.highlights = marked if len(marked) < len(spans) else []


def _mark_entities(passages: list[Passage], extracted: ExtractedAnswer) -> None:
    by_id = {p.chunk_id: p for p in passages}
    for item in (item for group in extracted.groups for item in group.items):
        for chunk_id, start, end in item.spans:
            if chunk_id in by_id:
                by_id[chunk_id].entities.append((start, end))
    for passage in passages:
        passage.entities.sort()


def _answer_json(extracted: ExtractedAnswer | None) -> dict | None:
    if extracted is None:
        return None
    return {
        "type": extracted.type,
        "category": extracted.category,
        "items": _items_json(extracted.items),
        "groups": [{"source": g.source, "title": g.title, "items": _items_json(g.items)} for g in extracted.groups],
    }


def _items_json(items: list[AnswerItem]) -> list[dict]:
    return [{"text": i.text, "label": i.label, "role": i.role, "passages": i.passages} for i in items]


def _answer_from_json(data: dict | None) -> ExtractedAnswer | None:
    if data is None:
        return None
    groups = [AnswerGroup(g["source"], g["title"], _items_from_json(g["items"])) for g in data["groups"]]
    return ExtractedAnswer(data["type"], _items_from_json(data["items"]), data["category"], groups)


def _items_from_json(items: list[dict]) -> list[AnswerItem]:
    """Items as to_json() gives them: their mentions' offsets are on their passages, not kept per item."""
    return [AnswerItem(i["text"], i["label"], i["role"], list(i["passages"]), []) for i in items]
