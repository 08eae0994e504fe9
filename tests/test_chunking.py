"""Chunking: paragraphs first, then sentences, then words; bounded by word pieces; pages kept; context added.

The tokenizer is the fake embedder's word/punctuation splitter, so token counts are exact and no model is loaded.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from assistant.chunking import chunk_document
from assistant.documents import Chunk, Document, Section
from tests.helpers import read_corpus

TITLE = "Border Conference Report"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def tok(fake_embedder):
    return fake_embedder


def count(tok, text: str) -> int:
    return len(tok.offsets(text))


def make_doc(
    text: str, title: str = TITLE, path: str = "docs/report.txt", sections: tuple[Section, ...] = ()
) -> Document:
    return Document(path, title, text, hashlib.sha256(text.encode()).hexdigest(), sections)


def sentence(i: int) -> str:
    """12 tokens: 'Sentence number 7 talks about topic 7 in some detail here .'"""
    return f"Sentence number {i} talks about topic {i} in some detail here."


def medium_paragraph(i: int) -> str:
    """About 30 tokens, three sentences."""
    return (
        f"Paragraph {i} opens with a statement about border control. "
        f"It continues with details of the investigations number {i}. "
        f"It ends with a note on the protection of victims."
    )


def assert_invariants(tok, doc: Document, chunks: list[Chunk], chunk_tokens: int, max_tokens: int) -> None:
    assert chunks
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.source == doc.path
        assert count(tok, chunk.text) <= chunk_tokens, chunk.text
        assert count(tok, chunk.embed_text) <= max_tokens, chunk.embed_text
        assert chunk.embed_text.endswith(chunk.text)
    assert len({c.id for c in chunks}) == len(chunks)
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


def mixed_document() -> Document:
    long_paragraph = " ".join(sentence(i) for i in range(30))
    long_sentence = " ".join(f"well-known{i} don't{i}" for i in range(60)) + "."
    return make_doc(
        "\n\n".join(
            [
                "Introduction",
                medium_paragraph(1),
                long_paragraph,
                "Notes",
                long_sentence,
                medium_paragraph(2),
            ]
        )
    )


# ---------------------------------------------------------------- exact text, stable ids


def test_chunk_text_is_exactly_the_document_slice(tok) -> None:
    doc = mixed_document()
    chunks = chunk_document(doc, tok, 40, 10, 60)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]


def test_chunk_ids_are_stable_across_calls_and_differ_between_chunks(tok) -> None:
    doc = mixed_document()
    first = chunk_document(doc, tok, 40, 10, 60)
    second = chunk_document(doc, tok, 40, 10, 60)
    assert [c.id for c in first] == [c.id for c in second]
    assert first == second
    assert len({c.id for c in first}) == len(first)
    other = chunk_document(make_doc(doc.text, path="docs/other.txt"), tok, 40, 10, 60)
    assert not {c.id for c in other} & {c.id for c in first}  # the id names the source too


# ---------------------------------------------------------------- paragraphs


def test_each_medium_paragraph_becomes_its_own_chunk(tok) -> None:
    paragraphs = [medium_paragraph(i) for i in range(5)]
    doc = make_doc("\n\n".join(paragraphs) + "\n")
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert [c.text for c in chunks] == paragraphs
    assert_invariants(tok, doc, chunks, 128, 254)


@pytest.mark.parametrize("separator", ["  \n\n", "\n   \n", "\t\n\n", "\n\n\n\n", " \n \t \n  "])
def test_paragraphs_split_despite_spaces_around_the_blank_line(tok, separator: str) -> None:
    paragraphs = [medium_paragraph(i) for i in range(4)]
    doc = make_doc(separator.join(paragraphs))
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert [c.text for c in chunks] == paragraphs


def test_single_line_breaks_do_not_split_a_paragraph(tok) -> None:
    paragraph = "A paragraph wrapped\nover several lines\nby a text editor that\nbreaks lines at a fixed width."
    doc = make_doc(paragraph + "\n\n" + medium_paragraph(1))
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert [c.text for c in chunks] == [paragraph, medium_paragraph(1)]


def test_short_heading_paragraph_is_joined_to_the_next(tok) -> None:
    doc = make_doc("\n\n".join(["Background", medium_paragraph(1), "Findings", medium_paragraph(2)]))
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert [c.text for c in chunks] == [
        "Background\n\n" + medium_paragraph(1),
        "Findings\n\n" + medium_paragraph(2),
    ]
    assert_invariants(tok, doc, chunks, 128, 254)


def test_short_heading_before_a_long_paragraph_opens_its_first_window(tok) -> None:
    long_paragraph = " ".join(sentence(i) for i in range(10))
    doc = make_doc("\n\n".join([medium_paragraph(1), "Findings", long_paragraph]))
    chunks = chunk_document(doc, tok, 40, 12, 254)
    assert_invariants(tok, doc, chunks, 40, 254)
    assert "Findings" not in [c.text for c in chunks]  # never a chunk of its own
    assert chunks[1].text.startswith("Findings\n\n" + sentence(0))
    assert chunks[-1].text.endswith(sentence(9))


def test_a_heading_joins_a_paragraph_that_fills_the_chunk_past_the_chunk_size(tok) -> None:
    doc = make_doc("\n\n".join(["Background", medium_paragraph(1)]))
    size = count(tok, medium_paragraph(1))  # the paragraph fits alone, not with the heading
    chunks = chunk_document(doc, tok, size, 0, 254)
    assert [c.text for c in chunks] == ["Background\n\n" + medium_paragraph(1)]
    assert count(tok, chunks[0].text) == size + 1 <= 254


def test_a_very_short_last_paragraph_closes_the_one_before_it(tok) -> None:
    doc = make_doc("\n\n".join([medium_paragraph(1), "New in version 3.5."]))
    chunks = chunk_document(doc, tok, count(tok, medium_paragraph(1)), 0, 254)
    assert [c.text for c in chunks] == [doc.text]


def test_a_heading_past_the_models_limit_with_its_paragraph_opens_their_first_window(tok) -> None:
    doc = make_doc("\n\n".join(["Background", medium_paragraph(1)]))
    size = count(tok, medium_paragraph(1))
    chunks = chunk_document(doc, tok, size, 0, size + 2)  # the model's limit leaves no room for the heading
    assert_invariants(tok, doc, chunks, size, size + 2)
    assert len(chunks) == 2 and chunks[0].text.startswith("Background\n\nParagraph 1")
    assert chunks[-1].text.endswith(medium_paragraph(1)[-20:])


# ---------------------------------------------------------------- long paragraphs: sentence windows


def long_paragraph_doc(sentences: int = 20) -> tuple[Document, list[tuple[int, int]]]:
    """A short paragraph, then one long paragraph of 12-token sentences; returns the sentences' spans."""
    intro = medium_paragraph(0)
    parts = [sentence(i) for i in range(sentences)]
    text = intro + "\n\n" + " ".join(parts)
    spans, position = [], len(intro) + 2
    for part in parts:
        spans.append((position, position + len(part)))
        position += len(part) + 1
    return make_doc(text), spans


