"""Parses kept on disk: a passage is parsed once, and a stored parse answers as a fresh one does."""

import logging

import pytest

from assistant import entities, parses
from assistant.documents import Passage
from assistant.entities import extract_answer
from assistant.lru import LRU
from assistant.parses import ParseCache
from assistant.question import Question
from tests.helpers import ROOT

SEED = (ROOT / "corpus" / "unodc-regional-conference-islamabad.txt").read_text()
PASSAGES = [
    Passage(text, "seed.txt", None, 0.5, 0, len(text), f"c{n}", "seed", "", False)
    for n, text in enumerate(p for p in SEED.split("\n\n") if p.strip())
]


@pytest.fixture
def forget(monkeypatch):
    """An empty memory of parses, as in a new process."""

    def empty() -> None:
        monkeypatch.setattr(entities, "_PARSED", LRU(entities._PARSED.size))

    empty()
    return empty


def answers(question: str) -> list[tuple[str, str | None]]:
    extracted = extract_answer(Question.read(question), PASSAGES)
    assert extracted is not None
    return [(item.text, item.role) for item in extracted.items]


def test_a_stored_parse_answers_as_a_fresh_one_and_nothing_is_parsed_again(tmp_path, forget, monkeypatch):
    fresh = {q: answers(q) for q in ("Who spoke at the conference?", "Which countries took part?")}
    entities.keep_parses(tmp_path / "parses.sqlite")
    forget()
    assert {q: answers(q) for q in fresh} == fresh  # parsed, and stored
    entities.keep_parses(None)
    entities.keep_parses(tmp_path / "parses.sqlite")  # the next process: the same file, nothing in memory
    forget()

    def parse_again(texts):
        raise AssertionError(f"parsed again: {texts[:1]}")

    monkeypatch.setattr(entities, "_parse_new", parse_again)
    assert {q: answers(q) for q in fresh} == fresh
    assert "Cesar Guedes" in [text for text, _ in fresh["Who spoke at the conference?"]]


def test_a_parse_is_kept_per_text_repair_code_and_parse_version(tmp_path, monkeypatch):
    nlp = entities._model()
    cache = ParseCache(tmp_path / "parses.sqlite", entities._repairs())
    key = cache.key("Kuwait observed the talks.", nlp)
    assert key != cache.key("Kuwait observed the talks!", nlp)
    assert key != ParseCache(cache.path, "other repairs").key("Kuwait observed the talks.", nlp)
    monkeypatch.setattr(parses, "PARSE_VERSION", parses.PARSE_VERSION + 1)
    assert cache.key("Kuwait observed the talks.", nlp) != key


def test_a_cache_that_cannot_be_written_is_left_aside_and_answers_go_on(tmp_path, forget, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    entities.keep_parses(blocked / "parses.sqlite")  # its folder is a file: it can never be created
    with caplog.at_level(logging.WARNING, logger="assistant.parses"):
        assert answers("Which countries took part?")
        forget()
        assert answers("Which countries took part?")
    warnings = [r.getMessage() for r in caplog.records if "left aside" in r.getMessage()]
    assert len(warnings) == 1 and "passages are parsed each time" in warnings[0]


def test_a_damaged_cache_file_is_left_aside(tmp_path, forget, caplog):
    damaged = tmp_path / "parses.sqlite"
    damaged.write_bytes(b"this is not an SQLite database" * 100)
    entities.keep_parses(damaged)
    with caplog.at_level(logging.WARNING, logger="assistant.parses"):
        assert "Cesar Guedes" in [text for text, _ in answers("Who spoke at the conference?")]
    assert any("left aside" in r.getMessage() for r in caplog.records)
    assert damaged.read_bytes().startswith(b"this is not")  # never overwritten: it may be someone's file


def test_beyond_its_size_the_least_recently_stored_parses_go(tmp_path, monkeypatch):
    monkeypatch.setattr(parses, "MAX_PARSES", 10)
    monkeypatch.setattr(parses, "PRUNE_EVERY", 1)
    nlp = entities._model()
    cache = ParseCache(tmp_path / "parses.sqlite")
    texts = [f"Report number {n} from Kuwait." for n in range(12)]
    for text in texts:
        cache.put([nlp(text)], nlp)
    kept = cache.get(texts, nlp)
    assert texts[-1] in kept and texts[0] not in kept and len(kept) <= 10
    assert [t.text for t in kept[texts[-1]]] == [t.text for t in nlp(texts[-1])]
    cache.close()
