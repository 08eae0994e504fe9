"""A store as one reader sees it (assistant/index/readable.py), on FAISS and on Milvus Lite: the searches keep to
the reader's scope inside the store, before k, and no read returns a document outside it."""

import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from assistant.config import Settings
from assistant.index import build_index, open_store
from assistant.index.lexical import terms
from assistant.index.milvus.collections import close_clients
from assistant.index.readable import readable
from assistant.index.store import Scope
from tests.helpers import FakeEmbedder

QUERY = "canteen menu Monday"
# the hr documents hold the question's words over and over: they score best on both sides, unless filtered out
CORPUS = {
    **{f"public/menu{i}.txt": f"Public note {i}: the canteen menu changes on Monday {i}." for i in range(6)},
    **{f"hr/pay{i}.txt": "Canteen menu Monday. " * 8 + f"Confidential salary review {i}." for i in range(3)},
    "hr/empty.md": "",  # skipped
    "public/empty.md": "",  # skipped
}
PUBLIC = sorted(path for path, text in CORPUS.items() if path.startswith("public/") and text)
MADE_UP = tuple(f"made/up/{n:05}.txt" for n in range(40_000))


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def store(request, tmp_path_factory):
    """The corpus built in the store of the parameter, once per module (Milvus Lite: in the index folder)."""
    root = tmp_path_factory.mktemp(request.param)
    for name, text in CORPUS.items():
        (root / "corpus" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "corpus" / name).write_text(text)
    settings = Settings(corpus=root / "corpus", index=root / "index", model="fake", min_score=-1.0)
    settings = replace(settings, store=request.param)
    build_index(settings, FakeEmbedder())
    yield open_store(settings)
    if request.param == "milvus":
        close_clients()


def public_only(path: str) -> bool:
    return path.startswith("public/")


# a reader limited to public/: as a folder, as its documents by name, and as those among 40,000 others by name
# (more paths than SQLite's usual limit of variables, 32,766: FAISS asks PATHS_PER_QUERY at a time)
SCOPES = {
    "folder": Scope(folders=("public",)),
    "paths": Scope(paths=tuple(PUBLIC)),
    "40,000 paths": Scope(paths=(PUBLIC[0], *MADE_UP[:10_000], PUBLIC[1], *MADE_UP[10_000:], *PUBLIC[2:])),
}


@pytest.fixture(params=list(SCOPES))
def view(request, store):
    return readable(store, SCOPES[request.param], public_only)


def sources(store, keys) -> list[str]:
    return sorted(row["source"] for row in store.chunks(list(keys)).values())


def keys_of(store, prefix: str) -> list:
    vector = FakeEmbedder().encode([QUERY])[0]
    return [key for key, _ in store.dense(vector, len(store)) if store.chunks([key])[key]["source"].startswith(prefix)]


def test_the_whole_store_ranks_the_hr_chunks_first(store):
    """What makes the tests below able to fail: unfiltered, the best chunks of both sides are hr's."""
    vector = FakeEmbedder().encode([QUERY])[0]
    assert sources(store, [key for key, _ in store.dense(vector, 3)]) == ["hr/pay0.txt", "hr/pay1.txt", "hr/pay2.txt"]
    assert sources(store, store.lexical(QUERY, 3)) == ["hr/pay0.txt", "hr/pay1.txt", "hr/pay2.txt"]


@pytest.mark.parametrize("k", [1, 5, 6])
def test_searches_return_k_chunks_all_readable_though_better_ones_are_not(store, view, k):
    vector = FakeEmbedder().encode([QUERY])[0]
    dense = view.dense(vector, k)
    assert len(dense) == k and set(sources(store, [key for key, _ in dense])) <= set(PUBLIC)
    lexical = view.lexical(QUERY, k)
    assert len(lexical) == k and set(sources(store, lexical)) <= set(PUBLIC) and min(lexical.values()) > 0
    assert sources(store, [key for key, _ in view.dense(vector, 50)]) == PUBLIC  # every readable chunk, no other


def test_a_question_scope_combines_with_the_readers(store, view):
    vector = FakeEmbedder().encode([QUERY])[0]
    asked = [Scope(paths=("hr/pay0.txt", "public/menu3.txt"))]
    assert sources(store, [key for key, _ in view.dense(vector, 5, asked)]) == ["public/menu3.txt"]
    assert sources(store, view.lexical(QUERY, 5, within=asked)) == ["public/menu3.txt"]
    hr = [Scope(folders=("hr",))]
    assert store.dense(vector, 5, hr) and view.dense(vector, 5, hr) == []
    assert store.lexical(QUERY, 5, within=hr) and view.lexical(QUERY, 5, within=hr) == {}


def test_the_lexical_side_scores_no_unreadable_chunk_asked_for_by_key(store, view):
    scored = view.lexical(QUERY, 5, also=keys_of(store, "hr/"))
    assert all(score == 0 for key, score in scored.items() if key in keys_of(store, "hr/"))


def test_words_only_unreadable_chunks_hold_are_unknown(store, view):
    (salary,), (canteen,) = terms(["salary", "canteen"])
    assert store.known_terms([salary, canteen]) == {salary, canteen}
    assert view.known_terms([salary, canteen]) == {canteen}


def test_no_read_returns_an_unreadable_chunk_or_document(store, view):
    hr_keys, public_keys = keys_of(store, "hr/"), keys_of(store, "public/")
    hr_id = store.chunks(hr_keys[:1])[hr_keys[0]]["id"]
    assert store.chunk_by_id(hr_id) is not None and view.chunk_by_id(hr_id) is None
    public_id = store.chunks(public_keys[:1])[public_keys[0]]["id"]
    assert view.chunk_by_id(public_id) == store.chunk_by_id(public_id)
    assert view.chunks(hr_keys) == {} and set(view.chunks(public_keys)) == set(public_keys)
    assert sorted(view.documents()) == PUBLIC == sorted(view.catalog())
    assert view.documents(["hr/pay0.txt", "public/menu0.txt"]).keys() == {"public/menu0.txt"}
    assert view.documents(["hr/pay0.txt"]) == {}
    assert [row["source"] for row in view.chunks_of(["hr/pay0.txt", "public/menu0.txt"])] == ["public/menu0.txt"]
    assert view.chunks_of(["hr/pay1.txt"]) == []


def test_counts_and_the_manifest_are_the_readers(store, view):
    assert len(store) == 9 and store.manifest["chunks"] == 9
    assert len(view) == 6 and view.manifest["chunks"] == 6
    assert sorted(view.manifest["documents"]) == PUBLIC
    assert [entry["path"] for entry in view.manifest["skipped"]] == ["public/empty.md"]
    assert sorted(entry["path"] for entry in store.manifest["skipped"]) == ["hr/empty.md", "public/empty.md"]


def test_a_reader_who_reads_everything_gets_the_store_itself(store):
    assert readable(store, None, lambda path: True) is store


@pytest.mark.parametrize("store", ["faiss"], indirect=True)  # Milvus's filter is an expression: searched above
def test_the_faiss_rows_of_a_scope_of_40000_paths_are_those_of_its_real_ones(store):
    limit = store._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)  # SQLite's default (Debian's allows more)
    try:
        rows = np.flatnonzero(store._rows_of(SCOPES["40,000 paths"]))
        assert not store._rows_of(Scope(paths=MADE_UP)).any()
    finally:
        store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    expected = [row for row in range(len(store)) if store.chunks([row])[row]["source"] in PUBLIC]
    assert rows.tolist() == expected and len(expected) == 6
