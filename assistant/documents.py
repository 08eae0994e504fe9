"""Plain data: a Document read from the corpus, its Chunks, and the Passages search returns."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Progress = Callable[[int, int], None]  # told (done, total) as a stage works through its items
# What the readers and the chunker make of a file, as a number: raised with any change to the text, sections or
# passages they give, so that the next build reads every file again instead of keeping an unchanged file's old
# passages (docs/usage.md#adding-documents)
READING = 5


@dataclass(frozen=True)
class Section:
    """A span of a document's text; `page` is the 1-based PDF page, or None. No chunk crosses a section."""

    start: int
    end: int
    page: int | None = None
    heading: tuple[str, ...] = ()  # the headings this span sits under, outermost first
    ocr: bool = False  # the text was read from an image by OCR

    @classmethod
    def from_json(cls, fields: dict) -> Section:
        """A section as it is stored (JSON has lists, not tuples)."""
        return cls(**{**fields, "heading": tuple(fields.get("heading", ()))})


@dataclass(frozen=True)
class Document:
    path: str  # relative to the corpus, with forward slashes
    title: str
    text: str
    sha256: str  # of the file's bytes
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        if not self.sections:
            object.__setattr__(self, "sections", (Section(0, len(self.text)),))


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    page: int | None
    start: int
    end: int
    text: str  # exactly document.text[start:end]
    embed_text: str  # what is embedded and indexed: title, section and context added
    section: str = ""  # the heading path, e.g. "Chapter 6 › 6.2 › aptitude"
    ocr: bool = False


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str  # one line


def printable(path: str) -> str:
    """A path on one line: as it is when every character prints, else escaped like a Python string ('a\\nb.txt')."""
    return path if path.isprintable() else repr(path)


@dataclass(frozen=True)
class SentenceVectors:
    """A passage's sentences as its build read them: their (start, end) offsets in the passage's text and a
    vector each, pooled from the passage's own word-piece embeddings (embedding.Embedder.encode_passages) and
    kept as float16, so that highlighting a shown passage is a matrix product (answers.highlight)."""

    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray  # (len(spans), dimension), float16, normalized (a sentence the model never read: zeros)

    _MAGIC = b"SV1"

    def pack(self) -> bytes:
        """As the stores keep it: a tag, the counts, the spans as int32 pairs, the vectors as float16."""
        count, dimension = self.vectors.shape
        return (
            self._MAGIC
            + struct.pack("<II", count, dimension)
            + np.asarray(self.spans, dtype="<i4").reshape(-1, 2).tobytes()
            + np.asarray(self.vectors, dtype="<f2").tobytes()
        )

    @classmethod
    def unpack(cls, data: bytes | None) -> SentenceVectors | None:
        """pack()'s bytes read back; None for none (a passage built before they were kept) or for bytes that
        are not pack()'s, so that a damaged row costs its highlight's speed, never the answer."""
        head = len(cls._MAGIC) + 8
        if not data or data[: len(cls._MAGIC)] != cls._MAGIC or len(data) < head:
            return None
        count, dimension = struct.unpack("<II", data[len(cls._MAGIC) : head])
        if len(data) != head + count * 8 + count * dimension * 2:
            return None
        spans = np.frombuffer(data, dtype="<i4", count=count * 2, offset=head).reshape(count, 2)
        vectors = np.frombuffer(data, dtype="<f2", count=count * dimension, offset=head + count * 8)
        return cls(tuple((int(s), int(e)) for s, e in spans), vectors.reshape(count, dimension))


@dataclass
class Passage:
    """One search result. `score` is the cosine similarity of question and passage."""

    text: str
    source: str
    page: int | None
    score: float
    start: int
    end: int
    chunk_id: str
    title: str = ""
    section: str = ""  # the heading path of the passage in its document
    ocr: bool = False  # read from an image by OCR: the text may hold misread characters
    highlights: list[tuple[int, int]] = field(default_factory=list)  # best sentences, offsets within `text`
    entities: list[tuple[int, int]] = field(default_factory=list)  # answer entities, offsets within `text`
    # its sentences' vectors from the build (None: built before they were kept); not part of its JSON
    sentences: SentenceVectors | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "source": self.source,
            "page": self.page,
            "score": round(self.score, 4),
            "start": self.start,
            "end": self.end,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "section": self.section,
            "ocr": self.ocr,
            "highlights": [list(span) for span in self.highlights],
            "entities": [list(span) for span in self.entities],
        }

    @classmethod
    def from_json(cls, data: dict) -> Passage:
        """The passage of to_json()'s object (the score as rounded there)."""
        highlights, entities = (
            [(int(start), int(end)) for start, end in data[name]] for name in ("highlights", "entities")
        )
        return cls(
            data["text"],
            data["source"],
            data["page"],
            float(data["score"]),
            int(data["start"]),
            int(data["end"]),
            data["chunk_id"],
            data["title"],
            data["section"],
            bool(data["ocr"]),
            highlights,
            entities,
        )
