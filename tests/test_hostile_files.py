"""Hostile files (issue 6, item 4): broken, odd or malicious files are skipped with a one-line reason, valid files
with odd names are indexed, and the build always finishes.

Every generated file comes from a fixed seed, so that a failure reproduces.
"""
from __future__ import annotations

import io
import os
import re
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from assistant.build import build_index
from assistant.documents import printable
from assistant.index import open_index
from assistant.ingest import load_documents

SEED = 20240604
GOOD_TEXT = "The harbour of Valparaiso handles most of the copper exports."
ODD_NAMES = [
    "with spaces in the name.txt",
    "ünïcödé 文档 📄.md",
    "new\nline.txt",
    "carriage\rreturn and\ttab.txt",
    "-starts with a dash.txt",
    "quotes ' and \".txt",
    "back\\slash.txt",
    "x" * 240 + ".txt",
]


# ---------------------------------------------------------------- helpers


def _symlink(link: Path, target: Path | str) -> None:
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")


def build(settings, embedder) -> tuple[dict, dict[str, str]]:
    """Build the index; return its documents (path -> manifest entry) and the skipped files (path -> reason)."""
    summary = build_index(settings, embedder)
    index = open_index(settings.index)
    try:
        documents = dict(index.manifest["documents"])
    finally:
        index.close()
    skipped = {s.path: s.reason for s in summary.skipped}
    for path, reason in skipped.items():
        assert reason.strip() and reason.isprintable(), (path, reason)  # one line, no control characters
    return documents, skipped


# ---------------------------------------------------------------- names and links


def test_valid_files_with_odd_names_are_indexed(settings, corpus, fake_embedder):
    for number, name in enumerate(ODD_NAMES):
        (corpus / name).write_text(f"Document number {number} talks about {GOOD_TEXT}", encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert skipped == {}
    assert sorted(documents) == sorted(ODD_NAMES)
    assert documents["new\nline.txt"]["title"] == "new line"  # a title is one line too


def test_the_cli_shows_a_name_with_a_newline_escaped_on_one_line(settings, corpus, fake_embedder, monkeypatch, capsys):
    from assistant import cli

    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: fake_embedder)
    monkeypatch.setenv("ASSISTANT_CORPUS", str(corpus))
    monkeypatch.setenv("ASSISTANT_INDEX", str(settings.index))
    (corpus / "empty\nname.txt").write_bytes(b"")
    (corpus / "good\tname.txt").write_text(GOOD_TEXT, encoding="utf-8")
    assert cli.main(["build"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "skipped 'empty\\nname.txt': empty file"
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "  'good\\tname.txt'  (1 chunk)" in out and "  skipped 'empty\\nname.txt': empty file" in out
    assert printable("with spaces, ünïcödé.txt") == "with spaces, ünïcödé.txt"  # escaped only when needed


def test_a_file_name_that_is_not_utf8_is_skipped_and_shown_escaped(settings, corpus, fake_embedder):
    try:
        (corpus / os.fsdecode(b"caf\xe9.txt")).write_text("Latin-1 name.", encoding="utf-8")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"caf\\xe9.txt": "file name is not valid UTF-8 — rename the file"}


def test_symlink_loops_are_skipped_and_the_build_goes_on(settings, corpus, fake_embedder):
    _symlink(corpus / "self.txt", "self.txt")
    _symlink(corpus / "ping.txt", "pong.txt")
    _symlink(corpus / "pong.txt", "ping.txt")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == dict.fromkeys(["ping.txt", "pong.txt", "self.txt"], "symlink loop — not followed")


def test_links_out_of_the_corpus_are_not_followed_and_dangling_ones_are_skipped(tmp_path, settings, corpus, fake_embedder):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The password is ZEBRAFISH-SECRET.", encoding="utf-8")
    _symlink(corpus / "to-file.txt", outside / "secret.txt")
    _symlink(corpus / "to-folder", outside)
    _symlink(corpus / "relative.txt", "../outside/secret.txt")
    _symlink(corpus / "chain.txt", "relative.txt")  # inside, then out
    _symlink(corpus / "dangling.txt", "nowhere.txt")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]  # to-folder/ is not walked into
    assert skipped == {**dict.fromkeys(["chain.txt", "relative.txt", "to-file.txt"], "symlink points outside the corpus — not followed"),
                       "dangling.txt": "broken symlink: its target does not exist"}
    assert "ZEBRAFISH" not in " ".join(fake_embedder.texts)


