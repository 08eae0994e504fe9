"""A document's structure from its markup: blocks of text under headings, assembled into the document's text and
its sections (one per heading, with the path of headings above it), so that no chunk crosses a heading."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .documents import Section

# roles and tags that hold a site's navigation, banners and footers rather than the page's own text
_ARIA_DROP = {"navigation", "banner", "contentinfo", "search", "complementary", "menu", "menubar", "toolbar"}
_TAG_DROP = {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe"}
_BLOCKS = {"p", "div", "section", "article", "main", "blockquote", "figure", "figcaption", "dt", "dd", "hr", "body"}
_LISTS = {"ul", "ol", "dl"}
_SPACED = _BLOCKS | _LISTS | {"li", "tr", "td", "th", "br", "pre", "table", "h1", "h2", "h3", "h4", "h5", "h6"}
_HEADING = re.compile(r"h([1-6])")
# class or id words of page furniture, as generated sites name it (readability's "unlikely candidates", in
# short); an element so named is dropped unless it holds a heading or code, which furniture does not
_FURNITURE = re.compile(
    r"(?<![a-z])(nav\w*|\w*nav(?:bar|igation)?|footer|header|breadcrumbs?|toc|menu\w*|related|cookies?|banner|"
    r"masthead|pager|pagination|skip-?link|copyright)(?![a-z])"
)
# "sidebar" names a site's side column, but also DocBook's boxed notes (Tip, Culture, Security …), which are
# text: a sidebar goes when at least half of its text is links
_SIDEBAR = re.compile(r"(?<![a-z])sidebar\w*(?![a-z])")
SIDEBAR_LINK_DENSITY = 0.5
_BREAK = "\x00"  # a <br> in a block's text, until its spaces are normalized
# A list, table or block whose text is mostly link text, with several links, is navigation: a table of
# contents, breadcrumbs, "Prev Up Next" bars (boilerpipe's and readability's link-density rule).
LINK_DENSITY = 0.7
MIN_LINKS = 2
_PERMALINK = "¶"  # Sphinx's heading anchors
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")


@dataclass(frozen=True)
class Block:
    """A heading (level 1 to 6) or a block of text (level 0); `text` may hold line breaks (code, lists, tables)."""

    text: str
    level: int = 0


def assemble(blocks: list[Block]) -> tuple[str, list[Section]]:
    """The text (blocks apart by a blank line) and its sections: each run of headings starts one, under the
    path of headings above it; the text before the first heading is a section without a path."""
    while blocks and blocks[-1].level:  # headings with nothing under them, at the end: "Footnotes", say
        blocks = blocks[:-1]
    parts: list[str] = []
    starts: list[tuple[int, tuple[str, ...]]] = []
    path: list[tuple[int, str]] = []  # (level, heading) from the outermost
    offset, after_heading = 0, False
    for block in blocks:
        if block.level:
            path = [(level, text) for level, text in path if level < block.level] + [(block.level, block.text)]
            if not after_heading:  # a heading right under another one starts no section of its own
                starts.append((offset, ()))
            starts[-1] = (starts[-1][0], tuple(text for _, text in path))
        elif not starts:
            starts.append((offset, ()))
        after_heading = bool(block.level)
        parts.append(block.text)
        offset += len(block.text) + 2
    text = "\n\n".join(parts)
    ends = [start - 2 for start, _ in starts[1:]] + [len(text)]
    return text, [Section(start, end, heading=path) for (start, path), end in zip(starts, ends) if end > start]


def markdown_sections(text: str) -> list[Section]:
    """Sections of a Markdown text at its `#` headings (not those inside fenced code), over the text as it is."""
    headings: list[tuple[int, int, str]] = []  # (offset, level, heading) of each heading line
    fenced, offset = False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (found := _MARKDOWN_HEADING.match(line.rstrip("\n"))):
            headings.append((offset, len(found.group(1)), found.group(2).strip()))
        offset += len(line)
    return _cut(text, [Section(0, len(text))], headings)


def _trimmed(text: str, section: Section) -> Section:
    """The section without the white space around it."""
    body = text[section.start : section.end]
    start = section.start + len(body) - len(body.lstrip())
    return Section(start, section.start + len(body.rstrip()), section.page, section.heading, section.ocr)


def html_blocks(soup, tick: Callable[[], None]) -> list[Block]:
    """The blocks of an HTML page without its navigation: headings, paragraphs, lists (an item a line),
    tables (a row a line, each cell after its header: "Release: Bullseye · Version: 11") and <pre> with its line
    breaks. `tick` is called as the walk goes, to stop it at the file's time limit. A loop with a stack, so any
    depth of nesting is linear."""
    from bs4 import Tag

    weight = _link_weights(soup)
    blocks: list[Block] = []
    line: list[str] = []
    stack: list = [soup]
    for node in _walk(stack):
        tick()
        if node is _END:
            _flush(line, blocks)
        elif isinstance(node, Tag):
            if _dropped(node, weight):
                continue
            name = node.name
            if heading := _HEADING.fullmatch(name):
                _flush(line, blocks)
                text = _inline(node).rstrip(_PERMALINK).strip()
                if text:
                    blocks.append(Block(text, int(heading.group(1))))
            elif name == "pre":
                _flush(line, blocks)
                _add(blocks, _code(node.get_text()))
            elif name == "table" and not weight[id(node)].holds & _LAYOUT:  # a data table (else laid out: walked)
                _flush(line, blocks)
                _add(blocks, "\n".join(_table_rows(node, weight)))
            elif name in _LISTS and _simple(node, weight):
                _flush(line, blocks)
                _add(blocks, "\n".join(_list_items(node, weight)))
            elif name == "br":
                line.append(_BREAK)
            else:
                if name in _BLOCKS or name in _LISTS or name in ("li", "dt", "dd", "tr", "td", "th", "title"):
                    _flush(line, blocks)
                    stack.append(_END)
                stack.extend(reversed(node.contents))
        elif _is_text(node):
            line.append(str(node))
    _flush(line, blocks)
    return blocks


_END = object()  # where a block element ends, in html_blocks' stack


def _walk(stack: list) -> Iterator:
    while stack:
        yield stack.pop()


def _is_text(node) -> bool:
    from bs4 import CData, NavigableString

    return type(node) in (NavigableString, CData)  # not comments, doctypes or processing instructions


def _flush(line: list[str], blocks: list[Block]) -> None:
    text = "\n".join(_words(part) for part in "".join(line).split(_BREAK))
    line.clear()
    _add(blocks, text.strip("\n"))


def _add(blocks: list[Block], text: str) -> None:
    if text.strip():
        blocks.append(Block(text))


def _inline(node, skip: set[str] | frozenset[str] = frozenset()) -> str:
    """An element's text on one line: its strings as they are written, so that "Path.cwd()" and 'the
    "/etc/fstab" file' stay whole, and a space where a block, cell or line break ends (nested elements named in
    `skip` left out)."""
    from bs4 import Tag

    parts: list[str] = []
    stack: list = list(reversed(node.contents))
    while stack:
        child = stack.pop()
        if isinstance(child, Tag):
            if child.name in skip or child.name in _TAG_DROP:
                continue
            if child.name in _SPACED:
                parts.append(" ")
            stack.extend(reversed(child.contents))
        elif _is_text(child):
            parts.append(str(child))
    return _words("".join(parts))


def _words(text: str) -> str:
    return " ".join(text.split())


def _code(text: str) -> str:
    """A <pre> block's lines as they are, right-trimmed, without blank lines (a blank line would end the block)."""
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _dropped(node, weight: dict[int, Weight]) -> bool:
    """Navigation: by its tag or ARIA role, or a list, table or block that is mostly links."""
    if node.name in _TAG_DROP or node.name == "head":
        return True
    if str(node.get("role", "")).lower() in _ARIA_DROP:
        return True
    named = " ".join([*node.get("class", []), str(node.get("id", ""))]).lower()
    if named and _FURNITURE.search(named) and not weight.get(id(node), Weight()).holds & _HOLDS_CODE_OR_HEADING:
        return True
    if named and _SIDEBAR.search(named):
        w = weight.get(id(node), Weight())
        return w.link_chars >= SIDEBAR_LINK_DENSITY * w.chars and not w.holds & _HOLDS_CODE_OR_HEADING
    if node.name in _LISTS or node.name in ("table", "tr", "div", "p", "td", "span"):
        # one that holds a heading or code is a part of the page (a book's title page and its table of contents,
        # say): the rule is then asked of what it holds
        w = weight.get(id(node), Weight())
        dense = w.links >= MIN_LINKS and w.chars > 0 and w.link_chars >= LINK_DENSITY * w.chars
        return dense and not w.holds & _HOLDS_CODE_OR_HEADING
    return False