@pytest.mark.parametrize("chunk_tokens, overlap", [(40, 15), (40, 12), (64, 30), (36, 12)])
def test_long_paragraph_is_split_at_sentences_into_overlapping_windows(tok, chunk_tokens: int, overlap: int) -> None:
    doc, spans = long_paragraph_doc()
    chunks = chunk_document(doc, tok, chunk_tokens, overlap, 254)
    assert_invariants(tok, doc, chunks, chunk_tokens, 254)
    assert chunks[0].text == medium_paragraph(0)
    windows = chunks[1:]
    assert len(windows) > 2
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    for window in windows:
        assert window.start in starts and window.end in ends  # whole sentences only
        assert count(tok, window.text) <= chunk_tokens
    assert windows[0].start == spans[0][0] and windows[-1].end == spans[-1][1]  # the whole paragraph is covered
    for before, after in zip(windows, windows[1:]):
        assert before.start < after.start < before.end < after.end  # consecutive windows overlap...
        shared = doc.text[after.start : before.end]
        assert 0 < count(tok, shared) <= overlap  # ...by at most `overlap` pieces


def test_long_paragraph_windows_do_not_overlap_when_overlap_is_zero(tok) -> None:
    doc, spans = long_paragraph_doc()
    chunks = chunk_document(doc, tok, 40, 0, 254)
    assert_invariants(tok, doc, chunks, 40, 254)
    windows = chunks[1:]
    assert len(windows) > 2
    for before, after in zip(windows, windows[1:]):
        assert before.end < after.start
        assert doc.text[before.end : after.start].isspace()  # nothing is lost between windows
    covered = [span for span in spans if any(w.start <= span[0] and span[1] <= w.end for w in windows)]
    assert covered == spans
    assert sum(count(tok, w.text) for w in windows) == sum(count(tok, doc.text[s:e]) for s, e in spans)


