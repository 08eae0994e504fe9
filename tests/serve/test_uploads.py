"""Storing and deleting documents (serve/uploads.py): every check before any write, and atomic writes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from assistant.ingest import iter_corpus
from assistant.serve.uploads import TEMP_PREFIX, UploadError, delete_file, store_files
from assistant.watch import ignored

MB = 1 << 20


def files(*names: str, data: bytes = b"Oman and Qatar.") -> list[tuple[str, io.BytesIO]]:
    return [(name, io.BytesIO(data)) for name in names]


def tree(corpus: Path) -> list[str]:
    """Every file and folder of the corpus, hidden ones included."""
    return sorted(path.relative_to(corpus).as_posix() for path in corpus.rglob("*"))


def test_files_are_stored_in_the_folder_which_is_created_and_named_relative_to_the_corpus(corpus):
    stored = store_files(corpus, "hr/2024", files("a.txt", "b.md"), replace=False, max_bytes=MB)
    assert stored == ["hr/2024/a.txt", "hr/2024/b.md"]
    assert (corpus / "hr/2024/a.txt").read_bytes() == b"Oman and Qatar."
    assert store_files(corpus, "", files("top.txt"), replace=False, max_bytes=MB) == ["top.txt"]
    assert store_files(corpus, "hr/", files("c.txt"), replace=False, max_bytes=MB) == ["hr/c.txt"]


@pytest.mark.parametrize("name", ["résumé – 2024.txt", "文件.pdf", "Отчёт (v2).DOCX", "a b.md", "x.TXT"])
def test_unicode_names_spaces_inside_and_any_case_of_a_suffix_are_fine(corpus, name):
    assert store_files(corpus, "", files(name), replace=False, max_bytes=MB) == [name]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "is not a name"),
        (".", "is not a name"),
        ("..", "is not a name"),
        ("../a.txt", "path separator"),
        ("a/b.txt", "path separator"),
        ("a\\b.txt", "path separator"),
        ("a\x00.txt", "control character"),
        ("a\n.txt", "control character"),
        ("a\x7f.txt", "control character"),
        (" a.txt", "starts or ends with a space"),
        ("a.txt ", "starts or ends with a space"),
        (".hidden.txt", "hidden"),
        ("x" * 300 + ".txt", "longer than 255 bytes"),
    ],
)
def test_a_bad_name_is_422_and_nothing_is_written(corpus, name, message):
    with pytest.raises(UploadError, match=message) as err:
        store_files(corpus, "", files("good.txt", name), replace=False, max_bytes=MB)
    assert err.value.status == 422 and tree(corpus) == []


@pytest.mark.parametrize(
    "folder, message",
    [
        ("/etc", "relative to the corpus"),
        ("..", "is not a name"),
        ("../outside", "is not a name"),
        ("hr/../../x", "is not a name"),
        ("hr//x", "is not a name"),
        ("hr\\x", "relative to the corpus"),
        ("hr\x01", "control character"),
        (".git", "hidden"),
    ],
)
def test_a_bad_folder_is_422_and_nothing_is_written(corpus, folder, message):
    with pytest.raises(UploadError, match=message) as err:
        store_files(corpus, folder, files("a.txt"), replace=False, max_bytes=MB)
    assert err.value.status == 422 and tree(corpus) == []


def test_a_folder_that_leads_out_of_the_corpus_through_a_symlink_is_422(corpus, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (corpus / "link").symlink_to(outside)
    with pytest.raises(UploadError, match="leads out of the corpus") as err:
        store_files(corpus, "link/sub", files("a.txt"), replace=False, max_bytes=MB)
    assert err.value.status == 422 and list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["tool.exe", "README", "photo.gif", "archive.tar.gz"])
def test_a_type_the_assistant_does_not_read_is_415(corpus, name):
    with pytest.raises(UploadError, match="does not read") as err:
        store_files(corpus, "", files("good.txt", name), replace=False, max_bytes=MB)
    assert err.value.status == 415 and ".pdf" in str(err.value) and tree(corpus) == []


def test_a_file_over_the_limit_is_413_its_temporary_file_is_removed_and_the_batch_writes_nothing(corpus):
    batch = [("small.txt", io.BytesIO(b"x" * 10)), ("big.txt", io.BytesIO(b"x" * (MB + 1)))]
    with pytest.raises(UploadError, match="over the 1 MB limit") as err:
        store_files(corpus, "new/deeper", batch, replace=False, max_bytes=MB)
    assert err.value.status == 413
    assert tree(corpus) == []  # no temporary file, no half-written file, not even the folders it created


def test_a_file_of_exactly_the_limit_is_stored(corpus):
    assert store_files(corpus, "", files("edge.txt", data=b"x" * MB), replace=False, max_bytes=MB) == ["edge.txt"]


class Endless(io.RawIOBase):
    """A stream that counts how much was read from it: it must stop soon after the limit, not at its end."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = b"x" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def test_the_copy_stops_as_soon_as_the_limit_is_passed(corpus):
    stream = Endless()
    with pytest.raises(UploadError) as err:
        store_files(corpus, "", [("a.txt", stream)], replace=False, max_bytes=3 * MB)  # type: ignore[list-item]
    assert err.value.status == 413 and stream.read_bytes <= 4 * MB and tree(corpus) == []