def test_a_named_pipe_is_skipped_without_blocking(settings, corpus, fake_embedder):
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"pipe.txt": "not a regular file (a pipe, socket or device)"}


# ---------------------------------------------------------------- files that change under the build


@pytest.mark.parametrize("moment", ["before the checks", "before hashing", "before reading"])
def test_a_file_that_vanishes_during_the_build_is_skipped_as_vanished(settings, corpus, fake_embedder, monkeypatch, moment):
    import assistant.build
    import assistant.ingest

    victim = corpus / "vanishing.txt"
    victim.write_text("Here now, gone soon.", encoding="utf-8")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    module, name = {"before the checks": (assistant.build, "check_readable"), "before hashing": (assistant.build, "file_sha256"),
                    "before reading": (assistant.ingest, "_read_capped")}[moment]
    original = getattr(module, name)

    def vanish_then(path, *args):
        if path == victim:
            victim.unlink(missing_ok=True)
        return original(path, *args)

    monkeypatch.setattr(module, name, vanish_then)
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"vanishing.txt": "vanished during the build"}


def test_a_file_that_grows_past_the_limit_after_the_check_is_skipped(settings, corpus, fake_embedder, monkeypatch):
    import assistant.ingest

    grower = corpus / "grower.txt"
    grower.write_text("small", encoding="utf-8")
    original = assistant.ingest._read_capped

    def grow_then(path, limit_mb):
        if path == grower:
            grower.write_bytes(b"word " * 300)
        return original(path, limit_mb)

    monkeypatch.setattr(assistant.ingest, "_read_capped", grow_then)
    settings = settings.__class__(**{**settings.__dict__, "max_file_mb": 0.001})
    documents, skipped = build(settings, fake_embedder)
    assert documents == {}
    assert skipped == {"grower.txt": "file grew past the 0.001 MB limit while it was read (ASSISTANT_MAX_FILE_MB)"}


# ---------------------------------------------------------------- the last resort


def test_an_unexpected_error_in_a_reader_skips_that_file_only(settings, corpus, fake_embedder, monkeypatch, caplog):
    import assistant.formats

    original = assistant.formats._read_text

    def fragile(data, path, *args):
        if path.name == "trap.txt":
            raise TypeError("a reader bug\nover two lines")
        return original(data, path, *args)

    monkeypatch.setattr(assistant.formats, "_read_text", fragile)
    (corpus / "trap.txt").write_text("Triggers the bug.", encoding="utf-8")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"trap.txt": "unexpected error (TypeError: a reader bug over two lines)"}
    assert "Traceback" in caplog.text  # logged in full for the bug report


def test_text_with_lone_surrogates_is_stored_with_replacement_characters(settings, corpus, fake_embedder, monkeypatch):
    import assistant.formats

    monkeypatch.setattr(assistant.formats, "_read_text", lambda data, path, *args: ("Ti\ud800tle", "Broken \udfff font map.", []))
    (corpus / "font.txt").write_text("whatever", encoding="utf-8")
    build(settings, fake_embedder)
    index = open_index(settings.index)
    try:
        row = index.documents(["font.txt"])["font.txt"]
        assert (row["title"], row["text"]) == ("Ti\ufffdtle", "Broken \ufffd font map.")
    finally:
        index.close()


# ---------------------------------------------------------------- HTML