def test_sentence_longer_than_chunk_tokens_is_cut_between_words(tok) -> None:
    words = [f"well-known{i} don't{i}" for i in range(40)]  # every word is several pieces: well - known0, don ' t0
    text = "Here is a run-on sentence: " + " ".join(words) + "."
    doc = make_doc(text)
    vocabulary = set(text.split())
    for chunk_tokens in (16, 17, 20, 33):
        chunks = chunk_document(doc, tok, chunk_tokens, 0, 254)
        assert_invariants(tok, doc, chunks, chunk_tokens, 254)
        assert len(chunks) > 3
        for chunk in chunks:
            assert chunk.start == 0 or text[chunk.start - 1] == " "  # starts at a word
            assert chunk.end == len(text) or text[chunk.end] == " "  # ends at a word
            assert set(chunk.text.split()) <= vocabulary  # no word cut in two
        assert " ".join(c.text for c in chunks) == text  # nothing lost or repeated


def test_a_block_of_lines_longer_than_a_chunk_is_cut_between_lines_not_sentences(tok) -> None:
    # a listing with sentence ends inside its lines: windows of sentences would cut lines in two
    lines = [f"    drwxr-xr-x {i} root staff 4096 Sep. 29 /usr/local/dir{i}. Done." for i in range(30)]
    text = "Listing:\n\n" + "\n".join(lines)
    doc = make_doc(text)
    chunks = chunk_document(doc, tok, 60, 20, 254)
    assert_invariants(tok, doc, chunks, 60, 254)
    assert len(chunks) > 3
    for chunk in chunks:
        assert {line.strip() for line in chunk.text.splitlines() if line.strip()} <= {"Listing:"} | {
            line.strip() for line in lines
        }
    assert chunks[0].text.startswith("Listing:\n\n" + lines[0])
    assert chunks[-1].text.endswith(lines[-1])


# ---------------------------------------------------------------- limits and embed_text


@pytest.mark.parametrize(
    "chunk_tokens, overlap, max_tokens", [(128, 24, 254), (40, 10, 60), (40, 10, 42), (16, 0, 16), (20, 8, 254)]
)
def test_no_chunk_exceeds_chunk_tokens_and_embed_text_fits_max_tokens(
    tok, chunk_tokens: int, overlap: int, max_tokens: int
) -> None:
    doc = mixed_document()
    chunks = chunk_document(doc, tok, chunk_tokens, overlap, max_tokens)
    assert_invariants(tok, doc, chunks, chunk_tokens, max_tokens)


def test_very_long_title_is_cut_so_embed_text_fits_max_tokens(tok) -> None:
    title = " ".join(f"Title{i}" for i in range(300))
    doc = make_doc("\n\n".join(medium_paragraph(i) for i in range(3)), title=title)
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert len(chunks) == 3
    assert_invariants(tok, doc, chunks, 128, 254)
    for chunk in chunks:
        assert chunk.embed_text.startswith("Title0 Title1 Title2")


def test_embed_text_starts_with_title_and_holds_the_preceding_sentence(tok) -> None:
    before = "The minister arrived after the morning break. Ahsan Iqbal spoke next."
    quote = '"It was great," he said.'
    doc = make_doc("\n\n".join([medium_paragraph(1), before, quote, medium_paragraph(2)]))
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert [c.text for c in chunks] == [medium_paragraph(1), before, quote, medium_paragraph(2)]
    said = chunks[2]
    assert "Ahsan Iqbal" not in said.text
    assert "Ahsan Iqbal" in said.embed_text
    assert said.embed_text == f"{TITLE}\nAhsan Iqbal spoke next.\n{quote}"
    assert "The minister arrived" not in said.embed_text  # only the sentence right before
    for chunk in chunks:
        assert chunk.embed_text.startswith(TITLE + "\n")


def test_first_chunk_has_no_preceding_context(tok) -> None:
    doc = make_doc(medium_paragraph(1) + "\n\n" + medium_paragraph(2))
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert chunks[0].embed_text == f"{TITLE}\n{medium_paragraph(1)}"


def test_preceding_context_is_trimmed_to_the_budget_keeping_its_end(tok) -> None:
    before = "The delegates from all participating countries listened carefully as Ahsan Iqbal spoke next."
    quote = '"It was great," he said in his closing remarks to all.'
    doc = make_doc(before + "\n\n" + quote)
    title_and_text = count(tok, TITLE) + count(tok, quote)
    max_tokens = title_and_text + 2 + 4  # room for 4 pieces of context
    chunks = chunk_document(doc, tok, 128, 24, max_tokens)
    assert_invariants(tok, doc, chunks, 128, max_tokens)
    assert chunks[1].embed_text == f"{TITLE}\nIqbal spoke next.\n{quote}"


