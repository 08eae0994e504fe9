import re
from dataclasses import replace

import pytest

from assistant.errors import ConfigError
from assistant.question import MAX_QUESTION_CHARS
from assistant.serve import serve
from assistant.serve.examples import SEED_ARTICLE, SEED_EXAMPLES, load_examples
from assistant.service import Assistant
from tests.helpers import free_port


def test_examples_default_to_the_seed_articles_only_over_a_corpus_that_holds_it(settings, corpus):
    assert load_examples(settings) == []
    (corpus / SEED_ARTICLE).write_text("The seed article.")
    assert load_examples(settings) == SEED_EXAMPLES


def test_examples_come_from_the_file_of_lines_without_blanks_or_comments(settings, corpus, tmp_path):
    (corpus / SEED_ARTICLE).write_text("The seed article.")
    listed = tmp_path / "examples.txt"
    listed.write_text("# for the handbook\nHow do I upgrade?\n\n   \n  Where are the logs?  \n")
    chosen = replace(settings, examples=listed)
    assert load_examples(chosen) == ["How do I upgrade?", "Where are the logs?"]
    listed.write_text("# none yet\n")
    assert load_examples(chosen) == []


def test_an_examples_file_that_cannot_be_read_is_a_config_error_naming_it_and_the_fix(settings, tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(
        ConfigError, match=f"ASSISTANT_EXAMPLES file {re.escape(str(missing))} cannot be read .* or unset it"
    ):
        load_examples(replace(settings, examples=missing))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Qui a parl\xe9 ?\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=re.escape("cannot be read (it is not UTF-8 text)")):
        load_examples(replace(settings, examples=latin))
    long = tmp_path / "long.txt"
    long.write_text("Who spoke?\n" + "x" * (MAX_QUESTION_CHARS + 1) + "\n")
    with pytest.raises(
        ConfigError,
        match=f"ASSISTANT_EXAMPLES file {re.escape(str(long))}, line 2: .*the limit is {MAX_QUESTION_CHARS}",
    ):
        load_examples(replace(settings, examples=long))


def test_serve_stops_on_a_bad_examples_file_before_building_the_index(settings, corpus, fake_embedder, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("served"))
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    assistant = Assistant(replace(settings, examples=corpus / "missing.txt", port=free_port()), fake_embedder)
    with pytest.raises(ConfigError, match="ASSISTANT_EXAMPLES file"):
        serve(assistant)
    assert not assistant.has_index()
