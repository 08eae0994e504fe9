"""The Milvus store (assistant/index/milvus/store.py and collections.py), on Milvus Lite: the same answers as
FAISS, the scores, the filter literals and reads page by page."""

import json
from pathlib import Path

import numpy as np
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
        if mode == "bm25":  # chunks of equal BM25 score come in either store's order
            assert_same_up_to_ties(faiss_side, query, found, expected)
            continue
        assert [p.chunk_id for p in found] == [p.chunk_id for p in expected], query
        assert [p.score for p in found] == pytest.approx([p.score for p in expected], abs=1e-5)
        assert [(p.text, p.source, p.title, p.start, p.end) for p in found] == [
            (p.text, p.source, p.title, p.start, p.end) for p in expected
        ]


def assert_same_up_to_ties(faiss_side: Retriever, query: str, found: list, expected: list) -> None:
    """The same BM25 scores rank by rank (as FAISS's bm25s gives them), and the same chunks but for the order of
    equal scores and which of those tied at the k-th place are kept; a chunk in both has the same cosine."""
    store = faiss_side.index
    by_id = {store.chunks([row])[row]["id"]: round(score, 5) for row, score in store.lexical(query, len(store)).items()}
    assert [by_id[p.chunk_id] for p in found] == [by_id[p.chunk_id] for p in expected], query
    cut = by_id[expected[-1].chunk_id]
    assert {p.chunk_id for p in found if by_id[p.chunk_id] != cut} == {
        p.chunk_id for p in expected if by_id[p.chunk_id] != cut
    }, query
    cosines = {p.chunk_id: p.score for p in expected}
    assert all(p.score == pytest.approx(cosines[p.chunk_id], abs=1e-5) for p in found if p.chunk_id in cosines)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_milvus_returns_the_same_scoped_top5_chunks_as_faiss(settings, milvus, corpus, fake_embedder, mode):
    faiss_side, milvus_side = both_sides(settings, milvus, corpus, fake_embedder, mode)
    with pytest.raises(QueryError, match="no document or folder d2 in the index"):  # no folder d2, only d2*.txt
        milvus_side.search(Question.read("budgets", ["d03.txt", "d2"]), 5)
    for topic in TOPICS:
        query = f"report from officers on {topic}"  # words of every chunk: no two cosines of the scope tie at 0
        question = Question.read(query, ["d03.txt", "d17.txt", "d21.txt"])
        expected, found = faiss_side.ranked(question, 5), milvus_side.ranked(question, 5)
        if mode == "bm25":
            assert_same_up_to_ties(faiss_side, query, found[0], expected[0])
        else:
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
    # the engine multiplies BM25 by k1 + 1 (Lucene does not); the store divides it back: the same scores
    assert [lexical_m[k] for k in ids_m] == pytest.approx([lexical_f[r] for r in ids_f], rel=1e-4)
    assert milvus_store.lexical("zebra", 5) == {} and milvus_store.lexical("the of and", 5) == {}


# ---- reads --------------------------------------------------------------------------------------------


def test_filter_literals_keep_quotes_and_backslashes_inside_the_string():
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert json.loads(literal("plain")) == "plain"


def test_more_rows_than_one_milvus_query_returns_are_read_page_by_page(milvus, corpus, fake_embedder, monkeypatch):
    write_topics(corpus, 12)
    build_index(milvus, fake_embedder)
    monkeypatch.setattr(
        "assistant.index.milvus.collections.LIMIT", 5
    )  # as if the chunks and 12 documents were millions
    store = open_store(milvus)
    assert len(store.catalog()) == 12
    assert len(store) > 2 * 5  # read in three pages or more
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


def test_milvus_keeps_the_sentence_vectors_faiss_keeps(settings, milvus, corpus, fake_embedder):
    faiss_side, milvus_side = both_sides(settings, milvus, corpus, fake_embedder, "hybrid")
    for query in TOPICS[:4]:
        expected = {p.chunk_id: p.sentences for p in faiss_side.search(query, 5)}
        found = {p.chunk_id: p.sentences for p in milvus_side.search(query, 5)}
        assert found.keys() == expected.keys()
        for chunk_id, sentences in found.items():
            assert sentences is not None and len(sentences.spans) > 1
            assert sentences.spans == expected[chunk_id].spans
            assert np.array_equal(sentences.vectors, expected[chunk_id].vectors)


def test_a_milvus_index_from_before_sentence_vectors_is_served_and_rebuilt_by_the_next_build(
    milvus, corpus, fake_embedder
):
    from assistant.index.milvus.collections import Collections

    write_topics(corpus, 4)
    build_index(milvus, fake_embedder)
    collections = Collections(milvus)
    manifest = collections.get_meta("manifest")
    collections.put_meta("manifest", {**manifest, "format": 3})  # format 3 had no sentences field to read
    store = open_store(milvus)
    passages = Retriever(store, fake_embedder, -1.0, "hybrid").search("border control", 2)
    assert passages and all(p.sentences is None for p in passages)
    summary = build_index(milvus, fake_embedder)
    assert summary.embedded == summary.chunks  # a new family of collections, every passage with its sentences
    assert all(p.sentences for p in Retriever(open_store(milvus), fake_embedder, -1.0).search("border control", 2))


def test_the_store_runs_on_milvus_s_own_engine_not_a_python_rewrite_of_its_api(milvus, corpus, fake_embedder):
    from importlib.metadata import version

    from milvus_lite.server_manager import server_manager_instance

    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    assert open_store(milvus).catalog()
    assert version("milvus-lite").split(".")[0] == "2", version("milvus-lite")  # 3.x is the pure-Python rewrite
    db_file = Path(milvus.milvus_target()).absolute()
    servers = [s for s in server_manager_instance._servers.values() if s._db_file == db_file]
    assert len(servers) == 1 and servers[0]._p is not None and servers[0]._p.poll() is None  # running
    engine = Path(servers[0].milvus_bin)
    assert engine.name == "milvus" and engine.read_bytes()[:4] == b"\x7fELF"  # Milvus's C++ core, a native binary
    assert any(p.name.startswith("libknowhere") for p in engine.parent.iterdir())  # its vector search library