def _read_alone(corpus: Path, name: str, data: bytes) -> tuple[dict[str, str], dict[str, str], float]:
    """Read a corpus of `name` and a good file; the texts, the skip reasons and the seconds it took."""
    (corpus / name).write_bytes(data)
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    started = time.monotonic()
    documents, skipped = load_documents(corpus)
    seconds = time.monotonic() - started
    texts = {d.path: d.text for d in documents}
    assert texts.pop("good.txt") == GOOD_TEXT
    return texts, {s.path: s.reason for s in skipped}, seconds


def test_deeply_nested_html_is_read_in_linear_time(corpus):
    texts, skipped, seconds = _read_alone(corpus, "deep.html", b"<div><span>" * 15_000 + b"the deepest words")
    assert texts == {"deep.html": "the deepest words"} and skipped == {}
    assert seconds < 10  # the blank lines around blocks were inserted in quadratic time: 40 s at this depth


def test_unclosed_markup_that_python_html_parser_chews_on_is_read_quickly(corpus):
    texts, skipped, seconds = _read_alone(corpus, "comment.html", b"<p>Before.</p><!--" + b"<a" * 40_000)
    assert texts == {"comment.html": "Before."} and skipped == {}
    assert seconds < 10  # html.parser in Python 3.11 took about 10 s here and grew with the square of the length


def test_html_with_too_many_tags_is_skipped_naming_the_limit(corpus):
    texts, skipped, _ = _read_alone(corpus, "huge.html", b"<p>x</p>" * 200_001)
    assert texts == {}
    assert skipped == {"huge.html": "HTML has about 200,001 tags and attributes, over the limit of 200,000 "
                                    "— split the page or save it as text"}


# ---------------------------------------------------------------- DOCX


def docx_with_body(body: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A DOCX made by python-docx, with `body` as the XML inside <w:body> and `extra` parts added."""
    import docx

    blank = io.BytesIO()
    docx.Document().save(blank)
    source = zipfile.ZipFile(blank)
    head, tail = source.read("word/document.xml").decode().split("<w:body>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in source.infolist():
            data = (head + "<w:body>" + body + tail).encode() if item.filename == "word/document.xml" else source.read(item)
            archive.writestr(item.filename, data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb_docx(megabytes: int) -> bytes:
    """A DOCX whose document.xml holds `megabytes` of spaces after its one paragraph: deflated a thousand times."""
    blank = zipfile.ZipFile(io.BytesIO(docx_with_body("")))
    head, tail = blank.read("word/document.xml").split(b"<w:body>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in blank.infolist():
            if item.filename != "word/document.xml":
                archive.writestr(item.filename, blank.read(item))
        with archive.open("word/document.xml", "w") as part:
            part.write(head + b"<w:body><w:p><w:r><w:t>Bomb.</w:t></w:r></w:p>")
            for _ in range(megabytes):
                part.write(b" " * (1 << 20))
            part.write(tail)
    return out.getvalue()


def test_a_docx_zip_bomb_is_skipped_before_it_is_unpacked(corpus):
    data = zip_bomb_docx(150)
    assert len(data) < 400_000
    texts, skipped, seconds = _read_alone(corpus, "bomb.docx", data)
    assert texts == {}
    assert re.fullmatch(r"DOCX would unpack to 15\d MB, over the limit of 100 MB — a zip bomb\?", skipped["bomb.docx"])
    assert seconds < 5


def test_a_docx_whose_zip_sizes_lie_is_refused_at_the_declared_size(corpus):
    real = docx_with_body("<w:p><w:r><w:t>Liar.</w:t></w:r></w:p>", {"word/media/zeros.bin": bytes(20 << 20)})
    name = b"word/media/zeros.bin"
    central = real.index(name, real.index(b"PK\x01\x02")) - 46  # its record in the central directory
    local = real.index(name) - 30  # its local header, before its data
    lying = bytearray(real)
    lying[central + 24:central + 28] = (1000).to_bytes(4, "little")  # declares 1,000 bytes, inflates to 20 MB
    lying[local + 22:local + 26] = (1000).to_bytes(4, "little")
    texts, skipped, _ = _read_alone(corpus, "liar.docx", bytes(lying))
    assert texts == {}
    assert skipped["liar.docx"].startswith("corrupt or unreadable DOCX (BadZipFile: Bad CRC-32")


def test_a_docx_with_too_many_xml_tags_is_skipped_naming_the_limit(corpus):
    texts, skipped, seconds = _read_alone(corpus, "tags.docx", docx_with_body("<w:p/>" * 1_000_001))
    assert texts == {}
    assert skipped == {"tags.docx": "DOCX holds over 1,000,000 XML tags — split the document, or save it as PDF"}
    assert seconds < 5


def test_a_docx_with_a_long_vertical_merge_is_read_in_one_pass(corpus):
    top = "<w:tr><w:tc><w:tcPr><w:vMerge w:val='restart'/></w:tcPr><w:p><w:r><w:t>merged</w:t></w:r></w:p></w:tc></w:tr>"
    below = "<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc></w:tr>"
    body = "<w:tbl><w:tblGrid><w:gridCol w:w='100'/></w:tblGrid>" + top + below * 3000 + "</w:tbl>"
    texts, skipped, seconds = _read_alone(corpus, "merged.docx", docx_with_body(body))
    assert skipped == {}
    assert texts["merged.docx"].split("\n\n") == ["merged"] * 3001  # as python-docx's row.cells has it
    assert seconds < 10  # python-docx recursed up the merge for each row: 33 s, then RecursionError


def test_a_docx_without_headings_is_read_without_a_style_lookup_per_paragraph(corpus):
    body = "<w:p><w:r><w:t>A paragraph of plain words.</w:t></w:r></w:p>" * 20_000
    texts, skipped, seconds = _read_alone(corpus, "plain.docx", docx_with_body(body))
    assert skipped == {} and texts["plain.docx"].count("plain words") == 20_000
    assert seconds < 10  # paragraph.style took 1.4 ms each: 28 s


# ---------------------------------------------------------------- PDF, and the time limit


def pdf_with_pages(contents: list[bytes]) -> bytes:
    """A PDF whose pages have these content streams, each deflated: a few KB can hold minutes of pypdf's work."""
    font = b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(contents))]
    for i, content in enumerate(contents):
        packed = zlib.compress(content, 9)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R %s >>" % (4 + 2 * i, font))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed))
    out, offsets = io.BytesIO(b"%PDF-1.4\n"), []
    out.seek(0, io.SEEK_END)
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


