"""Hostile files, the corpus as a whole: odd names, links, pipes, files that vanish or grow
during the build, a reader's unexpected error, and a seeded corpus of every hostile case at once, each file
indexed or skipped with a one-line reason, and read within 30 s and 500 MB.

Every generated file comes from a fixed seed, so that a failure reproduces.
"""

from __future__ import annotations

import functools
import io
import os
import random
import zipfile
from pathlib import Path

import pytest

from assistant.documents import printable
from assistant.index.faiss.store import open_index
from assistant.ingest import SUPPORTED, file_sha256
from tests.system.hostile_files.helpers import GOOD_TEXT, build, docx_with_body, measure, zip_bomb_docx

SEED = 20240604
SECRET = "ZEBRAFISH-SECRET-7731"  # in a file outside the corpus: must never reach the index
MUTANTS = 25  # per fixture, and for the XML inside the DOCX
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


# ---------------------------------------------------------------- helpers (the shared ones are in helpers.py)


def _symlink(link: Path, target: Path | str) -> None:
    os.symlink(target, link)  # Linux, where CI runs: a failure here is a failure, not a skip


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
    (corpus / os.fsdecode(b"caf\xe9.txt")).write_text(
        "Latin-1 name.", encoding="utf-8"
    )  # Linux file systems take any bytes
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


def test_links_out_of_the_corpus_are_not_followed_and_dangling_ones_are_skipped(
    tmp_path, settings, corpus, fake_embedder
):
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
    assert skipped == {
        **dict.fromkeys(
            ["chain.txt", "relative.txt", "to-file.txt"], "symlink points outside the corpus — not followed"
        ),
        "dangling.txt": "broken symlink: its target does not exist",
    }
    assert "ZEBRAFISH" not in " ".join(fake_embedder.texts)


def test_a_named_pipe_is_skipped_without_blocking(settings, corpus, fake_embedder):
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"pipe.txt": "not a regular file (a pipe, socket or device)"}


# ---------------------------------------------------------------- files that change under the build


@pytest.mark.parametrize("moment", ["before the checks", "before hashing", "before reading"])
def test_a_file_that_vanishes_during_the_build_is_skipped_as_vanished(
    settings, corpus, fake_embedder, monkeypatch, moment
):
    import assistant.ingest

    victim = corpus / "vanishing.txt"
    victim.write_text("Here now, gone soon.", encoding="utf-8")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    module, name = {
        "before the checks": (assistant.ingest, "check_readable"),
        "before hashing": (assistant.ingest, "file_sha256"),
        "before reading": (assistant.ingest, "_read_capped"),
    }[moment]
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

    original = assistant.formats.read_text

    def fragile(data, path, *args):
        if path.name == "trap.txt":
            raise TypeError("a reader bug\nover two lines")
        return original(data, path, *args)

    monkeypatch.setattr(assistant.formats, "read_text", fragile)
    (corpus / "trap.txt").write_text("Triggers the bug.", encoding="utf-8")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = build(settings, fake_embedder)
    assert list(documents) == ["good.txt"]
    assert skipped == {"trap.txt": "unexpected error (TypeError: a reader bug over two lines)"}
    assert "Traceback" in caplog.text  # logged in full for the bug report


# ---------------------------------------------------------------- the hostile corpus: every case at once


