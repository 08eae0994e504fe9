"""Benchmark: how well the assistant reads real documents that no one here wrote.

Four sets, made by --prepare from installed Debian packages into <work>/sets/ (never committed; how each is
made: benchmarks/ingest_sets/README.md):
- debian-reference: the English HTML manual of debian-reference-en (DocBook HTML with header/footer navigation);
- python-docs: 48 pages of python3.11-doc's HTML (Sphinx: navigation bars, sidebars, a code block on most pages);
- pdfs: 7 PDF manuals of r-doc-pdf, camlidl-doc and docbook-xsl-doc-pdf (running heads, page numbers);
- seed-scan: corpus/unodc-regional-conference-islamabad.txt rendered as a scan by make_scan: a PDF of page
  images with no text layer, and one PNG per page. seed-text, the same article as text, is its control.

Each set is built into its own index (<work>/index/<set>) by the product's build_index with the default
settings and the real all-MiniLM-L6-v2, and searched by its Retriever. Per set it reports:
- files, files skipped (by reason), chunks, median chunk length in word pieces, build seconds;
- boilerplate chunks: the share of chunks where at least half of the words lie on furniture lines. The lines
  of a document are its extracted text split at line breaks, each compared lower-cased, whitespace collapsed
  and digits replaced by 0. A line is furniture when (a) it recurs in at least 30% (and at least 3) of the
  units of its group: for HTML, the set's files; for a PDF, the pages of that file; or (b) in a PDF, it is the
  first or last line of at least 3 of the file's pages (running heads and feet, page numbers); or (c) it is
  navigation only: every word is one of NAV_WORDS ("Prev Next Home Up", "next | previous | modules"); or
  (d) in HTML, it is link-only: in the source, a block with no block inside whose text is all link text (bar
  separators such as | and »), and no other block of the file reads the same. (d) misses an in-page table of
  contents whose entries read like the headings they link to (DocBook's), which is ambiguous by text alone;
- with furniture: the share of chunks that hold at least one furniture line (a running head in a PDF passage);
- lone headings: the share of chunks that are one line of at most 10 words with no sentence punctuation
  (no ". ", "!" or "?" after a leading section number, and no closing ".");
- code blocks (HTML sets): each <pre> of the source with at least 3 non-empty lines. "lines kept": each of
  its lines (whitespace collapsed) is a line of one of the file's chunks; "whole": all of them in one chunk;
- retrieval: hit@1 and hit@5 (an answer string, case-insensitive and whitespace-normalized, in the text of
  a top-1 / top-5 passage) on the `tune` and `held` questions of benchmarks/ingest_sets/<set>.jsonl, in the
  hybrid, dense and bm25 modes; and "in text": the share of questions whose answer is in the extracted text
  of their source file at all (the ceiling that reading sets, before chunking and search).
The seed-scan questions are the answerable ones of benchmarks/seed_questions.json, with answer strings.

    apt-get install -y debian-reference-en python3.11-doc r-doc-pdf camlidl-doc docbook-xsl-doc-pdf fonts-dejavu-core
    PYTHONPATH=. .venv/bin/python benchmarks/ingest.py --prepare --out /tmp/ingest.json   # 4 to 6 min
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import logging
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = Path(__file__).resolve().parent / "ingest_sets"
SEED_ARTICLE = REPO / "corpus" / "unodc-regional-conference-islamabad.txt"
SEED_QUESTIONS = Path(__file__).resolve().parent / "seed_questions.json"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # fonts-dejavu-core
PYTHON_HTML = "/usr/share/doc/python3.11/html"
PYTHON_PAGES = [
    "tutorial/*.html",
    *(
        f"library/{name}.html"
        for name in (
            "pathlib os.path shutil glob tempfile json csv collections itertools functools statistics random "
            "textwrap zipfile gzip subprocess venv timeit heapq bisect sqlite3 logging argparse re"
        ).split()
    ),
    *(f"howto/{name}.html" for name in ("sorting", "regex", "logging", "argparse", "functional")),
    "using/cmdline.html",
    "using/unix.html",
]
R_MANUALS = "/usr/share/doc/r-doc-pdf/manual"
# set -> (Debian package, folder it installs to, file patterns under that folder); a .gz file is unpacked
SOURCES: dict[str, list[tuple[str, str, list[str]]]] = {
    "debian-reference": [("debian-reference-en", "/usr/share/debian-reference", ["*.en.html"])],
    "python-docs": [("python3.11-doc", PYTHON_HTML, PYTHON_PAGES)],
    "pdfs": [
        ("r-doc-pdf", R_MANUALS, [f"R-{name}.pdf" for name in ("intro", "data", "admin", "lang", "FAQ")]),
        ("camlidl-doc", "/usr/share/doc/camlidl", ["camlidl-*.doc.pdf"]),
        ("docbook-xsl-doc-pdf", "/usr/share/doc/docbook-xsl-doc-pdf/doc", ["reference.pdf.gz"]),
    ],
}
SCAN_PACKAGES = ["fonts-dejavu-core"]
SETS = ["debian-reference", "python-docs", "pdfs", "seed-scan", "seed-text"]
log = logging.getLogger("ingest")


# ---- the sets ------------------------------------------------------------------------------------


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, or None when it is not installed."""
    found = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}\t${Version}", package], capture_output=True, text=True, check=False
    )
    status, _, version = found.stdout.partition("\t")
    return version if found.returncode == 0 and status.endswith(" installed") else None


