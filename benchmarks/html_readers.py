"""Benchmark: main-text extraction libraries against the product's HTML reader, on real generated manuals.

The pages are the two HTML sets of benchmarks/ingest.py (made by its --prepare in <work>/sets/):
debian-reference (15 DocBook pages) and python-docs (48 Sphinx pages). Each reader turns each page into text:
- ours: assistant.formats.html.read_html, the text it gives the chunker (headings are lines of it);
- trafilatura: extract(html, include_tables=True, include_comments=False, include_formatting=True) in each
  configuration of TRAFILATURA (output format, favor_recall or not); XML output is read by html_text below;
- readability: readability-lxml's Document(html).summary(), read by html_text;
- justext: the paragraphs that jusText (English stop list, default settings) does not call boilerplate, a line each;
- resiliparse: extract_plain_text(html, main_content=True, preserve_formatting=True).
None of the libraries is a dependency of the product; one that is not installed is reported as such. Measured with
    pip install trafilatura==2.3.1 readability-lxml==0.9 jusText==3.0.2 Resiliparse==2.0.1

html_text is the neutral reading of markup used for the libraries that return markup and for the sources: a
line per block element (p, li, td, h1, ..., and trafilatura's head, item, cell) and per <br>, whitespace
collapsed; a <pre> (or a trafilatura <code> holding line breaks) keeps its lines.

Lines are compared by key: the characters ` * \\ and ¶ removed (Markdown markup and escapes, Sphinx's
permalink sign; from both sides, so code that holds them still compares), whitespace collapsed, leading Markdown
heading and list markers ("## ", "- ", "1. ", "• ") and leading or trailing separators (| » « › ‹) dropped;
empty keys are left out. A page's furniture regions: its nav, header, footer and aside elements, and the
elements of class navheader, navfooter, toc or list-of-tables (DocBook), related, sphinxsidebar or footer
(Sphinx: the sidebar holds the page's table of contents). Its main content: its body without them.

A table of contents entry reads like the heading it links to (all but one of the 959 headings of the two sets
are also entries of their page's table of contents), so the lines of a reader's text are first told apart: a
line is read as furniture when it stands in a run of 3 or more lines (MIN_RUN) whose every two neighbours are
consecutive lines of a furniture region and not consecutive lines of the main content; the other lines are the
text's own.
Per set and reader:
- headings kept: of the h1-h6 of the main content, the share that are (by key) lines of the text's own;
- code kept: of the <pre> blocks of the main content with >= 3 distinct non-empty lines, the share whose every
  line is (by key) a line of the text, so that the line breaks must be kept;
- main text kept: of the <p> of the main content with >= 8 words, the share found in the text as a substring,
  both with the characters above removed and whitespace collapsed;
- furniture kept: of the distinct keys of the lines of the furniture regions (html_text of each region: a table
  of contents entry, a bar's link or cell, a footer line), the share that the text keeps: as a line read as
  furniture, or as more of its own lines than the main content has (the navigation bar's copy of a chapter's
  title beside the title itself). Counted once per page, though Sphinx pages carry their sidebar twice (a
  mobile menu and div.sphinxsidebar); images' alt text ("Prev", "Next") is no line of the source;
- pages with furniture: pages where the text keeps at least one furniture line;
- empty: pages for which the reader gives no text; seconds: the reader's time over the set's pages.

The sets are made once by benchmarks/ingest.py --prepare (docs/benchmarks.md#reading-real-documents). Then:

    PYTHONPATH=. .venv/bin/python benchmarks/html_readers.py --out /tmp/html_readers.json   # about 40 s
    PYTHONPATH=. .venv/bin/python benchmarks/html_readers.py --readers ours resiliparse --dump /tmp/texts
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from ingest import SOURCES, package_version, share, table  # benchmarks/ is not a package: run as a script

SETS = ["debian-reference", "python-docs"]
READERS = ["ours", "trafilatura", "readability", "justext", "resiliparse"]
# output format and recall setting; the other settings favour structure in every one (see the docstring)
TRAFILATURA: dict[str, dict[str, object]] = {
    "markdown, recall": {"output_format": "markdown", "favor_recall": True},
    "xml, recall": {"output_format": "xml", "favor_recall": True},
    "txt, recall": {"output_format": "txt", "favor_recall": True},
    "markdown": {"output_format": "markdown"},
}
LIBRARIES = {"trafilatura": "trafilatura", "readability": "readability-lxml", "justext": "jusText"}
LIBRARIES["resiliparse"] = "Resiliparse"
REGION_TAGS = {"nav", "header", "footer", "aside"}
REGION_CLASSES = {"navheader", "navfooter", "toc", "list-of-tables", "related", "sphinxsidebar", "footer"}
MIN_CODE_LINES = 3
MIN_WORDS = 8
FIGURES = ["headings", "code", "main text", "furniture"]  # each reported as the share kept
MIN_RUN = 3  # two headings that a reader left side by side are not yet a table of contents
Reader = Callable[[bytes], str]


# ---- reading markup neutrally, and comparing texts -------------------------------------------------

_BLOCKS = set(
    "address article aside blockquote body caption dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header li main nav ol p section table tbody td tfoot th thead title tr ul".split()
) | {"doc", "head", "list", "item", "row", "cell", "quote"}  # trafilatura's XML
_SKIP = {"script", "style", "noscript", "template"}  # callers give <body>: trafilatura's <head> is a heading
_BREAKS = {"br", "lb", "hr"}


def html_text(element) -> str:
    """An lxml element's text: a line per block element and <br>, whitespace collapsed, <pre> lines kept."""
    lines: list[str] = []
    line: list[str] = []

    def flush() -> None:
        text = " ".join("".join(line).split())
        if text:
            lines.append(text)
        line.clear()

    def walk(node, top: bool = False) -> None:
        tag = node.tag.rpartition("}")[2].lower() if isinstance(node.tag, str) else None  # None: comment, PI
        if tag is not None and tag not in _SKIP:
            if tag == "pre" or (tag == "code" and "\n" in "".join(node.itertext()).strip()):
                flush()
                lines.extend(x.rstrip() for x in "".join(node.itertext()).splitlines() if x.strip())
            elif tag in _BREAKS or tag in _BLOCKS:
                flush()
                line.append(node.text or "")
                for child in node:
                    walk(child)
                flush()
            else:
                line.append(node.text or "")
                for child in node:
                    walk(child)
        if not top:
            line.append(node.tail or "")

    walk(element, top=True)
    flush()
    return "\n".join(lines)


