"""Structure from markup: navigation dropped, headings as sections with their path, code, lists and tables
kept whole, in HTML and Markdown; the text of every section is the document's own."""

from __future__ import annotations

from pathlib import Path

from assistant.documents import Section
from assistant.formats import Deadline
from assistant.formats.html import read_html
from assistant.formats.text import read_text
from assistant.structure import Block, assemble, markdown_sections, split_at_headings, strip_page_furniture

PAGE = """<!DOCTYPE html><html><head><title>Admin guide</title></head><body>
<div class="navheader"><table><tr><th colspan="3">Chapter 2. Packages</th></tr>
<tr><td><a href="ch01.html">Prev</a></td><td></td><td><a href="ch03.html">Next</a></td></tr></table></div>
<div role="navigation"><a href="/">Home</a> » <a href="/docs">Docs</a></div>
<ul class="menu"><li><a href="a.html">Download</a></li><li><a href="b.html">Community</a></li></ul>
<div class="document">
<h1>Chapter 2. Packages<a class="headerlink" href="#c2">¶</a></h1>
<div class="toc"><p>Table of Contents</p><dl><dt><a href="#s1">2.1. Installing</a></dt>
<dt><a href="#s2">2.2. Upgrading</a></dt></dl></div>
<div><div><h2>2.1. Installing</h2></div></div>
<p>Install a package with apt, which resolves
its dependencies for you.</p>
<pre>$ sudo apt update
$ sudo apt install nginx

$ systemctl status nginx</pre>
<h2>2.2. Upgrading</h2>
<h3>2.2.1. Before you start</h3>
<p>Back up /etc first. The tools are:</p>
<ul><li>apt, for the command line</li><li>aptitude, for a text interface<ul><li>with a search</li></ul></li></ul>
<table><tr><th>Release</th><th>Version</th></tr><tr><td>Bullseye</td><td>11</td></tr>
<tr><td>Bookworm</td><td>12</td></tr></table>
</div>
<div class="footer">© Copyright 2026. Created using Sphinx.</div>
<div class="navfooter"><table><tr><td>Chapter 1. Basics</td><td><a href="index.html">Home</a></td>
<td>Chapter 3. Boot</td></tr></table></div>
</body></html>"""


def read_page(html: str = PAGE):
    return read_html(html.encode(), Path("guide.html"), Deadline(20))


def test_navigation_banners_tables_of_contents_and_footers_are_dropped() -> None:
    _, text, _ = read_page()
    for furniture in ("Prev", "Next", "Home", "Docs", "Download", "Table of Contents", "Copyright", "Chapter 3"):
        assert furniture not in text, furniture
    assert text.startswith("Chapter 2. Packages\n\n2.1. Installing\n\nInstall a package")


def test_each_heading_starts_a_section_under_the_path_of_headings_above_it() -> None:
    _, text, sections = read_page()
    assert [s.heading for s in sections] == [
        ("Chapter 2. Packages", "2.1. Installing"),
        ("Chapter 2. Packages", "2.2. Upgrading", "2.2.1. Before you start"),
    ]
    assert text[sections[0].start :].startswith("Chapter 2. Packages\n\n2.1. Installing")  # a heading run
    assert text[sections[1].start :].startswith("2.2. Upgrading\n\n2.2.1. Before you start\n\nBack up")
    assert sections[0].end < sections[1].start and sections[1].end == len(text)


def test_code_keeps_its_lines_and_a_paragraph_its_words_on_one_line() -> None:
    _, text, _ = read_page()
    assert "$ sudo apt update\n$ sudo apt install nginx\n$ systemctl status nginx" in text
    assert "Install a package with apt, which resolves its dependencies for you." in text


def test_a_list_is_one_block_with_an_item_a_line() -> None:
    _, text, _ = read_page()
    assert "apt, for the command line\naptitude, for a text interface\nwith a search" in text


def test_a_table_row_repeats_its_header_cells() -> None:
    _, text, _ = read_page()
    assert "Release: Bullseye · Version: 11\nRelease: Bookworm · Version: 12" in text