_HOLDS = {"pre": 1, "table": 2, "dl": 4, **{f"h{level}": 8 for level in range(1, 7)}}  # bits of Weight.holds
_HOLDS_CODE_OR_HEADING = 1 | 8
_LAYOUT = _HOLDS["table"] | _HOLDS_CODE_OR_HEADING  # a table holding these lays out a page (or a note), not data


@dataclass(frozen=True)
class Weight:
    """What an element holds: characters of text, of link text, links, and which of pre, table, dl and headings
    are inside it (bits of _HOLDS)."""

    chars: int = 0
    link_chars: int = 0
    links: int = 0
    holds: int = 0


def _link_weights(soup) -> dict[int, Weight]:
    """Every element's Weight, counted in one pass from the leaves up, so that asking it of each element costs
    nothing more however deep the nesting."""
    from bs4 import Tag

    weights: dict[int, Weight] = {}
    order: list = []
    stack: list = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            order.append(node)
            stack.extend(child for child in node.contents if isinstance(child, Tag))
    for node in reversed(order):  # children before parents
        chars = sum(len(_words(str(child))) for child in node.contents if _is_text(child))
        link_chars = links = holds = 0
        for child in node.contents:
            if isinstance(child, Tag):
                w = weights[id(child)]
                chars, link_chars, links = chars + w.chars, link_chars + w.link_chars, links + w.links
                holds |= w.holds | _HOLDS.get(child.name, 0)
        if node.name == "a" and node.get("href") is not None:
            link_chars, links = chars, links + 1
        weights[id(node)] = Weight(chars, link_chars, links, holds)
    return weights


