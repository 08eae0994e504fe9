"""Faults: a build killed with -9, a full or read-only disk, a second build, SIGTERM to the server — the index
survives."""

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from assistant import cli
from assistant.errors import IndexLocked, IndexWriteError
from assistant.index import build_index
from assistant.index.faiss.folder import current_build
from assistant.index.faiss.store import open_index
from assistant.search import Retriever
from assistant.service import Assistant
from tests.helpers import ROOT, free_port

OLD_A = "Alpha conference opened in Islamabad.\n\nDelegates from Spain and Italy attended the talks."
NEW_A = "Entirely new text about Bahrain and Kuwait."
CORPUS = {
    "a.txt": OLD_A,
    "b.md": "# Bravo\n\nThe budget for border control grew this year.",
    "sub/c.txt": "Charlie notes about migrant smuggling routes and victims.",
}


def write_corpus(corpus: Path) -> None:
    for name, text in CORPUS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)


def snapshot(index_dir: Path) -> dict[str, bytes]:
    """Every file of the index folder and its bytes; the lock file's pid aside."""
    return {
        str(p.relative_to(index_dir)): p.read_bytes()
        for p in sorted(index_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def published_version(settings, embedder) -> str:
    """Open the published index, check that it is complete and of one build, and say whether its a.txt is old or new."""
    index = open_index(settings.index, "fake", settings.chunking())
    try:
        with closing(sqlite3.connect(f"file:{index.folder / 'store.sqlite'}?mode=ro", uri=True)) as db:
            (stored,) = db.execute("SELECT count(*) FROM chunks").fetchone()
        rows = index.chunks(list(range(len(index))))
        manifest = index.manifest
        assert (
            manifest["chunks"] == stored == len(index) == sum(d["chunks"] for d in manifest["documents"].values()) > 0
        )
        assert sorted(rows) == list(range(len(index)))  # every chunk row readable
        chunks = [rows[row] for row in sorted(rows)]
        vectors = index.stored_vectors(sorted(rows))  # FAISS rows are the vectors of these very chunks
        assert abs(vectors - embedder.encode([c["embed_text"] for c in chunks])).max() < 1e-6
        documents = index.documents()
        assert all(documents[c["source"]]["text"][c["start"] : c["end"]] == c["text"] for c in chunks)
        version = {OLD_A: "old", NEW_A: "new"}[documents["a.txt"]["text"]]
        text = " ".join(c["text"] for c in chunks)
        assert ("Islamabad" in text, "Bahrain" in text) == (version == "old", version == "new")  # never a mix
        return version
    finally:
        index.close()


# ---- kill -9 ---------------------------------------------------------------------------------------

_BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})  # the repository: tests.helpers
    from tests.helpers import FakeEmbedder
    from assistant.index import build_index
    from assistant.config import Settings
    build_index(Settings(corpus=Path({corpus!r}), index=Path({index!r}), model="fake"), FakeEmbedder())
""")
KILLS = {  # fault point -> what is published after the kill, and what the killed build leaves behind
    "embedding": ("old", "none"),
    "writing": ("old", "a .partial folder"),
    "switch": ("old", "a complete unpublished build and CURRENT.tmp"),
    "published": ("new", "the old build folder"),
}


@pytest.mark.parametrize("point", list(KILLS))
def test_build_killed_at_any_point_leaves_the_old_or_the_new_index_complete(
    settings, corpus, fake_embedder, point, reliability
):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    old = current_build(settings.index).name
    (corpus / "a.txt").write_text(NEW_A)
    script = _BUILD.format(root=str(ROOT), corpus=str(corpus), index=str(settings.index))
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ASSISTANT_FAULT": point}, timeout=120)
    assert done.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (settings.index / "builds").iterdir())
    assert len(left) == (1 if point == "embedding" else 2) and old in left
    assert any(name.endswith(".partial") for name in left) == (point == "writing")
    assert (settings.index / "CURRENT.tmp").exists() == (point == "switch")

    expected, leftovers = KILLS[point]
    assert published_version(settings, fake_embedder) == expected
    summary = build_index(settings, fake_embedder)  # the next build removes the leftovers and finishes the job
    assert summary.changed == (1 if expected == "old" else 0)
    assert [p.name for p in (settings.index / "builds").iterdir()] == [current_build(settings.index).name]
    assert {p.name for p in settings.index.iterdir()} == {"CURRENT", "builds", ".lock"}
    assert published_version(settings, fake_embedder) == "new"
    reliability(
        "faults",
        f"kill -9 at the fault point {point!r}",
        tried=1,
        survived=1,
        lost=0,
        detail=f"the {expected} index served, complete; leftovers: {leftovers}; the next build finished the job",
    )


# ---- full and read-only disks ----------------------------------------------------------------------


@contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of `size` at `folder`, if this machine lets the tests mount one; yields whether it did."""
    folder.mkdir()
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
            ).returncode
            == 0
        )
    except OSError:  # no mount command
        mounted = False
    try:
        yield mounted
    finally:
        if mounted and subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)  # something still open: detach it anyway