def test_a_page_that_is_all_links_is_read_whole_rather_than_emptied() -> None:
    links = "".join(f'<li><a href="m{i}.html">module {i}</a></li>' for i in range(20))
    _, text, _ = read_page(f"<html><body><h1>Module index</h1><ul>{links}</ul></body></html>")
    assert "module 7" in text


def test_headings_with_nothing_under_them_at_the_end_are_left_out() -> None:
    text, sections = assemble([Block("Intro", 1), Block("Words."), Block("Footnotes", 2)])
    assert text == "Intro\n\nWords." and [(s.start, s.end, s.heading) for s in sections] == [(0, 13, ("Intro",))]


MARKDOWN = """# Guide

Some words.

## Install

```sh
# not a heading: a comment in code
apt install nginx
```

## Upgrade
### Before

Back up first.
"""


def test_markdown_headings_bound_sections_over_the_text_as_it_is() -> None:
    title, text, sections = read_text(MARKDOWN.encode(), Path("guide.md"), Deadline(20))
    assert title == "Guide" and text == MARKDOWN
    assert [(text[s.start : s.end].split("\n")[0], s.heading) for s in sections] == [
        ("# Guide", ("Guide",)),
        ("## Install", ("Guide", "Install")),
        ("## Upgrade", ("Guide", "Upgrade", "Before")),
    ]
    assert text[sections[-1].start : sections[-1].end].endswith("Back up first.")


def test_markdown_without_headings_is_one_section() -> None:
    assert [(s.start, s.end, s.heading) for s in markdown_sections("\nJust words.\n")] == [(1, 12, ())]


def book(pages: int = 8) -> list[str]:
    """Pages with a book title on top, a chapter's running head with the page number, and a page number below."""
    words = "apt dpkg sources mirrors keys pinning backports upgrades".split()
    made = []
    for number in range(1, pages + 1):
        chapter = 1 if number <= pages // 2 else 2
        body = "\n".join(f"{words[(number + i) % 8].title()} {words[(number * i) % 8]} {i}." for i in range(8))
        made.append(f"R Installation and Administration\nChapter {chapter}: Installing R {number}\n{body}\n{number}")
    return made


def test_running_heads_and_page_numbers_are_removed_from_pdf_pages() -> None:
    for page, original in zip(strip_page_furniture(book()), book()):
        assert page.splitlines() == original.splitlines()[2:-1]


def test_a_running_head_of_a_short_chapter_is_found_by_its_page_number() -> None:
    # chapters of two pages: their heads recur twice only, but end with the printed page number (index + 7)
    names = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    body = [f"Install {names[n]} first.\nThe {names[n]} package is at version {3 * n}" for n in range(12)]
    pages = [f"Chapter {n // 2 + 1}: Topic {'ABCDEF'[n // 2]} {n + 7}\n{body[n]}" for n in range(12)]
    assert strip_page_furniture(pages) == body  # a last line ending in another number stays


def test_lines_that_do_not_recur_stay_and_short_documents_are_left_as_they_are() -> None:
    pages = ["Title page\nOnly once.", "Results\n[1] 3\nend", "More\n[1] 3\nend", "Last\n[1] 3\nend"]
    assert strip_page_furniture(pages) == pages  # "[1] 3" is R's output, not a running head
    assert strip_page_furniture(book(3)) == book(3)


def test_inline_markup_in_lists_tables_and_headings_adds_no_spaces() -> None:
    html = (
        "<html><body><h2><code>Path.</code><code>cwd</code>()</h2><p>Intro words for the page.</p>"
        '<ul><li>The "<code>/etc/fstab</code>" file lists the mounts.</li><li><p>First.</p><p>Second.</p></li></ul>'
        "<table><tr><th>Call</th></tr><tr><td><code>os.</code><code>getcwd</code>()</td></tr></table></body></html>"
    )
    _, text, sections = read_page(html)
    assert sections[0].heading == ("Path.cwd()",)
    assert 'The "/etc/fstab" file lists the mounts.\nFirst. Second.' in text
    assert "Call: os.getcwd()" in text


