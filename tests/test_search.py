import numpy as np
import pytest

from assistant.answers import POOLED_MARGIN, _answer_by_document, answer_question, highlight
from assistant.config import Settings
from assistant.documents import Passage, SentenceVectors
from assistant.errors import QueryError
from assistant.index import build_index
from assistant.index.faiss.store import open_index
from assistant.question import Question
from assistant.search import MAX_PER_DOCUMENT, Retriever, relevance_floor, spread

FILES = {
    "spain.txt": "Spain sent a delegation of border police.\n\nThe weather in Madrid was sunny.",
    "oman.txt": "Oman and Qatar discussed maritime patrols. Kuwait observed the talks.",
}


@pytest.fixture
def retriever(settings, corpus, fake_embedder):
    for name, text in FILES.items():
        (corpus / name).write_text(text)
    build_index(settings, fake_embedder)
    return Retriever(open_index(settings.index), fake_embedder, min_score=-1.0)


def test_search_returns_ranked_passages_with_source_offsets_and_ids(retriever):
    passages = retriever.search("Oman Qatar maritime patrols", k=3)
    assert passages[0].source == "oman.txt"
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    for p in passages:
        document = retriever.index.documents([p.source])[p.source]["text"]
        assert document[p.start : p.end] == p.text
        assert p.page is None and len(p.chunk_id) == 16 and -1.0 <= p.score <= 1.0001


def test_k_larger_than_the_chunk_count_is_capped(retriever):
    assert len(retriever.search("border", k=500)) == len(retriever.index)


def test_empty_or_blank_question_is_a_clear_error(retriever):
    for question in ["", "   ", "\x00\x07"]:
        with pytest.raises(QueryError, match="the question is empty"):
            retriever.search(question)


def test_overlong_question_is_refused_with_the_limit(retriever):
    with pytest.raises(QueryError, match="limit is 2000"):
        retriever.search("x" * 2001)


def test_k_below_one_is_refused(retriever):
    with pytest.raises(QueryError, match="k must be at least 1"):
        retriever.search("Spain", k=0)


def test_question_below_the_relevance_floor_is_not_covered_but_keeps_its_closest_passages(retriever):
    strict = Retriever(retriever.index, retriever.embedder, min_score=0.99)
    answer = answer_question(strict, "completely unrelated words zebra", k=2)
    assert answer.no_answer and len(answer.passages) == 2
    assert all(p.highlights == [] for p in answer.passages)
    assert answer.to_json()["no_answer"] is True
    assert not answer_question(retriever, "Kuwait observed", k=1).no_answer


def test_answer_highlights_the_sentence_that_matches(retriever):
    answer = answer_question(retriever, "Kuwait observed", k=1)
    passage = answer.passages[0]
    marked = [passage.text[s:e] for s, e in passage.highlights]
    assert marked == ["Kuwait observed the talks."]
    assert answer.to_json()["passages"][0]["highlights"] == [list(passage.highlights[0])]


def test_relevance_floor_grows_with_the_log_of_the_index_size():
    assert relevance_floor(13) == pytest.approx(0.200, abs=0.002)  # the seed article's 13 passages
    floors = [relevance_floor(n) for n in (1, 10, 100, 10_000, 1_000_000)]
    assert floors == sorted(floors) and floors[0] == pytest.approx(0.104, abs=1e-3)
    assert floors[3] - floors[2] == pytest.approx(2 * (floors[2] - floors[1]), abs=2e-3)  # same rise per factor of 10


def test_floor_comes_from_the_index_size_unless_min_score_is_set(retriever):
    assert Retriever(retriever.index, retriever.embedder).floor == relevance_floor(len(retriever.index))
    assert Retriever(retriever.index, retriever.embedder, min_score=0.42).floor == 0.42


def test_relevance_is_the_best_cosine_in_the_whole_index_whatever_the_mode(retriever):
    vector = retriever.embed_query("Kuwait observed")
    best = max(float(v @ vector) for v in retriever.index.stored_vectors(list(range(len(retriever.index)))))
    for mode in ("dense", "bm25", "hybrid"):
        retriever.mode = mode
        assert retriever.relevance(vector) == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("mode", ["dense", "hybrid", "bm25"])
