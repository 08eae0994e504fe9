"""The shared Assistant: its cache of recent answers, keyed by the build it answered from."""

import pytest

from assistant.errors import QueryError
from assistant.service import AnswerCache, Assistant


@pytest.fixture
def assistant(settings, corpus, fake_embedder):
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    assistant = Assistant(settings, fake_embedder)
    assistant.build()
    return assistant


def test_a_repeated_question_is_answered_from_the_cache_without_the_model(assistant, fake_embedder):
    first = assistant.ask("Who observed the talks?", 2)
    calls = fake_embedder.embedded
    again = assistant.ask("  Who observed the talks?\n", 2)  # the same question once cleaned
    assert fake_embedder.embedded == calls
    assert again.to_json() == {**first.to_json(), "question": "  Who observed the talks?\n"}


def test_another_k_or_mode_is_asked_again(assistant, fake_embedder):
    assistant.ask("Who observed the talks?", 2)
    calls = fake_embedder.embedded
    assistant.ask("Who observed the talks?", 1)
    assert fake_embedder.embedded > calls
    calls = fake_embedder.embedded
    assert assistant.ask("Who observed the talks?", 2, "dense").mode == "dense"
    assert fake_embedder.embedded > calls


def test_editing_an_answer_does_not_edit_the_cached_one(assistant):
    answer = assistant.ask("Who observed the talks?", 2)
    expected = answer.to_json()
    answer.passages[0].highlights.clear()
    answer.passages.clear()
    assert assistant.ask("Who observed the talks?", 2).to_json() == expected


def test_after_a_rebuild_the_same_question_is_answered_from_the_new_index(assistant, corpus, fake_embedder):
    assert "Kuwait" in assistant.ask("Who observed the talks?", 1).passages[0].text
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nBahrain observed the talks on Tuesday.")
    assistant.build()
    calls = fake_embedder.embedded
    passage = assistant.ask("Who observed the talks?", 1).passages[0]
    assert fake_embedder.embedded > calls and "Bahrain" in passage.text


def test_an_empty_question_is_still_refused_before_the_cache(assistant):
    with pytest.raises(QueryError, match="the question is empty"):
        assistant.ask(" \x01 ", 2)


def test_the_least_recently_used_answer_leaves_a_full_cache(assistant, fake_embedder):
    assistant.answers = AnswerCache(size=2)
    assistant.ask("Oman", 1)
    assistant.ask("Qatar", 1)
    assistant.ask("Oman", 1)  # now the most recent
    assistant.ask("Kuwait", 1)  # evicts Qatar
    calls = fake_embedder.embedded
    assistant.ask("Oman", 1)
    assert fake_embedder.embedded == calls
    assistant.ask("Qatar", 1)
    assert fake_embedder.embedded > calls


def test_a_build_reports_reading_chunking_and_embedding_in_that_order(settings, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Oman sent a delegate.")
    (corpus / "b.txt").write_text("Qatar observed the talks.")
    (corpus / "c.xyz").write_text("skipped, but read all the same")
    seen: list[tuple[str, int, int]] = []
    Assistant(settings, fake_embedder).build(progress=lambda phase, done, total: seen.append((phase, done, total)))
    phases = [phase for phase, _, _ in seen]
    assert sorted(set(phases), key=phases.index) == ["reading", "chunking", "embedding"]
    last = {phase: (done, total) for phase, done, total in seen}
    assert last == {"reading": (3, 3), "chunking": (2, 2), "embedding": (2, 2)}


def test_the_cache_tells_scopes_apart_and_not_the_order_they_are_given_in(settings, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Oman sent a delegate to the talks.")
    (corpus / "b").mkdir()
    (corpus / "b" / "c.txt").write_text("Qatar observed the talks.")
    assistant = Assistant(settings, fake_embedder)
    assistant.build()
    whole = assistant.ask("the talks", 5)
    assert {p.source for p in whole.passages} == {"a.txt", "b/c.txt"} and whole.sources == ()
    calls = fake_embedder.embedded
    scoped = assistant.ask("the talks", 5, sources=["b/"])
    assert fake_embedder.embedded > calls  # not the whole index's answer from the cache
    assert [p.source for p in scoped.passages] == ["b/c.txt"] and scoped.to_json()["sources"] == ["b"]
    calls = fake_embedder.embedded
    both = assistant.ask("the talks", 5, sources=["b", "a.txt"])
    assert fake_embedder.embedded > calls and both.sources == ("a.txt", "b")
    calls = fake_embedder.embedded
    assert assistant.ask("the talks", 5, sources=["a.txt", "b/", "b"]).to_json() == both.to_json()
    assert fake_embedder.embedded == calls  # the same scope, from the cache
    with pytest.raises(QueryError, match="no document or folder c.txt in the index"):
        assistant.ask("the talks", 5, sources=["c.txt"])


def test_a_follow_up_is_searched_with_the_topic_and_documents_of_the_question_before(settings, corpus, fake_embedder):
    from assistant.service import Assistant

    (corpus / "minister.txt").write_text("Minister Ahsan Iqbal opened the border talks. He said patrols will grow.")
    (corpus / "weather.txt").write_text("What did he say? He would say the weather in Madrid was sunny.")
    assistant = Assistant(settings, fake_embedder)
    assistant.build()
    alone = assistant.ask("What did he say?", 1)
    assert alone.context is None and alone.passages[0].source == "weather.txt"
    follow = assistant.ask("What did he say?", 1, history=["Who is Ahsan Iqbal?"])
    assert follow.context == {"question": "Who is Ahsan Iqbal?", "sources": ["minister.txt"]}
    assert follow.passages[0].source == "minister.txt" and follow.to_json()["context"] == follow.context
    own_topic = assistant.ask("What was the weather in Madrid?", 1, history=["Who is Ahsan Iqbal?"])
    assert own_topic.context is None and own_topic.passages[0].source == "weather.txt"
