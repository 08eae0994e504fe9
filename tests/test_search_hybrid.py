"""Hybrid retrieval: BM25 beside the vectors, fused with the dense side."""

import numpy as np
import pytest

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.index import build_index
from assistant.index.faiss.store import open_index
from assistant.search import Retriever, fuse
from assistant.service import Assistant


def test_fuse_normalizes_each_side_and_weights_them():
    dense = np.array([0.9, 0.5, 0.1], dtype=np.float32)
    lexical = np.array([0.0, 10.0, 5.0], dtype=np.float32)
    fused = fuse(dense, lexical, weight=0.5)
    assert np.allclose(fused, [0.5, 0.5 * 0.5 + 0.5, 0.5 * 0.5])
    assert np.allclose(fuse(dense, lexical, weight=1.0), [1.0, 0.5, 0.0])


def test_fuse_ignores_a_side_where_every_candidate_scores_the_same():
    fused = fuse(np.array([0.3, 0.2], np.float32), np.zeros(2, np.float32), weight=0.5)
    assert np.allclose(fused, [0.5, 0.0])
    assert fuse(np.zeros(0, np.float32), np.zeros(0, np.float32)).shape == (0,)


def test_unknown_mode_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown search mode 'fuzzy' — valid modes: dense, bm25, hybrid"):
        Settings(mode="fuzzy")
    with pytest.raises(ConfigError, match="valid modes"):
        Settings.from_env({"ASSISTANT_MODE": "semantic"})


def bm25_sources(settings, embedder, query):
    retriever = Retriever(open_index(settings.index), embedder, min_score=-1.0, mode="bm25")
    return [p.source for p in retriever.search(query, k=10)]


def test_bm25_side_follows_incremental_builds(settings, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Bahrain arrived.")
    (corpus / "b.txt").write_text("Delegates from Kuwait arrived.")
    build_index(settings, fake_embedder)
    assert bm25_sources(settings, fake_embedder, "Bahrain") == ["a.txt"]
    (corpus / "c.txt").write_text("A note on Bahrain and Oman.")  # add
    (corpus / "b.txt").write_text("Delegates from Thailand arrived.")  # change
    build_index(settings, fake_embedder)
    assert sorted(bm25_sources(settings, fake_embedder, "Bahrain")) == ["a.txt", "c.txt"]
    assert bm25_sources(settings, fake_embedder, "Kuwait") == []
    assert bm25_sources(settings, fake_embedder, "Thailand") == ["b.txt"]
    (corpus / "a.txt").unlink()  # delete
    build_index(settings, fake_embedder)
    assert bm25_sources(settings, fake_embedder, "Bahrain") == ["c.txt"]


def test_bm25_uses_stemming_and_ignores_stop_words(settings, corpus, fake_embedder):
    (corpus / "a.txt").write_text("The inspectors were inspecting the borders.")
    (corpus / "b.txt").write_text("The the the of and.")
    build_index(settings, fake_embedder)
    assert bm25_sources(settings, fake_embedder, "inspection of border") == ["a.txt"]
    assert bm25_sources(settings, fake_embedder, "the of and") == []


def test_hybrid_beats_dense_when_only_a_rare_exact_term_identifies_the_passage(tmp_path, real_embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in {
        "budget1.txt": "The annual budget report shows spending on schools rose by four percent.",
        "budget2.txt": "In the annual budget report, the finance office lists road repairs and salaries.",
        "budget3.txt": "Auditors reviewed the annual budget report and found the accounts in order.",
        "budget4.txt": "The city council debated the annual budget report for three hours.",
        "trucks.txt": "Hadzimuratovic approved the purchase of new trucks for the fire brigade.",
    }.items():
        (corpus / name).write_text(text)
    assistant = Assistant(Settings(corpus=corpus, index=tmp_path / "index"), real_embedder)
    assistant.build()
    question = "What did Hadzimuratovic decide in the annual budget report?"
    assert assistant.ask(question, 3, "dense").passages[0].source != "trucks.txt"
    assert assistant.ask(question, 3, "hybrid").passages[0].source == "trucks.txt"


def test_reciprocal_rank_fusion_sums_one_over_sixty_plus_rank():
    dense = np.array([0.9, 0.5, 0.1], dtype=np.float32)
    lexical = np.array([0.0, 10.0, 5.0], dtype=np.float32)
    fused = fuse(dense, lexical, method="rrf")
    assert np.allclose(fused, [1 / 61, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])


def test_the_lexical_sides_best_passage_is_shown_though_the_fusion_ranks_it_lower(settings, corpus, fake_embedder):
    for n in range(8):
        (corpus / f"doc{n}.txt").write_text(f"Report number {n} on maritime patrols near Muscat.")
    build_index(settings, fake_embedder)
    retriever = Retriever(open_index(settings.index), fake_embedder, min_score=-1.0)
    rows = list(range(8))
    fused = np.linspace(1.0, 0.1, 8).astype(np.float32)  # row 7 ranks last in the fusion, but first by its words
    retriever._rank = lambda *args: (rows, fused, 0.5, 7)  # type: ignore[method-assign]
    ids = [chunk["id"] for _, chunk in sorted(retriever.index.chunks(rows).items())]
    assert [p.chunk_id for p in retriever.search("maritime patrols", k=5)] == ids[:4] + [ids[7]]
    assert [p.chunk_id for p in retriever.search("maritime patrols", k=8)] == ids  # among the k already
    assert [p.chunk_id for p in retriever.search("maritime patrols", k=1)] == ids[:1]  # k=1: the fusion decides