def test_a_definition_list_and_a_list_holding_code_are_read_block_by_block() -> None:
    html = (
        "<html><body><h1>pathlib</h1><dl><dt>Path.cwd()</dt><dd><p>Return the current directory.</p>"
        "<pre>&gt;&gt;&gt; Path.cwd()\nPosixPath('/home/user')</pre></dd></dl>"
        "<ol><li>Install it:<pre>apt install tree\ntree /etc</pre></li></ol></body></html>"
    )
    _, text, _ = read_page(html)
    assert text.split("\n\n")[1:] == [
        "Path.cwd()",
        "Return the current directory.",
        ">>> Path.cwd()\nPosixPath('/home/user')",
        "Install it:",
        "apt install tree\ntree /etc",
    ]


def test_a_layout_table_holding_a_table_is_read_block_by_block_once() -> None:
    inner = "<table><tr><th>Release</th><th>Version</th></tr><tr><td>Bookworm</td><td>12</td></tr></table>"
    html = f"<html><body><table><tr><td><p>Intro words of the page.</p>{inner}</td></tr></table></body></html>"
    _, text, _ = read_page(html)
    assert text == "Intro words of the page.\n\nRelease: Bookworm · Version: 12"


def test_a_boxed_note_named_sidebar_is_text_and_a_sidebar_of_links_is_not() -> None:
    note = (  # DocBook's sidebars: a titled box of prose
        '<div class="sidebar"><div class="titlepage"><p class="title"><strong>TIP</strong> Mirrors</p></div>'
        "<p>Pick a mirror near you: a closer mirror makes every upgrade faster.</p></div>"
    )
    column = (  # a site's side column: links, and a line of text
        '<div id="left-sidebar"><ul><li><a href="/a">Download</a></li><li><a href="/b">Community news</a></li>'
        '<li><a href="/c">Documentation</a></li></ul><p>Follow us</p></div>'
    )
    _, text, _ = read_page(f"<html><body><h1>Mirrors</h1><p>Words of the page.</p>{note}{column}</body></html>")
    assert "TIP Mirrors\n\nPick a mirror near you" in text
    assert "Download" not in text and "Follow us" not in text


def test_a_navigation_bar_named_docnav_goes_even_with_text_between_its_links() -> None:
    bar = (
        '<div class="docnav"><ul><li><a href="ch01.html">Prev</a></li><li>The Administrator\'s Handbook</li>'
        '<li><a href="ch03.html">Next</a></li></ul></div>'
    )
    _, text, _ = read_page(f"<html><body>{bar}<h1>Packages</h1><p>Words of the page.</p>{bar}</body></html>")
    assert text == "Packages\n\nWords of the page."


def test_a_note_laid_out_as_a_table_around_code_keeps_the_code_lines() -> None:
    # DocBook's admonitions: an icon and "Tip" in one row, the note in the next
    html = (
        '<html><body><h1>Tips</h1><div class="tip"><table summary="Tip"><tr><td><img alt="[Tip]" src="tip.png"/>'
        "</td><th>Tip</th></tr><tr><td><p>Make a terminal launcher as follows.</p>"
        '<pre class="screen"># cat /usr/local/bin/mutt-term &lt;&lt;EOF\n#!/bin/sh\nEOF</pre></td></tr></table>'
        "</div></body></html>"
    )
    _, text, _ = read_page(html)
    assert "# cat /usr/local/bin/mutt-term <<EOF\n#!/bin/sh\nEOF" in text
    assert text.startswith("Tips\n\nTip\n\nMake a terminal launcher as follows.")