# ---------------------------------------------------------------- pages


def pdf_like_document() -> Document:
    page1 = "\n\n".join([medium_paragraph(1), " ".join(sentence(i) for i in range(8)), "Page 1 of 2"])
    page2 = "\n\n".join(["Continued", " ".join(sentence(i) for i in range(8, 14)), medium_paragraph(2)])
    text = page1 + "\n\n" + page2
    start2 = len(page1) + 2
    return make_doc(text, path="scan.pdf", sections=(Section(0, len(page1), 1), Section(start2, len(text), 2)))


def test_pdf_chunks_carry_their_page_and_never_cross_a_page_boundary(tok) -> None:
    doc = pdf_like_document()
    page1, page2 = doc.sections
    chunks = chunk_document(doc, tok, 40, 12, 254)
    assert_invariants(tok, doc, chunks, 40, 254)
    assert {c.page for c in chunks} == {1, 2}
    for chunk in chunks:
        section = page1 if chunk.page == 1 else page2
        assert section.start <= chunk.start < chunk.end <= section.end, (chunk.page, chunk.text)
    pages = [c.page for c in chunks]
    assert pages == sorted(pages)
    last_of_page1 = [c for c in chunks if c.page == 1][-1]
    assert last_of_page1.text.endswith(sentence(7) + "\n\nPage 1 of 2")  # the footer closes its page's last chunk
    assert [c for c in chunks if c.page == 2][0].text.startswith("Continued\n\n")


def test_plain_document_chunks_have_no_page(tok) -> None:
    doc = mixed_document()
    chunks = chunk_document(doc, tok, 40, 10, 254)
    assert {c.page for c in chunks} == {None}


# ---------------------------------------------------------------- the seed article


def seed_chunks(tok, corpus: Path) -> tuple[Document, list[Chunk]]:
    documents, skipped = read_corpus(corpus)
    assert skipped == []
    assert len(documents) == 1
    doc = documents[0]
    return doc, chunk_document(doc, tok, 128, 24, 254)


def test_seed_article_gives_one_chunk_per_paragraph(tok, seed_corpus: Path) -> None:
    doc, chunks = seed_chunks(tok, seed_corpus)
    assert len(chunks) >= 10
    assert_invariants(tok, doc, chunks, 128, 254)
    for chunk in chunks:
        assert chunk.start == 0 or doc.text[chunk.start - 2 : chunk.start] == "\n\n"  # starts a paragraph
    said = next(c for c in chunks if c.text.startswith("“Under the present Government"))
    assert "Ahsan Iqbal" in said.embed_text and "Ahsan Iqbal" not in said.text


def test_seed_article_with_trailing_spaces_and_crlf_still_gives_one_chunk_per_paragraph(tok, seed_corpus: Path) -> None:
    (path,) = seed_corpus.glob("*.txt")
    text = path.read_text(encoding="utf-8")
    path.write_bytes(re.sub(r"\n", "  \r\n", text).encode("utf-8"))
    doc, chunks = seed_chunks(tok, seed_corpus)
    assert len(chunks) >= 10
    assert_invariants(tok, doc, chunks, 128, 254)


def test_one_line_heading_without_closing_punctuation_is_joined_to_its_paragraph(tok) -> None:
    heading = "Effects of border cooperation on trafficking investigations in the region"
    body = medium_paragraph(1)
    doc = make_doc(f"{heading}\n\n{body}\n\n{medium_paragraph(2)}")
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert len(chunks) == 2
    assert chunks[0].text == f"{heading}\n\n{body}"


def test_one_line_sentence_ending_with_a_period_is_not_a_heading(tok) -> None:
    line = "The delegates agreed on a plan to share information on smuggling routes."
    doc = make_doc(f"{line}\n\n{medium_paragraph(1)}")
    assert [c.text for c in chunk_document(doc, tok, 128, 24, 254)][0] == line


# ---------------------------------------------------------------- sections and their headings


