"""Reading the corpus: every supported format, the folder walk, encodings, and every way a file is skipped.

All fixtures are generated inside the tests (PDFs with fpdf2, DOCX with python-docx, scans with Pillow); no binary
file is committed. Scans are read by Debian's Tesseract, as in production.
"""

from __future__ import annotations

import io
import os
import random
import re
import zipfile
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from fpdf.drawing_primitives import Transform

from assistant.config import Ocr
from assistant.documents import Document, Section, SkippedFile
from assistant.errors import ConfigError
from assistant.formats import SkipFile, decode_text
from assistant.ingest import read_document
from tests.helpers import read_corpus, scan_pages

GOOD_TEXT = "This good file sits next to the bad one and must still be read."


# ---------------------------------------------------------------- helpers


def load(corpus: Path, max_file_mb: float = 50.0, ocr: Ocr = "auto") -> tuple[dict[str, Document], dict[str, str]]:
    documents, skipped = read_corpus(corpus, max_file_mb, ocr=ocr)
    assert all(isinstance(s, SkippedFile) for s in skipped)
    return {d.path: d for d in documents}, {s.path: s.reason for s in skipped}


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for line in pages:
        pdf.add_page()
        pdf.cell(0, 10, line)  # one short line per page: no wrapping
    return bytes(pdf.output())


def make_docx(path: Path, build) -> None:
    document = docx.Document()
    build(document)
    document.save(path)


def random_bytes(size: int, seed: int, low: int = 0, high: int = 256) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(low, high) for _ in range(size))


def assert_skipped_alone(corpus: Path, name: str, pattern: str, max_file_mb: float = 50.0, ocr: Ocr = "auto") -> str:
    """`name` is skipped with a one-line reason matching `pattern`, and the good file beside it is still read."""
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    documents, skipped = load(corpus, max_file_mb, ocr)
    assert list(skipped) == [name]
    reason = skipped[name]
    assert re.search(pattern, reason), reason
    assert "\n" not in reason
    assert list(documents) == ["good.txt"]
    assert documents["good.txt"].text == GOOD_TEXT
    return reason


# ---------------------------------------------------------------- each format is read


def test_txt_file_is_read_verbatim_with_title_from_file_name(corpus: Path) -> None:
    (corpus / "annual_report-2023.txt").write_text("First paragraph.\n\nSecond paragraph.\n", encoding="utf-8")
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents["annual_report-2023.txt"]
    assert doc.text == "First paragraph.\n\nSecond paragraph.\n"
    assert doc.title == "annual report 2023"
    assert len(doc.sha256) == 64
    assert [(s.start, s.end, s.page) for s in doc.sections] == [(0, len(doc.text), None)]


def test_markdown_title_comes_from_first_heading(corpus: Path) -> None:
    (corpus / "notes.md").write_text(
        "Some intro line.\n\n# Border Control Notes\n\nBody text here.\n\n# Later heading\n", encoding="utf-8"
    )
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents["notes.md"]
    assert doc.title == "Border Control Notes"
    assert "Body text here." in doc.text


def test_markdown_without_heading_takes_title_from_file_name(corpus: Path) -> None:
    (corpus / "meeting-notes.md").write_text("Just text, no heading.\n", encoding="utf-8")
    documents, _ = load(corpus)
    assert documents["meeting-notes.md"].title == "meeting notes"


HTML_PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>  Trafficking   Conference </title>
  <style>.menu { color: red; } STYLE_MARKER</style>
  <script>var SCRIPT_MARKER = 1;</script>
</head>
<body>
  <header>HEADER_MARKER site banner</header>
  <nav><a href="/">NAV_MARKER Home</a> | <a href="/about">About</a></nav>
  <script>console.log("BODY_SCRIPT_MARKER");</script>
  <h1>Conference opens</h1>
  <p>The conference opened on
     Tuesday in Islamabad.</p>
  <p>Delegates from <b>twenty</b> countries attended.</p>
  <footer>FOOTER_MARKER copyright</footer>