def packages() -> dict[str, str | None]:
    """Every package the sets come from, with its installed version (None: missing)."""
    names = [package for sources in SOURCES.values() for package, _, _ in sources] + SCAN_PACKAGES
    return {name: package_version(name) for name in names}


def prepare(sets_dir: Path) -> None:
    """Copy each set's files from the installed packages (dpkg -L), and render the scan of the seed article."""
    missing = [name for name, version in packages().items() if version is None]
    if missing:
        sys.exit(f"missing Debian packages {', '.join(missing)} — run: apt-get install -y {' '.join(missing)}")
    for name, sources in SOURCES.items():
        folder = sets_dir / name
        shutil.rmtree(folder, ignore_errors=True)
        for package, root, patterns in sources:
            owned = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
            for path in sorted(Path(line) for line in owned.splitlines() if line.startswith(root + "/")):
                rel = path.relative_to(root).as_posix()
                if path.is_file() and any(fnmatch.fnmatch(rel, pattern) for pattern in patterns):
                    copy_file(path, folder / rel.removesuffix(".gz"))
        log.warning("%s: %d files in %s", name, sum(1 for p in folder.rglob("*") if p.is_file()), folder)
    shutil.rmtree(sets_dir / "seed-scan", ignore_errors=True)
    pages = make_scan(SEED_ARTICLE.read_text(encoding="utf-8"), sets_dir / "seed-scan")
    log.warning("seed-scan: scan.pdf and %d PNG pages", len(pages))
    shutil.rmtree(sets_dir / "seed-text", ignore_errors=True)
    (sets_dir / "seed-text").mkdir(parents=True)
    shutil.copy(SEED_ARTICLE, sets_dir / "seed-text" / SEED_ARTICLE.name)


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    target.write_bytes(gzip.decompress(data) if source.suffix == ".gz" else data)


