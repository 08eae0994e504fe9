import json
import random
from dataclasses import replace

import faiss
import numpy as np
import pytest

from assistant.config import Settings
from assistant.index import build_index
from assistant.index.faiss.folder import current_build
from assistant.index.faiss.store import open_index
from assistant.search import Retriever

WORDS = [f"w{i}" for i in range(400)]


def write_documents(corpus, count: int, start: int = 0, version: str = "") -> None:
    """Documents of eight sentences, one chunk each at 16 word pieces: 8 * count chunks, all different."""
    for number in range(start, start + count):
        rng = random.Random(f"{number}{version}")
        sentences = [" ".join(rng.choice(WORDS) for _ in range(10)).capitalize() + "." for _ in range(8)]
        (corpus / f"d{number:02d}.txt").write_text("\n\n".join(sentences))


@pytest.fixture
def ann(settings: Settings) -> Settings:
    """IVF above 50 chunks, searching 2 of its lists: a few hundred chunks take the approximate path."""
    return replace(settings, chunk_tokens=16, chunk_overlap=0, ann_threshold=50, ann_nprobe=2)


def top_hits(index_dir, embedder, queries: list[str]) -> list[tuple[str, float]]:
    retriever = Retriever(open_index(index_dir), embedder, -1.0, mode="dense")
    return [(p.chunk_id, p.score) for q in queries for p in retriever.search(q, k=1)]


