"""The question record: what a question asks for is read from its own wh-phrase (not from any wh-word in it),
its command ("list", "name") or its lone noun, with a category naming what was asked."""

from __future__ import annotations

import pytest

from assistant.errors import QueryError
from assistant.question import MAX_QUESTION_CHARS, MAX_SOURCES, Question, read_sources


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Who spoke at the conference?", ("person", "speakers", "speakers")),
        ("Who said that trafficking is a stain?", ("person", "speakers", "speakers")),
        ("Who addressed the opening session?", ("person", "speakers", "speakers")),
        ("Which speakers delivered remarks?", ("person", "speakers", "speakers")),
        ("Who organized the conference?", ("person", "people", None)),
        ("Which officials were present?", ("person", "officials", None)),
        ("Which countries took part?", ("place", "countries", "participants")),
        ("What nations attended the meeting?", ("place", "countries", "participants")),
        ("Which countries are mentioned?", ("place", "countries", None)),
        ("Where was the conference held?", ("place", "places", None)),
        ("Which organizations were involved?", ("organization", "organizations", None)),
        ("What agencies run the programme?", ("organization", "organizations", None)),
        ("When was the conference?", ("date", "dates", None)),
        ("What year did the conferences start?", ("date", "years", None)),
        ("In which year did it start?", ("date", "years", None)),
        ("What is the date of the conference?", ("date", "dates", None)),
        ("How many countries took part?", ("number", "countries", None)),
        ("How much money was pledged?", ("number", "money", None)),
        ("Why is trafficking a problem?", (None, None, None)),
        ("How can victims be protected?", (None, None, None)),
        ("What is migrant smuggling?", (None, None, None)),
        ("What did he say about trafficking?", (None, None, None)),
        ("What did the countries agree on?", (None, None, None)),  # the noun is the subject, not what is asked
        # the question's own wh-word is the first; a later one opens a clause inside it
        ("Who spoke when the conference opened?", ("person", "speakers", "speakers")),
        ("When did the minister who spoke arrive?", ("date", "dates", None)),
        ("How do I check how much disk space is free?", (None, None, None)),
        ("Who must approve a package before how many days pass?", ("person", "people", None)),
        # commands and lone nouns name what they ask for
        ("List the participating countries", ("place", "countries", "participants")),
        ("Name all the speakers", ("person", "speakers", "speakers")),
        ("speakers", ("person", "speakers", "speakers")),
        ("participating countries", ("place", "countries", "participants")),
        ("Tell me who spoke", ("person", "speakers", "speakers")),
    ],
)
def test_what_a_question_asks_for(question, expected):
    read = Question.read(question)
    assert (read.type, read.category, read.intent) == expected


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Who spoke?", True),
        ("Which countries took part?", True),
        ("List the participating countries", True),
        ("What countries attended?", True),
        ("Name all the speakers", True),
        ("When was the conference?", False),
        ("How many countries took part?", False),
        ("Where was the conference held?", False),
        ("What did he say?", False),
    ],
)
def test_a_list_question_wants_every_entity(question, expected):
    assert Question.read(question).is_list is expected


def test_the_question_is_cleaned_once_and_its_content_words_kept():
    read = Question.read("  Which\x00countries took part in the 2024 conference?\t")
    assert read.text == "Which countries took part in the 2024 conference?"
    assert read.words == ("countries", "took", "part", "conference")
    assert read.vector is None


@pytest.mark.parametrize("asked", ["", "   ", "\x00\x01", "x" * (MAX_QUESTION_CHARS + 1), "half \ud800 a pair"])
def test_a_question_that_cannot_be_searched_is_refused_with_the_reason(asked):
    with pytest.raises(QueryError, match="question"):
        Question.read(asked)


def test_a_scope_is_read_sorted_without_duplicates_dots_or_trailing_slashes():
    question = Question.read("Who spoke?", ["reports/", "a.txt", "./reports", "reports//2024/./x.pdf", "a.txt"])
    assert question.sources == ("a.txt", "reports", "reports/2024/x.pdf")
    assert Question.read("Who spoke?").sources == ()


@pytest.mark.parametrize(
    "sources, message",
    [
        ([""], "a source is empty — give a document or folder relative to the corpus folder"),
        (["  "], "a source is empty"),
        (["/etc/passwd"], "the source /etc/passwd is an absolute path — give it relative to the corpus folder"),
        (["C:\\reports"], "is an absolute path"),
        (["../secret.txt"], r"the source ../secret.txt leads out of the corpus \(..\) — name a document or folder"),
        (["reports/../../etc"], "leads out of the corpus"),
        (["./"], "the source ./ names no document or folder"),
        (["x" * 4097], "has 4097 characters; the limit is 4096"),
        ([f"d{i}.txt" for i in range(MAX_SOURCES + 1)], "within 101 documents or folders; the limit is 100 — name the"),
    ],
)
def test_a_scope_that_cannot_name_a_part_of_the_corpus_is_refused_with_the_reason(sources, message):
    with pytest.raises(QueryError, match=message):
        read_sources(sources)


@pytest.mark.parametrize("asked", [5, {"question": "Who spoke?"}, ["Who spoke?"]])
def test_a_question_that_is_not_text_is_refused(asked):
    with pytest.raises(QueryError, match="the question must be text"):
        Question.read(asked)
