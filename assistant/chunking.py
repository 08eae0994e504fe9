"""Split a document into passages: paragraphs first, then sentences, bounded by the model's word-piece count."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Protocol

from .config import Settings
from .documents import Chunk, Document, Progress, Section
from .errors import ConfigError

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=[^\S\n]*\n[^\S\n]*\n|\s*\Z)", re.DOTALL)
_MERGE_BELOW = 8  # a paragraph this short is joined to the next one
_LINE = re.compile(r"\S(?:[^\n]*\S)?")  # a line's text, without the spaces around it
_HEADING_MAX = 24  # a one-line paragraph this short, with no closing punctuation, is a heading: it joins the next
# Under a heading, consecutive paragraphs are joined up to the chunk size: on the manuals of benchmarks/ingest.py
# (tune questions) hybrid hit@1 rose from 0.75 to 0.95 and from 0.40 to 0.50, hit@5 from 0.95 to 1.0 and stayed
# at 0.80 (docs/benchmarks.md#reading-real-documents). Text without headings keeps a paragraph a chunk.
MERGE_UNDER_HEADINGS = True
_LEAD_IN_MAX = 64  # word pieces of a paragraph ending in a colon that joins the block it introduces
_CLOSING = tuple(".!?…\"”’')")
_SPACY_PIECE = 100_000  # characters handed to the sentence splitter at once


class Tokenizer(Protocol):
    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the word pieces of `text`, without special tokens."""
        ...


class ModelTokenizer(Tokenizer, Protocol):
    @property
    def max_tokens(self) -> int:
        """The most word pieces the model reads at once."""
        ...


def chunk_documents(
    settings: Settings,
    tokenizer: ModelTokenizer,
    documents: list[Document],
    progress: Progress | None = None,
) -> list[Chunk]:
    """The chunks of `documents`, in document order, with the settings' chunk size and overlap;
    `progress(done, total)` is told of each document chunked."""
    max_tokens = tokenizer.max_tokens
    if settings.chunk_tokens > max_tokens:
        raise ConfigError(
            f"ASSISTANT_CHUNK_TOKENS={settings.chunk_tokens} is over the model's limit of {max_tokens} word pieces"
        )
    chunks: list[Chunk] = []
    for done, document in enumerate(documents, start=1):
        chunks += chunk_document(document, tokenizer, settings.chunk_tokens, settings.chunk_overlap, max_tokens)
        if progress:
            progress(done, len(documents))
    return chunks


def chunk_document(
    doc: Document, tokenizer: Tokenizer, chunk_tokens: int, overlap: int, max_tokens: int
) -> list[Chunk]:
    """Chunks of at most `chunk_tokens` word pieces; the embedded text adds title and preceding context
    without going over `max_tokens`, the model's own limit."""
    # a heading joined to its paragraph may take the chunk past chunk_tokens by its own length, not past the model
    stretch = max(chunk_tokens, min(chunk_tokens + _HEADING_MAX, max_tokens - 2))
    return [
        _make_chunk(doc, start, end, section, tokenizer, max_tokens)
        for section in doc.sections
        for start, end in _merged(
            doc.text,
            _units(doc.text, section.start, section.end, tokenizer, chunk_tokens, overlap, stretch),
            tokenizer,
            chunk_tokens if section.heading and MERGE_UNDER_HEADINGS else 0,
        )
    ]


def _merged(text: str, units: list[tuple[int, int]], tok: Tokenizer, limit: int) -> list[tuple[int, int]]:
    """Consecutive units of a section joined while they fit in `limit` word pieces (0: each its own chunk);
    windows of a long paragraph, which overlap, stay apart."""
    if limit <= 0:
        return units
    merged: list[tuple[int, int]] = []
    size = 0  # word pieces of the last merged unit: the pieces of joined text are the sum of its parts'
    for start, end in units:
        count = len(tok.offsets(text[start:end]))
        if merged and merged[-1][1] <= start and size + count <= limit:
            merged[-1], size = (merged[-1][0], end), size + count
        else:
            merged.append((start, end))
            size = count
    return merged