class Pieces:
    """A word-piece tokenizer in miniature: words longer than three letters split into pieces of three, as
    WordPiece splits rare words, so that a cut at a piece can fall inside a word."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\w{1,3}|[^\w\s]", text)]


def test_the_context_before_a_chunk_starts_at_a_word_not_inside_one() -> None:
    pieces = Pieces()
    before = "The delegates listened carefully as Ahsan Iqbal spoke."
    quote = '"It was great," he said.'
    doc = make_doc(before + "\n\n" + quote, title="T")
    max_tokens = count(pieces, "T") + count(pieces, quote) + 2 + 4  # room for 4 pieces: "al spo ke ."
    chunks = chunk_document(doc, pieces, 128, 24, max_tokens)
    context = chunks[1].embed_text.split("\n")[1]
    assert context == "spoke." and before.endswith(" " + context)  # the pieces alone began with "al spoke."


def test_a_title_too_long_for_the_budget_is_cut_after_a_whole_word() -> None:
    pieces = Pieces()
    doc = make_doc("Short text.", title="Regional conference proceedings")
    chunks = chunk_document(doc, pieces, 128, 24, count(pieces, "Short text.") + 2 + 5)
    assert chunks[0].embed_text.split("\n")[0] == "Regional"  # 5 pieces end inside "conference"


def headed_document() -> Document:
    install = "Run the installer from the first disc and answer its questions."
    upgrade = "Back up your data first. Then change the sources and upgrade every package."
    text = f"{install}\n\n{upgrade}"
    sections = (
        Section(0, len(install), heading=("Guide", "Installing")),
        Section(len(install) + 2, len(text), heading=("Guide", "Upgrading")),
    )
    return make_doc(text, title="Admin guide", sections=sections)


def test_no_chunk_crosses_a_section_and_each_carries_its_heading_path(tok) -> None:
    doc = headed_document()
    chunks = chunk_document(doc, tok, 128, 24, 254)  # room for both paragraphs in one chunk
    assert_invariants(tok, doc, chunks, 128, 254)
    assert [c.section for c in chunks] == ["Guide › Installing", "Guide › Upgrading"]
    for chunk, section in zip(chunks, doc.sections):
        assert section.start <= chunk.start and chunk.end <= section.end
        assert chunk.embed_text.split("\n")[:2] == ["Admin guide", chunk.section]


def test_the_context_of_a_chunk_stays_in_its_section_but_crosses_a_page_break(tok) -> None:
    headed = chunk_document(headed_document(), tok, 128, 24, 254)
    assert "installer" not in headed[1].embed_text  # the sentence before it belongs to another heading
    first, second = "The talks opened on Monday.", "They closed on Friday."
    paged = make_doc(f"{first}\n\n{second}", sections=(Section(0, len(first), 1), Section(len(first) + 2, 50, 2)))
    chunks = chunk_document(paged, tok, 128, 24, 254)
    assert chunks[1].page == 2 and first in chunks[1].embed_text


def test_an_ocr_section_marks_its_chunks() -> None:
    doc = make_doc("Scanned words.", sections=(Section(0, 14, 1, ocr=True),))
    assert [c.ocr for c in chunk_document(doc, Pieces(), 128, 24, 254)] == [True]


def test_a_lead_in_ending_with_a_colon_joins_the_block_it_introduces(tok) -> None:
    lead = "To see what would be upgraded, run the following command as root on the server:"
    code = "$ apt list --upgradable\n$ apt full-upgrade"
    after = "The first command changes nothing; the second one installs the new versions of every package."
    doc = make_doc(f"{lead}\n\n{code}\n\n{after}")
    chunks = chunk_document(doc, tok, 128, 24, 254)
    assert_invariants(tok, doc, chunks, 128, 254)
    assert [c.text for c in chunks] == [f"{lead}\n\n{code}", after]


def test_paragraphs_under_a_heading_join_up_to_the_chunk_size_and_plain_paragraphs_stay_apart(tok) -> None:
    paragraphs = [
        "Back up your data and your configuration first.",  # 9 pieces each: none is short enough to join
        "Then change the sources to the new release name.",
        "Then upgrade every package of the whole system.",
    ]
    text = "\n\n".join(paragraphs)
    headed = make_doc(text, sections=(Section(0, len(text), heading=("Upgrading",)),))
    assert [c.text for c in chunk_document(headed, tok, 128, 24, 254)] == [text]
    assert [c.text for c in chunk_document(make_doc(text), tok, 128, 24, 254)] == paragraphs
    small = chunk_document(headed, tok, 20, 2, 254)  # two paragraphs fit in 20 pieces, not three
    assert [c.text for c in small] == ["\n\n".join(paragraphs[:2]), paragraphs[2]]


def test_sentences_of_many_texts_are_each_text_s_sentence_spans():
    from assistant.chunking import sentence_spans, sentences_of

    texts = ["  Oman sent two. Qatar sent three!  ", "", "One line without a stop", "Dr. Khan spoke. Then he left."]
    assert sentences_of(texts) == [sentence_spans(text, 0, len(text)) for text in texts]
    assert sentences_of(texts)[0] == [(2, 16), (17, 34)]