</body>
</html>
"""


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_title_from_title_tag_boilerplate_dropped_paragraphs_separated(corpus: Path, suffix: str) -> None:
    (corpus / f"page{suffix}").write_text(HTML_PAGE, encoding="utf-8")
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents[f"page{suffix}"]
    assert doc.title == "Trafficking Conference"
    for marker in ("STYLE_MARKER", "SCRIPT_MARKER", "HEADER_MARKER", "NAV_MARKER", "FOOTER_MARKER", "color: red"):
        assert marker not in doc.text
    assert doc.text.split("\n\n") == [
        "Conference opens",
        "The conference opened on Tuesday in Islamabad.",
        "Delegates from twenty countries attended.",
    ]


def test_pdf_pages_become_sections_with_page_numbers(corpus: Path) -> None:
    page1 = "Apples grow in the northern valley."
    page2 = "Bananas are shipped from the southern port."
    (corpus / "fruit.pdf").write_bytes(make_pdf([page1, page2], title="Fruit Report"))
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents["fruit.pdf"]
    assert doc.title == "Fruit Report"
    assert [s.page for s in doc.sections] == [1, 2]
    first, second = doc.sections
    assert doc.text[first.start : first.end] == page1
    assert doc.text[second.start : second.end] == page2
    assert doc.text == page1 + "\n\n" + page2


def test_pdf_without_metadata_title_takes_title_from_file_name(corpus: Path) -> None:
    (corpus / "field_notes.pdf").write_bytes(make_pdf(["Only one page of text."]))
    documents, _ = load(corpus)
    doc = documents["field_notes.pdf"]
    assert doc.title == "field notes"
    assert [s.page for s in doc.sections] == [1]


# ---------------------------------------------------------------- scanned PDFs and images: OCR

SCANNED = ["Delegates from Oman and Qatar arrived on Monday.", "The talks on border control ended on Friday."]
SMALL = (7.0, 1.6)  # inches: a strip of two paragraphs, which Tesseract reads in a fraction of a second


def scanned(paragraphs: list[str]) -> list:
    return scan_pages("\n\n".join(paragraphs), page=SMALL, margin=0.3)


def image_file(suffix: str, pages: list) -> bytes:
    out = io.BytesIO()
    kind = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF"}[suffix]
    pages[0].save(out, format=kind, **({"save_all": True, "append_images": pages[1:]} if pages[1:] else {}))
    return out.getvalue()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_an_image_is_read_by_ocr_as_page_1(corpus: Path, suffix: str) -> None:
    (corpus / f"delegates{suffix}").write_bytes(image_file(suffix, scanned(SCANNED)))
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents[f"delegates{suffix}"]
    assert doc.title == "delegates" and doc.text == "\n\n".join(SCANNED)
    assert doc.sections == (Section(0, len(doc.text), 1, ocr=True),)


def test_a_multi_page_tiff_gives_one_section_per_page(corpus: Path) -> None:
    pages = [scanned([f"Page {word} of the customs report."])[0] for word in ("one", "two", "three")]
    (corpus / "report.tif").write_bytes(image_file(".tif", pages))
    doc = load(corpus)[0]["report.tif"]
    assert [(s.page, s.ocr, doc.text[s.start : s.end]) for s in doc.sections] == [
        (1, True, "Page one of the customs report."),
        (2, True, "Page two of the customs report."),
        (3, True, "Page three of the customs report."),
    ]


def test_a_scanned_pdf_is_read_by_ocr_page_by_page(corpus: Path) -> None:
    pages = scanned(SCANNED[:1]) + scanned(SCANNED[1:])
    pages[0].save(corpus / "scan.pdf", save_all=True, append_images=pages[1:], resolution=200)
    doc = load(corpus)[0]["scan.pdf"]
    assert [(s.page, s.ocr, doc.text[s.start : s.end]) for s in doc.sections] == [
        (1, True, SCANNED[0]),
        (2, True, SCANNED[1]),
    ]


def test_a_pdf_mixing_text_and_scanned_pages_keeps_its_text_layer(corpus: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, "Typed page: the budget grew.")
    pdf.add_page()
    pdf.image(scanned(SCANNED)[0], x=10, y=10, w=178)  # 7 inches wide
    (corpus / "mixed.pdf").write_bytes(bytes(pdf.output()))
    doc = load(corpus)[0]["mixed.pdf"]
    assert [(s.page, s.ocr, doc.text[s.start : s.end]) for s in doc.sections] == [
        (1, False, "Typed page: the budget grew."),
        (2, True, "\n\n".join(SCANNED)),
    ]


def test_with_ocr_off_a_mixed_pdf_keeps_its_text_pages_and_logs_the_others(corpus: Path, caplog) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, "Typed page: the budget grew.")
    pdf.add_page()
    pdf.image(scanned(SCANNED)[0], x=10, y=10, w=178)
    (corpus / "mixed.pdf").write_bytes(bytes(pdf.output()))
    doc = load(corpus, ocr="off")[0]["mixed.pdf"]
    assert doc.text == "Typed page: the budget grew." and [s.ocr for s in doc.sections] == [False]
    assert "mixed.pdf: 1 page(s) without a text layer left out — OCR is off (ASSISTANT_OCR=off;" in caplog.text


def test_without_tesseract_an_image_is_skipped_naming_the_debian_package(corpus: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(corpus))  # auto, and no tesseract on the PATH
    (corpus / "photo.png").write_bytes(image_file(".png", scanned(SCANNED)))
    reason = assert_skipped_alone(corpus, "photo.png", "^image")
    assert reason == "image (its text needs OCR) — install Tesseract to read it: apt-get install tesseract-ocr"


def test_ocr_on_without_tesseract_stops_the_build_before_any_file_is_read(corpus: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(corpus))
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    with pytest.raises(ConfigError, match="ASSISTANT_OCR=on, but Tesseract is not installed"):
        read_corpus(corpus, ocr="on")


def test_ocr_lines_are_joined_into_paragraphs_and_words_split_at_a_line_end_rejoined(
    corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    tesseract = tmp_path / "bin" / "tesseract"  # prints what Tesseract prints for a page: lines as they are set
    tesseract.parent.mkdir()
    tesseract.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--list-langs" ]; then echo eng; exit 0; fi\n'
        "cat > /dev/null\n"
        "printf 'Human traf-\\nficking and migrant\\nsmuggling grew.\\n\\nA well-known\\nroute closed.\\n\\f'\n"
    )
    tesseract.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tesseract.parent}:{os.environ['PATH']}")
    (corpus / "page.png").write_bytes(image_file(".png", scanned(SCANNED)))
    assert load(corpus)[0]["page.png"].text == (
        "Human trafficking and migrant smuggling grew.\n\nA well-known route closed."
    )


def _report(document) -> None:
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew strongly in the north.")
    document.add_paragraph("   ")  # blank paragraph: dropped
    table = document.add_table(rows=2, cols=2)
    for (row, col), value in {(0, 0): "Region", (0, 1): "Sales", (1, 0): "North", (1, 1): "42"}.items():
        table.cell(row, col).text = value


def test_docx_paragraphs_and_table_rows_are_read(corpus: Path) -> None:
    make_docx(corpus / "report.docx", _report)
    documents, skipped = load(corpus)
    assert skipped == {}
    doc = documents["report.docx"]
    assert doc.text.split("\n\n") == [
        "Quarterly Report",
        "Revenue grew strongly in the north.",
        "Region: North · Sales: 42",  # a row after its header cells, so it can be found and read alone
    ]


def _manual(document) -> None:
    document.add_heading("Admin manual", level=1)
    document.add_heading("Installing", level=2)
    document.add_paragraph("Run the installer.")
    table = document.add_table(rows=3, cols=2)
    for (row, col), value in {(0, 0): "Release", (0, 1): "Version", (1, 0): "Bullseye", (1, 1): "11",
                              (2, 0): "Bookworm", (2, 1): "12"}.items():  # fmt: skip
        table.cell(row, col).text = value
    document.add_heading("Upgrading", level=2)
    document.add_paragraph("Back up first.")


def test_docx_headings_bound_sections_and_tables_stay_where_they_are(corpus: Path) -> None:
    make_docx(corpus / "manual.docx", _manual)
    documents, skipped = load(corpus)
    doc = documents["manual.docx"]
    assert doc.text.split("\n\n") == [
        "Admin manual",
        "Installing",
        "Run the installer.",
        "Release: Bullseye · Version: 11\nRelease: Bookworm · Version: 12",
        "Upgrading",
        "Back up first.",
    ]
    assert [(doc.text[s.start : s.end].split("\n")[0], s.heading) for s in doc.sections] == [
        ("Admin manual", ("Admin manual", "Installing")),
        ("Upgrading", ("Admin manual", "Upgrading")),
    ]


def test_docx_title_comes_from_core_properties(corpus: Path) -> None:
    def build(document) -> None:
        document.core_properties.title = "Title From Properties"
        _report(document)

    make_docx(corpus / "report.docx", build)
    documents, _ = load(corpus)
    assert documents["report.docx"].title == "Title From Properties"


@pytest.mark.parametrize("level, style", [(0, "Title"), (1, "Heading 1")])
def test_docx_title_falls_back_to_title_or_heading_1_paragraph(corpus: Path, level: int, style: str) -> None:
    def build(document) -> None:
        document.add_paragraph("An opening remark before the heading.")
        heading = document.add_heading("Styled Heading Title", level=level)
        assert heading.style.name == style

    make_docx(corpus / "memo.docx", build)
    documents, _ = load(corpus)
    assert documents["memo.docx"].title == "Styled Heading Title"


# ---------------------------------------------------------------- the folder walk


def test_subfolders_are_read_with_relative_forward_slash_paths_in_sorted_order(corpus: Path) -> None:
    # created in an order that is neither sorted nor folder by folder
    for rel in ["z.txt", "b/deeper/c.txt", "a.txt", "b/b.txt", "a b/space.txt"]:
        path = corpus / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Contents of {rel}.", encoding="utf-8")
    documents, skipped = read_corpus(corpus)
    paths = [d.path for d in documents]
    assert skipped == []
    assert paths == sorted(["z.txt", "b/deeper/c.txt", "a.txt", "b/b.txt", "a b/space.txt"])
    assert all("\\" not in p and not p.startswith("/") for p in paths)
    assert documents[paths.index("b/deeper/c.txt")].text == "Contents of b/deeper/c.txt."
    again, _ = read_corpus(corpus)
    assert [d.path for d in again] == paths
    assert [d.sha256 for d in again] == [d.sha256 for d in documents]


def test_hidden_files_and_folders_are_ignored(corpus: Path) -> None:
    (corpus / "visible.txt").write_text("Visible text.", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("Hidden file.", encoding="utf-8")
    (corpus / ".git").mkdir()
    (corpus / ".git" / "notes.txt").write_text("Inside a hidden folder.", encoding="utf-8")
    (corpus / "sub" / ".cache").mkdir(parents=True)
    (corpus / "sub" / ".cache" / "x.md").write_text("# Hidden\n", encoding="utf-8")
    (corpus / "sub" / "shown.md").write_text("# Shown\n\nText.\n", encoding="utf-8")
    documents, skipped = read_corpus(corpus)
    assert [d.path for d in documents] == ["sub/shown.md", "visible.txt"]
    assert skipped == []


def test_missing_corpus_folder_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_corpus(tmp_path / "no-such-folder")


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("latin-1", "Le café était très animé. Les élèves mangeaient une crème brûlée à la française."),
        ("cp1252", "“Déjà vu” — a naïve façade for 5 €. Señor Muñoz sagte: Grüße aus Köln!"),
    ],
)
def test_legacy_encoded_text_with_accents_is_decoded_correctly(corpus: Path, encoding: str, text: str) -> None:
    (corpus / "accents.txt").write_bytes(text.encode(encoding))
    documents, skipped = load(corpus)
    assert skipped == {}
    assert documents["accents.txt"].text == text


def test_utf8_bom_is_dropped(corpus: Path) -> None:
    (corpus / "bom.txt").write_bytes("\ufeffCafé opens at nine.".encode("utf-8"))
    (corpus / "bom.md").write_bytes("\ufeff# Heading After BOM\n\nBody.".encode("utf-8"))
    documents, _ = load(corpus)
    assert documents["bom.txt"].text == "Café opens at nine."
    assert documents["bom.md"].text.startswith("# Heading")
    assert documents["bom.md"].title == "Heading After BOM"


def test_crlf_line_endings_become_lf(corpus: Path) -> None:
    (corpus / "windows.txt").write_bytes(b"First line.\r\nSecond line.\r\n\r\nNew paragraph.\r\n")
    documents, _ = load(corpus)
    assert documents["windows.txt"].text == "First line.\nSecond line.\n\nNew paragraph.\n"


def test_read_document_raises_skip_file_with_the_reason(corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf")
    with pytest.raises(SkipFile, match=r"^corrupt or unreadable PDF \("):
        read_document(corpus / "broken.pdf", "broken.pdf", 50.0, corpus)


def test_decode_text_refuses_binary_data() -> None:
    with pytest.raises(SkipFile, match="binary data, not text"):
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


# ---------------------------------------------------------------- every bad input is skipped with a reason


def test_corrupt_pdf_of_random_bytes_is_skipped_with_reason(corpus: Path) -> None:
    (corpus / "random.pdf").write_bytes(random_bytes(4000, seed=1))
    assert_skipped_alone(corpus, "random.pdf", r"^corrupt or unreadable PDF \(")


def test_truncated_pdf_is_skipped_with_reason(corpus: Path) -> None:
    data = make_pdf(["Apples grow in the northern valley.", "Bananas are shipped from the port."])
    (corpus / "truncated.pdf").write_bytes(data[: len(data) // 2])
    assert_skipped_alone(corpus, "truncated.pdf", r"^corrupt or unreadable PDF \(")


def test_pdf_without_text_layer_is_skipped_naming_the_setting_when_ocr_is_off(corpus: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 80, 50)  # a drawing, no text
    (corpus / "scan.pdf").write_bytes(bytes(pdf.output()))
    assert_skipped_alone(corpus, "scan.pdf", r"^scanned \(no text layer\) — OCR is off \(ASSISTANT_OCR=off;", ocr="off")


def test_pdf_page_without_text_layer_or_readable_text_is_skipped_as_having_no_text(corpus: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 80, 50)  # OCR reads nothing in a drawing
    (corpus / "drawing.pdf").write_bytes(bytes(pdf.output()))
    assert_skipped_alone(corpus, "drawing.pdf", "^no text found in the file$")


def test_binary_data_named_txt_is_skipped_as_binary(corpus: Path) -> None:
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + random_bytes(2000, seed=3))
    assert_skipped_alone(corpus, "image.txt", "^binary data, not text$")


def test_empty_file_is_skipped(corpus: Path) -> None:
    (corpus / "empty.txt").write_bytes(b"")
    assert_skipped_alone(corpus, "empty.txt", "^empty file$")


def test_whitespace_only_file_is_skipped_as_having_no_text(corpus: Path) -> None:
    (corpus / "blank.md").write_text("  \n\n\t\n", encoding="utf-8")
    assert_skipped_alone(corpus, "blank.md", "no text found")


def test_unsupported_extension_is_skipped_naming_the_type(corpus: Path) -> None:
    (corpus / "data.xyz").write_text("Readable, but not a supported type.", encoding="utf-8")
    reason = assert_skipped_alone(corpus, "data.xyz", r"unsupported file type \.xyz")
    assert ".pdf" in reason and ".docx" in reason  # tells what is supported


def test_undecodable_text_file_is_skipped_with_reason(corpus: Path) -> None:
    # no NUL bytes (so not "binary"), not UTF-8, and no encoding reads it as language
    (corpus / "garbled.txt").write_bytes(random_bytes(600, seed=5, low=0x80))
    assert_skipped_alone(corpus, "garbled.txt", "cannot decode the text")


def test_file_over_size_limit_is_skipped(corpus: Path) -> None:
    (corpus / "big.txt").write_text("word " * 410, encoding="utf-8")  # 2050 bytes, limit is ~1049
    assert_skipped_alone(corpus, "big.txt", r"over the 0\.001 MB limit", max_file_mb=0.001)


def test_corrupt_docx_of_random_bytes_is_skipped(corpus: Path) -> None:
    (corpus / "random.docx").write_bytes(random_bytes(3000, seed=7))
    assert_skipped_alone(corpus, "random.docx", r"^corrupt or unreadable DOCX \(")


def test_zip_that_is_not_a_docx_is_skipped(corpus: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "This zip archive holds no Word document.")
    (corpus / "archive.docx").write_bytes(buffer.getvalue())
    assert_skipped_alone(corpus, "archive.docx", r"^corrupt or unreadable DOCX \(")


def test_docx_with_damaged_xml_is_skipped(corpus: Path) -> None:
    good = io.BytesIO()
    docx.Document().save(good)
    source = zipfile.ZipFile(io.BytesIO(good.getvalue()))
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w") as archive:
        for item in source.infolist():
            data = source.read(item.filename)
            archive.writestr(item, data[: len(data) // 2] if item.filename == "word/document.xml" else data)
    (corpus / "damaged.docx").write_bytes(damaged.getvalue())
    assert_skipped_alone(corpus, "damaged.docx", r"^corrupt or unreadable DOCX \(")


def _symlink(link: Path, target: Path) -> None:
    os.symlink(target, link)  # Linux, where CI runs: a failure here is a failure, not a skip


def test_symlink_pointing_outside_the_corpus_is_skipped(tmp_path: Path, corpus: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("SECRET text that lives outside the corpus.", encoding="utf-8")
    _symlink(corpus / "link.txt", secret)
    assert_skipped_alone(corpus, "link.txt", "outside the corpus")


def test_symlink_to_a_file_inside_the_corpus_is_read(corpus: Path) -> None:
    (corpus / "real.txt").write_text("Real text.", encoding="utf-8")
    _symlink(corpus / "alias.txt", corpus / "real.txt")
    documents, skipped = load(corpus)
    assert skipped == {}
    assert documents["alias.txt"].text == "Real text."


def test_every_bad_file_gets_a_one_line_reason_and_good_files_are_still_read(corpus: Path) -> None:
    bad = {
        "a-random.pdf": random_bytes(3000, seed=11),
        "b-truncated.pdf": make_pdf(["Some text on a page."])[:300],
        "c-binary.txt": bytes(range(256)) * 8,
        "d-empty.md": b"",
        "e-type.xyz": b"unsupported",
        "f-garbled.txt": random_bytes(600, seed=12, low=0x80),
        "g-random.docx": random_bytes(3000, seed=13),
        "h-big.txt": b"x" * 120_000,
    }
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 30, 30)
    bad["i-scan.pdf"] = bytes(pdf.output())
    for name, data in bad.items():
        (corpus / "bad" / name).parent.mkdir(exist_ok=True)
        (corpus / "bad" / name).write_bytes(data)
    (corpus / "good.txt").write_text("Good text file.", encoding="utf-8")
    (corpus / "good.pdf").write_bytes(make_pdf(["Good PDF page."]))
    make_docx(corpus / "good.docx", lambda d: d.add_paragraph("Good DOCX paragraph."))
    (corpus / "good.html").write_text(
        "<html><head><title>Good</title></head><body><p>Good HTML.</p></body></html>", encoding="utf-8"
    )

    documents, skipped = read_corpus(corpus, max_file_mb=0.1)  # the good DOCX is ~36 KB

    assert [d.path for d in documents] == ["good.docx", "good.html", "good.pdf", "good.txt"]
    assert [s.path for s in skipped] == [f"bad/{name}" for name in sorted(bad)]
    for item in skipped:
        assert item.reason.strip(), item
        assert "\n" not in item.reason and "\r" not in item.reason, item


def test_txt_title_comes_from_a_short_unpunctuated_first_line(corpus: Path) -> None:
    (corpus / "a.txt").write_text("Regional Conference on Border Control\n\nThe conference opened on Tuesday.\n")
    (corpus / "b.txt").write_text("The conference opened on Tuesday.\n\nMore text.\n")
    documents, _ = load(corpus)
    assert documents["a.txt"].title == "Regional Conference on Border Control"
    assert documents["b.txt"].title == "b"


def test_a_pdfs_running_heads_and_page_numbers_are_left_out(corpus: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    topics = ["apt", "dpkg", "mirrors", "keys", "pinning", "backports"]
    for number, topic in enumerate(topics, start=1):
        pdf.add_page()
        for line in (
            f"Admin Guide - Chapter {1 + number // 4}: Packages {number}",
            f"All about {topic} here.",
            f"The {topic} tool is covered on this page.",
            f"See the {topic} manual for more.",
            str(number),
        ):
            pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    (corpus / "guide.pdf").write_bytes(bytes(pdf.output()))
    documents, skipped = load(corpus)
    text = documents["guide.pdf"].text
    assert "Admin Guide" not in text and not re.search(r"^\d+$", text, re.MULTILINE)
    assert text.startswith("All about apt here.\nThe apt tool is covered on this page.")
    assert [s.page for s in documents["guide.pdf"].sections] == [1, 2, 3, 4, 5, 6]


def test_a_pdfs_outline_bounds_sections_under_their_heading_path(corpus: Path) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for level, title, body in [(0, "1 Obtaining R", "Sources can be obtained from CRAN."),
                               (1, "1.1 Getting the sources", "Download the most recent tarball."),
                               (0, "2 Installing R", "Run configure, then make.")]:  # fmt: skip
        pdf.start_section(title, level=level)
        pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 10, body, new_x="LMARGIN", new_y="NEXT")
    (corpus / "admin.pdf").write_bytes(bytes(pdf.output()))
    documents, _ = load(corpus)
    doc = documents["admin.pdf"]
    assert [(doc.text[s.start : s.end].split("\n")[0], s.heading, s.page) for s in doc.sections] == [
        ("1 Obtaining R", ("1 Obtaining R",), 1),
        ("1.1 Getting the sources", ("1 Obtaining R", "1.1 Getting the sources"), 1),
        ("2 Installing R", ("2 Installing R",), 1),
    ]


# ---------------------------------------------------------------- PDF headings from font sizes, without an outline

FRUIT = [
    "Apples grow in the northern valley where the summers are short.",
    "They are picked by hand in the autumn and kept in cold stores.",
    "Most of the crop is sold in the markets of the two largest towns.",
]


def pdf_of_lines(pages: list[list[tuple[float, str]]], bookmarks: tuple[str, ...] = ()) -> bytes:
    """A PDF of these pages, each a list of (font size in points, line) in Helvetica, one line under another; a
    line named in `bookmarks` gets an outline entry."""
    pdf = FPDF()
    for lines in pages:
        pdf.add_page()
        for size, line in lines:
            if line in bookmarks:
                pdf.start_section(line)
            pdf.set_font("Helvetica", size=size)
            pdf.cell(0, size * 0.6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def headed(doc: Document) -> list[tuple[str, tuple[str, ...], int | None]]:
    """Each section's first line, heading path and page."""
    return [(doc.text[s.start : s.end].split("\n")[0], s.heading, s.page) for s in doc.sections]