def big_document(megabytes: float) -> str:
    """Paragraphs of one chunk each (about 160 words: few chunks, no sentence splitting), numbered so that none
    repeat."""
    sentence = "Patrol boats, budgets and maritime routes were reviewed in part {} of the annual report."
    count = int(megabytes * 1e6 / (10 * len(sentence)))
    return "\n\n".join(" ".join([sentence.format(n)] * 10) for n in range(count))


def test_disk_full_fails_with_a_clear_message_and_the_old_index_still_answers(
    settings, corpus, fake_embedder, tmp_path, monkeypatch, capsys, reliability
):
    with tmpfs(tmp_path / "disk", "1m") as mounted:
        settings = replace(settings, index=tmp_path / "disk" / "index")
        if not mounted:  # no tmpfs here: a store of more than 1 MB of text fails as a full disk would
            from assistant.index.faiss import folder as index_module

            write_store = index_module._write_store

            def small_disk(path, documents, chunks):
                write_store(path, documents, chunks)
                if sum(len(c.text) + len(c.embed_text) for c in chunks) > 1e6:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

            monkeypatch.setattr(index_module, "_write_store", small_disk)
        write_corpus(corpus)
        build_index(settings, fake_embedder)
        before, used = snapshot(settings.index), shutil.disk_usage(settings.index).used
        (corpus / "report.txt").write_text(big_document(0.6))
        with pytest.raises(
            IndexWriteError,
            match=r"disk is full — free some space, then run: assistant build; "
            r"the previous index is unchanged",
        ):
            build_index(settings, fake_embedder)
        assert snapshot(settings.index) == before  # no .partial left, the old build untouched
        assert (
            shutil.disk_usage(settings.index).used == used or not mounted
        )  # and its space given back: no file left open

        monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: fake_embedder)
        argv = ["build", "--corpus", str(corpus), "--index", str(settings.index), "--model", "fake"]
        assert cli.main(argv) == 1  # the same, as one line from the command
        err = capsys.readouterr().err
        assert "assistant: cannot write the index at" in err and "disk is full" in err and "Traceback" not in err
        assert snapshot(settings.index) == before

        with closing(open_index(settings.index)) as index:
            passages = Retriever(index, fake_embedder, -1.0).search("Islamabad conference")
        assert passages and passages[0].source == "a.txt"
        (corpus / "report.txt").write_text("A short report on maritime routes.")
        assert build_index(settings, fake_embedder).added == 1  # once there is room, the next build works
    reliability(
        "faults",
        "disk full (ENOSPC) while writing a build",
        tried=2,
        survived=2,
        lost=0,
        detail=("a 1 MB tmpfs" if mounted else "ENOSPC injected at the SQLite write: tmpfs not allowed here")
        + "; library and CLI; old index intact and searched",
    )


def test_read_only_index_folder_refuses_to_build_with_a_clear_message_and_is_still_served(
    settings, corpus, fake_embedder, tmp_path, monkeypatch, reliability
):
    with tmpfs(tmp_path / "disk", "8m") as mounted:
        settings = replace(settings, index=tmp_path / "disk" / "index")
        write_corpus(corpus)
        build_index(settings, fake_embedder)
        before = snapshot(settings.index)
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "disk")], check=True)
        else:  # no tmpfs here: the first write of a build, taking the lock, fails as on a read-only file system

            @contextmanager
            def read_only_lock(index_dir):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(index_dir / ".lock"))
                yield

            monkeypatch.setattr("assistant.index.faiss.build.build_lock", read_only_lock)
        (corpus / "a.txt").write_text(NEW_A)
        with pytest.raises(IndexWriteError, match=r"read-only — remount it read-write or set ASSISTANT_INDEX"):
            build_index(settings, fake_embedder)
        assert snapshot(settings.index) == before
        assistant = Assistant(settings, fake_embedder)
        answer = assistant.ask("Where did the conference open?")
        assert "Islamabad" in " ".join(p.text for p in answer.passages)
        assistant.index().close()  # before the unmount
    reliability(
        "faults",
        "read-only index folder (EROFS)",
        tried=1,
        survived=1,
        lost=0,
        detail=("a tmpfs remounted read-only" if mounted else "EROFS injected at the lock: tmpfs not allowed here")
        + "; build refused, old index served",
    )