TEXT_OPERATORS = b"BT /F1 12 Tf 72 712 Td (Hello world) Tj ET\n"  # about 4 s of pypdf's time per MB here


def test_a_pdf_made_to_take_minutes_is_skipped_at_the_time_limit(corpus):
    data = pdf_with_pages([TEXT_OPERATORS * 8_000] * 40)  # 40 pages of 350 KB: about a minute of extraction
    (corpus / "slow.pdf").write_bytes(data)
    started = time.monotonic()
    documents, skipped = load_documents(corpus, max_file_seconds=1.5)
    seconds = time.monotonic() - started
    assert documents == []
    assert [(s.path, s.reason) for s in skipped] == [
        ("slow.pdf", "reading took over 1.5 s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit")]
    assert seconds < 1.5 + 5, seconds  # stopped between two content-stream operators


def test_a_docx_made_to_take_long_is_skipped_at_the_time_limit(corpus):
    (corpus / "slow.docx").write_bytes(docx_with_body("<w:p/>" * 150_000))
    documents, skipped = load_documents(corpus, max_file_seconds=0.5)
    assert documents == []
    assert [s.reason for s in skipped] == ["reading took over 0.5 s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit"]


def test_a_good_pdf_is_read_within_the_default_time_limit(corpus):
    page = b"BT /F1 11 Tf 72 712 Td (%s) Tj ET\n"
    data = pdf_with_pages([b"".join(page % f"Line {i} of page {n} about copper.".encode() for i in range(40)) for n in range(30)])
    texts, skipped, _ = _read_alone(corpus, "report.pdf", data)
    assert skipped == {} and texts["report.pdf"].count("about copper") == 1200
