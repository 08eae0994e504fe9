"""The question, read once into a record that search, ranking and answers take: its cleaned text, what it asks
for (read from its own wh-phrase, not from any wh-word in it), its content words, its scope, and its vector once
embedded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from .documents import printable
from .errors import QueryError

if TYPE_CHECKING:
    import numpy as np

MAX_QUESTION_CHARS = 2000
MAX_HISTORY = 20  # earlier questions of a conversation that a follow-up is read with
MAX_SOURCES = 100  # documents and folders one question may be asked within; a folder holds any number of documents
MAX_SOURCE_CHARS = 4096  # PATH_MAX on Linux: no longer path names a file
AnswerType = Literal["person", "place", "organization", "date", "number"]

# the question's own wh-word: the first one; a later one opens a clause inside it ("Who spoke when ...?")
_WH = re.compile(r"\b(who|whom|whose|what|which|when|where|why|how)\b")
# nouns that name what a list question asks for, by answer type; the category is the noun's plural
_NOUNS: list[tuple[AnswerType, str, re.Pattern[str]]] = [
    ("place", "countries", re.compile(r"(?:countries|country|nations?|states)\b")),
    ("place", "places", re.compile(r"(?:places?|cities|city|towns?|locations?|venues?)\b")),
    ("organization", "organizations", re.compile(r"(?:organi[sz]ations?|agenc(?:y|ies)|institutions?|bodies)\b")),
    ("person", "speakers", re.compile(r"speakers?\b")),
    ("person", "participants", re.compile(r"(?:participants?|attendees?|delegates?|delegations?)\b")),
    ("person", "officials", re.compile(r"officials?\b")),
    ("person", "ministers", re.compile(r"ministers?\b")),
    ("person", "people", re.compile(r"(?:people|persons?)\b")),
    ("date", "years", re.compile(r"years?\b")),
    ("date", "dates", re.compile(r"(?:dates?|days?|months?)\b")),
]
# after "what"/"which", or a command ("list", "name"), up to three words before the noun: "which of the countries"
_AFTER_WH = r"\W+(?:\w+\W+){0,3}?"
_COMMAND = re.compile(r"^\W*(?:please\s+)?(?:list|name|give|show|tell\s+me)\b")
_SPEECH = re.compile(r"\b(?:spoke|speak\w*|said|says?|address\w*|talk\w*|deliver\w*|remarks?|speech\w*|told)\b")
_PARTICIPATION = re.compile(r"\b(?:took|take|takes|taking|taken)\s+part\b|\bparticipa\w*|\battend\w*|\bjoin\w*")
_STOP = frozenset(
    "a an the of in on at to for from by with about into over after before and or but is are was were be been "
    "being do does did has have had what which who whom whose when where why how that this these those it its "
    "there their they he she his her them i me my we our you your any all some list name give show tell please "
    "many much can could would should will may might must".split()
)


@dataclass(frozen=True)
class Question:
    """A question as the assistant reads it. `type` is the kind of entity that answers it (None: a passage
    answers it, as for "why" and "how do I"); `category` names what was asked ("countries", "speakers", "dates");
    `intent` narrows a type: "speakers" (people reported speaking), "participants" (countries taking part)."""

    text: str  # cleaned: the text searched and embedded
    type: AnswerType | None = None
    category: str | None = None
    intent: str | None = None
    is_list: bool = False  # every matching entity is wanted, not one
    words: tuple[str, ...] = ()  # content words, lower case, in order
    sources: tuple[str, ...] = ()  # the documents and folders it is asked within (read_sources); none: all
    about: tuple[str, ...] = ()  # documents it is known to be about (a follow-up's): exempt from the spread
    vector: np.ndarray | None = None  # the embedded text, once computed (with_vector)

    @classmethod
    def read(cls, asked: str, sources: Sequence[str] = ()) -> Question:
        """The record of a question as typed, and asked within `sources`; QueryError when it cannot be searched."""
        text = clean_query(asked)
        lower = text.lower()
        kind, category, intent, is_list = _asks_for(lower)
        words = tuple(w for w in re.findall(r"\w+", lower) if w not in _STOP and not w.isdigit())
        return cls(text, kind, category, intent, is_list, words, read_sources(sources))

    def with_vector(self, vector: np.ndarray) -> Question:
        return replace(self, vector=vector)

    def listed(self) -> Question | None:
        """For "how many X" where X is a kind of entity (countries, speakers): the question for the list of X,
        whose length the count may be. None for other questions ("how many people were trafficked" has one)."""
        named = _named(" " + self.category, after_wh=True) if self.type == "number" and self.category else None
        if named is None or named[0] in ("date", "number") or named[1] == "people":
            return None
        kind, category = named
        intent = _intent(kind, category, self.text.lower())
        return replace(self, type=kind, category=_intent_category(category, intent), intent=intent, is_list=True)


def _asks_for(lower: str) -> tuple[AnswerType | None, str | None, str | None, bool]:
    """(type, category, intent, is_list) from the question's own wh-phrase, or its command or bare noun."""
    wh = _WH.search(lower)
    word = wh.group(1) if wh else None
    rest = lower[wh.end() :] if wh else lower
    if word == "how":
        counted = re.match(r"\s+(?:many|much)\b(?:\s+(\w+))?", rest)
        if not counted:
            return None, None, None, False  # how do I ..., how does it work: a passage answers
        noun = counted.group(1)
        return "number", noun if noun and noun not in _STOP else None, None, False
    if word == "why":
        return None, None, None, False
    if word == "when":
        return "date", "dates", None, False
    if word in ("what", "which") or word is None:
        command = _COMMAND.match(lower) if word is None else None
        if re.match(r"\W+(?:do|does|did|has|have|had|can|could|will|would|should|may|might|must)\b", rest):
            return None, None, None, False  # "what did the countries agree": the noun is the subject, not asked
        named = _named(rest[command.end() :] if command else rest, after_wh=word is not None or command is not None)
        if named:
            kind, category = named
            intent = _intent(kind, category, lower)
            return kind, _intent_category(category, intent), intent, kind not in ("date", "number")
        return None, None, None, False
    if word == "where":
        return "place", "places", None, False
    intent = _intent("person", "people", lower)  # who, whom, whose
    return "person", _intent_category("people", intent), intent, True


