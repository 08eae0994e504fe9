"""Hostile text files: a reader's lone surrogates stored as replacement characters, and a
100 MB text file read within 500 MB under a raised limit."""

from __future__ import annotations

from assistant.index.faiss.store import open_index
from tests.system.hostile_files.helpers import build, measure


def test_text_with_lone_surrogates_is_stored_with_replacement_characters(settings, corpus, fake_embedder, monkeypatch):
    import assistant.formats

    monkeypatch.setattr(
        assistant.formats, "read_text", lambda data, path, *args: ("Ti\ud800tle", "Broken \udfff font map.", [])
    )
    (corpus / "font.txt").write_text("whatever", encoding="utf-8")
    build(settings, fake_embedder)
    index = open_index(settings.index)
    try:
        row = index.documents(["font.txt"])["font.txt"]
        assert (row["title"], row["text"]) == ("Ti\ufffdtle", "Broken \ufffd font map.")
    finally:
        index.close()


def test_a_100_mb_text_file_under_a_raised_limit_is_read_within_500_mb(tmp_path, reliability):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(corpus / "big.txt", "wb") as big:
        lines = b"The harbour handles copper, wine and fruit for the whole of the central valley.\n" * 13_000
        for _ in range(100):  # 100 writes of about 1 MB
            big.write(lines)
    assert (corpus / "big.txt").stat().st_size > 99 * 1024 * 1024
    [row] = measure(corpus, max_file_mb=200)
    assert row["outcome"] == "indexed"
    assert row["seconds"] <= 30 and row["growth_mb"] <= 500, row
    reliability(
        "files",
        "100 MB text file read under a 200 MB limit",
        tried=1,
        survived=1,
        detail=f"{row['seconds']:.1f} s, peak +{row['growth_mb']:.0f} MB",
    )