def make_scan(text: str, folder: Path, dpi: int = 150, seed: int = 0) -> list[Path]:
    """Render `text` as a scanned document: A4 page images at `dpi` (DejaVu Sans, wrapped at 90 characters,
    a slight tilt and grey noise), saved as folder/scan.pdf (image pages, no text layer) and as
    folder/page-N.png. Returns the PNG paths."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    width, height, margin = round(8.27 * dpi), round(11.69 * dpi), round(0.6 * dpi)
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines += textwrap.wrap(" ".join(paragraph.split()), 90) + [""]
    size = round(11 * dpi / 72)  # 11 pt, smaller if the longest line would not fit between the margins
    while ImageFont.truetype(str(FONT), size).getlength(max(lines, key=len)) > width - 2 * margin:
        size -= 1
    font, step = ImageFont.truetype(str(FONT), size), round(size * 1.5)
    per_page = (height - 2 * margin) // step
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, paths = [], []
    for number, first in enumerate(range(0, len(lines), per_page), start=1):
        page = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(page)
        for row, line in enumerate(lines[first : first + per_page]):
            draw.text((margin, margin + row * step), line, font=font, fill=20)
        page = page.rotate(0.4 * rng.uniform(-1, 1), resample=Image.BICUBIC, fillcolor=255)
        noisy = np.asarray(page, dtype=np.float32) + rng.normal(0, 12, (height, width))
        page = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        paths.append(folder / f"page-{number}.png")
        page.save(paths[-1], dpi=(dpi, dpi))
        images.append(page)
    images[0].save(folder / "scan.pdf", save_all=True, append_images=images[1:], resolution=dpi)
    return paths


# ---- what the reader made of them ---------------------------------------------------------------

NAV_WORDS = set(
    "prev previous next up home index modules contents table of top navigation this page show source report a bug "
    "go search quick theme auto light dark | » « › ‹ → ← ↑ ¶ next: previous: up: topic".split()
)
MIN_RECUR = 3  # a line must recur in at least this many units to be furniture, whatever the share
RECUR_SHARE = 0.3
_SECTION_NUMBER = re.compile(r"^\s*(?:[A-Z]\.)?[\d.]+\s+")


def norm(text: str) -> str:
    """How answers and passages are compared: case-folded (which also unfolds the ligature "ﬁ"), whitespace
    collapsed."""
    return " ".join(text.casefold().split())


def line_key(line: str) -> str:
    """How furniture lines are compared: lower case, whitespace collapsed, digits as 0 (page numbers differ)."""
    return re.sub(r"\d", "0", " ".join(line.lower().split()))


def is_navigation(key: str) -> bool:
    words = key.split()
    return bool(words) and all(word in NAV_WORDS for word in words)


def furniture(documents: dict[str, dict]) -> dict[str, set[str]]:
    """Per source, the line keys that are furniture: recurring in >= 30% (and >= MIN_RECUR) of the set's HTML
    files or of one PDF's pages, or first or last line of >= MIN_RECUR pages of one PDF."""
    found: dict[str, set[str]] = {}
    html = [path for path in documents if not path.lower().endswith(".pdf")]
    across = Counter(key for path in html for key in {line_key(x) for x in documents[path]["text"].splitlines()})
    shared = {key for key, n in across.items() if n >= max(MIN_RECUR, RECUR_SHARE * len(html))}
    for path, row in documents.items():
        if path in html:
            found[path] = shared
            continue
        text = row["text"]
        pages = [text[s["start"] : s["end"]].splitlines() for s in json.loads(row["sections"])]
        on_pages = Counter(key for lines in pages for key in {line_key(x) for x in lines if x.strip()})
        edges = Counter(line_key(lines[i]) for lines in pages if lines for i in {0, len(lines) - 1})
        found[path] = {k for k, n in on_pages.items() if n >= max(MIN_RECUR, RECUR_SHARE * len(pages))} | {
            k for k, n in edges.items() if n >= MIN_RECUR
        }
    return found


def furniture_share(text: str, lines: set[str]) -> float:
    """The share of the words of `text` that lie on furniture or navigation lines."""
    words = furniture_words = 0
    for line in text.splitlines():
        key = line_key(line)
        count = len(key.split())
        words += count
        furniture_words += count if key in lines or is_navigation(key) else 0
    return furniture_words / words if words else 0.0


def is_lone_heading(text: str) -> bool:
    """One line, at most 10 words, no sentence punctuation once a leading section number is dropped."""
    text = text.strip()
    rest = _SECTION_NUMBER.sub("", text)
    return "\n" not in text and len(text.split()) <= 10 and not re.search(r"[.!?](\s|$)", rest)


_LEAF_BLOCKS = ["p", "li", "td", "th", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "div", "caption", "blockquote"]
_SEPARATORS = re.compile(r"[\s|»«›‹]+")