def _named(rest: str, after_wh: bool) -> tuple[AnswerType, str] | None:
    """The category a noun names: right after the wh-word or command (a few words between), or, in a question
    of a few words with neither ("speakers", "participating countries"), anywhere."""
    for kind, category, noun in _NOUNS:
        lead = r"^" + _AFTER_WH if after_wh else r"^\W*(?:\w+\W+){0,2}?"
        if re.search(lead + noun.pattern, rest) and (after_wh or len(rest.split()) <= 4):
            return kind, category
    return None


def _intent(kind: AnswerType, category: str, lower: str) -> str | None:
    if kind == "person" and (category == "speakers" or _SPEECH.search(lower)):
        return "speakers"
    if kind == "place" and category == "countries" and _PARTICIPATION.search(lower):
        return "participants"
    return None


def _intent_category(category: str, intent: str | None) -> str:
    return "speakers" if intent == "speakers" and category == "people" else category


def clean_query(query: str) -> str:
    """Strip control characters and surrounding space; refuse what cannot be searched."""
    if query is not None and not isinstance(query, str):
        raise QueryError(f"the question must be text, not {type(query).__name__} — type a question")
    if half := next((ch for ch in query or "" if "\ud800" <= ch <= "\udfff"), None):
        # half of a UTF-16 pair: no text holds one, and it cannot be written as UTF-8 (the reply would fail)
        raise QueryError(
            f"the question holds U+{ord(half):04X}, half of a character (a lone surrogate) — "
            "type or paste the question again as plain text"
        )
    cleaned = "".join(ch if ch.isprintable() else " " for ch in query or "").strip()
    if not cleaned:
        what = "" if not (query or "").strip() else " (it holds only control or invisible characters)"
        raise QueryError(f"the question is empty{what} — type a question, for example: Who spoke at the conference?")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question has {len(cleaned)} characters; the limit is {MAX_QUESTION_CHARS} — shorten it")
    return cleaned


def read_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """A scope as given: documents and folders relative to the corpus, "/"-separated. Returned sorted, without
    duplicates, "." and empty segments or a folder's trailing "/"; whether each is in the index is for the index
    to say (index.store.Scope.of). QueryError for what cannot name a part of the corpus: never a path read."""
    if len(sources) > MAX_SOURCES:
        raise QueryError(
            f"the question is asked within {len(sources)} documents or folders; the limit is {MAX_SOURCES} — "
            "name the folders that hold them instead"
        )
    return tuple(sorted({_source(source) for source in sources}))


def _source(source: str) -> str:
    shown = printable(source[:200]) + ("…" if len(source) > 200 else "")
    if len(source) > MAX_SOURCE_CHARS:
        raise QueryError(f"the source {shown} has {len(source)} characters; the limit is {MAX_SOURCE_CHARS}")
    if source.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", source):
        raise QueryError(
            f"the source {shown} is an absolute path — give it relative to the corpus folder, "
            "as `assistant status` lists the documents (reports/2024.pdf, or a folder: reports)"
        )
    parts = [part for part in source.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise QueryError(f"the source {shown} leads out of the corpus (..) — name a document or folder inside it")
    if not parts or not source.strip():
        what = "a source is empty" if not source.strip() else f"the source {shown} names no document or folder"
        raise QueryError(
            f"{what} — give a document or folder relative to the corpus folder, "
            "as `assistant status` lists the documents (reports/2024.pdf, or a folder: reports)"
        )
    return "/".join(parts)