def test_an_existing_name_is_409_unless_replace_and_replace_swaps_the_content(corpus):
    (corpus / "hr").mkdir()
    (corpus / "hr/a.txt").write_text("old")
    with pytest.raises(UploadError, match="exists already — send replace=true") as err:
        store_files(corpus, "hr", files("new.txt", "a.txt"), replace=False, max_bytes=MB)
    assert err.value.status == 409 and tree(corpus) == ["hr", "hr/a.txt"]
    assert store_files(corpus, "hr", files("a.txt", data=b"new"), replace=True, max_bytes=MB) == ["hr/a.txt"]
    assert (corpus / "hr/a.txt").read_text() == "new" and tree(corpus) == ["hr", "hr/a.txt"]


def test_a_folder_of_the_name_is_409_even_with_replace(corpus):
    (corpus / "a.txt").mkdir()
    with pytest.raises(UploadError, match="is a folder") as err:
        store_files(corpus, "", files("a.txt"), replace=True, max_bytes=MB)
    assert err.value.status == 409


def test_a_name_sent_twice_in_one_batch_is_422(corpus):
    with pytest.raises(UploadError, match="sent twice") as err:
        store_files(corpus, "", files("a.txt", "a.txt"), replace=True, max_bytes=MB)
    assert err.value.status == 422 and tree(corpus) == []


def test_a_batch_without_files_is_422(corpus):
    with pytest.raises(UploadError, match="no files") as err:
        store_files(corpus, "", [], replace=False, max_bytes=MB)
    assert err.value.status == 422


class Watched(io.BytesIO):
    """A stream that, halfway, notes the files of its folder, then fails as a dropped connection would."""

    def __init__(self, folder: Path, fail: bool) -> None:
        super().__init__(b"x" * (3 * MB))
        self.folder, self.fail, self.seen = folder, fail, [Path()]

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= MB:
            self.seen = [path for path in self.folder.iterdir() if path.is_file()]
            if self.fail:
                raise ConnectionResetError("the client went away")
        return super().read(size)


def test_a_file_is_written_under_a_hidden_temporary_name_that_the_build_and_the_watcher_skip(corpus):
    stream = Watched(corpus, fail=False)
    store_files(corpus, "", [("a.txt", stream)], replace=False, max_bytes=4 * MB)
    [temp] = stream.seen
    assert temp.name.startswith(TEMP_PREFIX) and temp.name.endswith(".part")
    assert ignored(temp, corpus)  # the watcher asks for no build for it
    temp.write_text("a leftover")  # as a crash would leave it: the build does not read it
    assert [rel for _, rel in iter_corpus(corpus)] == ["a.txt"]


def test_an_interrupted_upload_leaves_nothing_half_written(corpus):
    (corpus / "a.txt").write_text("old")
    with pytest.raises(UploadError, match="cannot copy 'a.txt'.*the client went away") as err:
        store_files(corpus, "", [("a.txt", Watched(corpus, fail=True))], replace=True, max_bytes=4 * MB)
    assert err.value.status == 500 and tree(corpus) == ["a.txt"] and (corpus / "a.txt").read_text() == "old"


def test_delete_removes_the_file_only(corpus):
    (corpus / "hr").mkdir()
    (corpus / "hr/a.txt").write_text("x")
    assert delete_file(corpus, "hr/a.txt") == "hr/a.txt"
    assert tree(corpus) == ["hr"]  # the folder stays


@pytest.mark.parametrize(
    "path, status, message",
    [
        ("hr/nope.txt", 404, "no file 'hr/nope.txt'"),
        ("hr", 422, "is a folder"),
        ("", 422, "must name a file"),
        ("/etc/passwd", 422, "must name a file"),
        ("../outside.txt", 422, "is not a name"),
        ("hr/../../outside.txt", 422, "is not a name"),
        ("hr/a\x00.txt", 422, "control character"),
        ("link/a.txt", 422, "leads out of the corpus"),
    ],
)
def test_delete_refuses_a_missing_file_a_folder_and_a_bad_path(corpus, tmp_path, path, status, message):
    (corpus / "hr").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("keep")
    (corpus / "link").symlink_to(outside)
    with pytest.raises(UploadError, match=message) as err:
        delete_file(corpus, path)
    assert err.value.status == status and (outside / "a.txt").exists()