def _table_rows(table, weight: dict[int, Weight]) -> list[str]:
    """The table's lines (table_lines); its header is its first row when that row is all <th>. Rows of nested
    tables are read with the table that holds them."""
    rows: list[list[str]] = []
    header = False
    for tr in table.find_all("tr"):
        if _dropped(tr, weight):
            continue
        cells = tr.find_all(["th", "td"], recursive=False)
        texts = [_inline(cell) for cell in cells]
        if any(texts):
            header = header or (not rows and all(cell.name == "th" for cell in cells))
            rows.append(texts)
    return table_lines(rows, header)


def table_lines(rows: list[list[str]], header: bool | None = None) -> list[str]:
    """Each row a line, its cells apart by " · ", each cell after its column's header cell ("Release: Bullseye ·
    Version: 11") so that a row can be found and read alone. Without `header`, the first row is the header when
    the table has more rows and every cell of the first is filled."""
    if header is None:
        header = len(rows) > 1 and all(rows[0])
    if not header or len(rows) < 2:
        return [" · ".join(cell for cell in row if cell) for row in rows]
    return [_labelled(rows[0], row) for row in rows[1:]]


def _labelled(names: list[str], row: list[str]) -> str:
    """A row's cells, each after its header cell, unless the row does not line up with the header."""
    if len(row) != len(names):
        return " · ".join(cell for cell in row if cell)
    return " · ".join(f"{name}: {cell}" if name and name != cell else cell for name, cell in zip(names, row) if cell)


