"""HTML: the page's main text as blocks under its headings (assistant/structure.py), page furniture left out."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from ..documents import Section
from ..structure import assemble, html_blocks
from .base import Deadline, SkipFile, decode_text

log = logging.getLogger(__name__)

# ~0.8 KB and ~30 µs each in BeautifulSoup's tree: 200,000 stay near 160 MB and 6 s
# (docs/reliability.md#why-these-limits)
HTML_MAX_TAGS = 200_000
_HTML_DROP = {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"}
_HTML_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "td",
    "th",
    "pre",
    "blockquote",
    "figure",
    "figcaption",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "title",
    "hr",
}
_BLOCK_END = object()  # marks where a block element ends, in _html_text's stack


def read_html(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    from bs4 import BeautifulSoup

    markup = decode_text(data)
    # lxml's parser is linear on any input; Python's html.parser (3.11) is quadratic on some unclosed markup
    tags = markup.count("<") - markup.count("</") + markup.count("=")
    if tags > HTML_MAX_TAGS:
        raise SkipFile(
            f"HTML has about {tags:,} tags and attributes, over the limit of {HTML_MAX_TAGS:,} "
            "— split the page or save it as text"
        )
    with warnings.catch_warnings(record=True) as caught:  # XHTML read as HTML warns at length, and lxml reads it well
        soup = BeautifulSoup(markup, "lxml")
    for warning in caught:
        log.debug("%s: %s", path.name, warning.message)
    title_tag = soup.find("title") or soup.find("h1")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    blocks = html_blocks(soup, deadline)
    if any(not block.level for block in blocks):
        return title, *assemble(blocks)
    # all of it looked like navigation (an index of links, say): the page's whole text, as it was read before
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", _html_text(soup))]
    return title, "\n\n".join(p for p in paragraphs if p), []


def _html_text(soup) -> str:
    """The page's text, a blank line around each block; a loop with a stack, so any depth of nesting is linear."""
    from bs4 import CData, NavigableString, Tag

    parts: list[str] = []
    stack: list = [soup]
    while stack:
        node = stack.pop()
        if node is _BLOCK_END:
            parts.append("\n\n")
        elif isinstance(node, Tag):
            if node.name in _HTML_DROP or node.name == "head":
                continue
            if node.name == "br":
                parts.append("\n")
            elif node.name in _HTML_BLOCKS:
                parts.append("\n\n")
                stack.append(_BLOCK_END)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes or processing instructions
            parts.append(node)
    return "".join(parts)