def assert_same_hits(found: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [chunk for chunk, _ in found] == [chunk for chunk, _ in expected]
    assert np.allclose([score for _, score in found], [score for _, score in expected], atol=1e-5)


def all_chunks(index_dir) -> dict:
    index = open_index(index_dir)
    return index.chunks(list(range(len(index))))


def test_ivf_above_the_threshold_finds_the_top_passage_of_exact_search(ann, corpus, fake_embedder, tmp_path):
    write_documents(corpus, 40)
    exact = replace(ann, index=tmp_path / "exact", ann_threshold=100_000)
    build_index(exact, fake_embedder)
    build_index(ann, fake_embedder)
    assert isinstance(open_index(ann.index).vectors, faiss.IndexIVFFlat)
    assert isinstance(open_index(exact.index).vectors, faiss.IndexFlatIP)
    # each chunk's own text: one clear best passage, which exact search finds and IVF must find in its first list
    queries = [row["embed_text"] for row in all_chunks(ann.index).values()]
    assert_same_hits(top_hits(ann.index, fake_embedder, queries), top_hits(exact.index, fake_embedder, queries))


def test_manifest_records_the_vector_index_and_an_ivf_index_loads_with_its_parameters(ann, corpus, fake_embedder):
    write_documents(corpus, 40)
    build_index(ann, fake_embedder)
    index = open_index(ann.index)
    assert index.manifest["vectors"] == {"type": "ivf", "nlist": 8, "nprobe": 2, "trained_chunks": 320}
    assert index.vectors.nlist == 8 and index.vectors.nprobe == 2 and len(index) == 320
    rows = index.chunks(list(range(len(index))))
    fresh = fake_embedder.encode([rows[r]["embed_text"] for r in range(len(index))])
    assert abs(index.stored_vectors(list(range(len(index)))) - fresh).max() < 1e-6  # exact, row for row
    query = fresh[7]
    assert [(r, round(s, 5)) for r, s in index.dense(query, 3)][0] == (7, 1.0)


def test_flat_below_the_threshold_and_a_manifest_without_the_entry_loads_as_flat(ann, corpus, fake_embedder):
    write_documents(corpus, 5)  # 40 chunks: under 50
    build_index(ann, fake_embedder)
    path = current_build(ann.index) / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["vectors"] == {"type": "flat"}
    del manifest["vectors"]  # as builds made before the field existed
    path.write_text(json.dumps(manifest))
    index = open_index(ann.index)
    assert isinstance(index.vectors, faiss.IndexFlatIP) and index.dense(index.stored_vectors([3])[0], 1)[0][0] == 3
    write_documents(corpus, 35, start=5)  # from that old build to 320 chunks: IVF lists trained now
    summary = build_index(ann, fake_embedder)
    assert summary.unchanged == 5 and summary.added == 35
    assert open_index(ann.index).manifest["vectors"]["trained_chunks"] == 320


def test_incremental_ivf_build_adds_changes_and_deletes_like_a_full_rebuild(ann, corpus, fake_embedder, tmp_path):
    write_documents(corpus, 40)
    build_index(ann, fake_embedder)
    before = open_index(ann.index)
    centroids = before.vectors.quantizer.reconstruct_n(0, before.vectors.nlist)
    gone = {
        row["id"]: row["embed_text"]
        for row in all_chunks(ann.index).values()
        if row["source"] in ("d05.txt", "d07.txt", "d08.txt")
    }
    write_documents(corpus, 3, start=40)
    write_documents(corpus, 1, start=5, version="changed")
    (corpus / "d07.txt").unlink()
    (corpus / "d08.txt").unlink()
    summary = build_index(ann, fake_embedder)
    assert (summary.added, summary.changed, summary.removed, summary.embedded) == (3, 1, 2, 32)
    after = open_index(ann.index)
    assert after.manifest["vectors"]["trained_chunks"] == 320  # the lists were reused, not retrained
    assert np.array_equal(after.vectors.quantizer.reconstruct_n(0, after.vectors.nlist), centroids)
    rows = all_chunks(ann.index)
    assert len(after) == after.vectors.ntotal == len(rows) == 8 * 41
    fresh = fake_embedder.encode([rows[r]["embed_text"] for r in range(len(after))])
    assert abs(after.stored_vectors(list(range(len(after)))) - fresh).max() < 1e-6
    assert not set(gone) & {row["id"] for row in rows.values()}
    for vector in fake_embedder.encode(list(gone.values())):  # no vector of theirs is left under another row
        assert max(score for _, score in after.dense(vector, 5)) < 0.99
    rebuilt = replace(ann, index=tmp_path / "rebuilt")
    build_index(rebuilt, fake_embedder)
    queries = [row["embed_text"] for row in rows.values()]
    assert_same_hits(top_hits(ann.index, fake_embedder, queries), top_hits(rebuilt.index, fake_embedder, queries))


def test_lists_are_retrained_when_the_corpus_doubles_and_it_turns_flat_under_the_threshold(ann, corpus, fake_embedder):
    write_documents(corpus, 10)
    build_index(ann, fake_embedder)
    assert open_index(ann.index).manifest["vectors"]["trained_chunks"] == 80
    write_documents(corpus, 10, start=10)  # 160 chunks: within twice 80, the lists are kept
    build_index(ann, fake_embedder)
    assert open_index(ann.index).manifest["vectors"]["trained_chunks"] == 80
    write_documents(corpus, 1, start=20)  # 168: more than twice, retrained
    build_index(ann, fake_embedder)
    assert open_index(ann.index).manifest["vectors"] == {"type": "ivf", "nlist": 4, "nprobe": 2, "trained_chunks": 168}
    for number in range(2, 21):
        (corpus / f"d{number:02d}.txt").unlink()
    build_index(ann, fake_embedder)
    index = open_index(ann.index)
    assert index.manifest["vectors"] == {"type": "flat"} and isinstance(index.vectors, faiss.IndexFlatIP)


def test_new_ann_settings_take_effect_at_the_next_build_without_embedding(ann, corpus, fake_embedder):
    write_documents(corpus, 40)
    build_index(ann, fake_embedder)
    assert not build_index(ann, fake_embedder).published  # nothing changed
    summary = build_index(replace(ann, ann_nprobe=4), fake_embedder)
    assert summary.published and summary.embedded == 0
    index = open_index(ann.index)
    assert index.manifest["vectors"] == {"type": "ivf", "nlist": 8, "nprobe": 4, "trained_chunks": 320}
    assert index.vectors.nprobe == 4
    summary = build_index(replace(ann, ann_threshold=1000), fake_embedder)
    assert summary.published and summary.embedded == 0
    assert open_index(ann.index).manifest["vectors"] == {"type": "flat"}