def _simple(node, weight: dict[int, Weight]) -> bool:
    """A list to read as one block, an item a line: a bulleted or numbered list without code, tables, definition
    lists or headings in it. A definition list (API docs: a signature, then its description) and a list that
    holds code are read block by block, so its code keeps its lines."""
    return node.name != "dl" and not weight.get(id(node), Weight()).holds


def _list_items(node, weight: dict[int, Weight]) -> list[str]:
    """The items of a list, one a line (nested items too, in order), without its navigation."""
    items: list[str] = []
    for item in node.find_all(["li", "dt", "dd"]):
        if _dropped(item, weight):
            continue
        text = _inline(item, skip=_LISTS)
        if text:
            items.append(text)
    return items


# PDF page furniture: running heads and feet are looked for in the first and last lines of each page
FURNITURE_LINES = 3
# a line of two words or more in that zone on this many pages, digits aside, is furniture: a book's title, a
# chapter's running head ("Chapter 1: Obtaining R 2") that recurs only over its own chapter's pages
FURNITURE_REPEATS = 3
FURNITURE_MIN_PAGES = 4  # fewer pages say too little about what repeats
FURNITURE_MAX_WORDS = 16  # a running head is short; a longer line is text (a page extracted as one line, say)
_WORD = re.compile(r"[^\W\d_]{3}")  # a running head has words: "[1] 3", an R result, is not one
_EDGE_NUMBER = re.compile(r"(\d{1,5})\s+\D.*|.*\D\s+(\d{1,5})")  # a line that begins or ends with a number
_PAGE_NUMBER = re.compile(r"(?i)[-–— ]*(page\s*)?(\d{1,5}|[ivxlc]{1,7})(\s*(of|/)\s*\d{1,5})?[-–— ]*")


def strip_page_furniture(pages: list[str]) -> list[str]:
    """The pages without their running heads and feet: lines among the first and last FURNITURE_LINES of a page
    that recur there (digits aside) on FURNITURE_REPEATS pages, and page numbers there ("12", "Page 3 of 10")."""
    if len(pages) < FURNITURE_MIN_PAGES:
        return pages
    zones = [_zone(page.splitlines()) for page in pages]
    counts: dict[str, int] = {}
    for zone in zones:
        for key in {_shape(line) for line in zone.values()}:
            counts[key] = counts.get(key, 0) + 1
    recurring = {
        key
        for key, count in counts.items()
        if count >= FURNITURE_REPEATS and 2 <= len(key.split()) <= FURNITURE_MAX_WORDS and _WORD.search(key)
    }
    numbered = _numbered_heads(zones)
    return [
        _without(page, zone, recurring, {i for n, i in numbered if n == number})
        for number, (page, zone) in enumerate(zip(pages, zones))
    ]


