"""Hostile DOCX files: zip bombs, lying zip sizes, too many XML tags, long vertical merges,
many paragraphs without headings, and the time limit."""

from __future__ import annotations

import re

from tests.helpers import read_corpus
from tests.system.hostile_files.helpers import _read_alone, docx_with_body, zip_bomb_docx


def test_a_docx_zip_bomb_is_skipped_before_it_is_unpacked(corpus):
    data = zip_bomb_docx(150)
    assert len(data) < 400_000
    texts, skipped, seconds = _read_alone(corpus, "bomb.docx", data)
    assert texts == {}
    assert re.fullmatch(r"DOCX would unpack to 15\d MB, over the limit of 64 MB — a zip bomb\?", skipped["bomb.docx"])
    assert seconds < 5


def test_a_docx_whose_zip_sizes_lie_is_refused_at_the_declared_size(corpus):
    real = docx_with_body("<w:p><w:r><w:t>Liar.</w:t></w:r></w:p>", {"word/media/zeros.bin": bytes(20 << 20)})
    name = b"word/media/zeros.bin"
    central = real.index(name, real.index(b"PK\x01\x02")) - 46  # its record in the central directory
    local = real.index(name) - 30  # its local header, before its data
    lying = bytearray(real)
    lying[central + 24 : central + 28] = (1000).to_bytes(4, "little")  # declares 1,000 bytes, inflates to 20 MB
    lying[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    texts, skipped, _ = _read_alone(corpus, "liar.docx", bytes(lying))
    assert texts == {}
    assert skipped["liar.docx"].startswith("corrupt or unreadable DOCX (BadZipFile: Bad CRC-32")


def test_a_docx_with_too_many_xml_tags_is_skipped_naming_the_limit(corpus):
    texts, skipped, seconds = _read_alone(corpus, "tags.docx", docx_with_body("<w:p/>" * 1_000_001))
    assert texts == {}
    assert skipped == {"tags.docx": "DOCX holds over 1,000,000 XML tags — split the document, or save it as PDF"}
    assert seconds < 5


def test_a_docx_with_a_long_vertical_merge_is_read_in_one_pass(corpus):
    top = (
        "<w:tr><w:tc><w:tcPr><w:vMerge w:val='restart'/></w:tcPr><w:p><w:r><w:t>merged</w:t></w:r></w:p></w:tc></w:tr>"
    )
    below = "<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc></w:tr>"
    body = "<w:tbl><w:tblGrid><w:gridCol w:w='100'/></w:tblGrid>" + top + below * 3000 + "</w:tbl>"
    texts, skipped, seconds = _read_alone(corpus, "merged.docx", docx_with_body(body))
    assert skipped == {}
    # as python-docx's row.cells has it: the first row is the header, and a cell equal to its header stands alone
    assert texts["merged.docx"].split("\n") == ["merged"] * 3000
    assert seconds < 10  # python-docx recursed up the merge for each row: 33 s, then RecursionError


def test_a_docx_without_headings_is_read_without_a_style_lookup_per_paragraph(corpus):
    body = "<w:p><w:r><w:t>A paragraph of plain words.</w:t></w:r></w:p>" * 20_000
    texts, skipped, seconds = _read_alone(corpus, "plain.docx", docx_with_body(body))
    assert skipped == {} and texts["plain.docx"].count("plain words") == 20_000
    assert seconds < 10  # paragraph.style took 1.4 ms each: 28 s


def test_a_docx_made_to_take_long_is_skipped_at_the_time_limit(corpus):
    (corpus / "slow.docx").write_bytes(docx_with_body("<w:p/>" * 150_000))
    documents, skipped = read_corpus(corpus, max_file_seconds=0.5)
    assert documents == []
    assert [s.reason for s in skipped] == [
        "reading took over 0.5 s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit"
    ]
