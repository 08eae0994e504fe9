"""The Milvus store, on Milvus Lite (Milvus's API in process, from a file): builds, search, failures."""
from dataclasses import replace
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from assistant import cli
from assistant.index import build_index
from assistant.errors import ConfigError, IndexMismatch, IndexNotFound, StoreUnavailable
from assistant.index.milvus.collections import Collections, close_clients, literal
from assistant.index.milvus.store import open_milvus
from assistant.search import Retriever
from assistant.service import Assistant
from assistant.index import open_store
from tests.helpers import ROOT, free_port

TOPICS = ["border control", "migrant smuggling", "maritime patrols", "drug trafficking", "victim protection",
          "visa fraud", "airport checks", "regional cooperation", "money laundering", "forensic training"]


@pytest.fixture
def milvus(settings):
    """The test's settings on Milvus Lite, in the index folder's milvus.db (the default URI)."""
    yield replace(settings, store="milvus")
    close_clients()


def write_topics(corpus: Path, count: int = 30) -> None:
    for i in range(count):
        topic, other = TOPICS[i % len(TOPICS)], TOPICS[(i * 3 + 1) % len(TOPICS)]
        first, last = (" ".join(f"note{i}n{j}" for j in range(n)) for n in (i, count - i))  # no two cosines tie
        (corpus / f"d{i:02}.txt").write_text(
            f"Report {i} on {topic}. {first}\n\nOfficers from unit {i} discussed {topic} and {other} in session {i % 7}."
            f"\n\nThe {other} working group met {i} times; {topic} budgets grew. {last}")


def chunk_rows(settings) -> list[dict]:
    """Every row of the live chunks collection, versions no reader sees included."""
    store = open_milvus(settings)
    return store.db.query(store.chunk_table, 'key != ""', ["key", "source", "sha", "text"])


# ---- the same answers as FAISS -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_milvus_returns_the_same_top5_chunks_as_faiss_exact_search(settings, milvus, corpus, fake_embedder, mode):
    write_topics(corpus)
    build_index(settings, fake_embedder)
    build_index(milvus, fake_embedder)
    faiss_side = Retriever(open_store(settings), fake_embedder, -1.0, mode)
    milvus_side = Retriever(open_store(milvus), fake_embedder, -1.0, mode)
    assert len(milvus_side.index) == len(faiss_side.index) > 50
    for query in TOPICS + ["unit 7 session 3", "budgets grew", "working group"]:
        expected, found = faiss_side.search(query, 5), milvus_side.search(query, 5)
        assert [p.chunk_id for p in found] == [p.chunk_id for p in expected], query
        assert [p.score for p in found] == pytest.approx([p.score for p in expected], abs=1e-5)
        assert [(p.text, p.source, p.title, p.start, p.end) for p in found] == \
               [(p.text, p.source, p.title, p.start, p.end) for p in expected]


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


# ---- builds ----------------------------------------------------------------------------------------------

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


# ---- a build killed with -9 ------------------------------------------------------------------------------

OLD = {"a.txt": "Alpha conference opened in Islamabad.", "b.txt": "Bravo talks on border control.",
       "c.txt": "Charlie notes on migrant smuggling."}
NEW = {"a.txt": "Alpha now speaks of Bahrain and Kuwait.", "c.txt": "Charlie moved to maritime patrols.",
       "d.txt": "Delta is a new document on visa fraud."}  # b.txt is removed
_BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})  # the repository: tests.helpers
    from tests.helpers import FakeEmbedder
    from assistant.index import build_index
    from assistant.config import Settings
    build_index(Settings(corpus=Path({corpus!r}), index=Path({index!r}), model="fake", store="milvus"), FakeEmbedder())