def fixtures() -> dict[str, bytes]:
    """Good files of every format, the seeds of the mutants."""
    import docx
    from fpdf import FPDF

    fixtures = {}
    for compress in (True, False):
        pdf = FPDF()
        pdf.set_compression(compress)
        pdf.set_title("Copper report")
        pdf.set_font("Helvetica", size=12)
        for number in range(3):
            pdf.add_page()
            pdf.multi_cell(0, 8, f"Page {number + 1}. {GOOD_TEXT} " * 4)
        fixtures[f"report-{'packed' if compress else 'plain'}.pdf"] = bytes(pdf.output())
    document = docx.Document()
    document.add_heading("Copper exports", level=1)
    for number in range(5):
        document.add_paragraph(f"Paragraph {number}. {GOOD_TEXT}")
    table = document.add_table(rows=3, cols=2)
    table.cell(0, 0).merge(table.cell(1, 0)).text = "merged"
    buffer = io.BytesIO()
    document.save(buffer)
    fixtures["exports.docx"] = buffer.getvalue()
    fixtures["page.html"] = (
        f"<html><head><title>Port</title><style>p {{}}</style></head><body><nav>Home</nav>"
        f"<h1>Port</h1><p>{GOOD_TEXT}</p><ul><li>one</li><li>two</li></ul></body></html>"
    ).encode()
    fixtures["notes.txt"] = f"Notes\n\n{GOOD_TEXT}\n\nCafé, naïve, 東京.\n".encode()
    fixtures["readme.md"] = f"# Readme\n\n{GOOD_TEXT}\n".encode()
    return fixtures


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded damage: truncation, bit flips, a chunk deleted, duplicated, inserted at random or zeroed."""
    kind = rng.choice(["truncated", "flipped", "deleted", "duplicated", "inserted", "zeroed"])
    size = len(data)
    start = rng.randrange(size)
    end = min(size, start + rng.randint(1, max(1, size // 8)))
    if kind == "truncated":
        return kind, data[:start]
    if kind == "flipped":
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(size)] ^= 1 << rng.randrange(8)
        return kind, bytes(damaged)
    if kind == "deleted":
        return kind, data[:start] + data[end:]
    if kind == "duplicated":
        return kind, data[:end] + data[start:end] + data[end:]
    if kind == "inserted":
        return kind, data[:start] + rng.randbytes(end - start) + data[start:]
    return kind, data[:start] + bytes(end - start) + data[end:]


def mutate_docx_xml(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A sound zip around a damaged word/document.xml: the damage reaches lxml and python-docx."""
    source = zipfile.ZipFile(io.BytesIO(data))
    kind, xml = mutate(source.read("word/document.xml"), rng)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in source.infolist():
            archive.writestr(item.filename, xml if item.filename == "word/document.xml" else source.read(item))
    return f"xml-{kind}", out.getvalue()


@functools.cache
def hostile_files() -> dict[str, tuple[str, bytes]]:
    """Every hostile case but the links and the 100 MB file, made from SEED: {relative path: (category, bytes)}.
    Valid files with odd names are among them."""
    rng = random.Random(SEED)
    files: dict[str, tuple[str, bytes]] = {}
    for name, data in fixtures().items():
        stem, ext = name.rsplit(".", 1)
        for number in range(MUTANTS):
            kind, damaged = mutate(data, rng)
            files[f"mutated/{stem}-{number:02d}-{kind}.{ext}"] = ("mutated fixtures", damaged)
        if ext == "docx":
            for number in range(MUTANTS):
                kind, damaged = mutate_docx_xml(data, rng)
                files[f"mutated/{stem}-{number:02d}-{kind}.{ext}"] = ("mutated fixtures", damaged)
    for ext in sorted(SUPPORTED) + [".xyz", ""]:
        files[f"random/random{ext or '-without-extension'}"] = ("random bytes", rng.randbytes(rng.randint(1, 64_000)))
    files["bombs/zip-bomb.docx"] = ("zip bomb and oversized", zip_bomb_docx(120))
    files["bombs/many-tags.docx"] = ("zip bomb and oversized", docx_with_body("<w:p/>" * 1_000_001))
    files["nested/divs.html"] = ("deep nesting", b"<div>" * 50_000 + b"deepest words")
    files["nested/mixed.html"] = ("deep nesting", b"<div><span><p><b><table><tr><td>" * 6_000 + b"deepest words")
    files["nested/over-the-limit.html"] = ("deep nesting", b"<div>" * 250_000 + b"deepest words")
    files["nested/unclosed-comment.html"] = ("deep nesting", b"<p>Before.</p><!--" + b"<a" * 50_000)
    files["nested/merged-rows.docx"] = (
        "deep nesting",
        docx_with_body(
            "<w:tbl><w:tblGrid><w:gridCol w:w='100'/></w:tblGrid>"
            "<w:tr><w:tc><w:tcPr><w:vMerge w:val='restart'/></w:tcPr>"
            "<w:p><w:r><w:t>merged</w:t></w:r></w:p></w:tc></w:tr>"
            + "<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc></w:tr>" * 2_000
            + "</w:tbl>"
        ),
    )
    for number, name in enumerate(ODD_NAMES):
        files[f"names/{name}"] = ("odd names", f"Odd name {number}. {GOOD_TEXT}".encode())
    return files


def write_hostile_corpus(corpus: Path, outside: Path) -> dict[str, str]:
    """Write every hostile case into `corpus`; return {relative path: category}."""
    files = hostile_files()
    for rel, (_, data) in files.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_bytes(data)
    with open(corpus / "bombs" / "100-mb.txt", "wb") as big:  # sparse: instant, and takes no disk
        big.truncate(100 * 1024 * 1024)
    return {
        **{rel: category for rel, (category, _) in files.items()},
        "bombs/100-mb.txt": "zip bomb and oversized",
        **_hostile_links(corpus, outside),
    }


