"""The confidence of an answer (assistant/confidence.py): its signals, its levels, and what the reply does with
them (answers.py, the CLI's text and the chat)."""

import pytest

from assistant import confidence
from assistant.answers import Answer, answer_question
from assistant.cli import _format_answer
from assistant.confidence import Signals, level, rarity, read_signals
from assistant.index import build_index
from assistant.index.faiss.store import open_index
from assistant.question import Question
from assistant.search import Retriever
from assistant.serve.ui import _render_reply

FILES = {
    "talks.txt": "The conference in Islamabad heard ministers on border control.\n\nDelegates discussed visas.",
    "harbour.txt": "The harbour authority reported cargo volumes for the port of Karachi.",
}


@pytest.fixture
def store(settings, corpus, fake_embedder):
    for name, text in FILES.items():
        (corpus / name).write_text(text)
    build_index(settings, fake_embedder)
    return open_index(settings.index)


def signals(store, fake_embedder, text: str, sources: tuple[str, ...] = ()) -> Signals:
    retriever = Retriever(store, fake_embedder)
    question = retriever.read(Question.read(text, sources))
    found, relevance = retriever.ranked(question, 5)
    return read_signals(store, question, found, relevance, retriever.floor, retriever.within(question))


def test_rarity_weighs_a_rare_word_above_a_common_one_and_skips_stop_words():
    weights = rarity("Who spoke at the sourdough conference?")
    assert set(weights) == {"who", "spoke", "sourdough", "confer"}  # BM25's terms: stemmed, stop words dropped
    assert weights["sourdough"] > weights["confer"] > 0 and weights["sourdough"] > weights["spoke"]
    assert rarity("xqzvbnmw")["xqzvbnmw"] == pytest.approx(confidence.ZIPF_CEILING)  # never seen: the rarest
    assert rarity("is it the?") == {}


def test_a_missing_rare_word_is_unknown_a_missing_common_one_hardly(store, fake_embedder):
    assert signals(store, fake_embedder, "Who spoke at the conference?").unknown < 0.1  # "spoke": common
    assert signals(store, fake_embedder, "Who baked sourdough at the conference?").unknown > 0.3
    assert signals(store, fake_embedder, "Which ministers spoke on border control?").unknown < 0.1


def test_a_word_held_only_outside_the_scope_is_unknown_within_it(store, fake_embedder):
    assert signals(store, fake_embedder, "cargo volumes in Karachi").unknown == 0
    assert signals(store, fake_embedder, "cargo volumes in Karachi", ("talks.txt",)).unknown > 0.2


def test_passages_is_the_weighed_share_of_the_question_the_best_first_passage_holds(store, fake_embedder):
    assert signals(store, fake_embedder, "harbour cargo volumes").passages == pytest.approx(1.0)
    partial = signals(store, fake_embedder, "harbour cargo tariffs").passages
    assert 0.3 < partial < 1.0


def test_levels_follow_the_probability_and_the_probability_the_signals():
    assert level(confidence.NONE_UNDER - 0.01) == "none" and level(confidence.NONE_UNDER) == "low"
    assert level(confidence.HIGH_FROM - 0.01) == "low" and level(confidence.HIGH_FROM) == "high"
    strong, weak = Signals(0.2, 0.0, 1.0), Signals(-0.2, 0.6, 0.0)
    assert level(strong.probability()) == "high" and level(weak.probability()) == "none"
    assert Signals(0.1, 0.0, 0.5).probability() > Signals(0.1, 0.5, 0.5).probability()  # a rare word missing
    assert Signals(0.1, 0.0, 0.8).probability() > Signals(0.1, 0.0, 0.2).probability()


def test_the_reply_carries_its_confidence_and_refuses_only_at_none(store, fake_embedder):
    auto = Retriever(store, fake_embedder)
    for text in ["Which ministers spoke on border control?", "How do I bake a sourdough loaf?"]:
        reply = answer_question(auto, text, 2).to_json()
        assert reply["confidence"] in ("high", "low", "none") and 0.0 <= reply["certainty"] <= 1.0
        assert reply["no_answer"] is (reply["confidence"] == "none")
        assert set(reply["signals"]) == {"margin", "unknown", "passages"}
    assert answer_question(auto, "How do I bake a sourdough loaf?", 2).no_answer


def test_a_floor_set_by_hand_decides_alone(store, fake_embedder):
    """ASSISTANT_MIN_SCORE: under it, not in the documents; above it, answered, however rare the missing words."""
    lenient, strict = Retriever(store, fake_embedder, min_score=-1.0), Retriever(store, fake_embedder, min_score=0.999)
    off_topic = answer_question(lenient, "How do I bake a sourdough loaf?", 2)
    assert not off_topic.no_answer and off_topic.confidence in ("high", "low")
    on_topic = answer_question(strict, "Which ministers spoke on border control?", 2)
    assert on_topic.no_answer and on_topic.confidence == "none"


def test_low_confidence_is_said_in_the_text_output_and_the_chat(store, fake_embedder):
    reply = answer_question(Retriever(store, fake_embedder, min_score=-1.0), "harbour cargo volumes", 1)
    reply.confidence = "low"
    assert "Low confidence: the documents may not answer this question" in _format_answer(reply)
    assert "<b>Low confidence.</b>" in _render_reply(reply)
    reply.confidence = "high"
    assert "Low confidence" not in _format_answer(reply) and "Low confidence" not in _render_reply(reply)


def test_why_none_names_the_missing_word_or_the_floor():
    unknown = Answer("q", [], relevance=0.1, floor=0.3, signals=Signals(-0.2, 0.5, 0.0))
    unknown.passages = [object()]  # type: ignore[list-item]  # some closest passage
    assert unknown.why_none() == (
        "the closest passage scores 0.10, under the relevance floor 0.30; a word of the question is in no document"
    )
    assert Answer("q", [], mode="bm25").why_none().startswith("no passage holds a word of the question")
