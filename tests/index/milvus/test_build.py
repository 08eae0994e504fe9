"""Milvus builds (assistant/index/milvus/build.py), on Milvus Lite: incremental by document, served without a
restart, odd names and long documents, rebuilds into new collections, and the lease."""

import subprocess
import sys
from dataclasses import replace

import pytest

from assistant.documents import READING
from assistant.errors import IndexMismatch, IndexNotFound
from assistant.index import build_index, open_store
from assistant.index.milvus.collections import Collections
from assistant.index.milvus.store import open_milvus
from assistant.search import Retriever
from assistant.service import Assistant
from tests.index.milvus.helpers import chunk_rows, write_topics


def test_incremental_build_adds_changes_and_deletes_by_document(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Alpha conference opened in Islamabad.")
    (corpus / "b.txt").write_text("Bravo notes on border control.")
    (corpus / "c.txt").write_text("Charlie notes on migrant smuggling routes.")
    first = build_index(milvus, fake_embedder)
    assert (first.added, first.chunks, first.published) == (3, 3, True)

    (corpus / "a.txt").write_text("Alpha now speaks of Bahrain and Kuwait.")
    (corpus / "b.txt").unlink()
    (corpus / "d.txt").write_text("Delta covers maritime patrols.")
    fake_embedder.texts.clear()
    second = build_index(milvus, fake_embedder)
    assert (second.added, second.changed, second.removed, second.unchanged) == (1, 1, 1, 1)
    assert second.embedded == 2 and all("Charlie" not in t for t in fake_embedder.texts)  # c.txt was not re-embedded
    store = open_store(milvus)
    assert sorted(store.catalog()) == ["a.txt", "c.txt", "d.txt"] and len(store) == 3
    rows = chunk_rows(milvus)  # the old versions are gone from the collection, not only hidden
    assert sorted(r["source"] for r in rows) == ["a.txt", "c.txt", "d.txt"]
    assert not any("Islamabad" in r["text"] for r in rows)
    assert store.chunks_of(["b.txt"]) == [] and store.documents(["a.txt"])["a.txt"]["text"].startswith("Alpha now")
    top = Retriever(store, fake_embedder, -1.0).search("Bahrain Kuwait", 1)[0]
    assert top.source == "a.txt" and "Bahrain" in top.text

    third = build_index(milvus, fake_embedder)
    assert (third.unchanged, third.embedded, third.published) == (3, 0, False)


def test_an_assistant_serves_each_document_switch_without_a_restart(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    assistant = Assistant(milvus, fake_embedder)
    assistant.build()
    before = assistant.ask("Who arrived from Oman?", 1)
    version = assistant.index().version
    (corpus / "a.txt").write_text("Delegates from Qatar arrived.")
    assistant.build()
    after = assistant.ask("Who arrived from Oman?", 1)  # the same question: not answered from the cache
    assert "Oman" in before.passages[0].text and "Qatar" in after.passages[0].text
    assert assistant.index().version != version
    found = assistant.document_of(after.passages[0].chunk_id)
    assert found["text"] == "Delegates from Qatar arrived." and found["source"] == "a.txt"
    status = assistant.status()
    assert (status["store"], status["documents"], status["chunks"]) == ("milvus", 1, 1)
    assert "Milvus collection assistant" in status["where"] and status["stale"] == []


def test_odd_file_names_and_long_documents_round_trip(milvus, corpus, fake_embedder):
    names = ['quote"d.txt', "back\\slash.txt", "new\nline.txt", "ünï cödé 日本.txt", "it's.txt"]
    for i, name in enumerate(names):
        (corpus / name).write_text(f"Document {i} about airport checks and visa fraud number {i}.")
    long_text = "\n\n".join(f"Paragraph {i} on regional cooperation and forensic training." for i in range(2000))
    (corpus / "long.txt").write_text(long_text)  # about 120,000 characters: its text is stored in parts
    summary = build_index(milvus, fake_embedder)
    assert summary.added == 6 and not summary.skipped
    store = open_store(milvus)
    assert store.documents(["long.txt"])["long.txt"]["text"] == long_text
    for i, name in enumerate(names):
        assert [c["source"] for c in store.chunks_of([name])] == [name]
        assert store.documents([name])[name]["text"].startswith(f"Document {i}")
    for name in names:
        (corpus / name).unlink()
    assert build_index(milvus, fake_embedder).removed == 5
    assert sorted(open_store(milvus).catalog()) == ["long.txt"]


def test_a_passage_too_long_for_a_milvus_field_skips_its_document_with_the_reason(milvus, corpus, fake_embedder):
    (corpus / "ok.txt").write_text("Delegates from Oman arrived.")
    (corpus / "blob.txt").write_text("x" * 70_000)  # one "word": one passage of 70,000 bytes
    summary = build_index(milvus, fake_embedder)
    assert [s.path for s in summary.skipped] == ["blob.txt"] and "65,535" in summary.skipped[0].reason
    assert sorted(open_store(milvus).catalog()) == ["ok.txt"]
    again = build_index(milvus, fake_embedder)  # still skipped, without being embedded again
    assert (again.published, again.embedded, [s.path for s in again.skipped]) == (False, 0, ["blob.txt"])
    assert Assistant(milvus, fake_embedder).status()["skipped"][0]["path"] == "blob.txt"


def test_an_index_built_with_another_model_asks_for_a_rebuild_and_a_rebuild_switches_collections(
    milvus, corpus, fake_embedder
):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    with pytest.raises(
        IndexMismatch, match=r"Milvus collection assistant .* built with model fake.*assistant build --rebuild"
    ):
        open_store(replace(milvus, model="other-model"))
    with pytest.raises(IndexMismatch, match="chunking"):
        open_store(replace(milvus, chunk_tokens=64, chunk_overlap=8))
    old = open_milvus(milvus).manifest["live"]
    rechunked = replace(milvus, chunk_tokens=64, chunk_overlap=8)
    assert build_index(rechunked, fake_embedder).embedded == 1
    store = open_store(rechunked)
    assert store.manifest["live"] != old and store.manifest["chunking"]["chunk_tokens"] == 64
    collections = Collections(milvus).client.list_collections()
    assert sorted(collections) == sorted(
        ["assistant_meta"] + [f"assistant_{store.manifest['live']}_{kind}" for kind in ("chunks", "docs", "texts")]
    )


def test_an_index_read_by_older_readers_is_read_again_by_the_next_build(milvus, corpus, fake_embedder, monkeypatch):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    assert build_index(milvus, fake_embedder).embedded == 0
    monkeypatch.setattr("assistant.index.manifest.READING", READING + 1)  # the readers changed since
    assert build_index(milvus, fake_embedder).embedded == 1
    assert open_store(milvus).manifest["reading"] == READING + 1


def test_collections_of_one_name_leave_another_alone(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    other = replace(milvus, milvus_collection="assistant_bob")  # a name that starts like the first one's collections
    with pytest.raises(
        IndexNotFound, match="no index in the Milvus collection assistant_bob .* assistant build --store milvus"
    ):
        open_store(other)
    (corpus / "a.txt").write_text("Delegates from Qatar arrived.")
    build_index(other, fake_embedder)
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Oman arrived."
    assert build_index(milvus, fake_embedder, rebuild=True).added == 1  # a full build clears its own leftovers only
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Qatar arrived."
    assert open_store(other).documents()["a.txt"]["text"] == "Delegates from Qatar arrived."


def test_a_second_build_refuses_while_a_live_one_holds_the_lease_and_takes_over_a_dead_ones(
    milvus, corpus, fake_embedder
):
    import socket
    import time

    from assistant.errors import IndexLocked
    from assistant.index.milvus.build import Writer

    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    (corpus / "a.txt").write_text("Delegates from Qatar arrived.")
    writer = Writer(milvus)
    writer.put_meta("lease", {"owner": "build-host-2:4242", "until": time.time() + 300})  # another machine, running
    with pytest.raises(
        IndexLocked, match=r"another build is running on the Milvus collection assistant .*build-host-2:4242"
    ):
        build_index(milvus, fake_embedder)
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Oman arrived."  # untouched
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    writer.put_meta("lease", {"owner": f"{socket.gethostname()}:{dead.stdout.strip()}", "until": time.time() + 300})
    assert build_index(milvus, fake_embedder).changed == 1  # its build died on this machine: taken over at once
    with writer.lease():  # and in this process, a lock: a build started by the chat while another runs
        with pytest.raises(IndexLocked, match="in this process"):
            build_index(milvus, fake_embedder)


def test_the_dense_index_is_a_setting_and_a_change_reindexes_the_stored_vectors(milvus, corpus, fake_embedder):
    write_topics(corpus, 12)
    ivf = replace(milvus, milvus_index="IVF_FLAT", milvus_index_params='{"nlist": 4, "nprobe": 4}')
    build_index(ivf, fake_embedder)
    store = open_milvus(ivf)
    chunks = store.chunk_table
    assert store.db.client.describe_index(chunks, "dense")["index_type"] == "IVF_FLAT"
    assert store.manifest["vectors"] == {"type": "IVF_FLAT", "params": {"nlist": 4}, "search": {"nprobe": 4}}
    vector = fake_embedder.encode(["maritime patrols"])[0]
    found_ivf = [key for key, _ in store.dense(vector, 10)]
    assert len(found_ivf) == 10  # nprobe 4 of 4 lists: every chunk is searched, as FLAT does
    summary = build_index(milvus, fake_embedder)  # back to FLAT: the stored vectors are indexed again
    assert (summary.published, summary.embedded) == (True, 0)
    store = open_milvus(milvus)
    assert store.chunk_table == chunks and store.db.client.describe_index(chunks, "dense")["index_type"] == "FLAT"
    assert store.manifest["vectors"] == {"type": "FLAT", "params": {}, "search": {}}
    assert [key for key, _ in store.dense(vector, 10)] == found_ivf
    assert build_index(milvus, fake_embedder).published is False  # nothing changed since


def test_sentence_vectors_too_long_for_a_milvus_field_are_left_out_and_embedded_when_shown(milvus, corpus):
    """A passage of many short sentences (a list of one-word lines, say) whose vectors pass the 65,535 bytes of a
    VARCHAR: the chunk is stored without them and its highlight embeds its sentences, as before they were kept."""
    import base64

    import numpy as np

    from assistant.documents import Chunk, SentenceVectors
    from assistant.index.milvus.build import _chunk_rows
    from assistant.index.milvus.collections import MAX_VARCHAR
    from assistant.index.milvus.store import _packed

    chunk = Chunk("c1", "list.txt", None, 0, 5, "a. b.", "a. b.")
    small = SentenceVectors(((0, 2), (3, 5)), np.ones((2, 384), np.float16)).pack()
    large = SentenceVectors(((0, 2),) * 64, np.ones((64, 384), np.float16)).pack()
    assert len(base64.b64encode(large)) > MAX_VARCHAR
    rows = _chunk_rows([chunk, chunk], np.ones((2, 4), np.float32), [small, large], "sha")
    assert _packed(rows[0]) == small and rows[1]["sentences"] == "" and _packed(rows[1]) is None
