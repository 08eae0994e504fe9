"""Faults: a build killed with -9, a full or read-only disk, a second build, SIGTERM to the server — the index survives."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from assistant.build import build_index
from assistant.index import current_build, open_index

TESTS = Path(__file__).resolve().parent
OLD_A = "Alpha conference opened in Islamabad.\n\nDelegates from Spain and Italy attended the talks."
NEW_A = "Entirely new text about Bahrain and Kuwait."
CORPUS = {"a.txt": OLD_A, "b.md": "# Bravo\n\nThe budget for border control grew this year.",
          "sub/c.txt": "Charlie notes about migrant smuggling routes and victims."}


def write_corpus(corpus: Path) -> None:
    for name, text in CORPUS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)


def snapshot(index_dir: Path) -> dict[str, bytes]:
    """Every file of the index folder and its bytes; the lock file's pid aside."""
    return {str(p.relative_to(index_dir)): p.read_bytes() for p in sorted(index_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def published_version(settings, embedder) -> str:
    """Open the published index, check that it is complete and of one build, and say whether its a.txt is old or new."""
    index = open_index(settings.index, "fake", settings.chunking())
    try:
        with closing(sqlite3.connect(f"file:{index.folder / 'store.sqlite'}?mode=ro", uri=True)) as db:
            (stored,) = db.execute("SELECT count(*) FROM chunks").fetchone()
        rows = index.chunks(list(range(len(index))))
        manifest = index.manifest
        assert manifest["chunks"] == stored == len(index) == sum(d["chunks"] for d in manifest["documents"].values()) > 0
        assert sorted(rows) == list(range(len(index)))  # every chunk row readable
        chunks = [rows[row] for row in sorted(rows)]
        vectors = index.stored_vectors(sorted(rows))  # FAISS rows are the vectors of these very chunks
        assert abs(vectors - embedder.encode([c["embed_text"] for c in chunks])).max() < 1e-6
        documents = index.documents()
        assert all(documents[c["source"]]["text"][c["start"]:c["end"]] == c["text"] for c in chunks)
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
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    from assistant.build import build_index
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
def test_build_killed_at_any_point_leaves_the_old_or_the_new_index_complete(settings, corpus, fake_embedder, point,
                                                                             reliability):
    write_corpus(corpus)
    build_index(settings, fake_embedder)
    old = current_build(settings.index).name
    (corpus / "a.txt").write_text(NEW_A)
    script = _BUILD.format(tests=str(TESTS), corpus=str(corpus), index=str(settings.index))
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
    reliability("faults", f"kill -9 at the fault point {point!r}", tried=1, survived=1, lost=0,
                detail=f"the {expected} index served, complete; leftovers: {leftovers}; the next build finished the job")