def html_sources(folder: Path) -> dict[str, tuple[set[str], list[set[str]]]]:
    """Per HTML file: the keys of its link-only lines (a block with no block inside whose text is all link
    text, bar separators such as | and », and that no other block of the file reads the same), and the lines
    of each <pre> with >= 3 non-empty lines (whitespace collapsed)."""
    from bs4 import BeautifulSoup

    found = {}
    for path in sorted(folder.rglob("*.htm*")):
        soup = BeautifulSoup(path.read_bytes(), "lxml")
        links: set[str] = set()
        texts: set[str] = set()
        for block in soup.find_all(_LEAF_BLOCKS):
            key = line_key(block.get_text(" "))
            if key and not block.find(_LEAF_BLOCKS):
                linked = line_key(" ".join(a.get_text(" ") for a in block.find_all("a")))
                bare = _SEPARATORS.sub(" ", key).strip()
                (links if bare and bare == _SEPARATORS.sub(" ", linked).strip() else texts).add(key)
        pres = [{" ".join(x.split()) for x in pre.get_text().splitlines() if x.strip()} for pre in soup.find_all("pre")]
        found[path.relative_to(folder).as_posix()] = (links - texts, [p for p in pres if len(p) >= 3])
    return found


def code_blocks(html: dict[str, tuple[set[str], list[set[str]]]], chunks: list[dict]) -> dict[str, int]:
    """The <pre> blocks of >= 3 lines: are their lines lines of the file's chunks (line breaks kept), and all
    in one chunk (kept whole)?"""
    lines_of: dict[str, list[set[str]]] = {}
    for chunk in chunks:
        lines_of.setdefault(chunk["source"], []).append({" ".join(x.split()) for x in chunk["text"].splitlines()})
    counts = {"blocks": 0, "lines kept": 0, "whole": 0}
    for path, (_, blocks) in html.items():
        per_chunk = lines_of.get(path, [])
        every = set().union(*per_chunk)
        for block in blocks:
            counts["blocks"] += 1
            counts["lines kept"] += block <= every
            counts["whole"] += any(block <= lines for lines in per_chunk)
    return counts


def reading(name: str, folder: Path, store, embedder, summary) -> dict:
    """Files, skips, chunks and their length, and the furniture, heading and code-block counts of one set."""
    documents = store.documents()
    chunks = store.chunks_of(sorted(documents)) if documents else []
    html = html_sources(folder)
    lines = furniture(documents)
    for path, (links, _) in html.items():
        lines[path] = lines.get(path, set()) | links
    shares = [(furniture_share(c["text"], lines[c["source"]]), c) for c in chunks]
    reasons = Counter(s.reason.split(" — ")[0] for s in summary.skipped)
    worst = sorted(shares, key=lambda pair: (-pair[0], -len(pair[1]["text"])))[:3]
    row = {
        "set": name,
        "files": sum(1 for p in folder.rglob("*") if p.is_file()),
        "skipped": len(summary.skipped),
        "skip reasons": dict(reasons),
        "chunks": len(chunks),
        "median pieces": statistics.median(len(embedder.offsets(c["text"])) for c in chunks) if chunks else 0,
        "build s": round(summary.seconds, 1),
        "boilerplate": share(sum(s >= 0.5 for s, _ in shares), len(chunks)),
        "with furniture": share(sum(s > 0 for s, _ in shares), len(chunks)),
        "lone headings": share(sum(is_lone_heading(c["text"]) for c in chunks), len(chunks)),
        "worst chunks": [{"source": c["source"], "furniture": round(s, 2), "text": c["text"][:400]} for s, c in worst],
    }
    if html:
        blocks = code_blocks(html, chunks)
        row["code blocks"] = blocks
        row["code lines kept"] = share(blocks["lines kept"], blocks["blocks"])
        row["code whole"] = share(blocks["whole"], blocks["blocks"])
    return row


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


# ---- retrieval -----------------------------------------------------------------------------------

MODES = ("hybrid", "dense", "bm25")
K = 5


