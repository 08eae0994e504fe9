"""Hostile HTML: deep nesting and unclosed markup read in linear time, too many tags skipped
naming the limit."""

from __future__ import annotations

from tests.system.hostile_files.helpers import _read_alone


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
    assert skipped == {
        "huge.html": "HTML has about 200,001 tags and attributes, over the limit of 200,000 "
        "— split the page or save it as text"
    }