def _units(text: str, lo: int, hi: int, tok: Tokenizer, size: int, overlap: int, stretch: int) -> list[tuple[int, int]]:
    """The paragraphs of text[lo:hi], each a unit, windowed when over `size`. A heading, a lead-in or a very short
    paragraph is joined to the next one, whole while they fit in `stretch` (past `size` by a heading), else in the
    first of their windows: it never stands alone."""
    paragraphs = [(lo + m.start(), lo + m.end()) for m in _PARAGRAPH.finditer(text[lo:hi])]
    units: list[tuple[int, int]] = []
    pending: tuple[int, int, int] | None = None  # a heading or short paragraph waiting to be joined to the next
    for start, end in paragraphs:
        own = len(tok.offsets(text[start:end]))
        joins_next = own < _MERGE_BELOW or _is_heading(text[start:end], own) or _leads_in(text[start:end], own)
        count, limit = own, size
        if pending:  # a paragraph that fits is joined whole up to `stretch`, else windowed with what it joins
            start, count, limit = pending[0], pending[2] + own, stretch if own <= size else size
        pending = None
        if count > limit:
            units.extend(_windows(text, start, end, tok, size, overlap))
        elif joins_next:
            pending = (start, end, count)
        else:
            units.append((start, end))
    if pending:  # at the section's end, with nothing to introduce: it closes the unit before, when that fits
        last = units[-1] if units else None
        if last and len(tok.offsets(text[last[0] : pending[1]])) <= stretch:
            units[-1] = (last[0], pending[1])
        else:
            units.append(pending[:2])
    return units


def _leads_in(paragraph: str, count: int) -> bool:
    """A short paragraph that ends with a colon introduces what follows ("Run the following:"): they go together."""
    return count <= _LEAD_IN_MAX and paragraph.endswith(":")


def _is_heading(paragraph: str, count: int) -> bool:
    return count <= _HEADING_MAX and "\n" not in paragraph and not paragraph.endswith(_CLOSING)


def _windows(text: str, start: int, end: int, tok: Tokenizer, size: int, overlap: int) -> list[tuple[int, int]]:
    """Group the sentences of a long paragraph into windows of <= size pieces, sharing about `overlap`. A block of
    lines (code, a list, a table) is cut between lines, and a heading joined to the paragraph stays a piece of its
    own: a sentence never runs across a line break there."""
    pieces: list[tuple[int, int, int]] = []  # (start, end, word pieces)
    for s, e in _pieces(text, start, end):
        count = len(tok.offsets(text[s:e]))
        pieces.extend(_hard_split(text, s, e, tok, size) if count > size else [(s, e, count)])
    windows: list[tuple[int, int]] = []
    first = 0
    while first < len(pieces):
        last, total = first, pieces[first][2]
        while last + 1 < len(pieces) and total + pieces[last + 1][2] <= size:
            last += 1
            total += pieces[last][2]
        windows.append((pieces[first][0], pieces[last][1]))
        if last + 1 >= len(pieces):
            break
        nxt, shared = last + 1, 0
        while nxt - 1 > first and shared + pieces[nxt - 1][2] <= overlap:
            nxt -= 1
            shared += pieces[nxt][2]
        first = nxt
    return windows


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans a window is made of: the lines of a paragraph that has several, else its sentences."""
    spans: list[tuple[int, int]] = []
    for paragraph in _PARAGRAPH.finditer(text, start, end):
        lo, hi = paragraph.span()
        if "\n" not in text[lo:hi]:
            spans += sentence_spans(text, lo, hi)
            continue
        spans += [(lo + line.start(), lo + line.end()) for line in _LINE.finditer(text[lo:hi])]
    return spans


def _hard_split(text: str, start: int, end: int, tok: Tokenizer, size: int) -> list[tuple[int, int, int]]:
    """A sentence longer than `size`: cut it at whitespace between word pieces."""
    offsets = [(start + a, start + b) for a, b in tok.offsets(text[start:end])]
    parts: list[tuple[int, int, int]] = []
    i = 0
    while i < len(offsets):
        j = min(i + size, len(offsets))
        if j < len(offsets):
            # step back to a piece that starts a word, so no word is cut in two
            k = j
            while k > i + 1 and offsets[k][0] == offsets[k - 1][1]:
                k -= 1
            j = k if k > i + 1 else j
        parts.append((offsets[i][0], offsets[j - 1][1], j - i))
        i = j
    return parts


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence boundaries from spaCy's rule-based sentencizer, as offsets into `text`."""
    nlp = _sentencizer()
    spans: list[tuple[int, int]] = []
    for lo in range(start, end, _SPACY_PIECE):
        spans += _spans(nlp(text[lo : min(lo + _SPACY_PIECE, end)]), lo)
    return spans


