"""Entity answers drawn from passages: question types, speakers, participating countries, dates, numbers, spans."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assistant.documents import Passage
from assistant.entities import AnswerItem, extract_answer
from assistant.question import Question
from tests.helpers import PARTICIPANTS

SEED = Path(__file__).resolve().parent.parent / "corpus" / "unodc-regional-conference-islamabad.txt"
SPEAKERS = ["Cesar Guedes", "Ahsan Iqbal", "Leon Waskin", "Mushahid Hussain Syed"]


def extract(question: str, passages: list[Passage]):
    return extract_answer(Question.read(question), passages)


def passages_from(text: str, source: str = "seed.txt") -> list[Passage]:
    """One Passage per blank-line-separated paragraph, with offsets into `text`, ids p0, p1, ..."""
    passages, position = [], 0
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        start = text.index(paragraph, position)
        position = start + len(paragraph)
        passages.append(Passage(paragraph, source, None, 0.5, start, position, f"p{len(passages)}"))
    return passages


@pytest.fixture(scope="module")
def seed() -> list[Passage]:
    return passages_from(SEED.read_text(encoding="utf-8"))


def by_text(items: list[AnswerItem]) -> dict[str, AnswerItem]:
    return {item.text: item for item in items}


def test_speakers_are_exactly_the_people_who_spoke(seed):
    answer = extract("Who spoke at the conference?", seed)
    assert answer is not None and answer.type == "person"
    assert [item.text for item in answer.items] == SPEAKERS
    assert {item.label for item in answer.items} == {"PERSON"}


def test_speaker_roles_come_from_the_titles_around_the_name(seed):
    roles = {item.text: item.role for item in extract("Who addressed the conference?", seed).items}
    assert roles["Cesar Guedes"] == "Country Representative UNODC Pakistan"
    assert roles["Ahsan Iqbal"] == "Federal Minister of Interior"
    assert roles["Mushahid Hussain Syed"] == "Senator, Chairman Committee of Senate on Defense and CPEC"
    assert roles["Leon Waskin"].startswith("US Ambassador, Coordinator for Economic and Development Assistance")


def test_message_delivered_on_someones_behalf_makes_them_a_speaker_and_the_role_says_so(seed):
    waskin = by_text(extract("Who delivered remarks?", seed).items)["Leon Waskin"]
    assert "message delivered" in waskin.role and "behalf" in waskin.role
    assert waskin.passages == ["p10"]


def test_speaker_names_hold_no_titles_or_trailing_words(seed):
    names = [item.text for item in extract("Who said what?", seed).items]
    assert not any(word in name for name in names for word in ("Senator", "Ambassador", "Minister", " in", ","))


def test_plain_who_question_lists_every_person_with_roles(seed):
    answer = extract("Who is mentioned in the article?", seed)
    assert answer.type == "person"
    assert sorted(item.text for item in answer.items) == sorted(SPEAKERS)
    assert by_text(answer.items)["Ahsan Iqbal"].role == "Federal Minister of Interior"


def test_items_follow_the_order_passages_are_given_in(seed):
    answer = extract("Who is mentioned?", list(reversed(seed)))
    assert [item.text for item in answer.items] == list(reversed(SPEAKERS))


def test_participating_countries_are_the_21_listed_in_order_of_appearance(seed):
    answer = extract("Which countries took part?", seed)
    assert answer is not None and answer.type == "place"
    assert [item.text for item in answer.items] == PARTICIPANTS


def test_participants_leave_out_the_city_and_the_ambassadors_country(seed):
    texts = [item.text for item in extract("Which countries participated in the conference?", seed).items]
    assert not {"Islamabad", "ISLAMABAD", "US"} & set(texts)


def test_countries_mentioned_include_the_ambassadors_country_but_not_the_city(seed):
    texts = [item.text for item in extract("Which countries are mentioned?", seed).items]
    assert "US" in texts and "ISLAMABAD" not in texts
    assert texts[: len(PARTICIPANTS)] == PARTICIPANTS


def test_country_names_missing_their_comma_are_split_into_two_items(seed):
    items = by_text(extract("Which countries took part?", seed).items)
    assert "Czech Republic UAE" not in items
    paragraph = seed[2].text
    assert [paragraph[s:e] for _, s, e in items["Czech Republic"].spans + items["UAE"].spans] == [
        "Czech Republic",
        "UAE",
    ]


def test_each_item_lists_every_passage_it_appears_in(seed):
    pakistan = by_text(extract("Which countries took part?", seed).items)["Pakistan"]
    assert pakistan.passages == ["p0", "p2", "p6", "p9", "p12"]
    assert [chunk_id for chunk_id, _, _ in pakistan.spans] == pakistan.passages


def test_spans_are_offsets_of_each_mention_in_the_passage_text(seed):
    texts = {p.chunk_id: p.text for p in seed}
    for question in ("Who spoke?", "Which countries took part?", "When was the conference?"):
        for item in extract(question, seed).items:
            assert item.spans and all(texts[chunk_id][s:e] == item.text for chunk_id, s, e in item.spans)


def test_when_question_gives_the_date(seed):
    answer = extract("When was the conference?", seed)
    assert answer.type == "date"
    assert [item.text for item in answer.items[:3]] == ["24 October", "Tuesday", "2014"]


def test_how_many_question_gives_the_number_from_the_sentence_about_it():
    passages = passages_from(
        "The office opened 5 branches last year.\n\n"
        "In 2019, 300 people were trafficked across the border and 12 suspects were arrested."
    )
    answer = extract("How many people were trafficked?", passages)
    assert answer.type == "number"
    assert (answer.items[0].text, answer.items[0].label, answer.items[0].passages) == ("300", "CARDINAL", ["p1"])
    assert [item.text for item in answer.items] == ["300"]  # 5 counts branches, 12 suspects: not people


def test_who_question_over_passages_without_people_returns_none(seed):
    assert extract("Who organized it?", seed[2:6]) is None


def test_question_asking_for_no_entity_returns_none(seed):
    assert extract("Why is trafficking a problem?", seed) is None


def test_no_passages_returns_none():
    assert extract("Who spoke?", []) is None


def test_answers_are_the_same_from_several_threads(seed):
    questions = ["Who spoke?", "Which countries took part?", "When was the conference?"] * 3
    expected = [extract(q, seed) for q in questions]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(extract, questions, [seed] * len(questions))) == expected


def test_a_passage_asked_about_again_is_not_parsed_again_and_answers_the_same(seed, monkeypatch):
    from assistant import entities

    monkeypatch.setattr(entities, "_PARSED", entities.LRU(1024))
    parsed: list[str] = []
    real_run = entities._run
    monkeypatch.setattr(entities, "_run", lambda texts: parsed.extend(texts) or real_run(texts))
    first = extract("Who spoke?", seed)
    count = len(parsed)
    assert count >= len(seed)
    assert extract("Who spoke?", seed) == first and len(parsed) == count
    assert extract("Which countries took part?", seed[:3]) is not None and len(parsed) == count


def test_how_many_over_a_listed_set_answers_with_the_count_and_cites_the_list(seed):
    answer = extract("How many countries participated?", seed)
    assert answer.type == "number" and answer.category == "countries"
    (count,) = answer.items
    assert count.text == str(len(PARTICIPANTS)) == "21"
    assert count.role.startswith("countries named in the text: Pakistan, ")
    listed = extract("Which countries took part?", seed)
    assert count.passages == list(dict.fromkeys(c for item in listed.items for c in item.passages))


def test_how_many_takes_a_number_that_counts_the_noun_asked_about():
    passages = passages_from(
        "The conference was held in 2024 and lasted 3 days.\n\n"
        "Delegations from 14 countries, including Oman and Qatar, took part."
    )
    answer = extract("How many countries took part?", passages)
    assert [item.text for item in answer.items] == ["14"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ahsan Iqbal", True),
        ("Mushahid Hussain Syed", True),
        ("J. R. R. Tolkien", True),
        ("Ludwig van Beethoven", True),
        ("Jean-Luc Picard", True),
        ("O'Brien", True),
        ("aptitude", False),  # software, commands and directives the small model labels PERSON
        ("mod_rewrite", False),
        ("GNOME", False),
        ("Firefox 3", False),
        ("X11", False),
        ("/usr/bin/env", False),
    ],
)
def test_a_person_in_an_answer_is_a_name(text, expected):
    from assistant.entities import _is_name

    assert _is_name(text) is expected


def test_how_many_days_takes_the_duration_not_a_section_number():
    passages = passages_from(
        "See section 4.2 for the details of the policy.\n\n"
        "A package must stay in unstable for at least 10 days before it migrates to testing."
    )
    answer = extract("How many days does a package stay in unstable?", passages)
    assert answer is not None and "10" in answer.items[0].text


@pytest.mark.parametrize(
    "question, expected",
    [
        ("What did he say about trafficking?", True),  # refers back
        ("When was it held?", True),
        ("Who spoke?", True),  # no topic of its own
        ("Which countries took part?", True),
        ("How many countries participated?", True),
        ("Who spoke at the conference?", False),
        ("What is the weather in Madrid?", False),
        ("Who said that trafficking is a stain?", False),  # "that" opens a clause, it refers to nothing
    ],
)
def test_a_follow_up_refers_back_or_names_no_topic_of_its_own(question, expected):
    from assistant.entities import leans_on_previous

    assert leans_on_previous(Question.read(question)) is expected