def _numbered_heads(zones: list[dict[int, str]]) -> set[tuple[int, int]]:
    """(page index, line number) of the short lines in the zones that begin or end with the page's printed
    number: a number that goes up by one from page to page (the same offset from the page's index on at least
    a quarter of the pages, and FURNITURE_REPEATS), and that read the same on two pages or more. So a chapter's
    running head is found on a chapter of two pages: "Chapter 4: Installing R under macOS 21"."""
    found: list[tuple[int, int, int]] = []  # (page index, line number, printed number - page index)
    for number, zone in enumerate(zones):
        for i, line in zone.items():
            edge = _EDGE_NUMBER.fullmatch(line.strip())
            if edge and len(line.split()) <= FURNITURE_MAX_WORDS:
                found.append((number, i, int(edge.group(1) or edge.group(2)) - number))
    offsets = Counter(offset for _, _, offset in found)
    enough = max(FURNITURE_REPEATS, len(zones) // 4)
    heads = [(number, i) for number, i, offset in found if offsets[offset] >= enough]
    # and on two pages at least: a chapter's first line numbered as its page ("1 Introduction" on page 1) is not one
    shapes = Counter(_shape(zones[number][i]) for number, i in heads)
    return {(number, i) for number, i in heads if shapes[_shape(zones[number][i])] >= 2}


def _zone(lines: list[str]) -> dict[int, str]:
    """The first and last FURNITURE_LINES non-empty lines of a page, by line number."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    chosen = filled[:FURNITURE_LINES] + filled[-FURNITURE_LINES:]
    return {i: lines[i] for i in chosen}


def _shape(line: str) -> str:
    """A line with its numbers as # and its spaces and case folded: "Page 3 of 10" and "Page 4 of 10" agree."""
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def _without(page: str, zone: dict[int, str], recurring: set[str], numbered: set[int]) -> str:
    """The page without the lines of its zone that recur, are page numbers, or are `numbered` heads."""
    lines = page.splitlines()
    drop = {i for i, line in zone.items() if _shape(line) in recurring or _PAGE_NUMBER.fullmatch(line.strip())}
    drop |= numbered
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def split_at_headings(text: str, sections: list[Section], headings: list[tuple[int, int, str]]) -> list[Section]:
    """Page sections split where an outline's headings stand: `headings` are (1-based page, level, title), as a
    PDF's outline gives them. A heading is placed at the start of the line where its title stands on its page,
    past the previous heading (case and spacing aside): the first line that is the title alone, else the first
    that holds it as whole words; one not found there is left out. Each piece keeps its page and gets the path of
    headings above it."""
    cuts: list[tuple[int, int, str]] = []  # (offset, level, title)
    pages = {section.page: section for section in sections}
    floor = 0
    for page, level, title in headings:
        section = pages.get(page)
        if section is None or not title.strip():
            continue
        found = _find_title(text, title, max(section.start, floor), section.end)
        if found is not None:
            cuts.append((found, level, " ".join(title.split())))
            floor = found + 1
    if not cuts:
        return sections
    return _cut(text, sections, cuts)


def _find_title(text: str, title: str, start: int, end: int) -> int | None:
    words = r"\s+".join(re.escape(word) for word in title.split())
    span = text[start:end]
    # "Functions" is the heading's own line further down, not "most built-in functions" in the text above it
    found = re.search(rf"^[ \t]*{words}[ \t]*$", span, re.IGNORECASE | re.MULTILINE) or re.search(
        rf"(?<!\w){words}(?!\w)", span, re.IGNORECASE
    )
    if found is None:
        return None
    line = text.rfind("\n", start, start + found.start())  # the heading's line starts after it
    return line + 1 if line >= 0 else start


def _cut(text: str, sections: list[Section], cuts: list[tuple[int, int, str]]) -> list[Section]:
    """The sections split at the cuts' offsets (headings), each piece under the path of the cuts before it; a
    heading with nothing but other headings between it and the one before starts no piece of its own."""
    pieces: list[Section] = []
    path: list[tuple[int, str]] = []
    index = 0
    for section in sections:
        start, run_end = section.start, None  # run_end: where the headings that open the piece end
        while index < len(cuts) and cuts[index][0] < section.end:
            offset, level, title = cuts[index]
            under_heading = run_end is not None and not text[run_end:offset].strip()
            if text[start:offset].strip() and not under_heading:
                pieces.append(_trimmed(text, Section(start, offset, section.page, _titles(path), section.ocr)))
                start = offset
            line_end = text.find("\n", offset, section.end)
            run_end = section.end if line_end < 0 else line_end
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
            index += 1
        pieces.append(_trimmed(text, Section(start, section.end, section.page, _titles(path), section.ocr)))
    return [piece for piece in pieces if piece.end > piece.start]


def _titles(path: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(title for _, title in path)