def _hostile_links(corpus: Path, outside: Path) -> dict[str, str]:
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text(f"The password is {SECRET}.", encoding="utf-8")
    links = {
        "links/self-loop.txt": "self-loop.txt",
        "links/ping.txt": "pong.txt",
        "links/pong.txt": "ping.txt",
        "links/outside.txt": str(outside / "secret.txt"),
        "links/relative-out.txt": "../../outside/secret.txt",
        "links/chain-out.txt": "relative-out.txt",
        "links/dangling.txt": "nowhere.txt",
        "links/inside.txt": "../names/with spaces in the name.txt",
        "links/outside-folder": str(outside),
    }
    (corpus / "links").mkdir()
    for link, target in links.items():
        _symlink(corpus / link, target)
    return {link: "symlinks" for link in links if link != "links/outside-folder"}  # a linked folder is not walked


def _files_in(corpus: Path) -> dict[str, str]:
    """sha256 of every regular file under `corpus`, links not followed: what the build must leave as it was."""
    found = {}
    for root, _, names in os.walk(corpus):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(corpus).as_posix()] = file_sha256(path)
    return found


def _vanish_when_hashed(monkeypatch, victim: Path) -> None:
    """`victim` is deleted by the build itself, between listing the corpus and hashing the file."""
    import assistant.ingest

    hashing = assistant.ingest.file_sha256
    monkeypatch.setattr(
        assistant.ingest,
        "file_sha256",
        lambda path: (victim.unlink(missing_ok=True) if path == victim else None) or hashing(path),
    )


def _indexed_texts(settings) -> str:
    index = open_index(settings.index)
    try:
        return " ".join(row["text"] for row in index.documents().values())
    finally:
        index.close()


def test_a_corpus_of_hostile_files_builds_and_each_is_indexed_or_skipped_with_a_reason(
    tmp_path, settings, corpus, fake_embedder, monkeypatch, reliability
):
    made = write_hostile_corpus(corpus, tmp_path / "outside")
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (corpus / "vanishing.txt").write_text("Gone before it is read.", encoding="utf-8")
    made["vanishing.txt"] = "vanishing"
    _vanish_when_hashed(monkeypatch, corpus / "vanishing.txt")
    before = _files_in(corpus)

    documents, skipped = build(settings, fake_embedder)  # asserts that every reason is one printable line

    assert "good.txt" in documents and skipped["vanishing.txt"] == "vanished during the build"
    assert set(documents) | set(skipped) == set(made) | {"good.txt"}  # every file has an outcome
    assert not set(documents) & set(skipped)
    assert {f"names/{name}" for name in ODD_NAMES} | {"links/inside.txt"} <= set(documents)
    assert skipped["bombs/100-mb.txt"] == "file is 100.0 MB, over the 50 MB limit (ASSISTANT_MAX_FILE_MB)"
    assert SECRET not in _indexed_texts(settings) + " ".join(fake_embedder.texts)  # nothing read out of the corpus
    assert _files_in(corpus) == {rel: sha for rel, sha in before.items() if rel != "vanishing.txt"}  # nothing lost
    for category in sorted(set(made.values())):
        names = [rel for rel, kind in made.items() if kind == category]
        indexed = sum(rel in documents for rel in names)
        reliability(
            "files",
            category,
            tried=len(names),
            survived=len(names),
            detail=f"{indexed} indexed, {len(names) - indexed} skipped with a reason",
        )


# ---------------------------------------------------------------- time and memory, measured in a fresh process


def test_every_hostile_file_is_read_within_30_s_and_500_mb(tmp_path, reliability):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    made = write_hostile_corpus(corpus, tmp_path / "outside")
    rows = measure(corpus)
    assert {row["path"] for row in rows} == set(made)
    slow = [(row["path"], round(row["seconds"], 1)) for row in rows if row["seconds"] > 30]
    heavy = [(row["path"], round(row["growth_mb"])) for row in rows if row["growth_mb"] > 500]
    assert not slow and not heavy, (slow, heavy[:1])
    assert all(row["outcome"] for row in rows)
    worst = max(rows, key=lambda row: row["seconds"])
    reliability(
        "files",
        "each hostile file read within 30 s and 500 MB",
        tried=len(rows),
        survived=len(rows),
        detail=f"slowest {worst['seconds']:.1f} s ({printable(worst['path'])}), "
        f"peak +{max(row['growth_mb'] for row in rows):.0f} MB",
    )