def test_a_title_page_in_a_container_that_is_mostly_its_table_of_contents_is_kept() -> None:
    # DocBook's book index: the title page and a long table of contents in one <div class="book">
    toc = "".join(f'<dt><span class="section"><a href="ch{i}.html">{i}. Chapter {i}</a></span></dt>' for i in range(40))
    html = (
        '<html><body><div class="book"><div class="titlepage"><h1>Debian Reference</h1><h3>Osamu Aoki</h3>'
        "<p>A broad overview of the Debian system as a post-installation user's guide.</p></div>"
        f"<div><p>Table of Contents</p><dl>{toc}</dl></div></div></body></html>"
    )
    _, text, sections = read_page(html)
    overview = "A broad overview of the Debian system as a post-installation user's guide."
    assert text == f"Debian Reference\n\nOsamu Aoki\n\n{overview}"
    assert [s.heading for s in sections] == [("Debian Reference", "Osamu Aoki")]


def test_outline_headings_split_pages_and_their_path_carries_over_the_page_break() -> None:
    page_texts = ["Intro page text.", "2 Install\nRun it.", "More of the install.\nStill installing."]
    text = "\n\n".join(page_texts)
    starts = [text.index(page) for page in page_texts]
    pages = [
        Section(start, start + len(page), number) for number, (start, page) in enumerate(zip(starts, page_texts), 1)
    ]
    outline = [(2, 1, "2 Install"), (3, 2, "Nowhere on its page"), (9, 1, "No such page")]
    sections = split_at_headings(text, pages, outline)
    assert [(text[s.start : s.end], s.page, s.heading) for s in sections] == [
        ("Intro page text.", 1, ()),
        ("2 Install\nRun it.", 2, ("2 Install",)),
        ("More of the install.\nStill installing.", 3, ("2 Install",)),
    ]


def test_an_outline_heading_is_placed_at_the_line_that_is_its_title_not_at_a_mention_above_it() -> None:
    text = "Intro\nMost built-in functions support this.\nSee bindings.\nFunctions\nBody.\nBind\nMore."
    sections = split_at_headings(text, [Section(0, len(text), 1)], [(1, 1, "Functions"), (1, 1, "Bind")])
    assert [(text[s.start : s.end], s.heading) for s in sections] == [
        ("Intro\nMost built-in functions support this.\nSee bindings.", ()),
        ("Functions\nBody.", ("Functions",)),
        ("Bind\nMore.", ("Bind",)),
    ]


def test_an_outline_title_not_alone_on_its_line_is_found_as_whole_words() -> None:
    text = "You can rebind keys here.\n4.3 Bind keys\nBody."
    sections = split_at_headings(text, [Section(0, len(text), 1)], [(1, 2, "Bind keys")])
    assert [(text[s.start : s.end], s.heading) for s in sections] == [
        ("You can rebind keys here.", ()),
        ("4.3 Bind keys\nBody.", ("Bind keys",)),
    ]


def test_an_outline_heading_right_under_another_starts_no_section_of_its_own() -> None:
    text = "2 Install\n2.1 Basics\nRun it first.\n2.2 More\nThen this."
    sections = split_at_headings(
        text, [Section(0, len(text), 1)], [(1, 1, "2 Install"), (1, 2, "2.1 Basics"), (1, 2, "2.2 More")]
    )
    assert [(text[s.start : s.end], s.heading) for s in sections] == [
        ("2 Install\n2.1 Basics\nRun it first.", ("2 Install", "2.1 Basics")),
        ("2.2 More\nThen this.", ("2 Install", "2.2 More")),
    ]


def test_a_run_of_three_outline_headings_opens_one_section() -> None:
    text = "2 X\n2.1 Y\n2.1.1 Z\nBody.\n2.2 W\nMore."
    outline = [(1, 1, "2 X"), (1, 2, "2.1 Y"), (1, 3, "2.1.1 Z"), (1, 2, "2.2 W")]
    sections = split_at_headings(text, [Section(0, len(text), 1)], outline)
    assert [(text[s.start : s.end], s.heading) for s in sections] == [
        ("2 X\n2.1 Y\n2.1.1 Z\nBody.", ("2 X", "2.1 Y", "2.1.1 Z")),
        ("2.2 W\nMore.", ("2 X", "2.2 W")),
    ]