# ---- a second build ---------------------------------------------------------------------------------

_HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from assistant.index.faiss.folder import build_lock
    with build_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_build_refuses_while_another_process_builds_and_changes_nothing(settings, corpus, fake_embedder, reliability):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    before = snapshot(settings.index)
    (corpus / "a.txt").write_text(NEW_A)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(settings.index)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            IndexLocked, match=rf"another build is running on .* \(pid {holder.pid}\) — wait for it to finish"
        ):
            build_index(settings, fake_embedder)
        assert snapshot(settings.index) == before
        assert published_version(settings, fake_embedder) == "old"
    finally:
        holder.kill()  # kill -9: the kernel releases the flock with the process
        holder.wait(timeout=30)
        holder.stdout.close()
    assert build_index(settings, fake_embedder).changed == 1
    assert published_version(settings, fake_embedder) == "new"
    reliability(
        "faults",
        "a second build while one runs (the lock)",
        tried=1,
        survived=1,
        lost=0,
        detail="refused naming the holder's pid; index unchanged; the next build after kill -9 of the holder works",
    )


# ---- SIGTERM to the server --------------------------------------------------------------------------

_SERVE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})  # the repository: tests.helpers
    from tests.helpers import FakeEmbedder
    from assistant.config import Settings
    from assistant.serve import serve
    from assistant.service import Assistant

    assistant = Assistant(Settings(corpus=Path({corpus!r}), index=Path({index!r}), model="fake", min_score=-1.0,
                                   port={port}), FakeEmbedder())
    ask = assistant.ask

    def slow_ask(question, *args, **kwargs):  # a question that is surely in flight when SIGTERM comes
        if "slow" in question:
            Path({marker!r}).write_text("in flight")
            time.sleep(4)
        return ask(question, *args, **kwargs)

    assistant.ask = slow_ask
    serve(assistant)
""")


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def _refused(url: str) -> bool:
    try:
        _get(url)
    except urllib.error.URLError as err:
        return isinstance(err.reason, ConnectionRefusedError)
    except ConnectionError:  # accepted, then dropped while the server shuts down: not refused yet
        pass
    return False


def test_sigterm_lets_the_question_in_flight_finish_then_the_server_exits(
    settings, corpus, fake_embedder, tmp_path, reliability
):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    port, marker, log = free_port(), tmp_path / "in-flight", tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    script = _SERVE.format(root=str(ROOT), corpus=str(corpus), index=str(settings.index), port=port, marker=str(marker))
    with open(log, "w") as output:
        server = subprocess.Popen([sys.executable, "-c", script], stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _ready(base + "/readyz"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        replies: list = []
        request = urllib.request.Request(
            base + "/api/ask",
            json.dumps({"question": "slow question about Islamabad"}).encode(),
            {"Content-Type": "application/json"},
        )
        asking = threading.Thread(target=lambda: replies.append(_post(request)))
        asking.start()
        while not marker.exists():
            assert asking.is_alive(), replies
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while not _refused(base + "/healthz") and time.monotonic() < deadline:  # it stops taking connections at once...
            time.sleep(0.05)
        assert asking.is_alive()  # ...while the question is still being answered
        assert _refused(base + "/healthz")
        asking.join(timeout=30)
        code = server.wait(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert replies, "the question in flight got no answer"
    status, body = replies[0]
    assert status == 200 and body["question"] == "slow question about Islamabad" and body["passages"]
    output = log.read_text()
    assert code == 0, output
    assert _refused(base + "/healthz")
    assert "Traceback" not in output
    reliability(
        "faults",
        "SIGTERM to the server with a question in flight",
        tried=1,
        survived=1,
        lost=0,
        detail="new connections refused at once, the question answered (200), then exit 0",
    )


def _ready(url: str) -> bool:
    try:
        return _get(url) == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def _post(request: urllib.request.Request) -> tuple[int, dict]:
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())
