"""Opening a FAISS index (assistant/index/faiss/store.py): missing, mismatched or older indexes, old manifests,
the search on one thread, and search within a scope."""

import json
import sqlite3
from dataclasses import replace

import pytest

from assistant.errors import IndexMismatch, IndexNotFound
from assistant.index import build_index
from assistant.index.faiss.folder import FORMAT, current_build
from assistant.index.faiss.store import open_index
from assistant.index.manifest import dense_spec
from assistant.index.store import Scope
from tests.helpers import (
    assert_scopes_are_searched_by_the_store,
    assert_section_and_ocr_reach_the_passage,
    read_as_headed_guide,
    write_scoped_corpus,
)
from tests.index.faiss.helpers import write_corpus


def test_missing_index_says_to_build(tmp_path):
    with pytest.raises(IndexNotFound, match=r"no index at .*index/ — run: assistant build"):
        open_index(tmp_path / "index")


def test_index_built_with_other_model_or_chunking_says_to_rebuild(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    with pytest.raises(IndexMismatch, match="built with model fake.*run: assistant build --rebuild"):
        open_index(settings.index, "other-model", settings.chunking())
    with pytest.raises(IndexMismatch, match="run: assistant build --rebuild"):
        open_index(settings.index, "fake", {"chunk_tokens": 64, "chunk_overlap": 8})


def test_index_of_an_older_format_says_to_rebuild_and_the_next_build_replaces_it(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    manifest_path = current_build(settings.index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format"] = 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="another version of the assistant .* run: assistant build --rebuild"):
        open_index(settings.index)
    assert build_index(settings, fake_embedder).added == 3
    assert open_index(settings.index).manifest["format"] == FORMAT


def test_an_index_from_before_sentence_vectors_is_served_and_the_next_build_re_embeds_it(
    settings, corpus, fake_embedder, caplog
):
    from assistant.answers import answer_question
    from assistant.search import Retriever

    write_corpus(corpus)
    build_index(settings, fake_embedder)
    folder = current_build(settings.index)
    with sqlite3.connect(folder / "store.sqlite") as db:
        db.execute("DROP TABLE sentences")  # as format 3 wrote it
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 3}))
    fake_embedder.texts.clear()
    answer = answer_question(
        Retriever(open_index(settings.index), fake_embedder, min_score=-1.0), "Spain and Italy", k=1
    )
    passage = answer.passages[0]
    assert passage.sentences is None and [passage.text[s:e] for s, e in passage.highlights] == [
        "Delegates from Spain and Italy attended the talks."
    ]
    assert "Delegates from Spain and Italy attended the talks." in fake_embedder.texts  # embedded when shown
    summary = build_index(settings, fake_embedder)
    assert summary.embedded == summary.chunks and "no sentence vectors" in caplog.text
    index = open_index(settings.index)
    assert index.manifest["format"] == FORMAT and None not in index.packed_sentences(list(range(len(index))))


def test_index_from_before_the_precision_field_reads_as_fp32(settings, corpus, fake_embedder):
    from assistant.service import Assistant

    write_corpus(corpus)
    build_index(settings, fake_embedder)
    manifest_path = current_build(settings.index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["precision"]
    for document in manifest["documents"].values():
        del document["precision"]
    manifest_path.write_text(json.dumps(manifest))
    assert Assistant(settings, fake_embedder).status()["precision"] == "fp32"
    fake_embedder.precision = "bf16"
    (corpus / "a.txt").write_text("Changed text about Austria.")
    build_index(settings, fake_embedder)
    documents = open_index(settings.index).manifest["documents"]
    assert {p: d["precision"] for p, d in documents.items()} == {"a.txt": "bf16", "b.md": "fp32", "sub/c.txt": "fp32"}


def test_a_question_searches_the_vectors_on_one_thread(settings, corpus, fake_embedder):
    import faiss

    (corpus / "a.txt").write_text("Oman and Qatar discussed maritime patrols.")
    build_index(settings, fake_embedder)
    index = open_index(settings.index)

    class Recorder:  # the index's FAISS vectors, noting faiss's threads while they search
        def __init__(self, inner):
            self.inner, self.ntotal, self.threads = inner, inner.ntotal, []

        def search(self, vectors, k):
            self.threads.append(faiss.omp_get_max_threads())
            return self.inner.search(vectors, k)

    index.vectors = Recorder(index.vectors)
    before = faiss.omp_get_max_threads()
    index.dense(fake_embedder.encode(["maritime patrols"])[0], 1)
    assert index.vectors.threads == [1] and faiss.omp_get_max_threads() == before


def test_a_passage_carries_its_heading_path_and_ocr_flag(settings, corpus, fake_embedder, monkeypatch):
    read_as_headed_guide(monkeypatch)
    (corpus / "guide.txt").write_text("the reader is replaced")
    build_index(settings, fake_embedder)
    assert_section_and_ocr_reach_the_passage(settings, fake_embedder)
    (corpus / "other.txt").write_text("Delegates met on Tuesday in Islamabad.")
    assert build_index(settings, fake_embedder).unchanged == 1
    assert_section_and_ocr_reach_the_passage(settings, fake_embedder)


@pytest.mark.parametrize("vectors", ["flat", "ivf"])
def test_a_scope_gives_k_passages_of_its_own_though_better_ones_lie_outside(settings, corpus, fake_embedder, vectors):
    """IVF: one list of five is searched, which holds few of a scope's chunks: the scope's search visits them all."""
    write_scoped_corpus(corpus, filler=180)
    settings = replace(settings, ann_threshold=100_000 if vectors == "flat" else 50, ann_nprobe=1)
    build_index(settings, fake_embedder)
    index = open_index(settings.index)
    assert dense_spec(index.manifest)["type"] == vectors
    assert_scopes_are_searched_by_the_store(index, fake_embedder)


def test_the_rows_of_a_scope_are_read_once_while_it_is_asked_again(settings, corpus, fake_embedder, monkeypatch):
    write_scoped_corpus(corpus)
    build_index(settings, fake_embedder)
    index = open_index(settings.index)
    reads = []
    rows_of = index._rows_of
    monkeypatch.setattr(index, "_rows_of", lambda scope: reads.append(scope) or rows_of(scope))
    vector = fake_embedder.encode(["maritime patrols"])[0]
    for _ in range(3):
        index.dense(vector, 5, [Scope(folders=("cold",))])
        index.lexical("maritime patrols", 5, within=[Scope(folders=("cold",))])
    assert reads == [Scope(folders=("cold",))]