def test_a_pdf_without_an_outline_takes_its_headings_from_larger_font_sizes(corpus: Path) -> None:
    body = [(10.0, line) for line in FRUIT]
    pages = [[(18, "1 Fruit"), *body, (14, "1.1 Apples"), *body], [(18, "2 Vegetables"), *body]]
    (corpus / "crops.pdf").write_bytes(pdf_of_lines(pages))
    documents, _ = load(corpus)
    assert headed(documents["crops.pdf"]) == [
        ("1 Fruit", ("1 Fruit",), 1),
        ("1.1 Apples", ("1 Fruit", "1.1 Apples"), 1),
        ("2 Vegetables", ("2 Vegetables",), 2),
    ]


def test_a_pdf_whose_lines_are_all_one_size_gets_no_headings(corpus: Path) -> None:
    body = [(10.0, line) for line in FRUIT]
    pages = [[(10, "1 Fruit"), *body, (10, "1.1 Apples"), *body], [(10, "2 Vegetables"), *body]]
    (corpus / "crops.pdf").write_bytes(pdf_of_lines(pages))
    documents, _ = load(corpus)
    assert headed(documents["crops.pdf"]) == [("1 Fruit", (), 1), ("2 Vegetables", (), 2)]


def test_a_pdf_with_an_outline_takes_its_headings_from_the_outline_not_from_font_sizes(corpus: Path) -> None:
    body = [(10.0, line) for line in FRUIT]
    pages = [[(18, "1 Fruit"), *body, (18, "Notes"), *body]]
    (corpus / "crops.pdf").write_bytes(pdf_of_lines(pages, bookmarks=("1 Fruit",)))
    documents, _ = load(corpus)
    assert headed(documents["crops.pdf"]) == [("1 Fruit", ("1 Fruit",), 1)]


