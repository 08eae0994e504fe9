"""Milvus failures, on Milvus Lite: builds killed with -9 at each fault point, an unreachable URI, a Lite file held
by another process, the missing extra, and Milvus failing while the server runs."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from assistant import cli
from assistant.errors import ConfigError, IndexDamaged, StoreUnavailable
from assistant.index import build_index, open_store
from assistant.index.milvus.collections import Collections, close_clients
from assistant.index.milvus.store import open_milvus
from assistant.service import AnswerCache, Assistant
from tests.helpers import ROOT, free_port
from tests.index.milvus.helpers import chunk_rows

# ---- a build killed with -9 ------------------------------------------------------------------------------

OLD = {
    "a.txt": "Alpha conference opened in Islamabad.",
    "b.txt": "Bravo talks on border control.",
    "c.txt": "Charlie notes on migrant smuggling.",
}
NEW = {
    "a.txt": "Alpha now speaks of Bahrain and Kuwait.",
    "c.txt": "Charlie moved to maritime patrols.",
    "d.txt": "Delta is a new document on visa fraud.",
}  # b.txt is removed
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
def test_a_killed_build_leaves_each_document_old_or_new_and_the_next_build_finishes(
    milvus, corpus, fake_embedder, point, reliability
):
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
    reliability(
        "faults",
        f"kill -9 at {point!r} in a Milvus build",
        tried=1,
        survived=1,
        lost=0,
        detail=f"every document old or new ({', '.join(f'{k} {v}' for k, v in sorted(seen.items()))}); "
        "the next build finished the job",
    )


def test_a_killed_full_rebuild_leaves_the_old_collections_served_and_the_next_build_drops_its_leftovers(
    milvus, corpus, fake_embedder, reliability
):
    for name, text in OLD.items():
        (corpus / name).write_text(text)
    build_index(milvus, fake_embedder)
    live = open_milvus(milvus).manifest["live"]
    (corpus / "a.txt").write_text(NEW["a.txt"])
    close_clients()
    script = _BUILD.format(root=str(ROOT), corpus=str(corpus), index=str(milvus.index)).replace(
        "FakeEmbedder())", "FakeEmbedder(), rebuild=True)"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ASSISTANT_FAULT": "switch"}, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert versions(milvus) == {"a.txt": "old", "b.txt": "old", "c.txt": "old"}  # its new collections are unused
    assert len(Collections(milvus).client.list_collections()) == 1 + 2 * 3  # the meta, the live family, the leftovers
    assert build_index(milvus, fake_embedder).changed == 1
    assert versions(milvus)["a.txt"] == "new" and open_milvus(milvus).manifest["live"] == live
    assert len(Collections(milvus).client.list_collections()) == 1 + 3
    reliability(
        "faults",
        "kill -9 in a full Milvus rebuild, before the switch to its new collections",
        tried=1,
        survived=1,
        lost=0,
        detail="the old collections served, whole; the next build dropped the leftovers",
    )


# ---- failures ----------------------------------------------------------------------------------------------


def test_an_unreachable_milvus_uri_is_one_clear_line(corpus, tmp_path, capsys):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    uri = f"http://127.0.0.1:{free_port()}"
    for argv in (["build"], ["ask", "Who arrived?"], ["status"]):
        code = cli.main(
            [
                *argv,
                "--corpus",
                str(corpus),
                "--index",
                str(tmp_path / "index"),
                "--model",
                "fake",
                "--store",
                "milvus",
                "--milvus-uri",
                uri,
            ]
        )
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
        assert f"cannot reach Milvus at {uri}" in err and "ASSISTANT_MILVUS_URI" in err


def test_a_milvus_lite_file_open_in_another_process_is_a_clear_error(milvus, corpus, fake_embedder):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    build_index(milvus, fake_embedder)
    close_clients()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from pymilvus import MilvusClient
        MilvusClient({str(milvus.index / "milvus.db")!r})
        print("open", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
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


def test_milvus_s_engine_dying_while_serving_is_a_503_and_the_next_question_recovers(milvus, corpus, fake_embedder):
    """kill -9 of Milvus Lite's engine (its own process): the question then is refused with the URI, and the next
    one connects again, which starts the engine anew, and is answered, without restarting the assistant."""
    from fastapi.testclient import TestClient
    from milvus_lite.server_manager import server_manager_instance

    from assistant.serve import create_server

    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.")
    build_index(milvus, fake_embedder)
    assistant = Assistant(milvus, fake_embedder)
    app = create_server(assistant)
    app.state.ready = True
    with TestClient(app) as client:
        assert client.post("/api/ask", json={"question": "Who arrived?"}).status_code == 200
        (engine,) = [s._p for s in server_manager_instance._servers.values() if s._p is not None]
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait()
        assistant.answers = AnswerCache()  # the same question again, not its cached answer
        refused = client.post("/api/ask", json={"question": "Who arrived?"})
        assert refused.status_code == 503 and "Traceback" not in refused.text
        assert refused.json()["detail"].startswith(f"Milvus at {milvus.index / 'milvus.db'} failed: Fail connecting")
        answered = client.post("/api/ask", json={"question": "Who arrived?"})
        assert answered.status_code == 200 and answered.json()["passages"][0]["source"] == "doc.txt"
    (now,) = [s._p for s in server_manager_instance._servers.values() if s._p is not None]
    assert now.pid != engine.pid and now.poll() is None  # a new engine serves the file


def test_a_collection_dropped_by_hand_says_to_build_and_a_build_writes_the_index_anew(milvus, corpus, fake_embedder):
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.")
    build_index(milvus, fake_embedder)
    assistant = Assistant(milvus, fake_embedder)
    assert assistant.ask("Who arrived?").passages
    client = Collections(milvus).client
    (chunks,) = [name for name in client.list_collections() if name.endswith("_chunks")]
    client.drop_collection(chunks)
    assistant.answers = AnswerCache()
    with pytest.raises(IndexDamaged, match=r"a collection of the index is gone .* — run: assistant build"):
        assistant.ask("Who arrived?")
    summary = build_index(milvus, fake_embedder)
    assert summary.published and summary.added == 1  # written anew, into a new family of collections
    assistant.answers = AnswerCache()
    assert [p.source for p in assistant.ask("Who arrived?").passages] == ["doc.txt"]
