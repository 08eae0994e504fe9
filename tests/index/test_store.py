"""The scope of a question (assistant/index/store.py's Scope): what its sources name among the index's documents.
How each store searches within one is tested with the stores (tests/index/faiss/, tests/index/milvus/)."""

import pytest

from assistant.errors import QueryError
from assistant.index.store import Scope

DOCUMENTS = ["a.txt", "cold.txt", "cold/x.txt", "cold/deep/y.txt", "coldness/z.txt", "r%_s/t.txt"]


def test_a_source_is_a_document_or_a_folder_that_holds_one():
    scope = Scope.of(["cold", "cold.txt", "cold/deep", "r%_s"], DOCUMENTS)
    assert scope == Scope(paths=("cold.txt",), folders=("cold", "cold/deep", "r%_s"))
    assert [path for path in DOCUMENTS if scope.allows(path)] == DOCUMENTS[1:4] + ["r%_s/t.txt"]
    assert not Scope(folders=("cold",)).allows("coldness/z.txt") and not Scope(folders=("cold",)).allows("cold.txt")


@pytest.mark.parametrize(
    "sources, message",
    [
        (["col"], r"no document or folder col in the index — give paths relative to the corpus folder, as `assistant"),
        (["cold/x"], "no document or folder cold/x in"),  # a prefix of a name is not a folder
        (
            ["a.txt", "b.txt", "cold/deep\\y.txt"],
            r"b.txt, cold/deep\\y.txt in the index \(folders are separated by /\)",
        ),
        ([f"n{i}" for i in range(7)], "no document or folder n0, n1, n2, n3, n4 … in the index"),
        (["bad\nname"], r"no document or folder 'bad\\nname' in the index"),
    ],
)
def test_sources_not_in_the_index_are_named_with_where_to_find_the_paths(sources, message):
    with pytest.raises(QueryError, match=message):
        Scope.of(sources, DOCUMENTS)
