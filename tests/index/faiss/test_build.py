"""A FAISS build (assistant/index/faiss/build.py, through build_index): what it embeds, reuses, skips and
records in the manifest."""

from dataclasses import replace

import numpy as np
import pytest

from assistant.documents import READING, SentenceVectors
from assistant.index import build_index
from assistant.index.faiss.folder import current_build
from assistant.index.faiss.store import open_index
from assistant.ingest import stale_documents
from tests.index.faiss.helpers import write_corpus


def test_incremental_build_embeds_only_the_changed_file(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    fake_embedder.texts.clear()
    (corpus / "b.md").write_text("# Bravo\n\nThe budget for coast guards shrank this year.")
    summary = build_index(settings, fake_embedder)
    assert (summary.added, summary.changed, summary.removed, summary.unchanged) == (0, 1, 0, 2)
    assert summary.embedded == 1
    assert len(fake_embedder.texts) == 1 and "coast guards" in fake_embedder.texts[0]


def test_an_unchanged_document_keeps_its_sentence_vectors_and_a_changed_one_gets_new_ones(
    settings, corpus, fake_embedder
):
    write_corpus(corpus)
    build_index(settings, fake_embedder)

    def sentences() -> dict[str, list[tuple[str, bytes | None]]]:
        index = open_index(settings.index)
        rows = index.chunks(list(range(len(index))))
        found: dict[str, list[tuple[str, bytes | None]]] = {}
        for row in sorted(rows.values(), key=lambda row: (row["source"], row["start"])):
            found.setdefault(row["source"], []).append((row["text"], row["sentences"]))
        index.close()
        return found

    before = sentences()
    (corpus / "b.md").write_text("# Bravo\n\nThe budget for coast guards shrank. Patrols were cut.")
    build_index(settings, fake_embedder)
    after = sentences()
    assert after["a.txt"] == before["a.txt"] and after["sub/c.txt"] == before["sub/c.txt"]
    ((text, packed),) = after["b.md"]
    stored = SentenceVectors.unpack(packed)
    assert stored is not None and [text[s:e] for s, e in stored.spans] == [
        "# Bravo\n\nThe budget for coast guards shrank.",  # a heading joins its sentence, as at question time
        "Patrols were cut.",
    ]
    assert np.allclose(
        stored.vectors.astype(np.float32), fake_embedder.encode([text[s:e] for s, e in stored.spans]), atol=1e-3
    )


def test_unchanged_corpus_embeds_nothing_and_keeps_the_build(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    before = current_build(settings.index)
    fake_embedder.texts.clear()
    summary = build_index(settings, fake_embedder)
    assert fake_embedder.texts == [] and summary.unchanged == 3 and not summary.published
    assert current_build(settings.index) == before


def test_deleted_document_is_dropped_and_rebuild_re_embeds_everything(settings, corpus, fake_embedder):
    write_corpus(corpus)
    first = build_index(settings, fake_embedder)
    (corpus / "sub" / "c.txt").unlink()
    summary = build_index(settings, fake_embedder)
    assert summary.removed == 1 and summary.unchanged == 2
    index = open_index(settings.index)
    assert "sub/c.txt" not in index.manifest["documents"]
    fake_embedder.texts.clear()
    rebuilt = build_index(settings, fake_embedder, rebuild=True)
    assert rebuilt.added == 2 and len(fake_embedder.texts) == first.chunks - 1


def test_reused_vectors_match_freshly_embedded_ones(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    (corpus / "new.txt").write_text("A new file about Qatar and Oman.")
    build_index(settings, fake_embedder)
    index = open_index(settings.index)
    rows = index.chunks(list(range(len(index))))
    stored = index.stored_vectors(sorted(rows))
    fresh = fake_embedder.encode([rows[r]["embed_text"] for r in sorted(rows)])
    assert abs(stored - fresh).max() < 1e-6


def test_changed_chunking_makes_the_next_build_re_embed_everything(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    summary = build_index(replace(settings, chunk_tokens=64, chunk_overlap=8), fake_embedder)
    assert summary.added == 3 and summary.unchanged == 0


def test_an_index_read_by_older_readers_is_read_again_by_the_next_build(settings, corpus, fake_embedder, monkeypatch):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    assert build_index(settings, fake_embedder).unchanged == 3
    monkeypatch.setattr("assistant.index.manifest.READING", READING + 1)  # the readers changed since
    summary = build_index(settings, fake_embedder)
    assert summary.added == 3 and summary.unchanged == 0
    assert open_index(settings.index).manifest["reading"] == READING + 1
    assert build_index(settings, fake_embedder).unchanged == 3


def test_skipped_files_are_counted_and_reported(settings, corpus, fake_embedder):
    write_corpus(corpus)
    (corpus / "empty.txt").write_text("")
    (corpus / "image.xyz").write_bytes(b"\x89PNG")
    summary = build_index(settings, fake_embedder)
    assert {s.path for s in summary.skipped} == {"empty.txt", "image.xyz"}
    assert summary.to_json()["skipped"][0].keys() == {"path", "reason"}
    assert summary.added == 3


def test_stale_lists_added_changed_and_removed_documents(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    manifest = open_index(settings.index).manifest
    indexed = {path: entry["sha256"] for path, entry in manifest["documents"].items()}
    skipped = {entry["path"]: entry["sha256"] for entry in manifest["skipped"]}
    assert stale_documents(corpus, indexed, skipped) == []
    (corpus / "a.txt").write_text("changed")
    (corpus / "b.md").unlink()
    (corpus / "d.txt").write_text("new")
    assert stale_documents(corpus, indexed, skipped) == ["a.txt", "b.md", "d.txt"]


def test_empty_corpus_builds_an_empty_index_that_answers_nothing(settings, fake_embedder):
    from assistant.search import Retriever

    summary = build_index(settings, fake_embedder)
    assert summary.chunks == 0 and summary.published
    assert Retriever(open_index(settings.index), fake_embedder, -1.0).search("anything") == []


def test_manifest_records_the_precision_of_the_build_and_of_each_document(settings, corpus, fake_embedder):
    write_corpus(corpus)
    fake_embedder.precision = "bf16"
    build_index(settings, fake_embedder)
    manifest = open_index(settings.index).manifest
    assert manifest["precision"] == "bf16"
    assert {d["precision"] for d in manifest["documents"].values()} == {"bf16"}
    fake_embedder.precision = "fp32"  # another precision does not re-embed: the unchanged keep their bf16 vectors
    (corpus / "b.md").write_text("# Bravo\n\nThe budget for coast guards shrank this year.")
    summary = build_index(settings, fake_embedder)
    manifest = open_index(settings.index).manifest
    assert summary.embedded == 1 and manifest["precision"] == "fp32"
    assert {p: d["precision"] for p, d in manifest["documents"].items()} == {
        "a.txt": "bf16",
        "b.md": "fp32",
        "sub/c.txt": "bf16",
    }


def test_a_build_with_nothing_changed_loads_no_model(settings, corpus, fake_embedder, monkeypatch):
    from assistant import embedding

    write_corpus(corpus)
    build_index(settings, fake_embedder)
    loads = []
    monkeypatch.setattr(embedding, "_load", lambda name: loads.append(name) or pytest.fail("the model was loaded"))
    real = embedding.Embedder(settings.model, precision="fp32")  # the product's embedder, model never loaded
    summary = build_index(settings, real)
    assert loads == [] and summary.unchanged == 3 and summary.embedded == 0
    (corpus / "new.txt").write_text("Oman sent observers to the talks.")
    with pytest.raises(pytest.fail.Exception, match="the model was loaded"):
        build_index(settings, real)  # a change does load it: the counter above is live
    assert loads == [settings.model]
