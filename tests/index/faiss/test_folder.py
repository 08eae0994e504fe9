"""The build folders of a FAISS index (assistant/index/faiss/folder.py): the CURRENT pointer, the files of a
build, old builds removed after publishing, and the build lock."""

import json
import sqlite3

import pytest

from assistant.errors import IndexLocked
from assistant.index import build_index
from assistant.index.faiss.folder import build_lock, current_build
from tests.index.faiss.helpers import write_corpus


def test_build_writes_faiss_sqlite_and_manifest_behind_current_pointer(settings, corpus, fake_embedder):
    write_corpus(corpus)
    summary = build_index(settings, fake_embedder)
    assert (summary.added, summary.changed, summary.removed, summary.unchanged) == (3, 0, 0, 0)
    folder = current_build(settings.index)
    assert (settings.index / "CURRENT").read_text().strip() == folder.name
    assert {p.name for p in folder.iterdir()} == {"manifest.json", "vectors.faiss", "store.sqlite", "bm25"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"] == "fake" and manifest["dimension"] == 64
    assert manifest["chunking"]["chunk_tokens"] == settings.chunk_tokens
    assert {"faiss-cpu", "numpy", "python"} <= set(manifest["versions"])
    assert set(manifest["documents"]) == {"a.txt", "b.md", "sub/c.txt"}
    assert all(len(d["sha256"]) == 64 for d in manifest["documents"].values())
    assert manifest["built_at"] and manifest["chunks"] == summary.chunks


def test_chunk_store_holds_text_equal_to_document_slice(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    db = sqlite3.connect(current_build(settings.index) / "store.sqlite")
    documents = dict(db.execute("SELECT path, text FROM documents"))
    for source, start, end, text in db.execute('SELECT source, start, "end", text FROM chunks'):
        assert documents[source][start:end] == text


def test_old_builds_are_removed_after_publishing(settings, corpus, fake_embedder):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    (corpus / "a.txt").write_text("Changed text about Austria.")
    build_index(settings, fake_embedder)
    assert [p.name for p in (settings.index / "builds").iterdir()] == [current_build(settings.index).name]


def test_second_build_refuses_while_the_lock_is_held(settings, corpus, fake_embedder):
    write_corpus(corpus)
    with build_lock(settings.index):
        with pytest.raises(IndexLocked, match="another build is running .* wait for it to finish"):
            build_index(settings, fake_embedder)
    assert build_index(settings, fake_embedder).added == 3