def test_a_heading_set_small_and_scaled_up_by_the_page_matrix_counts_at_its_drawn_size(corpus: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=6)
    with pdf.transform(Transform.scaling(3, 3)):  # a `cm` operator: 6 pt drawn as 18 pt
        pdf.cell(0, 4, "Apples", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.set_y(40)
    for line in FRUIT:
        pdf.cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    (corpus / "apples.pdf").write_bytes(bytes(pdf.output()))
    documents, _ = load(corpus)
    assert headed(documents["apples.pdf"]) == [("Apples", ("Apples",), 1)]


def test_a_heading_wrapped_over_two_lines_is_one_heading_and_a_paragraph_in_a_larger_font_is_none(
    corpus: Path,
) -> None:
    body = [(10.0, line) for line in FRUIT]
    abstract = [(12.0, line.rstrip(".")) for line in FRUIT]  # three lines at 12 pt: too long for a heading
    pages = [[(18, "2 Keeping apples fresh through"), (18, "the long northern winter"), *abstract, *body, *body]]
    (corpus / "crops.pdf").write_bytes(pdf_of_lines(pages))
    documents, _ = load(corpus)
    title = "2 Keeping apples fresh through the long northern winter"
    assert headed(documents["crops.pdf"]) == [("2 Keeping apples fresh through", (title,), 1)]


def test_a_poster_of_big_lines_gets_no_headings_and_slides_get_their_titles(corpus: Path) -> None:
    small_print = [(8.0, line + " " + line) for line in FRUIT]  # the most characters: the body size
    poster = [[(24, "Harvest Fair"), (24, "Music all day"), (24, "Cider tasting"), (24, "Saturday"), *small_print]]
    slides = [[(28, title), *((18.0, line) for line in FRUIT)] for title in ("Apples", "Pears", "Plums")]
    (corpus / "poster.pdf").write_bytes(pdf_of_lines(poster))
    (corpus / "slides.pdf").write_bytes(pdf_of_lines(slides))
    documents, _ = load(corpus)
    assert headed(documents["poster.pdf"]) == [("Harvest Fair", (), 1)]
    assert headed(documents["slides.pdf"]) == [
        ("Apples", ("Apples",), 1),
        ("Pears", ("Pears",), 2),
        ("Plums", ("Plums",), 3),
    ]