def questions(name: str) -> list[dict]:
    """The set's questions; seed-text asks the seed-scan questions of the text file."""
    file = QUESTIONS / f"{'seed-scan' if name.startswith('seed') else name}.jsonl"
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if name.startswith("seed"):
        seed = json.loads(SEED_QUESTIONS.read_text(encoding="utf-8"))["answerable"]
        if [r["question"] for r in rows] != seed:
            sys.exit(f"{file} must hold the answerable questions of {SEED_QUESTIONS}, in order")
        if name == "seed-text":
            rows = [{**r, "source": SEED_ARTICLE.name} for r in rows]
    return rows


def retrieval(name: str, store, embedder) -> list[dict]:
    """hit@1 and hit@5 per mode and split, and the share of questions whose answer is in the source's text."""
    from assistant.search import Retriever

    asked = questions(name)
    texts = {path: norm(row["text"]) for path, row in store.documents().items()}
    in_text = [any(norm(a) in texts.get(q["source"], "") for a in q["answers"]) for q in asked]
    rows = []
    retriever = Retriever(store, embedder, -1.0) if len(store) else None
    embedder.remember([q["question"] for q in asked])
    for mode in MODES:
        ranks = [answer_rank(retriever, q, mode) if retriever else None for q in asked]
        row: dict = {"set": name, "mode": mode}
        for split in ("tune", "held"):
            mine = [r for r, q in zip(ranks, asked) if q["split"] == split]
            row[f"{split} n"] = len(mine)
            row[f"{split} hit@1"] = share(sum(r == 1 for r in mine), len(mine))
            row[f"{split} hit@5"] = share(sum(r is not None for r in mine), len(mine))
        row["in text"] = share(sum(in_text), len(asked))
        rows.append(row)
        log.warning("%s", row)
    return rows


def answer_rank(retriever, question: dict, mode: str) -> int | None:
    """1-based rank of the first of the top K passages that holds an answer string, or None."""
    answers = [norm(a) for a in question["answers"]]
    for rank, passage in enumerate(retriever.search(question["question"], K, mode=mode), start=1):
        if any(a in norm(passage.text) for a in answers):
            return rank
    return None


# ---- the run -------------------------------------------------------------------------------------


def measure(name: str, work: Path, embedder) -> tuple[dict, list[dict]]:
    """Build the set into its own index (from scratch) and measure it."""
    from assistant.config import Settings
    from assistant.index import build_index
    from assistant.index.faiss.store import open_index

    folder = work / "sets" / name
    if not folder.is_dir():
        sys.exit(f"{folder} does not exist — run with --prepare first")
    settings = Settings(corpus=folder, index=work / "index" / name, min_score=-1.0)
    summary = build_index(settings, embedder, rebuild=True)
    log.warning("%s: %s", name, summary.line())
    store = open_index(settings.index, settings.model, settings.chunking())
    try:
        return reading(name, folder, store, embedder, summary), retrieval(name, store, embedder)
    finally:
        store.close()


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[fmt(row.get(c)) for c in columns] for row in rows]
    lines = [columns, ["---"] * len(columns), *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "–"
    return f"{value:g}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-ingest"))
    parser.add_argument("--prepare", action="store_true", help="copy the sets from the installed packages first")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=SETS)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.work.resolve().is_relative_to(REPO):
        sys.exit("--work must be outside the repository: the document sets never go into it")
    if args.prepare:
        prepare(args.work / "sets")
    from evaldata import CachedEmbedder  # benchmarks/ is not a package; the real model, query vectors cached

    embedder = CachedEmbedder()
    embedder.encode(["load the model before the first build is timed"])
    results: dict = {"packages": packages(), "reading": [], "retrieval": []}
    for name in args.sets:
        read, found = measure(name, args.work, embedder)
        results["reading"].append(read)
        results["retrieval"].extend(found)
    columns = ["set", "files", "skipped", "skip reasons", "chunks", "median pieces", "build s", "boilerplate"]
    columns.append("with furniture")
    print(table(results["reading"], [*columns, "lone headings", "code lines kept", "code whole"]))
    hits = ["tune hit@1", "tune hit@5", "held hit@1", "held hit@5"]
    print("\n" + table(results["retrieval"], ["set", "mode", "tune n", "held n", *hits, "in text"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