def sentences_of(texts: list[str]) -> list[list[tuple[int, int]]]:
    """sentence_spans() of each whole text; short texts (passages) go through spaCy's pipe, six times faster
    than one call each."""
    nlp = _sentencizer()
    short = [i for i, text in enumerate(texts) if len(text) <= _SPACY_PIECE]
    found = {i: _spans(doc, 0) for i, doc in zip(short, nlp.pipe(texts[i] for i in short))}
    return [found[i] if i in found else sentence_spans(text, 0, len(text)) for i, text in enumerate(texts)]


def _spans(doc, offset: int) -> list[tuple[int, int]]:
    """The sentences of a parsed piece of text that starts at `offset`, without the spaces around them."""
    spans = []
    for sent in doc.sents:
        stripped = sent.text.strip()
        if stripped:
            first = offset + sent.start_char + (len(sent.text) - len(sent.text.lstrip()))
            spans.append((first, first + len(stripped)))
    return spans


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = _SPACY_PIECE + 1
    return nlp


def _make_chunk(doc: Document, start: int, end: int, section: Section, tok: Tokenizer, max_tokens: int) -> Chunk:
    """The chunk at doc.text[start:end]; what is embedded adds the title, the heading path and the sentence
    before, each cut to what the model's limit leaves."""
    text = doc.text[start:end]
    path = " › ".join(section.heading)
    left = max_tokens - len(tok.offsets(text)) - 2
    title = _clip(doc.title, tok, left)
    left -= len(tok.offsets(title))
    heading = _clip(path, tok, min(left, 48))
    left -= len(tok.offsets(heading))
    floor = section.start if section.heading else 0  # a page break is not a change of topic; a heading is
    context = _preceding_context(doc.text, start, tok, min(left, 64), floor)
    embed_text = "\n".join(part for part in (title, heading, context, text) if part)
    digest = hashlib.sha1(f"{doc.path}\0{start}\0{end}\0{text}".encode()).hexdigest()[:16]
    return Chunk(digest, doc.path, section.page, start, end, text, embed_text, path, section.ocr)


def _clip(text: str, tok: Tokenizer, budget: int) -> str:
    """`text` cut to its first `budget` word pieces, at a word's end, so that a very long title or heading
    can't push the chunk over the model's limit."""
    offsets = tok.offsets(text)
    if len(offsets) <= budget:
        return text
    if budget <= 0:
        return ""
    cut = offsets[budget - 1][1]
    if cut < len(text) and not text[cut].isspace():  # the last piece ends inside a word: drop that word
        partial = re.search(r"\S+$", text[:cut])
        cut = partial.start() if partial and partial.start() > 0 else cut  # a single long word is cut as it is
    return text[:cut].rstrip()


def _preceding_context(text: str, start: int, tok: Tokenizer, budget: int, floor: int = 0) -> str:
    """The sentence before the chunk within its section (from `floor`), so that "he said ..." can be found by
    asking about who said it. A sentence over the budget keeps its end, from a word's start."""
    if budget <= 0 or start <= floor:
        return ""
    window_start = max(floor, start - 1000)
    sentences = sentence_spans(text, window_start, start)
    if not sentences:
        return ""
    s, e = sentences[-1]
    offsets = tok.offsets(text[s:e])
    if len(offsets) > budget:  # keep the end of the sentence: it is nearest to the chunk
        s += offsets[len(offsets) - budget][0]
        while s < e and not text[s - 1].isspace():
            s += 1  # not from the middle of a word
    return text[s:e].strip()