def test_an_answer_searches_the_vectors_once_and_its_relevance_is_the_best_cosine(retriever, monkeypatch, mode):
    calls = []
    search = retriever.index.dense
    monkeypatch.setattr(
        retriever.index, "dense", lambda vector, k, within=(): calls.append(k) or search(vector, k, within)
    )
    retriever.mode = mode
    answer = answer_question(retriever, "Oman Qatar maritime patrols", k=2)
    assert len(calls) == 1
    assert answer.relevance == pytest.approx(retriever.relevance(retriever.embed_query("Oman Qatar maritime patrols")))


def test_a_list_answer_is_drawn_from_one_document_at_a_time_best_first(settings, corpus, fake_embedder):
    (corpus / "patrols.txt").write_text("Delegates from Oman, Qatar and Kuwait took part in the patrol meeting.")
    (corpus / "fishery.txt").write_text("Delegations from France, Germany and Spain took part in the fishery talks.")
    build_index(settings, fake_embedder)
    retriever = Retriever(open_index(settings.index), fake_embedder, min_score=-1.0)
    answer = answer_question(retriever, "Which countries took part in the patrol meeting?", k=2)
    groups = [(g.source, [i.text for i in g.items]) for g in answer.answer.groups]
    assert groups == [("patrols.txt", ["Oman", "Qatar", "Kuwait"]), ("fishery.txt", ["France", "Germany", "Spain"])]
    assert [i.text for i in answer.answer.items] == ["Oman", "Qatar", "Kuwait"]  # the best document's list
    reply = answer.to_json()["answer"]
    assert [i["text"] for i in reply["items"]] == ["Oman", "Qatar", "Kuwait"]
    assert [(g["source"], g["title"], len(g["items"])) for g in reply["groups"]] == [
        ("patrols.txt", "patrols", 3),
        ("fishery.txt", "fishery", 3),
    ]


def test_a_highlight_marks_only_a_sentence_that_stands_out_in_its_passage(settings, corpus, fake_embedder):
    (corpus / "one.txt").write_text("Kuwait observed the maritime talks in Muscat last spring.")
    (corpus / "two.txt").write_text("Kuwait observed the talks. Bahrain hosted a dinner for the delegates.")
    build_index(settings, fake_embedder)
    retriever = Retriever(open_index(settings.index), fake_embedder, min_score=-1.0)
    passages = {p.source: p for p in answer_question(retriever, "Kuwait observed the talks", k=2).passages}
    assert passages["one.txt"].highlights == []  # its one sentence: marking it would say nothing
    two = passages["two.txt"]
    assert [two.text[s:e] for s, e in two.highlights] == ["Kuwait observed the talks."]


def test_highlights_are_scored_with_the_sentence_vectors_of_the_build_without_embedding_a_sentence(retriever):
    embedder = retriever.embedder
    embedder.texts.clear()
    answer = answer_question(retriever, "Kuwait observed", k=2)
    oman = next(p for p in answer.passages if p.source == "oman.txt")
    assert oman.sentences is not None and [oman.text[s:e] for s, e in oman.sentences.spans] == [
        "Oman and Qatar discussed maritime patrols.",
        "Kuwait observed the talks.",
    ]
    assert [oman.text[s:e] for s, e in oman.highlights] == ["Kuwait observed the talks."]
    assert embedder.texts == ["Kuwait observed"]  # the question alone: no sentence embedded at question time


def test_a_passage_without_sentence_vectors_has_its_sentences_embedded(retriever):
    passage = retriever.search("Kuwait observed", k=1)[0]
    passage.sentences = None  # as a build before sentence vectors were kept gives it
    retriever.embedder.texts.clear()
    highlight([passage], retriever.embed_query("Kuwait observed"), retriever.embedder)
    assert [passage.text[s:e] for s, e in passage.highlights] == ["Kuwait observed the talks."]
    assert "Kuwait observed the talks." in retriever.embedder.texts


def test_pooled_sentences_are_held_to_their_own_margin(retriever):
    passage = retriever.search("Kuwait observed", k=1)[0]
    spans = ((0, 10), (11, 20), (21, 30))
    question = np.eye(4, dtype=np.float32)[0]
    cosines = [0.80, 0.80 - POOLED_MARGIN + 0.005, 0.80 - POOLED_MARGIN - 0.005]
    vectors = np.array([[c, (1 - c * c) ** 0.5, 0, 0] for c in cosines], dtype=np.float16)
    passage.sentences = SentenceVectors(spans, vectors)
    highlight([passage], question, retriever.embedder)
    assert passage.highlights == [(0, 10), (11, 20)]
    highlight([passage], question, retriever.embedder, floor=0.9)
    assert passage.highlights == []  # none reaches the floor