""")


def versions(settings) -> dict[str, str]:
    """Each document a reader sees, and whether it is whole in its "old" or its "new" version."""
    store = open_store(settings)
    seen = {}
    for path, document in store.documents().items():
        version = "old" if OLD.get(path) == document["text"] else "new" if NEW.get(path) == document["text"] else "?"
        chunks = store.chunks_of([path])
        assert [c["text"] for c in chunks] == [document["text"]], path  # its chunks are of the same version
        seen[path] = version
    assert len(store) == len(seen)
    return seen


@pytest.mark.parametrize("point", ["embedding", "writing", "switch", "published"])
def test_a_killed_build_leaves_each_document_old_or_new_and_the_next_build_finishes(milvus, corpus, fake_embedder,
                                                                                    point, reliability):
    for name, text in OLD.items():
        (corpus / name).write_text(text)
    build_index(milvus, fake_embedder)
    (corpus / "b.txt").unlink()
    for name, text in NEW.items():
        (corpus / name).write_text(text)
    close_clients()  # Milvus Lite: one process at a time has the file
    script = _BUILD.format(root=str(ROOT), corpus=str(corpus), index=str(milvus.index))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ASSISTANT_FAULT": point}, timeout=120)
    assert done.returncode == -signal.SIGKILL

    seen = versions(milvus)
    assert set(seen.values()) <= {"old", "new"}  # never half-indexed, never a mix of two versions
    if point == "embedding":
        assert seen == {"a.txt": "old", "b.txt": "old", "c.txt": "old"}
    if point in ("writing", "switch"):  # killed at the first document: a.txt
        assert seen == {"a.txt": "old" if point == "writing" else "new", "b.txt": "old", "c.txt": "old"}
    if point == "published":
        assert seen == {"a.txt": "new", "c.txt": "new", "d.txt": "new"}
    summary = build_index(milvus, fake_embedder)
    assert versions(milvus) == {"a.txt": "new", "c.txt": "new", "d.txt": "new"}
    assert sorted({r["source"] for r in chunk_rows(milvus)}) == ["a.txt", "c.txt", "d.txt"]
    assert len(chunk_rows(milvus)) == 3  # what the killed build left behind is gone
    assert summary.published == (point != "published")
    reliability("faults", f"kill -9 at {point!r} in a Milvus build", tried=1, survived=1, lost=0,
                detail=f"every document old or new ({', '.join(f'{k} {v}' for k, v in sorted(seen.items()))}); "
                       "the next build finished the job")


# ---- settings and failures -------------------------------------------------------------------------------

def test_an_index_built_with_another_model_asks_for_a_rebuild_and_a_rebuild_switches_collections(milvus, corpus,
                                                                                                  fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    with pytest.raises(IndexMismatch, match=r"Milvus collection assistant .* built with model fake.*assistant build --rebuild"):
        open_store(replace(milvus, model="other-model"))
    with pytest.raises(IndexMismatch, match="chunking"):
        open_store(replace(milvus, chunk_tokens=64, chunk_overlap=8))
    old = open_milvus(milvus).manifest["live"]
    rechunked = replace(milvus, chunk_tokens=64, chunk_overlap=8)
    assert build_index(rechunked, fake_embedder).embedded == 1
    store = open_store(rechunked)
    assert store.manifest["live"] != old and store.manifest["chunking"]["chunk_tokens"] == 64
    collections = Collections(milvus).client.list_collections()
    assert sorted(collections) == sorted(["assistant_meta"] + [f"assistant_{store.manifest['live']}_{kind}"
                                                                 for kind in ("chunks", "docs", "texts")])


def test_collections_of_one_name_leave_another_alone(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    other = replace(milvus, milvus_collection="assistant_bob")  # a name that starts like the first one's collections
    with pytest.raises(IndexNotFound, match="no index in the Milvus collection assistant_bob .* assistant build --store milvus"):
        open_store(other)
    (corpus / "a.txt").write_text("Delegates from Qatar arrived.")
    build_index(other, fake_embedder)
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Oman arrived."
    assert build_index(milvus, fake_embedder, rebuild=True).added == 1  # a full build clears its own leftovers only
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Qatar arrived."
    assert open_store(other).documents()["a.txt"]["text"] == "Delegates from Qatar arrived."


def test_an_unreachable_milvus_uri_is_one_clear_line(corpus, tmp_path, capsys):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    uri = f"http://127.0.0.1:{free_port()}"
    for argv in (["build"], ["ask", "Who arrived?"], ["status"]):
        code = cli.main([*argv, "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--model", "fake",
                         "--store", "milvus", "--milvus-uri", uri])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
        assert f"cannot reach Milvus at {uri}" in err and "ASSISTANT_MILVUS_URI" in err


def test_a_milvus_lite_file_open_in_another_process_is_a_clear_error(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    close_clients()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pymilvus import MilvusClient
        MilvusClient({str(milvus.index / "milvus.db")!r})
        print("open", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreUnavailable, match="one process at a time"):
            open_store(milvus)
    finally:
        holder.kill()
        holder.wait()


def test_without_the_milvus_extra_the_error_names_the_pip_command(milvus, monkeypatch):
    close_clients()
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'assistant\[milvus\]'"):
        open_store(milvus)


def test_milvus_settings_are_checked_with_the_valid_values(settings, monkeypatch):
    with pytest.raises(ConfigError, match="valid stores: faiss, milvus"):
        replace(settings, store="qdrant")
    with pytest.raises(ConfigError, match=r"must end in \.db"):
        replace(settings, milvus_uri="/data/milvus")
    with pytest.raises(ConfigError, match="letters, digits and _"):
        replace(settings, milvus_collection="my-index")
    monkeypatch.setenv("ASSISTANT_STORE", "milvus")
    monkeypatch.setenv("ASSISTANT_MILVUS_URI", "http://milvus.internal:19530")
    monkeypatch.setenv("ASSISTANT_MILVUS_TOKEN", "root:Milvus")
    from assistant.config import Settings

    loaded = Settings.from_env()
    assert (loaded.store, loaded.milvus_target()) == ("milvus", "http://milvus.internal:19530")
    assert "root:Milvus" not in repr(loaded)  # a secret, like the API token
    assert Settings().milvus_target() == str(Path("index") / "milvus.db")


def test_filter_literals_keep_quotes_and_backslashes_inside_the_string():
    assert literal('a"b\\c') == '"a\\"b\\\\c"'
    assert json.loads(literal("plain")) == "plain"


def test_status_json_names_the_store_on_both(settings, milvus, corpus, fake_embedder, capsys):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    for chosen in (settings, milvus):
        build_index(chosen, fake_embedder)
        status = Assistant(chosen, fake_embedder).status()
        assert status["store"] == chosen.store and status["documents"] == 1 and status["build"]
    assert np.isfinite(Assistant(milvus, fake_embedder).status()["relevance_floor"])


def test_more_rows_than_one_milvus_query_returns_are_read_in_slices(milvus, corpus, fake_embedder, monkeypatch):
    write_topics(corpus, 12)
    build_index(milvus, fake_embedder)
    monkeypatch.setattr("assistant.index.milvus.collections.LIMIT", 5)  # as if the 24 chunks and 12 documents were millions
    store = open_store(milvus)
    assert len(store.catalog()) == 12
    assert len(store.chunks_of([f"d{i:02}.txt" for i in range(12)])) == len(store) == 24
    (corpus / "d03.txt").unlink()
    assert build_index(milvus, fake_embedder).removed == 1
    assert len(open_store(milvus).catalog()) == 11


def test_a_second_build_refuses_while_a_live_one_holds_the_lease_and_takes_over_a_dead_ones(milvus, corpus,
                                                                                           fake_embedder):
    import socket
    import time

    from assistant.errors import IndexLocked
    from assistant.index.milvus.build import Writer

    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    (corpus / "a.txt").write_text("Delegates from Qatar arrived.")
    writer = Writer(milvus)
    writer.put_meta("lease", {"owner": "build-host-2:4242", "until": time.time() + 300})  # another machine, running
    with pytest.raises(IndexLocked, match=r"another build is running on the Milvus collection assistant .*build-host-2:4242"):
        build_index(milvus, fake_embedder)
    assert open_store(milvus).documents()["a.txt"]["text"] == "Delegates from Oman arrived."  # untouched
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    writer.put_meta("lease", {"owner": f"{socket.gethostname()}:{dead.stdout.strip()}", "until": time.time() + 300})
    assert build_index(milvus, fake_embedder).changed == 1  # its build died on this machine: taken over at once
    with writer.lease():  # and in this process, a lock: a build started by the chat while another runs
        with pytest.raises(IndexLocked, match="in this process"):
            build_index(milvus, fake_embedder)


def test_a_killed_full_rebuild_leaves_the_old_collections_served_and_the_next_build_drops_its_leftovers(
        milvus, corpus, fake_embedder, reliability):
    for name, text in OLD.items():
        (corpus / name).write_text(text)
    build_index(milvus, fake_embedder)
    live = open_milvus(milvus).manifest["live"]
    (corpus / "a.txt").write_text(NEW["a.txt"])
    close_clients()
    script = _BUILD.format(root=str(ROOT), corpus=str(corpus), index=str(milvus.index)).replace(
        "FakeEmbedder())", "FakeEmbedder(), rebuild=True)")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ASSISTANT_FAULT": "switch"}, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert versions(milvus) == {"a.txt": "old", "b.txt": "old", "c.txt": "old"}  # its new collections are unused
    assert len(Collections(milvus).client.list_collections()) == 1 + 2 * 3  # the meta, the live family, the leftovers
    assert build_index(milvus, fake_embedder).changed == 1
    assert versions(milvus)["a.txt"] == "new" and open_milvus(milvus).manifest["live"] == live
    assert len(Collections(milvus).client.list_collections()) == 1 + 3
    reliability("faults", "kill -9 in a full Milvus rebuild, before the switch to its new collections", tried=1,
                survived=1, lost=0, detail="the old collections served, whole; the next build dropped the leftovers")


def test_the_rest_api_answers_from_milvus_as_from_faiss(settings, milvus, corpus, fake_embedder):
    from fastapi.testclient import TestClient

    from assistant.serve import create_server

    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    bodies = {}
    for chosen in (settings, milvus):
        build_index(chosen, fake_embedder)
        app = create_server(Assistant(chosen, fake_embedder))
        app.state.ready = True
        with TestClient(app) as client:
            assert client.get("/readyz").json() == {"status": "ready"}
            answer = client.post("/api/ask", json={"question": "Who observed the talks?", "k": 2}).json()
            document = client.get(f"/api/documents/{answer['passages'][0]['chunk_id']}").json()
            status = client.get("/api/status").json()
        bodies[chosen.store] = answer
        assert document["text"].startswith("Delegates from Oman") and status["store"] == chosen.store
    assert bodies["milvus"] == bodies["faiss"]


def test_cli_build_ask_and_status_on_milvus(corpus, tmp_path, capsys, monkeypatch):
    from tests.helpers import FakeEmbedder

    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: FakeEmbedder())
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "index"), "--model", "fake", "--store", "milvus"]
    try:
        assert cli.main(["build", "--json", *common]) == 0
        assert json.loads(capsys.readouterr().out)["added"] == 1
        assert cli.main(["ask", "--json", "-k", "1", "Kuwait", *common]) == 0
        assert "Kuwait" in json.loads(capsys.readouterr().out)["passages"][0]["text"]
        assert cli.main(["status", *common]) == 0
        out = capsys.readouterr().out
        assert f"index:     the Milvus collection assistant at {tmp_path / 'index' / 'milvus.db'}" in out
        assert "up to date with the corpus" in out
    finally:
        close_clients()


def test_milvus_failing_while_serving_is_a_503_that_names_the_uri(milvus, corpus, fake_embedder, monkeypatch):
    from fastapi.testclient import TestClient
    from pymilvus.exceptions import MilvusException

    from assistant.serve import create_server

    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.")
    build_index(milvus, fake_embedder)
    assistant = Assistant(milvus, fake_embedder)
    app = create_server(assistant)
    app.state.ready = True

    def down(*args, **kwargs):
        raise MilvusException(code=2, message="Fail connecting to server on milvus.internal:19530")

    with TestClient(app) as client:
        monkeypatch.setattr(assistant.index().db.client, "search", down)  # the server goes away mid-serve
        response = client.post("/api/ask", json={"question": "Who arrived?"})
    assert response.status_code == 503 and "Traceback" not in response.text
    assert response.json()["detail"].startswith(f"Milvus at {milvus.index / 'milvus.db'} failed: Fail connecting")