_MARKUP = str.maketrans("", "", "`*\\¶")
_LEAD = re.compile(r"^((#{1,6}|[-+•]|\d+\.)\s+)+")
_SEPARATORS = " |»«›‹"


def flat(text: str) -> str:
    """Text without Markdown markup characters and the permalink sign, whitespace collapsed."""
    return " ".join(text.translate(_MARKUP).split())


def key(line: str) -> str:
    """How lines are compared: flat, without a leading Markdown heading or list marker and the separators."""
    return _LEAD.sub("", flat(line)).strip(_SEPARATORS)


# ---- the sources -----------------------------------------------------------------------------------


def is_region(element) -> bool:
    classes = set((element.get("class") or "").split())
    return element.tag in REGION_TAGS or bool(classes & REGION_CLASSES)


def regions(body) -> list:
    """The outermost furniture regions of a page's body."""
    found = [e for e in body.iter() if isinstance(e.tag, str) and is_region(e)]
    return [e for e in found if not any(is_region(a) for a in e.iterancestors())]


def source(data: bytes) -> dict:
    """What a page holds: its main content's headings (key: count), the key sets of its code blocks, its
    paragraphs (flat), its furniture lines' keys, its main content's line keys (key: count), and the pairs of
    consecutive lines that only furniture has."""
    import lxml.html

    body = lxml.html.fromstring(data).find("body")
    cut = regions(body)
    furniture = [keys(html_text(region)) for region in cut]
    for region in cut:
        region.drop_tree()  # keeps the region's tail text, which belongs to the page
    main = keys(html_text(body))
    code = [set(keys(html_text(pre))) for pre in body.iter("pre")]
    paragraphs = [flat("".join(p.itertext())) for p in body.iter("p")]
    headings = [key("".join(h.itertext())) for h in body.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    return {
        "headings": Counter(h for h in headings if h),
        "code": [lines for lines in code if len(lines) >= MIN_CODE_LINES],
        "paragraphs": [p for p in paragraphs if len(p.split()) >= MIN_WORDS],
        "furniture": {k for lines in furniture for k in lines},
        "main lines": Counter(main),
        "furniture pairs": pairs(furniture) - pairs([main]),
    }


def keys(text: str) -> list[str]:
    """The keys of a text's lines, in order, without the empty ones."""
    return [k for line in text.splitlines() if (k := key(line))]


def pairs(texts: list[list[str]]) -> set[tuple[str, str]]:
    return {(a, b) for lines in texts for a, b in zip(lines, lines[1:])}


# ---- the readers -----------------------------------------------------------------------------------


def readers(names: Sequence[str], configurations: Sequence[str]) -> dict[str, Reader | str]:
    """Each reader by the name of its row (trafilatura: a row per configuration), or why it cannot run."""
    makers: list[tuple[str, str, Callable[[], Reader]]] = []  # (row, library, maker)
    for name in names:
        if name == "trafilatura":
            makers += [(f"trafilatura ({c})", name, partial(trafilatura, TRAFILATURA[c])) for c in configurations]
        else:
            makers.append((name, name, MAKERS[name]))
    found: dict[str, Reader | str] = {}
    for row, name, make in makers:
        try:
            found[row] = make()
        except ImportError as error:
            found[row] = f"not installed ({error.name}): pip install {LIBRARIES[name]}"
    return found


def ours() -> Reader:
    from assistant.formats.base import Deadline
    from assistant.formats.html import read_html

    return lambda data: read_html(data, Path("page.html"), Deadline(60.0))[1]


def trafilatura(settings: dict) -> Reader:
    import lxml.etree
    from trafilatura import extract

    def read(data: bytes) -> str:
        found = extract(data, include_tables=True, include_comments=False, include_formatting=True, **settings)
        if found and settings["output_format"] == "xml":
            return html_text(lxml.etree.fromstring(found))
        return found or ""

    return read


def readability() -> Reader:
    import lxml.html
    from readability import Document

    def read(data: bytes) -> str:
        summary = lxml.html.fromstring(Document(data).summary())
        return html_text(summary.find("body") if summary.find("body") is not None else summary)

    return read


def justext() -> Reader:
    import justext as library

    stop_words = library.get_stoplist("English")
    return lambda data: "\n".join(p.text for p in library.justext(data, stop_words) if not p.is_boilerplate)


def resiliparse() -> Reader:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    def read(data: bytes) -> str:
        html = bytes_to_str(data, detect_encoding(data) or "utf-8")
        return extract_plain_text(html, main_content=True, preserve_formatting=True)

    return read


MAKERS: dict[str, Callable[[], Reader]] = {
    "ours": ours,
    "readability": readability,
    "justext": justext,
    "resiliparse": resiliparse,
}


# ---- the run ---------------------------------------------------------------------------------------


def score(text: str, page: dict, counts: Counter) -> None:
    """Add one page's counts to the set's."""
    lines = keys(text)
    in_run = runs(lines, page["furniture pairs"])
    own = Counter(k for k, nav in zip(lines, in_run) if not nav)
    navigation = {k for k, nav in zip(lines, in_run) if nav}
    whole = flat(text)
    counts["pages"] += 1
    counts["empty"] += not whole
    counts["headings"] += page["headings"].total()
    counts["headings kept"] += sum(min(n, own[k]) for k, n in page["headings"].items())
    counts["code"] += len(page["code"])
    counts["code kept"] += sum(block <= set(lines) for block in page["code"])
    counts["main text"] += len(page["paragraphs"])
    counts["main text kept"] += sum(paragraph in whole for paragraph in page["paragraphs"])
    kept = sum(k in navigation or own[k] > page["main lines"][k] for k in page["furniture"])
    counts["furniture"] += len(page["furniture"])
    counts["furniture kept"] += kept
    counts["pages with furniture"] += kept > 0


def runs(lines: list[str], furniture_pairs: set[tuple[str, str]]) -> list[bool]:
    """Which lines stand in a run of MIN_RUN or more lines whose every two neighbours are consecutive lines of a
    furniture region and not of the main content: a table of contents, read as one."""
    flags = [False] * len(lines)
    start = 0
    for i in range(1, len(lines) + 1):
        if i == len(lines) or (lines[i - 1], lines[i]) not in furniture_pairs:
            if i - start >= MIN_RUN:
                flags[start:i] = [True] * (i - start)
            start = i
    return flags


def measure(name: str, pages: dict[str, tuple[bytes, dict]], read: Reader, dump: Path | None) -> dict:
    """One reader over one set: its counts, shares and seconds."""
    counts: Counter = Counter()
    seconds = 0.0
    for path, (data, page) in pages.items():
        start = time.perf_counter()
        text = read(data)
        seconds += time.perf_counter() - start
        score(text, page, counts)
        if dump:
            target = dump / re.sub(r"\W+", "-", name).strip("-") / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_suffix(".txt").write_text(text, encoding="utf-8")
    row: dict = {f"{part} kept": share(counts[f"{part} kept"], counts[part]) for part in FIGURES}
    row.update({"pages with furniture": counts["pages with furniture"], "empty": counts["empty"]})
    return {**row, "seconds": round(seconds, 2), "counts": dict(counts)}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for distribution in LIBRARIES.values():
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[distribution] = None
    for name in SETS:
        for package, _, _ in SOURCES[name]:
            found[package] = package_version(package)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-ingest"))
    parser.add_argument("--sets", nargs="+", choices=SETS, default=SETS)
    parser.add_argument("--readers", nargs="+", choices=READERS, default=READERS)
    parser.add_argument("--trafilatura", nargs="+", choices=list(TRAFILATURA), default=list(TRAFILATURA))
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--dump", type=Path, default=None, help="write each reader's text of each page here")
    args = parser.parse_args(argv)
    chosen = readers(args.readers, args.trafilatura)
    results: dict = {"versions": versions(), "rows": []}
    for name in args.sets:
        folder = args.work / "sets" / name
        if not folder.is_dir():
            sys.exit(f"{folder} does not exist — make it: PYTHONPATH=. .venv/bin/python benchmarks/ingest.py --prepare")
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.htm*"))}
        pages = {path: (data, source(data)) for path, data in files.items()}
        for label, read in chosen.items():
            if isinstance(read, str):
                row = {"set": name, "reader": label, "error": read}
            else:
                row = {"set": name, "reader": label, **measure(label, pages, read, args.dump and args.dump / name)}
            results["rows"].append(row)
            print(f"{name} {label}: {row}", file=sys.stderr)
    columns = [f"{part} kept" for part in FIGURES] + ["pages with furniture", "empty", "seconds"]
    print(table(results["rows"], ["set", "reader", *columns]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
