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
  navigation only: every word is one of NAV_WORDS ("Prev Next Home Up", "next | previous | modules");
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
    PYTHONPATH=. .venv/bin/python benchmarks/ingest.py --prepare --out /tmp/ingest.json   # ~25 min
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


if __name__ == "__main__":
    main()
