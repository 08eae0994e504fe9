"""The Milvus store (assistant/index/milvus/store.py and collections.py), on Milvus Lite: the same answers as
FAISS, the scores, the filter literals and reads in slices."""

import json

import pytest

from assistant.errors import QueryError
from assistant.index import build_index, open_store
from assistant.index.milvus.collections import literal
from assistant.question import Question
from assistant.search import Retriever
from tests.helpers import (
    assert_scopes_are_searched_by_the_store,
    assert_section_and_ocr_reach_the_passage,
    read_as_headed_guide,
    write_scoped_corpus,
)
from tests.index.milvus.helpers import TOPICS, write_topics

# ---- the same answers as FAISS -------------------------------------------------------------------------


def both_sides(settings, milvus, corpus, embedder, mode: str) -> tuple[Retriever, Retriever]:
    """The same topics indexed in FAISS and in Milvus, and a retriever over each with no floor."""
    write_topics(corpus)
    build_index(settings, embedder)
    build_index(milvus, embedder)
    return Retriever(open_store(settings), embedder, -1.0, mode), Retriever(open_store(milvus), embedder, -1.0, mode)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_milvus_returns_the_same_top5_chunks_as_faiss_exact_search(settings, milvus, corpus, fake_embedder, mode):
    faiss_side, milvus_side = both_sides(settings, milvus, corpus, fake_embedder, mode)
    assert len(milvus_side.index) == len(faiss_side.index) > 50
    for query in TOPICS + ["unit 7 session 3", "budgets grew", "working group"]:
        expected, found = faiss_side.search(query, 5), milvus_side.search(query, 5)
        assert [p.chunk_id for p in found] == [p.chunk_id for p in expected], query
        assert [p.score for p in found] == pytest.approx([p.score for p in expected], abs=1e-5)
        assert [(p.text, p.source, p.title, p.start, p.end) for p in found] == [
            (p.text, p.source, p.title, p.start, p.end) for p in expected
        ]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_milvus_returns_the_same_scoped_top5_chunks_as_faiss(settings, milvus, corpus, fake_embedder, mode):
    faiss_side, milvus_side = both_sides(settings, milvus, corpus, fake_embedder, mode)
    with pytest.raises(QueryError, match="no document or folder d2 in the index"):  # no folder d2, only d2*.txt
        milvus_side.search(Question.read("budgets", ["d03.txt", "d2"]), 5)
    for topic in TOPICS:
        query = f"report from officers on {topic}"  # words of every chunk: no two cosines of the scope tie at 0
        question = Question.read(query, ["d03.txt", "d17.txt", "d21.txt"])
        expected, found = faiss_side.ranked(question, 5), milvus_side.ranked(question, 5)
        assert [p.chunk_id for p in found[0]] == [p.chunk_id for p in expected[0]], query
        assert found[1] == pytest.approx(expected[1], abs=1e-5)
        assert {p.source for p in found[0]} <= {"d03.txt", "d17.txt", "d21.txt"}


def test_a_scope_gives_k_passages_of_its_own_though_better_ones_lie_outside(milvus, corpus, fake_embedder):
    """Folders are LIKE prefixes: their "%", "_" and backslashes must stay plain characters."""
    write_scoped_corpus(corpus)
    build_index(milvus, fake_embedder)
    assert_scopes_are_searched_by_the_store(open_store(milvus), fake_embedder)


def test_dense_scores_are_the_cosines_and_bm25_ranks_like_bm25s(settings, milvus, corpus, fake_embedder):
    write_topics(corpus, 12)
    build_index(settings, fake_embedder)
    build_index(milvus, fake_embedder)
    faiss_store, milvus_store = open_store(settings), open_store(milvus)
    vector = fake_embedder.encode(["maritime patrols budgets"])[0]
    expected = [(faiss_store.chunks([r])[r]["id"], s) for r, s in faiss_store.dense(vector, 5)]
    found = [(milvus_store.chunks([k])[k]["id"], s) for k, s in milvus_store.dense(vector, 5)]
    assert [i for i, _ in found] == [i for i, _ in expected]
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-5)
    lexical_f, lexical_m = faiss_store.lexical("maritime patrols", 10), milvus_store.lexical("maritime patrols", 10)
    ids_f = sorted(lexical_f, key=lambda r: -lexical_f[r])
    ids_m = sorted(lexical_m, key=lambda k: -lexical_m[k])
    assert [faiss_store.chunks([r])[r]["id"] for r in ids_f] == [milvus_store.chunks([k])[k]["id"] for k in ids_m]
    # Milvus multiplies BM25 by k1 + 1 (Lucene does not): one factor for all, which min-max fusion ignores
    ratios = [lexical_m[k] / lexical_f[r] for r, k in zip(ids_f, ids_m)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3) and ratios[0] > 0
    assert milvus_store.lexical("zebra", 5) == {} and milvus_store.lexical("the of and", 5) == {}


# ---- reads --------------------------------------------------------------------------------------------


def test_filter_literals_keep_quotes_and_backslashes_inside_the_string():
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert json.loads(literal("plain")) == "plain"


def test_more_rows_than_one_milvus_query_returns_are_read_in_slices(milvus, corpus, fake_embedder, monkeypatch):
    write_topics(corpus, 12)
    build_index(milvus, fake_embedder)
    monkeypatch.setattr(
        "assistant.index.milvus.collections.LIMIT", 5
    )  # as if the chunks and 12 documents were millions
    store = open_store(milvus)
    assert len(store.catalog()) == 12
    assert len(store) > 2 * 5  # read in three slices or more
    assert len(store.chunks_of([f"d{i:02}.txt" for i in range(12)])) == len(store)
    (corpus / "d03.txt").unlink()
    assert build_index(milvus, fake_embedder).removed == 1
    assert len(open_store(milvus).catalog()) == 11


def test_a_passage_carries_its_heading_path_and_ocr_flag(milvus, corpus, fake_embedder, monkeypatch):
    read_as_headed_guide(monkeypatch)
    (corpus / "guide.txt").write_text("the reader is replaced")
    build_index(milvus, fake_embedder)
    assert_section_and_ocr_reach_the_passage(milvus, fake_embedder)


def test_the_terms_known_are_the_same_in_both_stores_scoped_or_not(settings, milvus, corpus, fake_embedder):
    """What the confidence of an answer weighs: which of the question's terms some chunk holds."""
    faiss_side, milvus_side = both_sides(settings, milvus, corpus, fake_embedder, "hybrid")
    words = ["budget", "session", "unit7", "offic", "zeppelin", "note5n4"]
    assert (
        faiss_side.index.known_terms(words)
        == milvus_side.index.known_terms(words)
        == {
            "budget",
            "session",
            "offic",
            "note5n4",
        }
    )
    within = faiss_side.within(Question.read("budgets", ["d03.txt", "d17.txt"]))  # note5n4 is in d05 only
    assert faiss_side.index.known_terms(words, within) == milvus_side.index.known_terms(words, within)
    assert faiss_side.index.known_terms(words, within) == {"budget", "session", "offic"}