def test_spread_holds_at_most_a_few_passages_of_one_document_unless_it_is_what_the_question_is_about():
    ranked = [(1, "a"), (2, "a"), (3, "a"), (4, "a"), (5, "b"), (6, "a"), (7, "c")]
    assert MAX_PER_DOCUMENT == 3
    assert spread(ranked, 5) == [1, 2, 3, 5, 7]  # a's fourth waits for the other documents
    assert spread(ranked, 5, about={"a"}) == [1, 2, 3, 4, 5]
    assert spread(ranked[:4], 3) == [1, 2, 3]
    # fewer documents than the cap can fill: the best of the rest fill k, never fewer
    assert spread([(1, "a"), (2, "a"), (3, "a"), (4, "a"), (5, "b")], 5) == [1, 2, 3, 5, 4]
    assert spread([], 5) == []


def test_the_top_k_spreads_over_documents_and_a_scope_of_one_still_returns_k(tmp_path, corpus, fake_embedder):
    settings = Settings(
        corpus=corpus, index=tmp_path / "index", model="fake", min_score=-1.0, chunk_tokens=16, chunk_overlap=0
    )
    (corpus / "long.txt").write_text("\n\n".join(f"Kuwait observed the maritime talks on day {n}." for n in range(8)))
    (corpus / "short.txt").write_text("Kuwait observed maritime patrols near Muscat.")
    (corpus / "other.txt").write_text("Bahrain hosted a dinner for the delegates.")
    build_index(settings, fake_embedder)
    retriever = Retriever(open_index(settings.index), fake_embedder, min_score=-1.0)
    found = retriever.search("Kuwait observed the maritime talks", k=5)
    assert [p.source for p in found].count("long.txt") == MAX_PER_DOCUMENT and "short.txt" in [p.source for p in found]
    within = retriever.search(Question.read("Kuwait observed the maritime talks", ["long.txt"]), k=5)
    assert [p.source for p in within] == ["long.txt"] * 5
    deep, _ = retriever.ranked("Kuwait observed the maritime talks", k=9, shown=5)
    assert len(deep) == 9 and [p.source for p in deep[:5]].count("long.txt") == MAX_PER_DOCUMENT


def _passage(text: str, source: str, score: float, chunk_id: str) -> Passage:
    return Passage(text, source, None, score, 0, len(text), chunk_id, source.removesuffix(".txt"), "", False)


@pytest.mark.parametrize(
    "question, first, second",
    [
        # the document that tells the asked event answers first, though another one's passage ranks above it
        (
            "Which countries took part?",
            ("Japan absorbed Taiwan, and France took control of Algeria.", "empires.txt"),
            ("Delegates of Spain, Italy and Oman participated in the talks.", "talks.txt"),
        ),
        # then the one whose title names the question
        (
            "Who spoke at the synod?",
            ("Bishop Anna Weber said the budget was approved.", "church.txt"),
            ("Minister Omar Khan said the border would stay open.", "synod-2024.txt"),
        ),
        # then, of two that tell the event, the one that tells it of more entities
        (
            "Which countries took part?",
            ("Japan and Russia took part in the war of 1904.", "wars.txt"),
            ("Delegates of Spain, Italy, Oman and Qatar participated in the talks.", "talks.txt"),
        ),
    ],
    ids=["event", "title", "more"],
)
def test_the_document_that_answers_best_comes_first_though_ranked_second(question, first, second):
    """Answers per document: the second-ranked document's list comes first, whatever the passages score."""
    found = [_passage(*first, 0.39, "a" * 16), _passage(*second, 0.17, "b" * 16)]
    answer = _answer_by_document(Question.read(question), found)
    assert answer is not None and [g.source for g in answer.groups] == [second[1], first[1]]
    assert answer.items == answer.groups[0].items


def test_the_event_test_keeps_only_the_countries_said_to_take_part():
    found = [_passage("Delegates of Spain, Italy and Oman participated. France sent a letter.", "t.txt", 0.3, "b" * 16)]
    answer = _answer_by_document(Question.read("Which countries took part?"), found)
    assert answer is not None and [item.text for item in answer.items] == ["Spain", "Italy", "Oman"]
